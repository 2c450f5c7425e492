"""Occlusion: the drop in the target logit when a sliding window is masked (Zeiler & Fergus 2014)."""

from __future__ import annotations

import math

import torch
from salbench.core.applicability import CONTINUOUS
from salbench.core.validation import check_logits_target, check_positive_int
from salbench.explainers import register
from salbench.explainers.base import Explainer
from torch import Tensor, nn


@register("occlusion")
class Occlusion(Explainer):
    """Occlusion: mean drop of the target logit over the sliding windows that cover a feature (Zeiler & Fergus 2014).

    Zeiler, Fergus 2014, "Visualizing and understanding convolutional networks", ECCV.
    A window W_p slides over the sample's features; occluding sets the features in W_p to
    ``baseline``. E_i(x) = mean over windows p ∋ i of [f_c(x) − f_c(x with W_p occluded)]
    (Captum's ``Occlusion`` convention; the paper shows the class probability per window
    position instead of spreading the drop back onto the features).

    ``window`` and ``stride`` apply to the trailing dimensions of a sample; the leading
    ones are covered whole (for images (N, C, H, W), ``window=(8, 8)`` occludes all C
    channels of an 8×8 patch; for volumes (N, C, D, H, W), ``window=(4, 4, 4)`` a 4³ cube; for
    signals (N, C, L), ``window=(8,)`` an interval of 8 steps; for tables (N, F), ``window=(1,)``
    occludes one feature).
    Along a dimension of size S the window starts at 0, stride, 2·stride, … for
    ceil((S − w)/stride) + 1 positions; the last window is cut at the edge, so every feature
    is covered (as in Captum). The stride may not exceed the window where the window is
    smaller than the dimension (features would be skipped).

    Batching: the windows × N occluded inputs are evaluated ``batch_size`` at a time (None:
    all in one pass), without gradients. Not differentiable.

    Args:
        window: window size per trailing dimension, each >= 1.
        stride: step per trailing dimension, same length as ``window``, each >= 1; None: all 1
            (Captum's default).
        baseline: the value occluded features are set to.
        batch_size: occluded inputs per forward pass (>= 1), or None for all.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> model = torch.nn.Linear(4, 2)
        >>> attr = explainers.get("occlusion")(model, torch.ones(1, 4), 0)
        >>> bool(torch.allclose(attr, model.weight[0:1]))
        True
    """

    differentiable = False
    modalities = CONTINUOUS  # windows over the input's own features (word ids are no features to occlude)

    def __init__(
        self,
        window: tuple[int, ...] = (1,),
        stride: tuple[int, ...] | None = None,
        baseline: float = 0.0,
        batch_size: int | None = None,
    ):
        if not window:
            raise ValueError("window must name a size for at least one trailing dimension, got ()")
        stride = (1,) * len(window) if stride is None else stride
        if len(stride) != len(window):
            raise ValueError(f"stride must have one entry per window dimension ({len(window)}), got {tuple(stride)}")
        for w in window:
            check_positive_int(w, "window entries")
        for s in stride:
            check_positive_int(s, "stride entries")
        if not math.isfinite(baseline):
            raise ValueError(f"baseline must be a finite number, got {baseline!r}")
        if batch_size is not None:
            check_positive_int(batch_size, "batch_size")
        self.window = tuple(window)
        self.stride = tuple(stride)
        self.baseline = baseline
        self.batch_size = batch_size

    def _windows(self, shape: torch.Size) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """Full-rank window sizes, strides and window counts per dimension for a sample of ``shape``."""
        if len(self.window) > len(shape):
            raise ValueError(f"window {self.window} has more dimensions than a sample of shape {tuple(shape)}")
        lead = len(shape) - len(self.window)
        window = tuple(shape[:lead]) + self.window
        stride = (1,) * lead + self.stride
        for size, w, s in zip(shape, window, stride):
            if w > size:
                raise ValueError(f"window {self.window} does not fit a sample of shape {tuple(shape)}")
            if w < size and s > w:
                raise ValueError(f"stride {self.stride} exceeds window {self.window}; features would never be occluded")
        counts = tuple(math.ceil((size - w) / s) + 1 for size, w, s in zip(shape, window, stride))
        return window, stride, counts

    def attribute(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        x = x.detach()
        n, shape = x.shape[0], x.shape[1:]
        window, stride, counts = self._windows(shape)
        # covers[d][p, j]: the window's p-th position along dimension d covers index j
        covers = [_covers(size, w, s, c, x.device) for size, w, s, c in zip(shape, window, stride, counts)]
        rows = math.prod(counts) * n
        per_pass = self.batch_size or rows
        total = torch.zeros_like(x)
        with torch.no_grad():
            logits = model(x)
            check_logits_target(logits, target)
            clean = logits.gather(1, target[:, None])[:, 0]
            for start in range(0, rows, per_pass):
                row = torch.arange(start, min(start + per_pass, rows), device=x.device)
                position, sample = torch.unravel_index(row // n, counts), row % n
                mask = _outer([c[p] for c, p in zip(covers, position)])
                occluded = torch.where(mask, torch.tensor(self.baseline, dtype=x.dtype, device=x.device), x[sample])
                drop = clean[sample] - model(occluded).gather(1, target[sample][:, None])[:, 0]
                total.index_add_(0, sample, drop.view(-1, *[1] * len(shape)) * mask)
        coverage = _outer([c.sum(0, keepdim=True) for c in covers])[0]
        return total / coverage


def _covers(size: int, window: int, stride: int, count: int, device: torch.device) -> Tensor:
    """(count, size) bool: window position p (starting at p·stride, cut at the edge) covers index j."""
    start = torch.arange(count, device=device)[:, None] * stride
    index = torch.arange(size, device=device)
    return (index >= start) & (index < start + window)


def _outer(factors: list[Tensor]) -> Tensor:
    """Row-wise outer product of (R, size_d) factors: (R, size_0, size_1, ...)."""
    d = len(factors)
    out = factors[0].view(factors[0].shape[0], -1, *[1] * (d - 1))
    for k, factor in enumerate(factors[1:], start=1):
        out = out * factor.view(factor.shape[0], *[1] * k, -1, *[1] * (d - 1 - k))
    return out
