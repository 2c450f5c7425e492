"""The positions of a saliency map: its channels pooled, as the localisation and complexity metrics score it.

A map of rank >= 3 — a signal (N, C, L), an image (N, C, H, W), a volume (N, C, D, H, W) — has
its channels in dimension 1 and its positions in the remaining (spatial) dimensions; a rank-2
map (N, F) has one position per feature. A position's score is the sum of its channels' values
(of |E| with ``absolute``: the per-pixel relevance of Quantus's and LATEC's channel-summed
maps); a position lies in a ground-truth region if any of its channels does.
"""

from __future__ import annotations

import torch
from salbench.core.validation import check_input, check_same_shape
from torch import Tensor

__all__ = ["position_scores", "position_region", "spatial_shape", "check_mask"]


def spatial_shape(attr: Tensor) -> tuple[int, ...]:
    """The shape of one sample's positions: (L,), (H, W), (D, H, W), or (F,) for a rank-2 map."""
    return tuple(attr.shape[2:]) if attr.dim() > 2 else tuple(attr.shape[1:])


def position_scores(attr: Tensor, absolute: bool) -> Tensor:
    """Scores (N, P) of the map's positions: channel sums of E (of |E| with ``absolute``).

    >>> position_scores(torch.tensor([[[1.0, -2.0], [3.0, 4.0]]]), absolute=True)
    tensor([[4., 6.]])
    """
    values = attr.abs() if absolute else attr
    return (values.sum(dim=1) if attr.dim() > 2 else values).flatten(1)


def position_region(mask: Tensor) -> Tensor:
    """Bool (N, P): the positions where the mask holds in any channel."""
    return (mask.any(dim=1) if mask.dim() > 2 else mask).flatten(1)


def check_mask(attr: Tensor, mask: Tensor) -> None:
    """``attr`` is a finite float map and ``mask`` a bool tensor of its shape (checked before any work)."""
    check_input(attr, "attr")
    check_same_shape(attr, mask, ("attr", "mask"))
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True inside the ground-truth region), got dtype {mask.dtype}")
