"""Eigen-CAM: the projection of a layer's activations on their first principal component (Muhammad & Yeasin 2020)."""

from __future__ import annotations

import torch
from salbench.explainers import register
from salbench.explainers.activation_map import ActivationMap
from torch import Tensor, nn


@register("eigencam")
class EigenCAM(ActivationMap):
    """Eigen-CAM: L = ReLU((A − Ā) v₁), v₁ the first principal direction of the channels (Muhammad & Yeasin 2020).

    Muhammad, Yeasin 2020, "Eigen-CAM: class activation map using principal components",
    IJCNN. Per sample, the activations A (K, *s) of ``layer`` are read as a matrix M (Z, K) of
    the Z positions × K channels and centred over the positions (M − mean); with
    M − mean = U Σ Vᵀ (SVD) and v₁ the right singular vector of the largest singular value,
    the map is p = (M − mean) v₁, one value per position, then L = ReLU(p). The map does not
    depend on the target class (the target is still checked against the model's output).

    Where this follows pytorch-grad-cam rather than the paper: the centring (the paper
    projects the uncentred A; pytorch-grad-cam centres, noting that maps are otherwise
    negative), and the sign. A singular vector's sign is arbitrary (−v₁ is as good), and
    pytorch-grad-cam's ``EigenCAM`` keeps whatever sign LAPACK returns; this uses the sign
    correction of its ``get_2d_projection_with_sign_correction`` (Seg-Eigen-CAM, Chung & Ying
    2025, Eq. 13): p is negated where |min p| > |max p|, so the larger excursion is positive
    and the result is reproducible. Differentiable where the largest singular value is simple
    (first derivatives exact also with dead channels, :func:`first_component`; the sign
    choice is locally constant). Layer choice (``layer``), ReLU
    (``relu``) and output (``upsample``) as :class:`~salbench.explainers.activation_map.ActivationMap`.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv1d(1, 4, 5), nn.Tanh(), nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(4, 3))
        >>> x, eigencam = torch.randn(3, 1, 32), explainers.get("eigencam", relu=False, upsample=False)
        >>> maps = eigencam(model, x, 0)
        >>> bool(maps.max() >= -maps.min()), bool(torch.equal(maps, eigencam(model, x, 2)))  # sign rule; no class
        (True, True)
    """

    def layer_map(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        with torch.set_grad_enabled(create_graph):
            activation, _ = self.activation(model, x if create_graph else x.detach(), target)
            positions = activation.flatten(2).transpose(1, 2)  # (N, Z, K)
            projection = first_component(positions - positions.mean(1, keepdim=True))
            flip = projection.amin(1).abs() > projection.amax(1).abs()
            projection = torch.where(flip[:, None], -projection, projection)
        return projection.view(activation.shape[0], 1, *activation.shape[2:])


def first_component(centred: Tensor) -> Tensor:
    """The projections M v₁ (N, Z) of (N, Z, K) matrices M on their first right singular vector v₁.

    v₁'s sign is the SVD's. Under autograd the result has the exact first derivative of M v₁
    wherever σ₁ > σ₂, also where the other singular values repeat (dead channels: several
    σ_j = 0), where the SVD's own backward divides 0 by 0: v₁ comes from a detached SVD, plus
    a term that is 0 in value and whose derivative is perturbation theory's
    dv₁ = (σ₁² I − MᵀM)⁺ d(MᵀM) v₁, summed over the thin SVD's other vectors v_j,
    Σ_{j>1} v_j v_jᵀ d(MᵀM) v₁ / (σ₁² − σ_j²) (the part of dv₁ outside them, in the null
    space of M, does not change M v₁). Second derivatives treat the singular vectors as
    constants.
    """
    with torch.no_grad():
        _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    v = vh.transpose(1, 2)  # (N, K, r): the right singular vectors
    v1 = v[:, :, :1]
    if torch.is_grad_enabled() and centred.requires_grad:
        pushed = centred.transpose(1, 2) @ (centred @ v1)  # MᵀM v₁
        change = pushed - pushed.detach()  # 0, with the derivative d(MᵀM) v₁
        gap = s[:, :1].square() - s.square()  # σ₁² − σ_j², 0 for j = 1 (and for a tie)
        inverse_gap = torch.where(gap > 0, 1 / gap, 0.0)
        v1 = v1 + v @ (inverse_gap[:, :, None] * (v.transpose(1, 2) @ change))
    return (centred @ v1).squeeze(2)
