"""CAM: class activation maps of global-average-pooling networks (Zhou et al. 2016)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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

# fc(mean_s A) must reproduce the logits to this relative precision (float32 sums of K·Z terms).
_HEAD_RTOL = 1e-3


@register("cam")
class CAM(Explainer):
    """CAM: class activation map Σ_k w_ck A_k of a global-average-pool + linear network (Zhou et al. 2016).

    Zhou, Khosla, Lapedriza, Oliva, Torralba 2016, "Learning deep features for
    discriminative localization", CVPR. For a network whose logits are
    f_c = Σ_k w_{c,k} mean_s A_k(s) + b_c (global average pooling of the feature maps A
    (N, K, *s), then a linear layer ``fc`` with weight w), CAM_c(s) = Σ_k w_{c,k} A_k(s).
    So mean_s CAM_c = f_c − b_c, and CAM = Z · Grad-CAM without ReLU at the same layer
    (Z = number of spatial positions), since there ∂f_c/∂A_k(s) = w_{c,k}/Z.

    ``layer``: a submodule name, or "auto" for the module whose output is pooled: the last
    module to finish in the forward pass whose output is (N, K, *s) with K = fc's input
    features and more than one spatial position (for conv → ReLU-module → pool → linear this
    is the ReLU, not the convolution before it). ``fc``: a submodule name, or "auto" for the
    last ``nn.Linear`` in ``model.modules()`` order. Every call checks the architecture:
    fc(mean_s A) must reproduce the model's logits (relative tolerance 1e-3), else an error
    says which layer fails; CAM is undefined for other heads.

    Output: as Grad-CAM's — with ``upsample=True`` (default) the map is resized to x's
    spatial size ((bi/tri)linear, ``align_corners=False``) and repeated over x's channels
    (shape of x); with ``upsample=False`` it stays at the layer's resolution, (N, 1, *s).
    The paper upsamples bilinearly too. No ReLU or normalisation is applied.

    Args:
        layer: name of the layer whose output is pooled, or "auto".
        fc: name of the final linear layer, or "auto".
        upsample: resize to the input's shape (see above).

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                       nn.Flatten(), nn.Linear(4, 3))
        >>> explainers.get("cam")(model, torch.randn(2, 1, 8, 8), 2).shape
        torch.Size([2, 1, 8, 8])
    """

    modalities = SPATIAL
    requires = ("gap_head",)

    def __init__(self, layer: str = "auto", fc: str = "auto", upsample: bool = True):
        for value, argument in ((layer, "layer"), (fc, "fc")):
            if not value:
                raise ValueError(f"{argument} must be a submodule name or 'auto', got an empty string")
        self.layer = layer
        self.fc = fc
        self.upsample = upsample

    def layer_used(self, model: nn.Module, x: Tensor) -> str:
        """The name of the layer whose output is pooled for inputs like ``x`` (``"auto"`` resolved):
        what a benchmark records beside its numbers."""
        if self.layer != "auto":
            return self.layer
        _, fc = find_layer(model, self.fc, nn.Linear, "fc")
        with torch.no_grad():
            return last_spatial_output(model, x[:1], fc.in_features)[0]

    def attribute(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        fc_name, fc = find_layer(model, self.fc, nn.Linear, "fc")
        if not isinstance(fc, nn.Linear):
            raise ValueError(f"fc={fc_name!r} must name an nn.Linear, got {type(fc).__name__}")
        with torch.set_grad_enabled(create_graph):
            if self.layer == "auto":
                name, activation, logits = last_spatial_output(model, x, fc.in_features)
            else:
                name, layer = find_layer(model, self.layer, conv_type(x, "cam"), "layer")
                activation, logits = capture_output(model, layer, name, x)
            check_logits_target(logits, target)
            _check_head(activation, logits, fc, name, fc_name)
            maps = torch.einsum("nk...,nk->n...", activation, fc.weight[target]).unsqueeze(1)
        return to_input_shape(maps, x) if self.upsample else maps


def _check_head(activation: Tensor, logits: Tensor, fc: nn.Linear, name: str, fc_name: str) -> None:
    """The logits are ``fc`` applied to the spatial mean of ``activation`` (CAM's premise)."""
    if activation.shape[1] != fc.in_features:
        raise ValueError(
            f"layer {name!r} outputs {activation.shape[1]} channels but fc={fc_name!r} takes {fc.in_features} "
            f"features; CAM needs the feature maps that are average-pooled into fc"
        )
    pooled = activation.mean(dim=tuple(range(2, activation.dim())))
    rebuilt = F.linear(pooled, fc.weight, fc.bias)
    scale = logits.detach().abs().max().item()
    if rebuilt.shape != logits.shape or not torch.allclose(rebuilt, logits, rtol=_HEAD_RTOL, atol=_HEAD_RTOL * scale):
        raise ValueError(
            f"CAM needs logits = fc(global average of the layer's output), but {fc_name!r} applied to the "
            f"spatial mean of layer {name!r} does not reproduce the model's logits; name the layer whose "
            f"output is pooled (layer=...) and the final linear layer (fc=...)"
        )
