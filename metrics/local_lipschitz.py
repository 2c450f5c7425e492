"""Local Lipschitz estimate of a saliency map over random draws in a ball (Alvarez-Melis & Jaakkola 2018)."""

from __future__ import annotations

import torch
from salbench.explainers.base import Explainer
from salbench.metrics import register
from salbench.metrics.base import MetricOutput
from salbench.metrics.neighbourhood import NeighbourhoodMetric, max_over_kept
from salbench.metrics.recompute import notes_where
from torch import Tensor, nn

__all__ = ["LocalLipschitzEstimate"]

UNMOVED_NOTE = "every draw x + δ rounded back to x (|x| much larger than radius), so no ratio ‖ΔE‖ / ‖Δx‖ is defined"


@register("local_lipschitz")
class LocalLipschitzEstimate(NeighbourhoodMetric):
    """Largest change of the map per unit change of the input over random draws in a ball (Alvarez-Melis & Jaakkola 2018).

    Alvarez-Melis, Jaakkola, "On the Robustness of Interpretability Methods", ICML 2018
    Workshop on Human Interpretability (arXiv 1806.08049), eq. (1):

        L(x) = max_{x′ ∈ B_r(x)} ‖E(x) − E(x′)‖₂ / ‖x − x′‖₂

    estimated here by its largest value over S random points x′ = x + δ_s, δ_s ~ U[−r, r]^d (the L∞ ball B_r(x); draws:
    :class:`~salbench.metrics.neighbourhood.NeighbourhoodMetric`), with E recomputed for the
    same target. Norms over all non-batch elements; a draw that rounds back to x in the input's
    dtype is left out (NaN with a note if every draw does). Lower is better; 0 for a map that does not
    change (e.g. the gradient of a linear model).

    Departures: the paper maximises over the ball (Bayesian optimisation for black-box
    explainers, gradient ascent otherwise); random draws give a lower bound of that maximum.
    Quantus's ``LocalLipschitzEstimate`` draws x′ = x + N(0, 0.1²) (Gaussian, unbounded, not a
    ball) and S = 200; given the same x′ both give the same value. Defaults here: r = 0.02,
    S = 10 (as :class:`~salbench.metrics.yeh_sensitivity.MaxSensitivity`). Unlike the
    attack-based ``sensitivity`` metric (the same ratio at one attacked x′), the draws are random.

    Args: see :class:`~salbench.metrics.neighbourhood.NeighbourhoodMetric`.

    Example:
        >>> import torch
        >>> from salbench import explainers, metrics
        >>> model = torch.nn.Linear(3, 2)
        >>> explainer = explainers.get("gradient_x_input")  # E(x) = w ⊙ x, so L(x) <= max |w_c|
        >>> value = metrics.get("local_lipschitz")(model, explainer, torch.randn(4, 3), 0)
        >>> bool((value <= model.weight[0].abs().max() + 1e-6).all())
        True
    """

    def score(self, model: nn.Module, explainer: Explainer, x: Tensor, target: Tensor, attr: Tensor) -> MetricOutput:
        neighbours = self.neighbours(x)
        attr_neighbours = self.explain_neighbours(model, explainer, neighbours, target)
        change = (attr[:, None] - attr_neighbours).flatten(2).norm(dim=2)
        step = (x[:, None] - neighbours).flatten(2).norm(dim=2)
        moved = step > 0  # a draw may round back to x where |x| >> radius
        values = max_over_kept(change / torch.where(moved, step, 1.0), moved)
        return MetricOutput(values, None, notes_where(values.isnan(), UNMOVED_NOTE))
