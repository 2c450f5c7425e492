"""Rank correlations between two saliency maps: Spearman's rho and Kendall's tau-b."""

from __future__ import annotations

import torch
from salbench.metrics import register
from salbench.metrics.base import PairMetric
from salbench.metrics.ranking import check_not_constant, constant_rows, feature_scores, spearman
from torch import Tensor

_PAIR_BLOCK_ELEMENTS = 1 << 22  # pairwise sign entries held at once by kendall_tau (≈ 4 M)


class _RankCorrelation(PairMetric):
    """Shared parameter and input handling of the rank correlations."""

    higher_is_better = True

    def __init__(self, absolute: bool = True):
        self.absolute = absolute

    min_positions = 2  # a rank correlation of fewer than two values is undefined

    def compare(self, attr: Tensor, attr_adv: Tensor) -> Tensor:
        scores = feature_scores(attr, self.absolute)
        scores_adv = feature_scores(attr_adv, self.absolute)
        check_not_constant(scores, "attr", self.absolute)
        check_not_constant(scores_adv, "attr_adv", self.absolute)
        return self.correlate(scores, scores_adv)

    def undefined(self, attr: Tensor, attr_adv: Tensor) -> list[str | None]:
        what = "|{}|" if self.absolute else "{}"
        flags = [constant_rows(feature_scores(a, self.absolute)).tolist() for a in (attr, attr_adv)]
        return [
            " and ".join(what.format(n) for n, c in (("attr", c0), ("attr_adv", c1)) if c)
            + " constant over all features: no ordering, the rank correlation is undefined"
            if c0 or c1 else None
            for c0, c1 in zip(*flags)
        ]

    def correlate(self, a: Tensor, b: Tensor) -> Tensor:
        raise NotImplementedError


@register("spearman")
class Spearman(_RankCorrelation):
    """Spearman rank correlation of two saliency maps over their features (Ghorbani et al. 2019).

    Ghorbani, Abid, Zou, "Interpretation of Neural Networks is Fragile", AAAI 2019 (rank
    correlation of the original and attacked maps); also reported by R2ET (Chen et al. 2024).

        ρ = Pearson(rank(E(x)), rank(E(x′)))

    over the flattened features of each sample (|E| with ``absolute=True``), with tied values
    given the average of their ranks, so ρ equals ``scipy.stats.spearmanr`` with ties. Range
    [−1, 1] (up to floating-point rounding); 1 for identically ordered maps, −1 for reversed
    ones; higher is better. A map whose features all tie has no ranking and is an error (the
    correlation is 0/0), not a silent NaN.

    Args:
        absolute: rank features by |E| rather than by E.

    Example:
        >>> from salbench import metrics
        >>> import torch
        >>> a = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
        >>> metrics.get("spearman", absolute=False)(a, -a)
        tensor([-1.])
    """

    def correlate(self, a: Tensor, b: Tensor) -> Tensor:
        return spearman(a, b)


@register("kendall_tau")
class KendallTau(_RankCorrelation):
    """Kendall rank correlation tau-b of two saliency maps over their features (Ghorbani et al. 2019).

    Kendall's tau-b, as used for explanation robustness by Ghorbani et al. (AAAI 2019) and R2ET
    (Chen et al. 2024), over the flattened features of each sample (|E| with ``absolute=True``):

        τ_b = (P − Q) / sqrt((n₀ − n₁)(n₀ − n₂))

    P, Q = concordant / discordant pairs, n₀ = F(F−1)/2, n₁, n₂ = pairs tied in the first /
    second map. Equals ``scipy.stats.kendalltau`` (its default variant "b") with ties. Range
    [−1, 1]; higher is better. A map whose features all tie is an error (0/0).

    Complexity: every pair is compared directly, O(N·F²) time and O(N·B·F) memory for a block
    of B rows of the pair matrix at a time (about 4 M entries), exact in integer arithmetic.
    Fine for F up to a few thousand; for full-resolution images reduce the map first.

    Args:
        absolute: rank features by |E| rather than by E.

    Example:
        >>> from salbench import metrics
        >>> import torch
        >>> a = torch.tensor([[1.0, 2.0, 3.0, 4.0]]); b = torch.tensor([[1.0, 3.0, 2.0, 4.0]])
        >>> metrics.get("kendall_tau")(a, b)
        tensor([0.6667])
    """

    def correlate(self, a: Tensor, b: Tensor) -> Tensor:
        n, f = a.shape
        block = max(1, _PAIR_BLOCK_ELEMENTS // (n * f))
        agreement = torch.zeros(n, dtype=torch.long, device=a.device)
        ties_a = torch.zeros_like(agreement)
        ties_b = torch.zeros_like(agreement)
        for start in range(0, f, block):
            sign_a = _pair_signs(a, start, block)
            sign_b = _pair_signs(b, start, block)
            agreement += (sign_a * sign_b).sum(dim=(1, 2), dtype=torch.long)
            ties_a += (sign_a == 0).sum(dim=(1, 2))
            ties_b += (sign_b == 0).sum(dim=(1, 2))
        # Ordered pairs (i, j), i != j: the diagonal counted once as a tie in each map.
        untied_a = f * (f - 1) - (ties_a - f)
        untied_b = f * (f - 1) - (ties_b - f)
        dtype = torch.promote_types(a.dtype, torch.float32)
        return agreement.to(dtype) / (untied_a.to(dtype) * untied_b.to(dtype)).sqrt()


def _pair_signs(scores: Tensor, start: int, block: int) -> Tensor:
    """sign(s_i − s_j) as int8 for rows i in [start, start + block) and all j: (N, B, F)."""
    rows = scores[:, start : start + block, None]
    cols = scores[:, None, :]
    return (rows > cols).to(torch.int8) - (rows < cols).to(torch.int8)
