"""Feature magnitudes of an explanation and their ranking, as the ranking attacks see them.

A map's features are all its non-batch elements, flattened, ranked by |E| — the definition of
the top-k intersection metric (``salbench.metrics.topk_intersection``), so that the attacks optimise
the ranking that metric scores. Ties go to the lower flat index (stable sort), as there.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["magnitudes", "ranked_features"]


def magnitudes(attr: Tensor) -> Tensor:
    """|E| as (N, F), F = number of features per sample."""
    return attr.flatten(1).abs()


def ranked_features(attr: Tensor, m: int) -> Tensor:
    """Flat indices (N, m) of each sample's m largest |E|, most important first (m <= F)."""
    return magnitudes(attr).sort(dim=1, descending=True, stable=True).indices[:, :m]
