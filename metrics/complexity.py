"""Complexity of a saliency map: how concentrated its relevance is (sparseness, Chalasani et al. 2020; complexity, Bhatt et al. 2020).

Both score the distribution of |E| over the map's positions (:mod:`salbench.metrics.positions`:
channels pooled, |E| summed over them, for signals, images and volumes; features for tables).
A map that is zero everywhere has no distribution: NaN with a note.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from salbench.core.applicability import CONTINUOUS
from salbench.core.validation import check_input
from salbench.metrics import register
from salbench.metrics.base import Case, Metric, MetricOutput
from salbench.metrics.positions import position_scores
from torch import Tensor

__all__ = ["Sparseness", "Complexity"]

ZERO_MAP = "the map is zero everywhere: its relevance has no distribution, complexity is undefined (0/0)"


class _Complexity(Metric):
    """Shared entry points: ``metric(attr)`` → (N,) values (NaN for a zero map) and :meth:`score`
    with the notes. Subclasses implement :meth:`compute` on |E| per position (N, P), Σ > 0."""

    category: ClassVar[str] = "complexity"
    modalities = CONTINUOUS

    def __call__(self, attr: Tensor) -> Tensor:
        """(N,) per-sample values; NaN for a map that is zero everywhere."""
        return self.score(attr).values

    def evaluate(self, case: Case) -> MetricOutput:
        return self.score(case.attr)

    def score(self, attr: Tensor) -> MetricOutput:
        """Values (N,) and notes (NaN with :data:`ZERO_MAP` for a map that is zero everywhere)."""
        check_input(attr, "attr")
        mass = position_scores(attr.detach(), absolute=True).to(torch.promote_types(attr.dtype, torch.float32))
        zero = mass.sum(dim=1) == 0
        values = self.compute(mass).masked_fill(zero, float("nan"))
        return MetricOutput(values, None, [ZERO_MAP if z else None for z in zero.tolist()])

    def compute(self, mass: Tensor) -> Tensor:
        raise NotImplementedError


@register("sparseness")
class Sparseness(_Complexity):
    """Gini index of the map's |E|: 1 when one position holds all relevance, 0 when all hold the same (Chalasani et al. 2020).

    Chalasani, Chen, Chowdhury, Wu, Jha, "Concise Explanations of Neural Networks using
    Adversarial Training", ICML 2020, §5 (Gini index, Hurley & Rickard 2009). With a_(1) <= ...
    <= a_(d) the sorted |E| over the d positions:

        G = Σ_i (2i − d − 1) a_(i) / (d · Σ_i a_(i))   ∈ [0, 1 − 1/d]

    Higher is better (a sparser, more concise map). Quantus's ``Sparseness`` adds 1e-7 to every
    |E| first, which lowers G by the factor Σa / (Σa + d·10⁻⁷) and makes an all-zero map 0;
    here an all-zero map is NaN with a note (its Gini index is 0/0).

    Example:
        >>> from salbench import metrics
        >>> import torch
        >>> metrics.get("sparseness")(torch.tensor([[0.0, 0.0, 0.0, 2.0], [1.0, -1.0, 1.0, -1.0]]))
        tensor([0.7500, 0.0000])
    """

    higher_is_better = True

    def compute(self, mass: Tensor) -> Tensor:
        d = mass.shape[1]
        weights = 2 * torch.arange(1, d + 1, device=mass.device, dtype=mass.dtype) - d - 1
        return (mass.sort(dim=1).values * weights).sum(dim=1) / (d * mass.sum(dim=1))


@register("complexity")
class Complexity(_Complexity):
    """Entropy of the fractional contributions |E_i| / Σ|E| (Bhatt et al. 2020).

    Bhatt, Weller, Moura, "Evaluating and Aggregating Feature-based Model Explanations", IJCAI
    2020, §3.3 (complexity):

        μ = − Σ_i P_i ln P_i,   P_i = |E_i| / Σ_j |E_j|   ∈ [0, ln d]

    over the d positions (0 · ln 0 = 0). Lower is better (relevance on fewer positions).
    Quantus's ``Complexity`` computes P ln(P + 10⁻¹²) (a difference below 10⁻¹¹ per position);
    an all-zero map is NaN with a note here.

    Example:
        >>> from salbench import metrics
        >>> import torch
        >>> metrics.get("complexity")(torch.tensor([[0.0, 0.0, 0.0, 2.0], [1.0, -1.0, 1.0, -1.0]]))
        tensor([0.0000, 1.3863])
    """

    higher_is_better = False

    def compute(self, mass: Tensor) -> Tensor:
        share = mass / mass.sum(dim=1, keepdim=True)
        return torch.special.entr(share).sum(dim=1)
