"""The base of the sanity checks: how similar the map stays when the model or the target is randomised.

Adebayo et al. ("Sanity Checks for Saliency Maps", NeurIPS 2018) compare the map of the
trained model with the map of a randomised one; Sixt et al. (ICML 2020) the map of the
explained class with that of a random other class. A map that does not change fails the check:
these metrics report the similarity, lower is better.

Example:
    >>> import torch
    >>> a = torch.tensor([[1.0, -2.0, 3.0], [1.0, 1.0, 1.0]])
    >>> spearman_similarity(a, torch.tensor([[3.0, 2.0, -1.0], [1.0, 2.0, 3.0]]), absolute=True)
    tensor([-1., nan], dtype=torch.float64)
"""

from __future__ import annotations

from typing import ClassVar, Literal

from salbench.core.applicability import CONTINUOUS
from salbench.core.validation import check_positive_int
from salbench.metrics.base import Case, MetricOutput
from salbench.metrics.rank_correlation import Spearman
from salbench.metrics.ranking import feature_scores
from salbench.metrics.recompute import RecomputingMetric
from salbench.metrics.ssim import check_ssim_shape, ssim
from torch import Tensor

__all__ = ["SanityCheck", "spearman_similarity"]


def spearman_similarity(a: Tensor, b: Tensor, absolute: bool) -> Tensor:
    """(N,) Spearman's ρ (average ranks for ties) between the maps ``a`` and ``b`` (N, ...) over their
    features, of |a| and |b| with ``absolute``; NaN where either map is constant (ρ = 0/0)."""
    return Spearman().correlate(feature_scores(a, absolute).double(), feature_scores(b, absolute).double())


class SanityCheck(RecomputingMetric):
    """A sanity check: the similarity of the map with the map after a randomisation.

    Args:
        similarity: "spearman" (Spearman's ρ over the features: Adebayo et al.'s main measure,
            Quantus's ``MPRT`` default) or "ssim" (:func:`~salbench.metrics.ssim.ssim`, for maps
            with 1 to 3 spatial dimensions of >= 7: Sixt et al.'s and Quantus's ``RandomLogit``
            measure, also reported by Adebayo et al.).
        absolute: compare |E| (Adebayo et al.'s default, since signs flip under
            randomisation) rather than E.
        batch_size: inputs per explainer call, >= 1.
    """

    category: ClassVar[str] = "randomisation"
    higher_is_better = False
    modalities = CONTINUOUS  # text maps would need comparing on their valid words only

    def __init__(self, similarity: Literal["spearman", "ssim"] = "spearman", absolute: bool = True, batch_size: int = 256):
        if similarity not in ("spearman", "ssim"):
            raise ValueError(f"similarity must be 'spearman' or 'ssim', got {similarity!r}")
        check_positive_int(batch_size, "batch_size")
        self.similarity = similarity
        self.absolute = absolute
        self.batch_size = batch_size

    def evaluate(self, case: Case) -> MetricOutput:
        if self.similarity == "ssim":
            check_ssim_shape(case.x.shape)
        return super().evaluate(case)

    def compare(self, attr: Tensor, attr_random: Tensor) -> Tensor:
        """(N,) similarity of the original maps and the maps after the randomisation (NaN where undefined)."""
        if self.similarity == "spearman":
            return spearman_similarity(attr, attr_random, self.absolute)
        if self.absolute:
            attr, attr_random = attr.abs(), attr_random.abs()
        return ssim(attr.double(), attr_random.double())
