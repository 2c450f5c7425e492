"""Grad-CAM++: Grad-CAM with per-position weights from higher-order derivatives (Chattopadhay et al. 2018)."""

from __future__ import annotations

import torch
from salbench.explainers import register
from salbench.explainers.activation_map import GradientActivationMap, spatial_dims, weighted_sum
from torch import Tensor


@register("gradcam_plusplus")
class GradCAMPlusPlus(GradientActivationMap):
    """Grad-CAM++: channel weights Σ_s α_k(s) ReLU(∂f_c/∂A_k(s)) (Chattopadhay et al. 2018).

    Chattopadhay, Sarkar, Howlader, Balasubramanian 2018, "Grad-CAM++: generalized
    gradient-based visual explanations for deep convolutional networks", WACV. With A
    (N, K, *s) the output of ``layer`` and G = ∂f_c/∂A (f_c the target logit), the closed
    form of the paper's Eq. 19 (derived for the exponential of the score, which turns its
    second and third derivatives into powers of G):

        α_k(s) = G_k(s)² / (2 G_k(s)² + Σ_s' A_k(s') · G_k(s)³),
        w_k = Σ_s α_k(s) ReLU(G_k(s)),   L = ReLU(Σ_k w_k A_k).

    Where the denominator is 0 (in particular where G_k(s) = 0, as pytorch-grad-cam does
    there) α_k(s) = 0; pytorch-grad-cam also adds 1e-6 to every denominator, which is not
    done here (it biases α where G is small). The sums run over all spatial dimensions
    (pytorch-grad-cam's only over two), so signals and volumes work too. Differentiable
    (``create_graph=True``). Layer choice (``layer``), ReLU (``relu``) and output
    (``upsample``) as :class:`~salbench.explainers.activation_map.ActivationMap`.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool1d(1),
        ...                       nn.Flatten(), nn.Linear(4, 3))
        >>> explainers.get("gradcam_plusplus")(model, torch.randn(5, 2, 16), 1).shape
        torch.Size([5, 2, 16])
    """

    def combine(self, activation: Tensor, gradient: Tensor) -> Tensor:
        squared = gradient.square()
        denominator = 2 * squared + activation.sum(spatial_dims(activation), keepdim=True) * squared * gradient
        defined = denominator != 0
        alpha = torch.where(defined, squared / torch.where(defined, denominator, torch.ones_like(denominator)), 0.0)
        return weighted_sum((alpha * gradient.relu()).sum(spatial_dims(gradient), keepdim=True), activation)
