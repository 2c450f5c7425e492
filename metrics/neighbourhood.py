"""Random neighbours of an input: uniform draws in an L∞ ball around it, and their explanations.

The shared machinery of the robustness-to-random-perturbation metrics (max- and
avg-sensitivity, the local Lipschitz estimate, relative stability). Sample i's draws come from
its own generator (:class:`~salbench.core.seeding.SampleStreams`, seeded by ``seed`` and the
sample's content), so a value never depends on the other samples of the batch, its size or the
device. The perturbed inputs of all samples × draws are explained together in calls of at most
``batch_size`` rows.

Example:
    >>> import torch
    >>> from salbench import metrics
    >>> metric = metrics.get("max_sensitivity", n_samples=4, radius=0.1)
    >>> x = torch.zeros(2, 3)
    >>> xs = metric.neighbours(x)
    >>> xs.shape, bool((xs - x[:, None]).abs().max() <= 0.1)
    (torch.Size([2, 4, 3]), True)
"""

from __future__ import annotations

from typing import ClassVar

import torch
from salbench.core.applicability import CONTINUOUS
from salbench.core.seeding import SampleStreams
from salbench.core.validation import check_positive, check_positive_int, check_seed
from salbench.explainers.base import Explainer
from salbench.metrics.recompute import RecomputingMetric, explain_rows
from torch import Tensor, nn

__all__ = ["NeighbourhoodMetric", "max_over_kept"]


class NeighbourhoodMetric(RecomputingMetric):
    """A robustness metric over ``n_samples`` uniform draws x + δ, δ ~ U[−r, r]^d (the L∞ ball
    of radius r = ``radius``), as Captum's ``sensitivity_max`` and Quantus's uniform noise draw them.

    Args:
        n_samples: draws per sample, >= 1.
        radius: r > 0, in the units of the input.
        seed: seed of the draws (with each sample's content), >= 0.
        batch_size: perturbed inputs per explainer call, >= 1.
    """

    category: ClassVar[str] = "robustness"
    higher_is_better = False
    modalities = CONTINUOUS  # a ball around the input needs float inputs
    test_params: ClassVar[dict] = {"n_samples": 3}

    def __init__(self, n_samples: int = 10, radius: float = 0.02, seed: int = 0, batch_size: int = 256):
        check_positive_int(n_samples, "n_samples")
        check_positive(radius, "radius")
        check_seed(seed)
        check_positive_int(batch_size, "batch_size")
        self.n_samples = n_samples
        self.radius = radius
        self.seed = seed
        self.batch_size = batch_size

    def neighbours(self, x: Tensor) -> Tensor:
        """The draws (N, n_samples, *x.shape[1:]): x_i + δ_is, δ_is ~ U[−r, r) elementwise, per-sample seeded."""
        u = SampleStreams(self.seed, x).rand((self.n_samples, *x.shape[1:]), like=x)
        return x[:, None] + (2 * u - 1) * self.radius

    def explain_neighbours(self, model: nn.Module, explainer: Explainer, neighbours: Tensor, target: Tensor) -> Tensor:
        """Attributions (N, S, ...) of the draws ``neighbours`` (N, S, ...) for each sample's target."""
        rows = neighbours.flatten(0, 1)
        targets = target.repeat_interleave(neighbours.shape[1])
        return explain_rows(explainer, model, rows, targets, self.batch_size).view_as(neighbours)


def max_over_kept(values: Tensor, kept: Tensor) -> Tensor:
    """(N,): the largest of ``values`` (N, S) where ``kept`` (N, S) is True; NaN where a row keeps none.

    >>> max_over_kept(torch.tensor([[1.0, 5.0], [2.0, 3.0]]), torch.tensor([[True, False], [False, False]]))
    tensor([1., nan])
    """
    best = torch.where(kept, values, float("-inf")).amax(dim=1)
    return torch.where(kept.any(dim=1), best, float("nan"))
