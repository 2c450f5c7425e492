"""HiResCAM: activations times their gradients, summed over channels (Draelos & Carin 2020)."""

from __future__ import annotations

from salbench.explainers import register
from salbench.explainers.activation_map import GradientActivationMap, weighted_sum
from torch import Tensor


@register("hirescam")
class HiResCAM(GradientActivationMap):
    """HiResCAM: L = ReLU(Σ_k ∂f_c/∂A_k ⊙ A_k), the gradient kept per position (Draelos & Carin 2020).

    Draelos, Carin 2020, "Use HiResCAM instead of Grad-CAM for faithful explanations of
    convolutional neural networks", arXiv:2011.08891. With A (N, K, *s) the output of
    ``layer`` and G = ∂f_c/∂A: L(s) = ReLU(Σ_k G_k(s) A_k(s)). Grad-CAM averages G over the
    positions first; where G does not vary over the positions — a global-average-pool +
    linear head right after the layer, G_k(s) = w_ck / Z — the two are equal. For a model
    whose logit is linear in A beyond the layer, Σ_s L(s) without the ReLU is f_c minus the
    part not coming from A (the paper's faithfulness argument). As pytorch-grad-cam, with
    a final ReLU (``relu=False`` keeps the signed map). Differentiable. Layer choice
    (``layer``) and output (``upsample``) as
    :class:`~salbench.explainers.activation_map.ActivationMap`.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                       nn.Flatten(), nn.Linear(4, 3))
        >>> x = torch.randn(2, 1, 8, 8)
        >>> hires, grad = explainers.get("hirescam")(model, x, 2), explainers.get("gradcam")(model, x, 2)
        >>> bool(torch.allclose(hires, grad, atol=1e-6))  # GAP + linear head: the same map
        True
    """

    def combine(self, activation: Tensor, gradient: Tensor) -> Tensor:
        return weighted_sum(gradient, activation)
