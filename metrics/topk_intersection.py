"""Top-k intersection of two saliency maps (Ghorbani et al. 2019; R2ET's P@k)."""

from __future__ import annotations

import torch
from salbench.core.validation import check_k, check_positive_int
from salbench.metrics import register
from salbench.metrics.base import PairMetric
from salbench.metrics.ranking import feature_scores, top_indices
from torch import Tensor


@register("topk_intersection")
class TopKIntersection(PairMetric):
    """Fraction of the k most important features that stay in the top k under attack (Ghorbani et al. 2019).

    Ghorbani, Abid, Zou, "Interpretation of Neural Networks is Fragile", AAAI 2019, §4 (top-k
    intersection); Chen et al. NeurIPS 2024 (R2ET) report the same quantity as P@k.

        TI(x, x′) = |topk(E(x)) ∩ topk(E(x′))| / k

    over the flattened features (all non-batch elements) of each sample, ranked by |E| with
    ``absolute=True`` (Ghorbani ranks absolute saliency). Values lie in {0, 1/k, ..., 1}; higher
    is better (a robust explanation keeps its top features).

    Ties: among equal scores the feature with the lower flat index ranks first (stable sort),
    so the top-k set is deterministic and two identical maps always score exactly 1.

    Departure: the features are the map's elements as given. Ghorbani et al. and R2ET rank
    pixels of a map whose channels are already reduced (Σ_channels |E|); for that ranking,
    reduce the channels in the explainer first. This keeps the metric shape-agnostic.

    Args:
        k: number of top features; default 50 (R2ET's image setting; its tabular data sets use
            8). Must not exceed the number of features of the maps it is called on.
        absolute: rank features by |E| rather than by E.

    Example:
        >>> from salbench import metrics
        >>> import torch
        >>> a = torch.tensor([[4.0, 3.0, 2.0, 1.0]]); b = torch.tensor([[4.0, 1.0, 3.0, 2.0]])
        >>> metrics.get("topk_intersection", k=2)(a, b)
        tensor([0.5000])
    """

    higher_is_better = True
    test_params = {"k": 3}  # the contract checks' tables have 6 features

    def __init__(self, k: int = 50, absolute: bool = True):
        check_positive_int(k, "k")
        self.k = k
        self.absolute = absolute

    @property
    def min_positions(self) -> int:
        return self.k

    def check_features(self, n_features: int) -> None:
        check_k(self.k, n_features)

    def compare(self, attr: Tensor, attr_adv: Tensor) -> Tensor:
        scores = feature_scores(attr, self.absolute)
        scores_adv = feature_scores(attr_adv, self.absolute)
        self.check_features(scores.shape[1])
        top = top_indices(scores, self.k)
        top_adv = top_indices(scores_adv, self.k)
        in_top = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, top, True)
        common = in_top.gather(1, top_adv).sum(dim=1)
        return common.to(torch.promote_types(attr.dtype, torch.float32)) / self.k
