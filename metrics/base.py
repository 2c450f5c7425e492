"""The metric interface: per-sample scores, each metric declaring its category and direction."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal, NamedTuple

from torch import Tensor, nn

from explainers.base import Explainer

__all__ = ["Case", "Metric", "MetricOutput", "PairMetric", "FaithfulnessMetric", "CATEGORIES"]

CATEGORIES = ("robustness", "faithfulness", "significance", "localisation")


@dataclasses.dataclass
class Case:
    """Everything a grid cell knows about a batch when it scores it.

    ``x_adv``/``attr_adv`` are the attacked input and its attribution (None before an attack);
    ``mask`` is a ground-truth relevance mask where the data set has one; ``reference`` holds
    (N, m, *input_shape) reference images per sample where the data set has them (e.g. the
    "normal" images of a selective test, see :mod:`metrics.selective_pvalue`).
    """

    model: nn.Module
    explainer: Explainer
    x: Tensor
    target: Tensor
    attr: Tensor
    x_adv: Tensor | None = None
    attr_adv: Tensor | None = None
    mask: Tensor | None = None
    reference: Tensor | None = None


class MetricOutput(NamedTuple):
    """What :meth:`Metric.evaluate` may return instead of the plain ``(values, curves)`` pair.

    ``values``: (N,), or (N, len(outputs)) for a metric with :attr:`Metric.outputs`;
    ``curves``: (N, M) or None; ``notes``: None or one entry per sample, a string saying why
    that sample's values are missing (NaN) or None. A value may be NaN only with a note: the
    grid stores the note beside it, so no missing value is silent.
    """

    values: Tensor
    curves: Tensor | None = None
    notes: list[str | None] | None = None


class Metric:
    """Base class of metrics.

    Every metric declares ``category`` (one of :data:`CATEGORIES`) and ``higher_is_better``,
    and returns one value per sample as a tensor of shape (N,). ``evaluate(case)`` is the
    grid runner's uniform entry point (values and optional curves); each subclass also has a
    direct ``__call__`` with the arguments natural to it. ``needs_attack`` metrics compare x
    with an attacked x′; the grid evaluates the others once per explainer, without an attack.

    A metric that reports several numbers per sample names them in ``outputs``; its values
    then have shape (N, len(outputs)) and the grid stores each column as the metric
    ``"<name>.<output>"`` (same category and direction). ``evaluate`` may return a
    :class:`MetricOutput` to attach per-sample notes (why a value is missing).
    """

    category: ClassVar[Literal["robustness", "faithfulness", "significance", "localisation"]]
    higher_is_better: ClassVar[bool]
    needs_attack: ClassVar[bool] = False
    outputs: ClassVar[tuple[str, ...]] = ()

    def evaluate(self, case: Case) -> tuple[Tensor, Tensor | None] | MetricOutput:
        """Per-sample values (N,) (or (N, len(outputs))) and, for curve metrics, the per-sample
        curves (N, M), else None; or a :class:`MetricOutput` that adds per-sample notes."""
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


class PairMetric(Metric):
    """A robustness metric comparing the attribution of x with that of the attacked x′.

    ``metric(attr, attr_adv)`` → (N,). Subclasses implement :meth:`compare`.
    """

    category: ClassVar[str] = "robustness"
    needs_attack: ClassVar[bool] = True

    def __call__(self, attr: Tensor, attr_adv: Tensor) -> Tensor:
        from explainers.validation import check_input, check_same_shape

        check_input(attr, "attr")
        check_input(attr_adv, "attr_adv")
        check_same_shape(attr, attr_adv, ("attr", "attr_adv"))
        return self.compare(attr, attr_adv)

    def compare(self, attr: Tensor, attr_adv: Tensor) -> Tensor:
        raise NotImplementedError

    def evaluate(self, case: Case) -> tuple[Tensor, Tensor | None]:
        if case.attr_adv is None:
            raise ValueError(f"metric {type(self).__name__} compares two attributions and needs an attack (attr_adv)")
        return self(case.attr, case.attr_adv), None


class FaithfulnessMetric(Metric):
    """A metric of how well an attribution reflects the model: ``metric(model, x, attr, target)`` → (N,)."""

    category: ClassVar[str] = "faithfulness"

    def __call__(self, model: nn.Module, x: Tensor, attr: Tensor, target: Tensor | int) -> Tensor:
        raise NotImplementedError

    def evaluate(self, case: Case) -> tuple[Tensor, Tensor | None]:
        return self(case.model, case.x, case.attr, case.target), None
