"""The registry: registration, lookup errors, parameter validation, entry-point plug-ins."""

from __future__ import annotations

import importlib
import sys
import textwrap
from typing import Literal

import pytest
from salbench.core.registry import (
    ParameterError,
    Registry,
    RegistryError,
    UnknownNameError,
)


@pytest.fixture
def reg() -> Registry:
    r = Registry("widget", group="salbench.test_widgets", attributes=("colour",))

    @r.register("spinner")
    class Spinner:
        """Spins a given number of times."""

        colour = "red"

        def __init__(self, turns: int = 3, speed: float = 1.0, mode: Literal["fast", "slow"] = "fast",
                     size: tuple[int, int] = (2, 2), label: str | None = None, loud: bool = False):
            self.turns, self.speed, self.mode, self.size, self.label, self.loud = turns, speed, mode, size, label, loud

    @r.register("family")
    class Family:
        """Takes its member from the name."""

        colour = "blue"

        def __init__(self, member: str, scale: float = 1.0):
            self.member, self.scale = member, scale

    return r


def test_get_builds_with_defaults_and_coerces_losslessly(reg):
    s = reg.get("spinner", speed=2, size=[3, 4])
    assert (s.turns, s.speed, s.mode, s.size, s.loud) == (3, 2.0, "fast", (3, 4), False)
    assert isinstance(s.speed, float) and isinstance(s.size, tuple)


def test_entry_lists_description_params_and_attributes(reg):
    e = reg.entry("spinner")
    assert e.description == "Spins a given number of times."
    assert [p.name for p in e.params] == ["turns", "speed", "mode", "size", "label", "loud"]
    assert e.param("turns").describe() == "turns: int = 3"
    assert e.attrs == {"colour": "red"}
    assert reg.names() == ["family", "spinner"]


def test_unknown_name_lists_close_matches_and_all_names(reg):
    with pytest.raises(UnknownNameError, match=r"unknown widget 'spiner'.*Did you mean 'spinner'.*Available widgets: family, spinner"):
        reg.get("spiner")


@pytest.mark.parametrize(
    "params, pattern",
    [
        ({"turnz": 1}, r"unknown parameter 'turnz'.*Did you mean 'turns'"),
        ({"turns": 1.5}, r"parameter 'turns'.*got 1.5 \(float\), expected int"),
        ({"turns": True}, r"parameter 'turns'.*expected int"),
        ({"loud": 1}, r"parameter 'loud'.*expected bool"),
        ({"mode": "medium"}, r"parameter 'mode'.*got 'medium'"),
        ({"size": [1, 2, 3]}, r"parameter 'size'"),
        ({"label": 5}, r"parameter 'label'.*expected str \| None"),
    ],
)
def test_bad_parameters_name_the_parameter(reg, params, pattern):
    with pytest.raises(ParameterError, match=pattern):
        reg.get("spinner", **params)


def test_family_member_name_fills_the_first_parameter(reg):
    f = reg.get("family:Beta", scale=2)
    assert (f.member, f.scale) == ("Beta", 2.0)
    with pytest.raises(ParameterError, match="needs parameter member: str"):
        reg.get("family")
    with pytest.raises(ParameterError, match="names 'member' twice"):
        reg.get("family:Beta", member="Gamma")


def test_registration_requires_docstring_attributes_and_annotations(reg):
    with pytest.raises(RegistryError, match="needs a docstring"):
        reg.register("nodoc")(type("NoDoc", (), {"colour": "x"}))

    class NoColour:
        """Has no colour."""

    with pytest.raises(RegistryError, match="must declare class attribute"):
        reg.register("nocolour")(NoColour)

    class Untyped:
        """Untyped parameter."""

        colour = "x"

        def __init__(self, a=1):
            pass

    with pytest.raises(RegistryError, match="needs a type annotation"):
        reg.register("untyped")(Untyped)


def test_duplicate_name_for_a_different_class_is_an_error(reg):
    class Other:
        """Another."""

        colour = "green"

    with pytest.raises(RegistryError, match="already registered"):
        reg.register("spinner")(Other)


def _install_plugin(tmp_path, monkeypatch, group: str, name: str, target: str, module_source: str) -> None:
    """A dist-info with an entry point, plus its module, in a directory put on sys.path."""
    module = target.split(":")[0]
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(module_source))
    dist = tmp_path / "salbench_test_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: salbench-test-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\n{name} = {target}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()


def test_entry_point_plugin_is_listed_lazily_and_built(tmp_path, monkeypatch, reg):
    _install_plugin(
        tmp_path, monkeypatch, "salbench.test_widgets", "plugged", "salbench_test_plugin_mod:Plugged",
        '''
        class Plugged:
            """A third-party widget."""
            colour = "purple"
            def __init__(self, power: int = 7):
                self.power = power
        ''',
    )
    assert "plugged" in reg.names()
    assert "salbench_test_plugin_mod" not in sys.modules  # listed without importing
    assert reg.get("plugged", power=9).power == 9
    assert reg.entry("plugged").attrs == {"colour": "purple"}


def test_real_explainer_registry_sees_an_entry_point_plugin(tmp_path, monkeypatch):
    from salbench import explainers

    _install_plugin(
        tmp_path, monkeypatch, "salbench.explainers", "ones_plugin", "salbench_ones_plugin:Ones",
        '''
        import torch
        from salbench.explainers.base import Explainer
        class Ones(Explainer):
            """Attributes 1 to every feature (a plug-in test)."""
            differentiable = False
            def __init__(self, value: float = 1.0):
                self.value = value
            def attribute(self, model, x, target, *, create_graph):
                return torch.full_like(x, self.value)
        ''',
    )
    monkeypatch.setattr(explainers.registry, "_plugins", None)  # re-scan entry points
    assert "ones_plugin" in explainers.names()
    attr = explainers.get("ones_plugin", value=2.0)(lambda x: x, __import__("torch").zeros(2, 3), 0)
    assert attr.eq(2.0).all()
    explainers.registry._entries.pop("ones_plugin")
