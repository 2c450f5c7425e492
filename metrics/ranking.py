"""Per-sample feature scores and their tie-aware ranks, shared by the rank-based robustness metrics.

A map's features are all its non-batch elements, flattened; with ``absolute`` they are ranked
by magnitude |E| (Ghorbani et al. 2019 rank by absolute saliency).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["feature_scores", "top_indices", "average_ranks", "pearson", "spearman", "check_not_constant", "constant_rows"]


def feature_scores(attr: Tensor, absolute: bool) -> Tensor:
    """The map as (N, F) scores: flattened non-batch elements, |E| with ``absolute``."""
    flat = attr.flatten(1)
    return flat.abs() if absolute else flat


def top_indices(scores: Tensor, k: int) -> Tensor:
    """Indices (N, k) of the k largest scores per row; ties go to the lower index.

    A stable descending sort keeps equal scores in index order, so the choice among ties is
    deterministic and the same for two identical maps (``torch.topk`` leaves it unspecified).
    """
    return scores.sort(dim=1, descending=True, stable=True).indices[:, :k]


def average_ranks(scores: Tensor) -> Tensor:
    """1-based ranks along dim 1, tied scores sharing the mean of their positions.

    The same as ``scipy.stats.rankdata(method="average")`` on each row. After a sort, a run of
    equal values at positions first..last gets rank (first + last) / 2 + 1; first and last are
    found for every position at once with a running max / min of the run boundaries.
    """
    n, f = scores.shape
    ordered, order = scores.sort(dim=1, stable=True)
    position = torch.arange(f, device=scores.device).expand(n, f)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.where(starts, position, 0).cummax(dim=1).values
    last = torch.where(ends, position, f - 1).flip(1).cummin(dim=1).values.flip(1)
    dtype = torch.promote_types(scores.dtype, torch.float32)
    mean_rank = (first + last).to(dtype) / 2 + 1
    return torch.empty(n, f, dtype=dtype, device=scores.device).scatter_(1, order, mean_rank)


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` (N, M) → (N,); NaN (0/0)
    for a row that is constant in ``a`` or ``b``.

    >>> pearson(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[2.0, 4.0, 7.0]])).round(decimals=4)
    tensor([0.9934])
    """
    ca = a - a.mean(dim=1, keepdim=True)
    cb = b - b.mean(dim=1, keepdim=True)
    return (ca * cb).sum(dim=1) / (ca.square().sum(dim=1) * cb.square().sum(dim=1)).sqrt()


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman's rho of each row pair: :func:`pearson` of the :func:`average_ranks` (ties averaged,
    as ``scipy.stats.spearmanr``); NaN for a row that is constant in ``a`` or ``b``."""
    return pearson(average_ranks(a), average_ranks(b))


def constant_rows(scores: Tensor) -> Tensor:
    """(N,) bool: the rows of (N, F) ``scores`` whose features all tie (no ordering)."""
    return (scores == scores[:, :1]).all(dim=1)


def check_not_constant(scores: Tensor, name: str, absolute: bool) -> None:
    """A rank correlation is undefined (0/0) for a map whose features all tie; say which samples."""
    constant = constant_rows(scores)
    if constant.any():
        samples = constant.nonzero().flatten().tolist()
        what = "|" + name + "|" if absolute else name
        raise ValueError(
            f"{what} is constant over all features in sample(s) {samples}: a rank correlation is undefined "
            "for a map without any ordering (e.g. an all-zero attribution); drop those samples or use a "
            "metric that is defined for them (topk_intersection)"
        )
