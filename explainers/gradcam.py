"""Grad-CAM: gradient-weighted class activation maps (Selvaraju et al. 2017)."""

from __future__ import annotations

from salbench.explainers import register
from salbench.explainers.activation_map import GradientActivationMap, spatial_dims, weighted_sum
from torch import Tensor


@register("gradcam")
class GradCAM(GradientActivationMap):
    """Grad-CAM: layer activations weighted by their pooled gradients (Selvaraju et al. 2017).

    Selvaraju, Cogswell, Das, Vedantam, Parikh, Batra 2017, "Grad-CAM: visual explanations
    from deep networks via gradient-based localization", ICCV. With A (N, K, *s) the output
    of ``layer`` and Z the number of its spatial positions:
    α_k = (1/Z) Σ_s ∂f_c/∂A_k(s),  L = ReLU(Σ_k α_k A_k) (ReLU dropped with ``relu=False``).
    The activations and their gradients come from one forward/backward pass (a forward hook).

    ``layer``: a submodule name (as in ``model.get_submodule``), or "auto" for the last
    submodule to finish in the forward pass whose output is a feature map (N, K, *s) with more
    than one spatial position (:func:`~salbench.explainers.layers.last_spatial_output`): the
    output of the last block, after its skip addition and activation, which is what reaches
    the global pooling — ``layer4`` of a torchvision ResNet, ``features`` of a DenseNet, the
    ReLU module of conv → ReLU → pool. That is the layer pytorch-grad-cam recommends and the
    paper uses ("the last convolutional layer" of VGG, whose ReLU output is pooled). Departure
    from earlier salbench versions, which took the last ``Conv1d/2d/3d`` in ``model.modules()`` order:
    in a ResNet that is ``layer4.1.conv2``, before BatchNorm, the skip addition and the ReLU.

    Works on signals (N, C, L), images (N, C, H, W) and volumes (N, C, D, H, W) (Conv1d/2d/3d
    layers; the spatial dimensions are all dimensions after the channel).

    Output: with ``upsample=True`` (default) L is resized to x's spatial size by linear /
    bilinear / trilinear interpolation (``align_corners=False``) and repeated over x's
    channels, so the attribution has the shape of x (N, C, *spatial), every channel equal. This matches
    Captum's ``LayerGradCam`` followed by ``LayerAttribution.interpolate(..., "bilinear")``.
    With ``upsample=False`` the map is returned at the layer's resolution, shape
    (N, 1, *layer_spatial) — the one case where an explainer's output is not x's shape; use
    it for inspection, not with metrics that compare the attribution with x.

    Args:
        layer: name of the layer whose output is explained, or "auto".
        relu: keep only the positive part of the map (the paper's choice).
        upsample: resize to the input's shape (see above).

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                       nn.Flatten(), nn.Linear(4, 3))
        >>> explainers.get("gradcam", layer="0")(model, torch.randn(2, 1, 8, 8), 2).shape
        torch.Size([2, 1, 8, 8])
    """

    def combine(self, activation: Tensor, gradient: Tensor) -> Tensor:
        return weighted_sum(gradient.mean(dim=spatial_dims(gradient), keepdim=True), activation)
