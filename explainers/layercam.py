"""LayerCAM: activations weighted by their positive gradients, per position (Jiang et al. 2021)."""

from __future__ import annotations

from salbench.explainers import register
from salbench.explainers.activation_map import GradientActivationMap, weighted_sum
from torch import Tensor


@register("layercam")
class LayerCAM(GradientActivationMap):
    """LayerCAM: L = ReLU(Σ_k ReLU(∂f_c/∂A_k) ⊙ A_k) (Jiang et al. 2021).

    Jiang, Zhang, Hou, Cheng, Wei 2021, "LayerCAM: exploring hierarchical class activation
    maps for localization", IEEE Transactions on Image Processing 30. With A (N, K, *s) the
    output of ``layer`` and G = ∂f_c/∂A, each position keeps its own weight
    w_k(s) = ReLU(G_k(s)): L(s) = ReLU(Σ_k w_k(s) A_k(s)). So it equals HiResCAM where every
    gradient is positive. The paper combines maps of several layers (with a tanh scaling for
    shallow ones); here one layer is explained, as in pytorch-grad-cam. Differentiable.
    Layer choice (``layer``), ReLU (``relu``) and output (``upsample``) as
    :class:`~salbench.explainers.activation_map.ActivationMap`.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1),
        ...                       nn.Flatten(), nn.Linear(4, 3))
        >>> explainers.get("layercam")(model, torch.randn(2, 1, 4, 6, 6), 0).shape
        torch.Size([2, 1, 4, 6, 6])
    """

    def combine(self, activation: Tensor, gradient: Tensor) -> Tensor:
        return weighted_sum(gradient.relu(), activation)
