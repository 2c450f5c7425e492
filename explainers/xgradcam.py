"""XGradCAM: channel weights Σ_s (A_k(s)/Σ A_k) ∂f_c/∂A_k(s) (Fu et al. 2020)."""

from __future__ import annotations

import torch
from salbench.explainers import register
from salbench.explainers.activation_map import GradientActivationMap, spatial_dims, weighted_sum
from torch import Tensor


@register("xgradcam")
class XGradCAM(GradientActivationMap):
    """XGradCAM: Grad-CAM with gradients averaged under the activation's own weights (Fu et al. 2020).

    Fu, Hu, Dong, Guo, Gao, Sun 2020, "Axiom-based Grad-CAM: towards accurate visualization
    and explanation of CNNs", BMVC. With A (N, K, *s) the output of ``layer`` and
    G = ∂f_c/∂A, the weights that satisfy the paper's sensitivity and conservation axioms:

        w_k = Σ_s (A_k(s) / Σ_s' A_k(s')) G_k(s),   L = ReLU(Σ_k w_k A_k).

    A channel with Σ_s A_k(s) = 0 gets w_k = 0 (for non-negative activations, the paper's
    setting, such a channel is zero everywhere, so its term vanishes either way);
    pytorch-grad-cam adds 1e-7 to every denominator instead (which gives a signed channel that
    sums to 0 a weight of order 10⁷ instead of 0). Differentiable. Layer choice
    (``layer``), ReLU (``relu``) and output (``upsample``) as
    :class:`~salbench.explainers.activation_map.ActivationMap`.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3))
        >>> explainers.get("xgradcam", upsample=False)(model, torch.randn(2, 1, 8, 8), 1).shape
        torch.Size([2, 1, 6, 6])
    """

    def combine(self, activation: Tensor, gradient: Tensor) -> Tensor:
        total = activation.sum(spatial_dims(activation), keepdim=True)
        nonzero = total != 0
        share = activation / torch.where(nonzero, total, torch.ones_like(total))
        weights = torch.where(nonzero, (share * gradient).sum(spatial_dims(gradient), keepdim=True), 0.0)
        return weighted_sum(weights, activation)
