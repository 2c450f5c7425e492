"""Segments of spatial inputs and the model's score as whole segments are removed in order.

A *segment map* labels every spatial position of a sample (N, C, *spatial) with a segment id
0..S_n−1 (long, (N, *spatial)); the channels of a position move together. Two kinds:
:func:`patch_segments` (a grid of non-overlapping patches, region perturbation) and
:func:`superpixel_segments` (SLIC superpixels of images, supervoxels of volumes; IROF).
:func:`segment_relevance` reduces an attribution to one score per segment, and :func:`removal_scores` scores the inputs
whose top-ranked k segments are taken from a fill, for several k, in chunked model calls
(:mod:`salbench.metrics.perturbed_scores`).

Example:
    >>> import torch
    >>> patch_segments(torch.zeros(1, 1, 4, 6), 2)[0]
    tensor([[0, 0, 1, 1, 2, 2],
            [0, 0, 1, 1, 2, 2],
            [3, 3, 4, 4, 5, 5],
            [3, 3, 4, 4, 5, 5]])
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from salbench.core.optional import require_package
from salbench.metrics.perturbed_scores import Output, copy_scores, descending_ranks, masked_copies
from torch import Tensor, nn

__all__ = ["patch_segments", "superpixel_segments", "segment_relevance", "removal_scores"]


def patch_segments(x: Tensor, size: int) -> Tensor:
    """(N, *spatial) ids of the patches of side ``size`` that tile the spatial dimensions of ``x``
    from the origin, in row-major order of the patch grid; the last patch along a dimension is
    shorter where ``size`` does not divide it."""
    spatial = x.shape[2:]
    ids = torch.zeros((), dtype=torch.long, device=x.device)
    for length in spatial:
        ids = ids[..., None] * -(-length // size) + torch.arange(length, device=x.device) // size
    return ids.expand(x.shape[0], *spatial)


def superpixel_segments(x: Tensor, n_segments: int, compactness: float) -> Tensor:
    """(N, *spatial) SLIC superpixels (Achanta et al. 2012) of images (N, C, H, W), or supervoxels
    of volumes (N, C, D, H, W), one sample at a time on the CPU with scikit-image's
    ``slic(sample_channels_last, n_segments, compactness, start_label=0)`` (float64; Quantus's
    IROF calls it on images with the defaults 100 and 10)."""
    segmentation = require_package("skimage.segmentation", "scikit-image", "SLIC superpixels (IROF)", "scikit-image")
    images = x.detach().double().movedim(1, -1).cpu().numpy()
    maps = [
        segmentation.slic(image, n_segments=n_segments, compactness=compactness, start_label=0, channel_axis=-1)
        for image in images
    ]
    return torch.from_numpy(np.stack(maps).astype(np.int64)).to(x.device)


def segment_relevance(attr: Tensor, segments: Tensor, reduce: Literal["sum", "mean"]) -> tuple[Tensor, Tensor]:
    """Per-segment relevance (N, S) and segment sizes (N, S), S the largest number of segments.

    The relevance of a segment is the sum (or mean) over its positions of the channel-summed
    attribution (the sum over its elements). An id a sample does not use has size 0 and
    relevance −inf, so it ranks last.
    """
    n = attr.shape[0]
    flat = segments.reshape(n, -1)
    n_segments = int(flat.max()) + 1
    values = attr.sum(dim=1).reshape(n, -1)
    sums = values.new_zeros(n, n_segments).scatter_add_(1, flat, values)
    sizes = values.new_zeros(n, n_segments).scatter_add_(1, flat, torch.ones_like(values))
    relevance = sums / sizes.clamp(min=1) if reduce == "mean" else sums
    return relevance.masked_fill(sizes == 0, float("-inf")), sizes


def removal_scores(
    model: nn.Module,
    x: Tensor,
    fill: Tensor,
    segments: Tensor,
    relevance: Tensor,
    counts: Tensor,
    target: Tensor,
    output: Output,
    batch_size: int,
) -> Tensor:
    """Target scores (N, K): copy k of sample n takes its ``counts[n, k]`` most relevant segments
    (descending ``relevance``, ties in id order) from ``fill`` (shape of ``x``) and the rest from x."""
    n = x.shape[0]
    rank = descending_ranks(relevance).gather(1, segments.reshape(n, -1))  # each position's segment rank
    mask_shape = (1, *x.shape[2:])

    def build(rows: slice, copies: slice) -> Tensor:
        remove = rank[rows, None, :] < counts[rows, copies, None]
        return masked_copies(x[rows], fill[rows, None], remove, mask_shape)

    return copy_scores(model, build, n, counts.shape[1], target, output, batch_size)
