"""Code fingerprints: which modules count, and that an edit of one changes the fingerprint."""

from __future__ import annotations

import sys
import types

import pytest
from salbench import attacks, explainers, recipes
from salbench.core import fingerprint
from salbench.core.fingerprint import code_fingerprint, source_modules


def test_a_component_counts_its_module_its_base_classes_and_the_salbench_modules_they_use():
    modules = source_modules([attacks.registry.entry("topk").factory])
    # ghorbani defines it, pgd its loop, base its base class, threat_model and seeding its draws
    assert {"salbench.attacks.ghorbani", "salbench.attacks.pgd", "salbench.attacks.base",
            "salbench.attacks.threat_model", "salbench.core.seeding"} <= modules
    assert "salbench.attacks" in modules and "salbench.attacks.dare" not in modules  # a package: its __init__ only
    assert not any(m.startswith(("torch", "numpy")) for m in modules)


def test_the_fingerprint_depends_on_the_components_and_nothing_else():
    smoothgrad = explainers.registry.entry("smoothgrad").factory
    gradient = explainers.registry.entry("gradient").factory
    assert code_fingerprint(smoothgrad) == code_fingerprint(smoothgrad)
    assert code_fingerprint(smoothgrad) != code_fingerprint(gradient)
    assert code_fingerprint(smoothgrad, gradient) == code_fingerprint(gradient, smoothgrad)


def test_editing_a_used_module_changes_the_fingerprint(monkeypatch):
    standard = recipes.registry.entry("standard").factory
    before = code_fingerprint(standard)
    real = fingerprint._source_digest
    monkeypatch.setattr(fingerprint, "_source_digest", lambda name: "x" if name == "salbench.recipes.base" else real(name))
    assert code_fingerprint(standard) != before


@pytest.fixture
def plugin_module(tmp_path):
    """A plug-in file imported as salbench's plugin loader names it, using a salbench base class."""
    path = tmp_path / "plug.py"
    path.write_text("from salbench.explainers.base import Explainer\n\nclass Plug(Explainer):\n    'doc'\n")
    module = types.ModuleType("salbench_plugin_plug_test")
    module.__file__ = str(path)
    sys.modules[module.__name__] = module
    exec(compile(path.read_text(), str(path), "exec"), module.__dict__)
    yield module
    del sys.modules[module.__name__]


def test_a_plugin_counts_its_own_file_and_the_salbench_modules_it_uses(plugin_module):
    assert {"salbench_plugin_plug_test", "salbench.explainers.base"} <= source_modules([plugin_module.Plug])
