"""Contract checks for every registered explainer, attack and metric, built-in or plug-in.

A component gets these checks by being registered: iterate :func:`registered` in a test and
call :func:`check_explainer`, :func:`check_attack` or :func:`check_metric` on each name::

    @pytest.mark.parametrize("name", registered("explainers"))
    def test_contract(name):
        check_explainer(name)

The checks run on small float64 fixtures, one per modality (:data:`MODALITIES`): a CNN (conv,
ReLU, conv, ReLU, global average pool, linear) on images (4, 1, 8, 8), on volumes
(4, 1, 4, 4, 4) with Conv3d and on signals (4, 2, 12) with Conv1d, and a tabular MLP, each with
a smooth twin (softplus) for gradcheck, whose second derivatives exist. For each fixture the
component applies to:

* **shape** — an attribution has the shape and dtype of ``x``; an attack's ``x_adv`` has the
  shape of ``x`` and its per-sample fields shape (N,), and every sample keeps its label; a
  metric gives (N,) or (N, len(outputs)) values and (N, M) curves or None;
* **device** — the result lives on the inputs' device (on CUDA too, where there is one);
* **batch invariance** — sample 0's result does not change when the other samples of its
  batch are replaced by others; for a component without a ``seed`` (nothing random, so
  nothing drawn per batch position), each sample's result in the batch equals its result
  alone;
* **NaN rejection** — a NaN in the input is refused at the entry point with a ValueError;
* **target rejection** (explainers, attacks) — a target of another batch size is refused with
  a ValueError, and so is a class index out of the model's range by a component whose result
  depends on the target (``random`` and ``random_noise`` do not use it);
* **create_graph** (explainers) — a ``differentiable`` explainer computes with
  ``create_graph=True`` the same map as without, with a graph whose derivative is nonzero
  (on the smooth model); another refuses ``create_graph=True`` with a ValueError;
* **gradcheck** (differentiable explainers) — that graph has the Jacobian that finite
  differences give;
* **determinism** — two components built with the same parameters give identical results,
  whatever the state of torch's global random generator (randomness comes from the
  component's own ``seed``).

A component is built with its declared defaults updated by its class attribute
``test_params`` (a dict of cheap parameters for these checks, e.g. fewer samples or steps), so
that slow components stay fast here without a list of names, and, on the fixture of a modality,
by its ``test_params_by_modality`` entry for that modality where it has one (a parameter whose
form depends on the number of spatial dimensions, such as ``target_region``'s region). Which fixtures a component
applies to is read from its declared ``modalities``; a component that refuses the fixture of a
modality it declares fails. A component that applies to no fixture (text only, for now) is
reported as skipped with the reason (the checks raise no error then:
:attr:`ContractReport.applicable` is empty), never as passed. A
component that only fits data of a particular layout (the ``clinical`` attack needs the 30
columns of its table profile) says why in a ``contract_exemption`` class attribute and is
reported as skipped with that reason; its own tests then check it on such data. A component
that cannot be built because an optional package does not import (the ``zennit`` adapter) is
reported as not applicable, with the ImportError as the reason.

Example:
    >>> report = check_explainer("gradient")
    >>> report.applicable
    ('image', 'volume', 'signal', 'tabular')
    >>> "batch invariance" in report.passed["image"]
    True
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from salbench import attacks, explainers, metrics
from salbench.core.registry import Registry
from salbench.metrics.base import Case, MetricOutput
from torch import Tensor, nn

__all__ = [
    "MODALITIES",
    "ContractError",
    "ContractReport",
    "Fixture",
    "fixture",
    "registered",
    "check_explainer",
    "check_attack",
    "check_metric",
]

MODALITIES = ("image", "volume", "signal", "tabular")
"""The modalities that have a fixture (text has none yet: text components are reported as skipped)."""

_REGISTRIES: dict[str, Registry] = {
    "explainers": explainers.registry, "attacks": attacks.registry, "metrics": metrics.registry,
}
_N = 4  # samples per fixture batch
_TOLERANCE = {"rtol": 1e-7, "atol": 1e-10}


class ContractError(AssertionError):
    """A component broke one or more contract checks; the message lists each."""


class _Skip(Exception):
    """Raised by a check that does not apply to the component; the message says why."""


@dataclasses.dataclass(frozen=True)
class ContractReport:
    """What the checks of one component found.

    ``passed`` maps each applicable modality to the checks that passed on it (all of them, or
    a :class:`ContractError` is raised instead); ``not_applicable`` maps each other modality to
    the reason; ``skipped`` lists checks that do not apply to the component, with the reason.
    """

    component: str
    passed: dict[str, tuple[str, ...]]
    not_applicable: dict[str, str]
    skipped: tuple[str, ...]

    @property
    def applicable(self) -> tuple[str, ...]:
        return tuple(self.passed)

    def describe(self) -> str:
        """One line per modality: the checks passed, or why it was not applicable."""
        lines = [f"{self.component}:"]
        lines += [f"  {m}: {', '.join(checks)}" for m, checks in self.passed.items()]
        lines += [f"  {m}: not applicable ({why})" for m, why in self.not_applicable.items()]
        lines += [f"  skipped: {s}" for s in self.skipped]
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Fixture:
    """A small model and batch of one modality: inputs ``x`` (N, ...), targets, valid range
    ``bounds``, a ground-truth ``mask`` (bool, shape of ``x``), ``reference`` inputs (N, 4, ...)
    and ``smooth_model``, the model with softplus activations (for gradcheck)."""

    modality: str
    model: nn.Module
    smooth_model: nn.Module
    x: Tensor
    target: Tensor
    bounds: tuple[float, float] | None
    mask: Tensor
    reference: Tensor

    def to(self, device: torch.device | str) -> Fixture:
        """The fixture with its model and tensors on ``device``."""
        moved = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key in ("x", "target", "mask", "reference"):
            moved[key] = moved[key].to(device)
        moved["model"] = copy.deepcopy(self.model).to(device)
        moved["smooth_model"] = copy.deepcopy(self.smooth_model).to(device)
        return Fixture(**moved)

    def sample(self, i: int) -> Fixture:
        """The fixture reduced to its sample ``i`` (a batch of one)."""
        return dataclasses.replace(
            self, x=self.x[i : i + 1], target=self.target[i : i + 1], mask=self.mask[i : i + 1],
            reference=self.reference[i : i + 1],
        )

    def with_others_replaced(self) -> Fixture:
        """The same batch with every sample but the first replaced by other inputs (targets:
        the model's predictions, as in the fixture)."""
        x = self.x.clone()
        x[1:] = _inputs(self.modality, len(x) - 1, torch.Generator().manual_seed(99)).to(x.device)
        with torch.no_grad():
            target = self.model(x).argmax(1)
        return dataclasses.replace(self, x=x, target=target)


class _Softplus5(nn.Softplus):
    """Softplus with β = 5: smooth, so second derivatives are nonzero."""

    def __init__(self):
        super().__init__(beta=5.0)


def _model(modality: str, activation: type[nn.Module]) -> nn.Module:
    """Fixed weights (the caller's global generator is left alone), the last layer standardising
    the logits over random inputs, so that every class is predicted for some inputs."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = _layers(modality, activation)
    with torch.no_grad():
        last = model[-1]
        logits = model(_inputs(modality, 256, torch.Generator().manual_seed(7)))
        scale = logits.std(0)
        last.weight.div_(scale[:, None])
        last.bias.copy_((last.bias - logits.mean(0)) / scale)
    return model


_SHAPES = {"image": (1, 8, 8), "volume": (1, 4, 4, 4), "signal": (2, 12), "tabular": (6,)}
"""The shape of one sample of each fixture."""

_CONVOLUTIONS = {
    "image": (nn.Conv2d, nn.AdaptiveAvgPool2d), "volume": (nn.Conv3d, nn.AdaptiveAvgPool3d),
    "signal": (nn.Conv1d, nn.AdaptiveAvgPool1d),
}


def _layers(modality: str, activation: type[nn.Module]) -> nn.Module:
    if modality in _CONVOLUTIONS:  # conv → act → conv → act → GAP → linear
        conv, pool = _CONVOLUTIONS[modality]
        layers = [conv(_SHAPES[modality][0], 4, 3, padding=1), activation(), conv(4, 5, 3, padding=1), activation(),
                  pool(1), nn.Flatten(), nn.Linear(5, 3)]
    else:  # linear → act → linear
        layers = [nn.Linear(6, 16), activation(), nn.Linear(16, 3)]
    return nn.Sequential(*layers).double().eval()


def _inputs(modality: str, n: int, gen: torch.Generator) -> Tensor:
    x = torch.rand((n, *_SHAPES[modality]), generator=gen, dtype=torch.float64)
    return x if modality in _CONVOLUTIONS else 2 * x - 1


def fixture(modality: str) -> Fixture:
    """The fixture of ``modality`` (one of :data:`MODALITIES`): N = 4 samples, 3 classes.

    >>> fixture("image").x.shape, fixture("tabular").x.shape
    (torch.Size([4, 1, 8, 8]), torch.Size([4, 6]))
    >>> fixture("volume").x.shape, fixture("signal").x.shape
    (torch.Size([4, 1, 4, 4, 4]), torch.Size([4, 2, 12]))
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {', '.join(MODALITIES)}, got {modality!r}")
    gen = torch.Generator().manual_seed(1)
    model = _model(modality, nn.ReLU)
    x = _inputs(modality, _N, gen)
    with torch.no_grad():
        target = model(x).argmax(1)  # the predicted classes: attacks keep them
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[..., :3] = True
    reference = torch.stack([_inputs(modality, 4, gen) for _ in range(_N)])
    bounds = (0.0, 1.0) if modality in _CONVOLUTIONS else None
    return Fixture(modality, model, _model(modality, _Softplus5), x, target, bounds, mask, reference)


def registered(kind: str) -> list[str]:
    """Every registered name of ``kind`` (``"explainers"``, ``"attacks"`` or ``"metrics"``),
    built-in, from entry points, or from plugins imported so far: parametrise tests with it.

    >>> "gradient" in registered("explainers")
    True
    """
    if kind not in _REGISTRIES:
        raise ValueError(f"kind must be one of {', '.join(_REGISTRIES)}, got {kind!r}")
    return _REGISTRIES[kind].names()


# -- the component under test --------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Subject:
    """How to build the component under test (afresh for each check)."""

    label: str
    build: Callable[[], Any]
    seeded: bool  # declares a seed: it may draw random numbers by batch position
    declared_modalities: tuple[str, ...]
    exemption: str | None  # why no generic fixture fits (``contract_exemption``), if one does not
    for_modality: Callable[[str], _Subject] | None = None  # the subject with a modality's test parameters

    @classmethod
    def of(cls, kind: str, name_or_instance: Any, params: dict[str, Any] | None) -> _Subject:
        registry = _REGISTRIES[kind]
        if not isinstance(name_or_instance, str):
            if params is not None:
                raise ValueError("params are for a component given by name; an instance is checked as it is")
            instance = name_or_instance
            kind_ = type(instance)
            return cls(repr(instance), lambda: instance, "seed" in vars(instance), _declared(kind_), _exemption(kind_))
        entry = registry.entry(name_or_instance)
        by_modality = getattr(entry.factory, "test_params_by_modality", {})

        def subject(modality: str | None = None) -> _Subject:
            chosen = {**getattr(entry.factory, "test_params", {}), **by_modality.get(modality, {}), **(params or {})}
            validated = registry.validate(name_or_instance, chosen)  # a bad test_params fails here, naming the parameter
            label = f"{registry.kind} {name_or_instance!r}" + (f" with {chosen}" if chosen else "")
            build = lambda: registry.get(name_or_instance, **chosen)  # noqa: E731
            declared, exemption = _declared(entry.factory), _exemption(entry.factory)
            return cls(label, build, "seed" in validated, declared, exemption, subject)

        return subject()


def _exemption(factory: Any) -> str | None:
    """A component's ``contract_exemption``: the stated reason no generic fixture fits it."""
    reason = getattr(factory, "contract_exemption", None)
    if reason is not None and (not isinstance(reason, str) or not reason.strip()):
        raise TypeError(f"{factory!r}: contract_exemption must be a non-empty str saying why no fixture fits, got {reason!r}")
    return reason


def _declared(factory: Any) -> tuple[str, ...]:
    """The modalities a component declares (its ``modalities`` class attribute; the base classes
    give a default, and every registry requires one)."""
    declared = getattr(factory, "modalities", None)
    if declared is None:
        raise TypeError(f"{factory!r} declares no `modalities`; subclass the kind's base class or declare them")
    return tuple(declared)


# -- running the checks ---------------------------------------------------------------------------
Run = Callable[[Any, Fixture], Any]  # component, fixture -> result
Compare = Callable[[Any, Any, str], None]  # result, result, what -> raises AssertionError


def _check(kind: str, subject: _Subject, run: Run, compare: Compare, checks: dict[str, Callable]) -> ContractReport:
    passed: dict[str, tuple[str, ...]] = {}
    not_applicable: dict[str, str] = {}
    failures: list[str] = []
    skipped: set[str] = set()
    try:
        subject.build()
    except ImportError as err:  # an adapter whose optional package does not import here (e.g. zennit)
        return ContractReport(subject.label, {}, {m: f"cannot be built here: {err}" for m in MODALITIES}, ())
    for modality in MODALITIES:
        if subject.exemption is not None:
            not_applicable[modality] = f"exempt: {subject.exemption}"
            continue
        if modality not in subject.declared_modalities:
            not_applicable[modality] = f"declares modalities {subject.declared_modalities}"
            continue
        data = fixture(modality)
        on_it = subject.for_modality(modality) if subject.for_modality is not None else subject
        component = on_it.build()
        try:
            first = run(component, data)
        except (ValueError, TypeError) as err:  # it declares that it applies: a refusal is a failure
            failures.append(f"{modality}: refused its fixture: {type(err).__name__}: {err}")
            continue
        done = []
        for check_name, check in checks.items():
            try:
                check(on_it, run, compare, data, first)
            except _Skip as why:
                skipped.add(f"{check_name}: {why}")
            except Exception as err:  # noqa: BLE001 - every failing check is reported
                failures.append(f"{modality}: {check_name}: {type(err).__name__}: {err}")
            else:
                done.append(check_name)
        passed[modality] = tuple(done)
    if failures:
        raise ContractError(f"{subject.label} breaks its contract:\n  " + "\n  ".join(failures))
    if kind != "explainers":
        skipped.add("gradcheck: only explainers are differentiated (create_graph)")
    return ContractReport(subject.label, passed, not_applicable, tuple(sorted(skipped)))


def _check_device(subject: _Subject, run: Run, compare: Compare, data: Fixture, first: Any) -> None:
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        moved = data.to(device)
        result = run(subject.build(), moved)
        for tensor in _tensors(result):
            if tensor.device.type != moved.x.device.type:
                raise AssertionError(f"a result is on {tensor.device}, the model and inputs on {moved.x.device}")


def _check_batch_invariance(subject: _Subject, run: Run, compare: Compare, data: Fixture, first: Any) -> None:
    other = run(subject.build(), data.with_others_replaced())
    compare(_sample(first, 0), _sample(other, 0), "sample 0 after the other samples of its batch were replaced")
    if not subject.seeded:
        for i in range(len(data.x)):
            alone = run(subject.build(), data.sample(i))
            compare(_sample(first, i), _sample(alone, 0), f"sample {i} in its batch and alone")


def _check_nan_rejection(subject: _Subject, run: Run, compare: Compare, data: Fixture, first: Any) -> None:
    x = data.x.clone()
    x.view(-1)[x.numel() // 2] = float("nan")
    try:
        run(subject.build(), dataclasses.replace(data, x=x))
    except ValueError:
        return
    raise AssertionError("an input holding NaN was accepted; the entry point must refuse it with a ValueError")


def _check_determinism(subject: _Subject, run: Run, compare: Compare, data: Fixture, first: Any) -> None:
    for global_seed in (0, 1):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(global_seed)
            again = run(subject.build(), data)
        compare(first, again, f"a second component built with the same parameters (global torch seed {global_seed})")


def _check_target_rejection(subject: _Subject, run: Run, compare: Compare, data: Fixture, first: Any) -> None:
    bad = [(data.target[:-1], "of another batch size")]
    classes = data.model(data.x[:1]).shape[1]
    try:
        compare(first, run(subject.build(), dataclasses.replace(data, target=(data.target + 1) % classes)), "")
    except AssertionError:  # the result depends on the target, so the target's range matters
        bad.append((data.target.clone().fill_(classes), "out of the class range"))
    for target, what in bad:
        try:
            run(subject.build(), dataclasses.replace(data, target=target))
        except ValueError:
            continue
        raise AssertionError(f"a target {what} was accepted; the entry point must refuse it with a ValueError")


_COMMON = {
    "device": _check_device,
    "batch invariance": _check_batch_invariance,
    "NaN rejection": _check_nan_rejection,
    "determinism": _check_determinism,
}


def _tensors(result: Any) -> list[Tensor]:
    if isinstance(result, Tensor):
        return [result]
    if dataclasses.is_dataclass(result):
        result = [getattr(result, f.name) for f in dataclasses.fields(result)]
    return [t for item in result if item is not None for t in _tensors(item)] if isinstance(result, (list, tuple)) else []


def _sample(result: Any, i: int) -> Any:
    """Sample ``i`` of a result: every per-sample tensor's row ``i``."""
    if isinstance(result, Tensor):
        return result[i]
    if dataclasses.is_dataclass(result):
        return type(result)(*[_sample(getattr(result, f.name), i) for f in dataclasses.fields(result)])
    if isinstance(result, tuple):
        return type(result)(*[_sample(item, i) for item in result]) if hasattr(result, "_fields") else tuple(
            _sample(item, i) for item in result
        )
    if isinstance(result, list):
        return result[i]
    return result


def _compare(a: Any, b: Any, what: str) -> None:
    for x, y in zip(_tensors(a), _tensors(b), strict=True):
        if x.is_floating_point():
            torch.testing.assert_close(x, y, equal_nan=True, msg=lambda m: f"{what}: {m}", **_TOLERANCE)
        elif not torch.equal(x, y):
            raise AssertionError(f"{what}: {x.tolist()} != {y.tolist()}")


# -- explainers ---------------------------------------------------------------------------------------
def _explain(explainer: Any, data: Fixture) -> Tensor:
    return explainer(data.model, data.x, data.target)


def _explainer_shape(subject: _Subject, run: Run, compare: Compare, data: Fixture, first: Tensor) -> None:
    if not isinstance(first, Tensor) or first.shape != data.x.shape or first.dtype != data.x.dtype:
        raise AssertionError(
            f"attribution {getattr(first, 'shape', type(first))} {getattr(first, 'dtype', '')}; "
            f"expected the shape and dtype of x, {tuple(data.x.shape)} {data.x.dtype}"
        )


def _create_graph(subject: _Subject, run: Run, compare: Compare, data: Fixture, first: Tensor) -> None:
    explainer = subject.build()
    x, target, model = data.x[:2].detach().clone().requires_grad_(True), data.target[:2], data.smooth_model
    if not getattr(explainer, "differentiable", True):
        try:
            explainer(model, x, target, create_graph=True)
        except ValueError:
            return
        raise AssertionError("a non-differentiable explainer accepted create_graph=True; it must refuse it (ValueError)")
    plain, kept = explainer(model, x, target), explainer(model, x, target, create_graph=True)
    if plain.requires_grad or not kept.requires_grad:
        raise AssertionError("create_graph=False must return a detached map and create_graph=True one with a graph")
    torch.testing.assert_close(plain, kept.detach(), rtol=0, atol=1e-12, msg=lambda m: f"create_graph changed the map: {m}")
    (second,) = torch.autograd.grad(kept.square().sum(), x)
    if not second.abs().max() > 0:
        raise AssertionError("the map kept with create_graph=True has a zero derivative with respect to x")


def _gradcheck(subject: _Subject, run: Run, compare: Compare, data: Fixture, first: Tensor) -> None:
    explainer = subject.build()
    if not getattr(explainer, "differentiable", True):
        raise _Skip("not differentiable (differentiable = False)")
    x, target, model = data.x[:2].detach().clone().requires_grad_(True), data.target[:2], data.smooth_model
    torch.autograd.gradcheck(lambda v: explainer(model, v, target, create_graph=True), (x,), atol=1e-6)


def check_explainer(name_or_instance: Any, params: dict[str, Any] | None = None) -> ContractReport:
    """Run the contract checks on an explainer: a registered name (built with its
    ``test_params`` updated by ``params``) or an instance. Raises :class:`ContractError`
    listing every failed check; returns the report otherwise.

    >>> check_explainer("gradient_x_input").not_applicable
    {}
    """
    checks = {
        "shape": _explainer_shape, **_COMMON, "target rejection": _check_target_rejection,
        "create_graph": _create_graph, "gradcheck": _gradcheck,
    }
    return _check("explainers", _Subject.of("explainers", name_or_instance, params), _explain, _compare, checks)


# -- attacks ------------------------------------------------------------------------------------------
def _attack(attack: Any, data: Fixture) -> Any:
    return attack(data.model, explainers.get("gradient"), data.x, data.target, bounds=data.bounds)


def _attack_shape(subject: _Subject, run: Run, compare: Compare, data: Fixture, first: Any) -> None:
    n = len(data.x)
    if first.x_adv.shape != data.x.shape:
        raise AssertionError(f"x_adv has shape {tuple(first.x_adv.shape)}, x {tuple(data.x.shape)}")
    for name, dtype in (("iterations", torch.long), ("label_kept", torch.bool), ("success", torch.bool)):
        value = getattr(first, name)
        if value.shape != (n,) or value.dtype != dtype:
            raise AssertionError(f"{name} is {tuple(value.shape)} {value.dtype}, expected ({n},) {dtype}")
    with torch.no_grad():
        kept = data.model(first.x_adv).argmax(1) == data.target
    if not (kept.all() and first.label_kept.all()):
        raise AssertionError(f"samples {(~kept).nonzero().flatten().tolist()} changed their label")
    if data.bounds is not None and ((first.x_adv < data.bounds[0]).any() or (first.x_adv > data.bounds[1]).any()):
        raise AssertionError(f"x_adv leaves the valid range {data.bounds}")


def check_attack(name_or_instance: Any, params: dict[str, Any] | None = None) -> ContractReport:
    """Run the contract checks on an attack (against the ``gradient`` explainer); see
    :func:`check_explainer`.

    >>> check_attack("random_noise").applicable
    ('image', 'volume', 'signal', 'tabular')
    """
    checks = {"shape": _attack_shape, **_COMMON, "target rejection": _check_target_rejection}
    return _check("attacks", _Subject.of("attacks", name_or_instance, params), _attack, _compare, checks)


# -- metrics ------------------------------------------------------------------------------------------
def _case(metric: Any, data: Fixture) -> Case:
    explainer = explainers.get("gradient")
    attr = explainer(data.model, data.x, data.target) if torch.isfinite(data.x).all() else data.x.clone()
    case = Case(model=data.model, explainer=explainer, x=data.x, target=data.target, attr=attr, mask=data.mask,
                reference=data.reference)
    if getattr(metric, "needs_attack", False):
        one = data.x[0]  # the same shift for every sample, whatever the batch
        case.x_adv = data.x + 0.01 * torch.sin(torch.arange(one.numel(), dtype=one.dtype, device=one.device)).view_as(one)
        case.attr_adv = explainer(data.model, case.x_adv, data.target) if torch.isfinite(data.x).all() else attr
    return case


def _score(metric: Any, data: Fixture) -> MetricOutput:
    return MetricOutput(*metric.evaluate(_case(metric, data)))


def _metric_shape(subject: _Subject, run: Run, compare: Compare, data: Fixture, first: MetricOutput) -> None:
    n = len(data.x)
    outputs = getattr(subject.build(), "outputs", ())
    shape = (n, len(outputs)) if outputs else (n,)
    if not isinstance(first.values, Tensor) or first.values.shape != shape:
        raise AssertionError(f"values of shape {getattr(first.values, 'shape', None)}, expected {shape}")
    if first.curves is not None and (first.curves.dim() != 2 or first.curves.shape[0] != n):
        raise AssertionError(f"curves of shape {tuple(first.curves.shape)}, expected ({n}, M)")
    if first.notes is not None and len(first.notes) != n:
        raise AssertionError(f"{len(first.notes)} notes for {n} samples")
    missing = torch.isnan(first.values).reshape(n, -1).any(1)
    for i in missing.nonzero().flatten().tolist():
        if first.notes is None or not first.notes[i]:
            raise AssertionError(f"sample {i} has a NaN value without a note saying why")


def check_metric(name_or_instance: Any, params: dict[str, Any] | None = None) -> ContractReport:
    """Run the contract checks on a metric through its grid entry point ``evaluate(case)``
    (attributions by ``gradient``; an attack-free shift of x for metrics that need an attack);
    see :func:`check_explainer`.

    >>> check_metric("spearman").applicable
    ('image', 'volume', 'signal', 'tabular')
    """
    checks = {"shape": _metric_shape, **_COMMON}
    return _check("metrics", _Subject.of("metrics", name_or_instance, params), _score, _compare, checks)
