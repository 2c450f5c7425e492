"""Max- and avg-sensitivity of a saliency map to random perturbations in a ball (Yeh et al. 2019)."""

from __future__ import annotations

from typing import ClassVar

import torch
from salbench.explainers.base import Explainer
from salbench.metrics import register
from salbench.metrics.base import MetricOutput
from salbench.metrics.neighbourhood import NeighbourhoodMetric
from salbench.metrics.recompute import notes_where
from torch import Tensor, nn

__all__ = ["AvgSensitivity", "MaxSensitivity", "relative_changes"]

ZERO_MAP_NOTE = "the attribution E(x) is zero, so the relative change ‖E(x) − E(x + δ)‖ / ‖E(x)‖ is undefined"


def relative_changes(attr: Tensor, attr_neighbours: Tensor) -> Tensor:
    """(N, S): ‖E(x) − E(x + δ_s)‖₂ / ‖E(x)‖₂ for maps ``attr`` (N, ...) and ``attr_neighbours`` (N, S, ...).

    NaN for a sample whose map ``attr`` is zero.

    >>> relative_changes(torch.tensor([[3.0, 4.0]]), torch.tensor([[[3.0, 4.0], [0.0, 4.0]]]))
    tensor([[0.0000, 0.6000]])
    """
    change = (attr[:, None] - attr_neighbours).flatten(2).norm(dim=2)
    norm = attr.flatten(1).norm(dim=1)[:, None]
    return torch.where(norm > 0, change / torch.where(norm > 0, norm, 1.0), float("nan"))


class _YehSensitivity(NeighbourhoodMetric):
    """Shared computation of :class:`MaxSensitivity` and :class:`AvgSensitivity` (``reduce`` over the draws)."""

    reduce: ClassVar[str]

    def score(self, model: nn.Module, explainer: Explainer, x: Tensor, target: Tensor, attr: Tensor) -> MetricOutput:
        changes = relative_changes(attr, self.explain_neighbours(model, explainer, self.neighbours(x), target))
        values = changes.amax(dim=1) if self.reduce == "max" else changes.mean(dim=1)
        return MetricOutput(values, None, notes_where(values.isnan(), ZERO_MAP_NOTE))


@register("max_sensitivity")
class MaxSensitivity(_YehSensitivity):
    """Largest relative change of the map over random draws in an L∞ ball (Yeh et al. 2019).

    Yeh, Hsieh, Suggala, Inouye, Ravikumar, "On the (In)fidelity and Sensitivity of
    Explanations", NeurIPS 2019, §3 (SENS_MAX), as Captum's ``captum.metrics.sensitivity_max``
    and Quantus's ``MaxSensitivity`` compute it:

        SENS_MAX(x) = max_{s=1..S} ‖E(x) − E(x + δ_s)‖₂ / ‖E(x)‖₂,   δ_s ~ U[−r, r]^d

    over all non-batch elements, with the map E recomputed by the cell's explainer for the same
    target at each draw (draws: :class:`~salbench.metrics.neighbourhood.NeighbourhoodMetric`).
    Lower is better; 0 for a map that does not change. Not the attack-based ``sensitivity``
    metric (a pair metric ‖E(x) − E(x′)‖ / ‖x − x′‖ at one attacked x′).

    Definitions: the paper defines SENS_MAX as the max of ‖ΔE‖ over the ball, without dividing
    by ‖E(x)‖, and estimates it by Monte-Carlo draws; Captum and Quantus divide by ‖E(x)‖ so
    that maps of different scales compare; this metric follows them (their values agree with
    each other, and with these given the same draws). Where ‖E(x)‖ = 0, Captum divides by 1 and Quantus
    returns inf/NaN; here the value is NaN with a note. Captum's defaults (r = 0.02, S = 10) are
    the defaults here; Quantus's are r = 0.2, S = 200. The prediction may change at a draw
    (as in Captum and Quantus by default).

    Args: see :class:`~salbench.metrics.neighbourhood.NeighbourhoodMetric` (``n_samples=10``,
    ``radius=0.02``, ``seed=0``, ``batch_size=256``).

    Example:
        >>> import torch
        >>> from salbench import explainers, metrics
        >>> model = torch.nn.Linear(3, 2)  # gradient maps of a linear model do not change at all
        >>> metrics.get("max_sensitivity")(model, explainers.get("gradient"), torch.randn(4, 3), 0)
        tensor([0., 0., 0., 0.])
    """

    reduce = "max"


@register("avg_sensitivity")
class AvgSensitivity(_YehSensitivity):
    """Mean relative change of the map over random draws in an L∞ ball (Yeh et al. 2019).

    Yeh et al., NeurIPS 2019, §3 (the average sensitivity), as Quantus's ``AvgSensitivity``:

        SENS_AVG(x) = (1/S) Σ_{s=1..S} ‖E(x) − E(x + δ_s)‖₂ / ‖E(x)‖₂,   δ_s ~ U[−r, r]^d

    Everything else (draws, normalisation by ‖E(x)‖, NaN for a zero map, defaults, departures)
    as :class:`MaxSensitivity`. Lower is better.

    Example:
        >>> import torch
        >>> from salbench import explainers, metrics
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
        >>> x = torch.randn(4, 3)
        >>> avg = metrics.get("avg_sensitivity", radius=0.1)(model, explainers.get("gradient"), x, 0)
        >>> top = metrics.get("max_sensitivity", radius=0.1)(model, explainers.get("gradient"), x, 0)
        >>> bool((avg <= top).all() and (avg > 0).all())
        True
    """

    reduce = "mean"
