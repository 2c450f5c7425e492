"""The contract of every registered metric (:mod:`salbench.testing`): built-in or plug-in."""

from __future__ import annotations

import pytest
from salbench.testing import check_metric, registered


@pytest.mark.parametrize("name", registered("metrics"))
def test_every_registered_metric_keeps_its_contract(name):
    """Value and curve shapes (a NaN only with a note), device, batch invariance, NaN rejection
    and determinism through ``evaluate``; a text-only metric is skipped with the reason."""
    report = check_metric(name)
    if not report.applicable:
        pytest.skip(report.describe())
