"""Linear imputation of removed pixels from their neighbours (ROAD, Rong et al. 2022), batched on the device.

Each removed pixel's value is the weighted mean of its 8 neighbours inside the image (weight
1/6 for the 4 direct, 1/12 for the 4 diagonal neighbours), known or removed; over all removed
pixels R of an image channel that is the sparse linear system

    (Σ_{q ∈ N(p)} w_pq) v_p − Σ_{q ∈ N(p) ∩ R} w_pq v_q = Σ_{q ∈ N(p) \\ R} w_pq x_q,   p ∈ R,

the authors' (github.com/tleemann/road_evaluation, ``road/imputations.py``, ``NoisyLinearImputer``;
ported to Quantus as ``noisy_linear_imputation``), which they solve with a sparse direct solver
per image. Here the matrix is symmetric positive definite whenever some pixel is known (the
grid is connected), so all images × channels × removal masks of a batch are solved at once by
conjugate gradients with a Jacobi preconditioner, whose matrix-vector product is one 3×3
convolution. The result agrees with the direct solution to the tolerance (tests compare with
Quantus's solver).

Example:
    >>> import torch
    >>> x = torch.arange(9.0).view(1, 1, 3, 3)  # a linear ramp is reproduced exactly
    >>> removed = torch.zeros(1, 1, 3, 3, dtype=torch.bool); removed[..., 1, 1] = True
    >>> impute(x, removed)[0, 0, 1, 1]
    tensor(4.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["NEIGHBOUR_WEIGHTS", "impute"]

NEIGHBOUR_WEIGHTS = torch.tensor([[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]])
"""The 3×3 neighbour weights w (direct 1/6, diagonal 1/12, centre 0) of the authors' imputer."""


def impute(x: Tensor, removed: Tensor, tol: float = 1e-6, max_iter: int = 2000) -> Tensor:
    """``x`` (N, C, H, W) with the pixels where ``removed`` (N, 1, H, W) is True replaced by the
    solution of the system above (per channel); the other pixels unchanged.

    Each system iterates until its preconditioned residual is below ``tol`` times its right-hand
    side (relative, in the residual's norm), then stops (so its result does not depend on the
    systems solved with it); RuntimeError if ``max_iter`` is reached first.
    An image with every pixel removed has no solution (ValueError).
    """
    full = removed.flatten(1).all(dim=1)
    if full.any():
        raise ValueError(f"images {full.nonzero().flatten().tolist()} have every pixel removed: nothing to impute from")
    n, c, h, w = x.shape
    kernel = NEIGHBOUR_WEIGHTS.to(dtype=x.dtype, device=x.device).view(1, 1, 3, 3)
    mask = removed.expand(n, c, h, w).reshape(n * c, 1, h, w).to(x.dtype)
    planes = x.reshape(n * c, 1, h, w)

    def neighbours(v: Tensor) -> Tensor:
        return F.conv2d(v, kernel, padding=1)

    degree = neighbours(torch.ones(1, 1, h, w, dtype=x.dtype, device=x.device))  # in-image neighbour weight sums

    def apply(v: Tensor) -> Tensor:  # the system matrix on the removed pixels (v = 0 elsewhere)
        return mask * (degree * v - neighbours(v))

    rhs = mask * neighbours((1 - mask) * planes)
    v = torch.zeros_like(planes)
    r = rhs.clone()
    z = r / degree
    p = z.clone()
    rz = (r * z).sum(dim=(1, 2, 3))
    stop = (tol * (rhs * rhs / degree).sum(dim=(1, 2, 3)).sqrt()).clamp(min=torch.finfo(x.dtype).tiny)
    for _ in range(max_iter):
        active = rz.clamp(min=0).sqrt() > stop  # a converged system stops moving: its result is its own
        if not bool(active.any()):
            return torch.where(removed, v.view(n, c, h, w), x)
        ap = apply(p)
        alpha = torch.where(active, rz / (p * ap).sum(dim=(1, 2, 3)).clamp(min=torch.finfo(x.dtype).tiny), 0)
        v = v + alpha.view(-1, 1, 1, 1) * p
        r = r - alpha.view(-1, 1, 1, 1) * ap
        z = r / degree
        rz_next = (r * z).sum(dim=(1, 2, 3))
        step = z + (rz_next / rz.clamp(min=torch.finfo(x.dtype).tiny)).view(-1, 1, 1, 1) * p
        p = torch.where(active.view(-1, 1, 1, 1), step, p)
        rz = rz_next
    raise RuntimeError(
        f"linear imputation did not converge in max_iter={max_iter} conjugate-gradient steps (tol={tol}); "
        "raise max_iter or tol"
    )
