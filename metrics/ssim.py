"""Structural similarity (SSIM) of two maps, batched, over their spatial dimensions (Wang et al. 2004)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["WINDOW", "check_ssim_shape", "ssim"]

WINDOW = 7
"""Side of the uniform window (scikit-image's default ``win_size``)."""

_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def check_ssim_shape(shape: torch.Size) -> None:
    """Maps of ``shape`` are (N, C, *spatial) with 1 to 3 spatial dimensions of at least :data:`WINDOW`."""
    if len(shape) - 2 not in _POOL or any(s < WINDOW for s in shape[2:]):
        raise ValueError(
            f"SSIM compares maps of shape (N, C, *spatial) with 1 to 3 spatial dimensions of at least {WINDOW} "
            f"(images, volumes, signals), got {tuple(shape)}"
        )


def ssim(a: Tensor, b: Tensor) -> Tensor:
    """(N,) mean SSIM of maps ``a`` and ``b`` (N, C, *spatial), 1 to 3 spatial dimensions of >= 7.

    Wang, Bovik, Sheikh, Simoncelli, "Image Quality Assessment: From Error Visibility to
    Structural Similarity", IEEE TIP 2004, with scikit-image's ``structural_similarity``
    defaults (as Quantus's ``ssim`` calls it): a uniform 7^d window, sample (co)variances
    (÷ (7^d − 1)), K1 = 0.01, K2 = 0.03, the mean of the SSIM map over the windows that fit
    inside the map (scikit-image crops the 3-pixel border it filtered by reflection), each
    channel separately, then the mean over channels. The data range R is, per sample, the
    largest minus the smallest value of both maps together (Quantus's choice):

        SSIM = (2 μ_a μ_b + C1)(2 σ_ab + C2) / ((μ_a² + μ_b² + C1)(σ_a² + σ_b² + C2)),  C_i = (K_i R)²

    NaN where R = 0 (two equal constant maps: 0/0).

    >>> a = torch.arange(64.0).view(1, 1, 8, 8)
    >>> ssim(a, a), bool(ssim(a, a.flip(-1)) < 1)
    (tensor([1.]), True)
    """
    check_ssim_shape(a.shape)
    d = a.dim() - 2
    both = torch.cat([a.flatten(1), b.flatten(1)], dim=1)
    data_range = (both.amax(dim=1) - both.amin(dim=1)).view(-1, *[1] * (d + 1))
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def mean(t: Tensor) -> Tensor:
        return _POOL[d](t, WINDOW, stride=1)

    n_points = WINDOW**d
    mu_a, mu_b = mean(a), mean(b)
    cov = n_points / (n_points - 1)
    var_a = cov * (mean(a * a) - mu_a**2)
    var_b = cov * (mean(b * b) - mu_b**2)
    cov_ab = cov * (mean(a * b) - mu_a * mu_b)
    numerator = (2 * mu_a * mu_b + c1) * (2 * cov_ab + c2)
    denominator = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return (numerator / denominator).flatten(1).mean(dim=1)
