"""The registry: registration, lookup errors, parameter validation, entry-point plug-ins."""

from __future__ import annotations

import importlib
import sys
import textwrap
from typing import Literal

import pytest
from salbench.core.registry import (
    ParamsOf,
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


class _Loop:
    def __init__(self, *, steps: int = 50, beta: float | None = 10.0, seed: int = 0):
        self.steps, self.beta, self.seed = steps, beta, seed


class _Ball(_Loop):
    def __init__(self, *, eps: float = 0.1, **loop):
        super().__init__(**loop)
        self.eps = eps


class _Inner:
    def __init__(self, size: int = 3, shape: str = "square"):
        self.size, self.shape = size, shape


def _hierarchy() -> Registry:
    r = Registry("widget", group="salbench.test_widgets")

    @r.register("top")
    class Top(_Ball):
        """Inherits everything but k and the number of steps."""

        def __init__(self, k: int = 8, steps: int = 20, **ball):
            super().__init__(steps=steps, **ball)
            self.k = k

    @r.register("wrapper")
    class Wrapper:
        """Builds an Inner from the parameters it forwards."""

        def __init__(self, name: str = "w", size: int = 5, **inner: ParamsOf[_Inner]):
            self.name, self.inner = name, _Inner(size=size, **inner)

    return r


def test_parameters_are_read_along_the_class_hierarchy():
    r = _hierarchy()
    assert [p.describe() for p in r.entry("top").params] == [
        "k: int = 8", "steps: int = 20", "eps: float = 0.1", "beta: float | None = 10.0", "seed: int = 0",
    ]
    top = r.get("top")  # inherited defaults reach the parent, the override replaces the parent's default
    assert (top.k, top.steps, top.eps, top.beta, top.seed) == (8, 20, 0.1, 10.0, 0)
    top = r.get("top", eps=1, beta=None, steps=3)
    assert (top.steps, top.eps, top.beta) == (3, 1.0, None) and isinstance(top.eps, float)
    assert r.validate("top", {"seed": 4}) == {"k": 8, "steps": 20, "eps": 0.1, "beta": 10.0, "seed": 4}


def test_forwarded_parameters_of_a_wrapped_class():
    r = _hierarchy()
    assert [p.name for p in r.entry("wrapper").params] == ["name", "size", "shape"]
    w = r.get("wrapper", shape="round")
    assert (w.inner.size, w.inner.shape) == (5, "round")


def test_inherited_parameters_are_validated_by_name_and_class():
    r = _hierarchy()
    with pytest.raises(ParameterError, match=r"unknown parameter 'betta' for widget 'top' \(.*Top\).*Did you mean 'beta'"):
        r.get("top", betta=1.0)
    with pytest.raises(ParameterError, match=r"parameter 'eps' of widget 'top': got 'big'.*expected float"):
        r.get("top", eps="big")


def test_kwargs_without_a_parent_or_target_is_an_error():
    r = Registry("widget", group="salbench.test_widgets")

    class Orphan:
        """Forwards to nothing."""

        def __init__(self, a: int = 1, **rest):
            pass

    with pytest.raises(RegistryError, match=r"\*\*rest stands for no declared parameters"):
        r.register("orphan")(Orphan)

    def function(a: int = 1, *args: int):
        """A factory with *args."""

    with pytest.raises(RegistryError, match=r"not \*args"):
        r.register("function")(function)


def test_pgd_loop_parameters_are_declared_once():
    """Every projected-ascent attack lists the loop's parameters with the loop's one declaration."""
    import inspect as inspect_module

    from salbench import attacks
    from salbench.attacks import pgd

    loop = inspect_module.signature(pgd.ProjectedAscent.__init__).parameters
    family = [n for n in attacks.names() if issubclass(attacks.registry.entry(n).factory, pgd.ProjectedAscent)]
    assert {"topk", "target_region", "mass_center", "er_attack", "mse", "acquisition", "clinical"} <= set(family)
    for name in family:
        entry = attacks.registry.entry(name)
        assert entry.param("surrogate_beta").default == loop["surrogate_beta"].default == 10.0
        assert entry.param("alpha").default is None
    sources = [inspect_module.getsource(m) for m in (attacks.ghorbani, attacks.r2et, attacks.acquisition, attacks.clinical, pgd)]
    assert sum(s.count("surrogate_beta: float") for s in sources) == 1


def test_declared_attributes_are_checked_and_defaults_listed():
    from salbench.core.applicability import check_declarations

    r = Registry("widget", group="salbench.test_widgets", attributes=("modalities",), defaults={"provides": ()},
                 check=check_declarations)

    @r.register("fine")
    class Fine:
        """Declares a modality, not what it provides."""

        modalities = ("image", "text")

    assert r.entry("fine").attrs == {"modalities": ("image", "text"), "provides": ()}

    class Misspelt:
        """Declares a modality that does not exist."""

        modalities = ("images",)

    with pytest.raises(RegistryError, match=r"widget 'misspelt' \(.*Misspelt\): modalities must be .*image, volume"):
        r.register("misspelt")(Misspelt)

    class Unknown:
        """Provides a feature that does not exist."""

        modalities = ("tabular",)
        provides = ("attention",)

    with pytest.raises(RegistryError, match=r"provides must be a collection of names among conv, gap_head"):
        r.register("unknown")(Unknown)


def test_an_attack_declares_inputs_among_the_known_ones():
    from salbench import attacks
    from salbench.attacks.base import Attack

    class NeedsBundle(Attack):
        """Asks for the whole data bundle."""

        inputs = ("data",)

    with pytest.raises(RegistryError, match=r"inputs must be a tuple of names among bounds, vocabulary, corpus"):
        attacks.registry.register("needs_bundle")(NeedsBundle)
    assert "needs_bundle" not in attacks.names()


def test_an_attack_declares_whether_it_is_a_noise_baseline():
    from salbench import attacks
    from salbench.attacks.base import Attack

    assert [n for n in attacks.names() if attacks.registry.entry(n).attrs["baseline"]] == [
        "random_noise", "random_synonym"]

    class Vague(Attack):
        """Says it is a baseline, sort of."""

        baseline = "yes"

    with pytest.raises(RegistryError, match=r"baseline must be True or False; got 'yes'"):
        attacks.registry.register("vague")(Vague)
    assert "vague" not in attacks.names()
