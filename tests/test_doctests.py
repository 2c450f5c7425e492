"""Every ``>>>`` example in salbench runs: one test per module of the installed namespace.

Collected by walking ``salbench`` itself (not by file paths), so each module is imported once,
under its real name, exactly as a user imports it.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest
import salbench
from salbench import attacks, explainers, metrics


def _modules() -> list[str]:
    # the plug-in packages live in folders of their own (mapped into the namespace), so each is walked
    names = {"salbench"}
    for package in (salbench, explainers, metrics, attacks):
        names.add(package.__name__)
        names.update(info.name for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."))
    return sorted(n for n in names if not n.startswith("salbench.perf."))  # perf scripts time things


MODULES = _modules()


def test_every_package_is_walked():
    assert {"salbench.explainers", "salbench.metrics.selective", "salbench.attacks.candidates", "salbench.core"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (see the output above)"
