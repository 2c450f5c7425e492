"""The contract of every registered attack (:mod:`salbench.testing`): built-in or plug-in."""

from __future__ import annotations

import pytest
from salbench.testing import check_attack, registered


@pytest.mark.parametrize("name", registered("attacks"))
def test_every_registered_attack_keeps_its_contract(name):
    """Shapes and dtypes of the result, labels kept, range kept, device, batch invariance, NaN
    and bad-target rejection, determinism; a text-only attack is skipped with the reason."""
    report = check_attack(name)
    if not report.applicable:
        pytest.skip(report.describe())
