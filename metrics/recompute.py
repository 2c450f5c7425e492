"""Metrics that call the cell's explainer again: on perturbed inputs, randomised models or other targets.

:class:`RecomputingMetric` is the base of the robustness-to-random-perturbation metrics
(:mod:`~salbench.metrics.yeh_sensitivity`, :mod:`~salbench.metrics.local_lipschitz`,
:mod:`~salbench.metrics.relative_stability`, :mod:`~salbench.metrics.continuity`) and of the
sanity checks (:mod:`~salbench.metrics.parameter_randomisation`,
:mod:`~salbench.metrics.random_logit`). It validates the inputs once, at the entry point, and
gives every subclass the same two entry points: ``metric(model, explainer, x, target, attr=None)``
→ values (N,) (NaN where a value is undefined) and the grid's ``evaluate(case)`` →
:class:`~salbench.metrics.base.MetricOutput` with a note beside every NaN.
"""

from __future__ import annotations

import torch
from salbench.core.validation import check_input, check_same_shape, check_target
from salbench.explainers.base import Explainer
from salbench.metrics.base import Case, Metric, MetricOutput
from torch import Tensor, nn

__all__ = ["RecomputingMetric", "explain_rows", "notes_where"]


class RecomputingMetric(Metric):
    """Base class of the metrics that explain again; subclasses implement :meth:`score`.

    ``attr`` defaults to ``explainer(model, x, target)``; given, it must have the shape of ``x``
    (the grid passes the cell's attribution, so the explainer is not run twice on ``x``).
    """

    def __call__(
        self, model: nn.Module, explainer: Explainer, x: Tensor, target: Tensor | int, attr: Tensor | None = None
    ) -> Tensor:
        """Values (N,) (or (N, len(outputs))); NaN where undefined (:meth:`evaluate` says why)."""
        return self.evaluate(Case(model=model, explainer=explainer, x=x, target=target, attr=attr)).values

    def evaluate(self, case: Case) -> MetricOutput:
        if case.explainer is None:
            raise ValueError(f"metric {type(self).__name__} calls the explainer again; the case has none")
        check_input(case.x)
        target = check_target(case.target, case.x)
        if case.attr is None:
            attr = case.explainer(case.model, case.x, target).detach()
        else:
            check_input(case.attr, "attr")
            check_same_shape(case.attr, case.x, ("attr", "x"))
            attr = case.attr.detach()
        return self.score(case.model, case.explainer, case.x.detach(), target, attr)

    def score(self, model: nn.Module, explainer: Explainer, x: Tensor, target: Tensor, attr: Tensor) -> MetricOutput:
        """The metric on validated inputs: ``target`` (N,) long, ``attr`` of x's shape, detached."""
        raise NotImplementedError


def explain_rows(explainer: Explainer, model: nn.Module, inputs: Tensor, target: Tensor, batch_size: int) -> Tensor:
    """``explainer`` on the rows of ``inputs`` (M, ...) with targets (M,), in calls of at most
    ``batch_size`` rows; detached, concatenated in row order."""
    return torch.cat([
        explainer(model, inputs[i : i + batch_size], target[i : i + batch_size]).detach()
        for i in range(0, len(inputs), batch_size)
    ])


def notes_where(missing: Tensor, why: str) -> list[str | None] | None:
    """One note per sample: ``why`` where ``missing`` (N,) is True, else None; None if none is missing."""
    if not missing.any():
        return None
    return [why if m else None for m in missing.tolist()]
