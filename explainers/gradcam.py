"""Grad-CAM: gradient-weighted class activation maps (Selvaraju et al. 2017)."""

from __future__ import annotations

import torch
from salbench.core.applicability import SPATIAL
from salbench.core.validation import check_logits_target
from salbench.explainers import register
from salbench.explainers.base import Explainer
from salbench.explainers.layers import (
    capture_output,
    conv_type,
    find_layer,
    last_spatial_output,
    to_input_shape,
)
from torch import Tensor, nn


@register("gradcam")
class GradCAM(Explainer):
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

    Output: with ``upsample=True`` (default) L is resized to x's spatial size by
    (bi/tri)linear interpolation (``align_corners=False``) and repeated over x's channels,
    so the attribution has the shape of x (N, C, *spatial), every channel equal. This matches
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

    modalities = SPATIAL
    requires = ("conv",)
    # salbench.testing's image fixture is a GAP network whose target logits come from the bias:
    # there Grad-CAM at the pooled layer is ReLU(CAM)/Z = 0 everywhere, with a zero derivative,
    # so the contract checks (create_graph among them) run on the map before the ReLU.
    test_params = {"relu": False}

    def __init__(self, layer: str = "auto", relu: bool = True, upsample: bool = True):
        if not layer:
            raise ValueError("layer must be a submodule name or 'auto', got an empty string")
        self.layer = layer
        self.relu = relu
        self.upsample = upsample

    def layer_used(self, model: nn.Module, x: Tensor) -> str:
        """The name of the layer explained for inputs like ``x`` (``"auto"`` resolved): what a
        benchmark records beside its numbers."""
        if self.layer != "auto":
            return self.layer
        with torch.no_grad():
            return last_spatial_output(model, x[:1])[0]

    def attribute(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        kind = conv_type(x, "gradcam")
        with torch.enable_grad():
            inputs = x if create_graph and x.requires_grad else x.detach().requires_grad_(True)
            if self.layer == "auto":
                _, activation, logits = last_spatial_output(model, inputs)
            else:
                name, layer = find_layer(model, self.layer, kind, "layer")
                activation, logits = capture_output(model, layer, name, inputs)
            check_logits_target(logits, target)
            selected = logits.gather(1, target[:, None]).sum()
            (grad,) = torch.autograd.grad(selected, activation, create_graph=create_graph)
        if not create_graph:
            activation = activation.detach()
        weights = grad.mean(dim=tuple(range(2, grad.dim())), keepdim=True)
        maps = (weights * activation).sum(1, keepdim=True)
        maps = maps.relu() if self.relu else maps
        return to_input_shape(maps, x) if self.upsample else maps
