"""Building blocks of insertion/deletion-style perturbation: feature units, baselines, step schedules.

Shared by the exact insertion/deletion metrics (:mod:`salbench.metrics.insertion_deletion`) and their
differentiable versions (:mod:`salbench.metrics.soft_insertion_deletion`), so that both perturb the same
units towards the same baseline along the same schedule.

- A *unit* is what moves as one: a ``"feature"`` is one element of a sample; a ``"pixel"`` of a
  channel-first input (N, C, *spatial) with 1 to 3 spatial dimensions (a signal's time step, an
  image's pixel, a volume's voxel) is its C channel values at one position (its score is the
  channel sum of the attribution). ``"auto"`` means pixels for inputs of rank 3 to 5 (signals,
  images, volumes) and features for tables (N, F).
- The *baseline* replaces units that are not (yet) inserted or already deleted: a constant,
  the per-sample per-channel ``"mean"`` or a Gaussian ``"blur"`` of the input over its spatial
  dimensions.
- The *schedule*: with U units, fraction K and step s, the curve has points
  c_m = min(m·s, n_K), m = 0..M, M = ⌈n_K / s⌉, n_K = round(K·U) (at least 1), i.e. it starts
  at no unit and ends exactly at n_K units even when s does not divide n_K.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from salbench.core.seeding import SampleStreams
from salbench.core.validation import check_positive
from torch import Tensor

__all__ = [
    "Unit",
    "Baseline",
    "DEFAULT_STEPS",
    "check_unit",
    "check_baseline",
    "resolve_unit",
    "unit_scores",
    "unit_mask_shape",
    "baseline_input",
    "gaussian_blur",
    "default_step",
    "step_counts",
    "check_fill",
    "fill_input",
]

Unit = Literal["auto", "feature", "pixel"]
Baseline = float | Literal["blur", "mean"]
DEFAULT_STEPS = 64
"""Number of steps over all units when no step is given (the ID-ExpO code's n = 64)."""


def check_unit(unit: str) -> None:
    """``unit`` is one of "auto", "feature", "pixel"."""
    if unit not in ("auto", "feature", "pixel"):
        raise ValueError(f"unit must be 'auto', 'feature' or 'pixel', got {unit!r}")


def check_baseline(baseline: float | str, blur_sigma: float) -> None:
    """``baseline`` is a finite number, "blur" or "mean"; ``blur_sigma`` > 0."""
    numeric = isinstance(baseline, (int, float)) and not isinstance(baseline, bool)
    if not (numeric and math.isfinite(baseline)) and baseline not in ("blur", "mean"):
        raise ValueError(f"baseline must be a finite number, 'blur' or 'mean', got {baseline!r}")
    check_positive(blur_sigma, "blur_sigma")


def _spatial(x: Tensor) -> bool:
    """Whether ``x`` is channel-first (N, C, *spatial) with 1 to 3 spatial dimensions."""
    return 3 <= x.dim() <= 5


def resolve_unit(unit: str, x: Tensor) -> Literal["feature", "pixel"]:
    """The unit for input ``x``: "auto" is "pixel" for (N, C, *spatial) inputs of rank 3 to 5, else "feature".

    Example:
        >>> import torch
        >>> [resolve_unit("auto", torch.zeros(shape)) for shape in [(1, 4), (1, 2, 8), (1, 1, 4, 4), (1, 1, 2, 2, 2)]]
        ['feature', 'pixel', 'pixel', 'pixel']
    """
    if unit == "auto":
        return "pixel" if _spatial(x) else "feature"
    if unit == "pixel" and not _spatial(x):
        raise ValueError(
            f"unit='pixel' needs channel-first inputs (N, C, *spatial) with 1 to 3 spatial dimensions (signals, "
            f"images, volumes), got shape {tuple(x.shape)}; use unit='feature' or 'auto'"
        )
    return unit


def unit_scores(attr: Tensor, unit: str, absolute: bool) -> Tensor:
    """Per-unit scores (N, U): E (|E| with ``absolute``) per feature, or summed over channels per pixel."""
    scores = attr.abs() if absolute else attr
    return scores.sum(dim=1).flatten(1) if unit == "pixel" else scores.flatten(1)


def unit_mask_shape(x: Tensor, unit: str) -> tuple[int, ...]:
    """Shape (without batch) of a per-unit mask that broadcasts against one sample of ``x``."""
    return (1, *x.shape[2:]) if unit == "pixel" else tuple(x.shape[1:])


def baseline_input(x: Tensor, baseline: float | str, blur_sigma: float) -> Tensor:
    """The fully perturbed input: every unit of ``x`` replaced by the baseline (shape of ``x``).

    A number fills every element; "mean" is each sample's mean over its non-channel dimensions
    (dimension 1 is channels for rank >= 3; a rank-2 sample has one channel, its mean over all
    features); "blur" is :func:`gaussian_blur` of a signal, image or volume with ``blur_sigma``.
    """
    if baseline == "mean":
        dims = tuple(range(2, x.dim())) if x.dim() > 2 else (1,)
        return x.mean(dim=dims, keepdim=True).expand_as(x).contiguous()  # contiguous: cheap to broadcast from
    if baseline == "blur":
        if not _spatial(x):
            raise ValueError(
                f"baseline='blur' needs channel-first inputs (N, C, *spatial) with 1 to 3 spatial dimensions "
                f"(signals, images, volumes), got shape {tuple(x.shape)}; use a number or 'mean'"
            )
        return gaussian_blur(x, blur_sigma)
    return torch.full_like(x, float(baseline))


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Each channel of x (N, C, *spatial) convolved with a Gaussian of std ``sigma`` positions along every spatial dim.

    Separable kernel exp(−d²/2σ²), normalised, radius r = ⌊3σ + 0.5⌋, edges replicated, applied
    along each spatial dimension in turn; the same as ``scipy.ndimage.gaussian_filter(mode="nearest",
    truncate=3.0)`` over the spatial dimensions (H and W of an image; L of a signal; D, H, W of a volume).

    Example:
        >>> import torch
        >>> gaussian_blur(torch.tensor([[[0.0, 0.0, 3.0, 0.0, 0.0]]], dtype=torch.float64), 0.5).round(decimals=3).tolist()
        [[[0.001, 0.319, 2.36, 0.319, 0.001]]]
    """
    radius = int(3 * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).view(1, 1, -1)
    for dim in range(2, x.dim()):
        lines = x.movedim(dim, -1)
        flat = F.pad(lines.reshape(-1, 1, lines.shape[-1]), (radius, radius), mode="replicate")
        x = F.conv1d(flat, kernel).view(lines.shape).movedim(-1, dim)
    return x


def default_step(n_units: int, steps: int = DEFAULT_STEPS) -> int:
    """Units per curve point so that all ``n_units`` are covered in at most ``steps`` steps: ⌈U / steps⌉."""
    return math.ceil(n_units / steps)


def step_counts(n_units: int, step: int, fraction: float, device: torch.device | None = None) -> Tensor:
    """Numbers of inserted/deleted units at the curve points, c_0 = 0 < c_1 < ... < c_M = n_K (long)."""
    n_end = max(1, math.floor(fraction * n_units + 0.5))
    return torch.tensor([*range(0, n_end, step), n_end], device=device)


def fill_input(x: Tensor, baseline: float | str, blur_sigma: float, seed: int) -> Tensor:
    """The values removed units take: :func:`~salbench.metrics.perturbation.baseline_input`, or for
    ``"uniform"`` U[0, 1) noise drawn per sample (:mod:`salbench.core.seeding`)."""
    if baseline == "uniform":
        return SampleStreams(seed, x).rand(tuple(x.shape[1:]), like=x)
    return baseline_input(x, baseline, blur_sigma)


def check_fill(baseline: float | str, blur_sigma: float) -> None:
    """``baseline`` is "uniform" or what :func:`~salbench.metrics.perturbation.check_baseline` allows."""
    if baseline != "uniform":
        check_baseline(baseline, blur_sigma)
