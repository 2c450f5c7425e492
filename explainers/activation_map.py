"""The class-activation-map family: a map computed from one layer's output, ReLU, resized to the input.

Grad-CAM and its variants differ only in how they turn the layer's activations A (N, K, *s)
(and, for the gradient-weighted ones, their gradients G = ∂f_c/∂A) into one map (N, 1, *s).
:class:`ActivationMap` holds what they share — the ``layer`` parameter with its "auto"
resolution and ``layer_used``, the ReLU and the resizing to the input — and subclasses
implement :meth:`ActivationMap.layer_map`; :class:`GradientActivationMap` also computes A and G
in one forward/backward pass, so that its subclasses implement only
:meth:`GradientActivationMap.combine`. Everything is dimension-generic: signals (N, C, L) with
Conv1d, images (N, C, H, W) with Conv2d, volumes (N, C, D, H, W) with Conv3d.
"""

from __future__ import annotations

import torch
from salbench.core.applicability import SPATIAL
from salbench.core.validation import check_logits_target
from salbench.explainers.base import Explainer
from salbench.explainers.layers import (
    capture_output,
    conv_type,
    find_layer,
    last_spatial_output,
    to_input_shape,
)
from torch import Tensor, nn

__all__ = ["ActivationMap", "GradientActivationMap", "spatial_dims", "weighted_sum"]


def spatial_dims(t: Tensor) -> tuple[int, ...]:
    """The dimensions after batch and channel of a (N, K, *s) tensor: ``(2, ..., t.dim() - 1)``."""
    return tuple(range(2, t.dim()))


def weighted_sum(weights: Tensor, activation: Tensor) -> Tensor:
    """Σ_k w_k A_k: (N, K, ...) weights (per channel, or per position) times (N, K, *s) activations → (N, 1, *s).

    >>> a = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # N = 1, K = 2, s = 2
    >>> weighted_sum(torch.tensor([[[2.0], [-1.0]]]), a)  # per-channel weights (2, -1)
    tensor([[[-1., 0.]]])
    """
    return (weights * activation).sum(1, keepdim=True)


class ActivationMap(Explainer):
    """Base of the class-activation-map explainers: L = ReLU(layer_map(A)), resized to the input.

    Subclasses implement :meth:`layer_map`, which returns a map (N, 1, *s) at the resolution
    of the layer's output A (N, K, *s).

    ``layer``: a submodule name (as in ``model.get_submodule``), or "auto" for the last
    submodule to finish in the forward pass whose output is a feature map (N, K, *s) with more
    than one spatial position (:func:`~salbench.explainers.layers.last_spatial_output`: the
    map that reaches the global pooling, ``layer4`` of a ResNet). :meth:`layer_used` names the
    layer "auto" resolves to, which a benchmark records beside its numbers.

    Output: with ``upsample=True`` (default) the map is resized to x's spatial size by
    linear / bilinear / trilinear interpolation (signals / images / volumes,
    ``align_corners=False``) and repeated over x's channels, so the attribution has the shape
    of x; with ``upsample=False`` it stays at the layer's resolution, (N, 1, *s) — for
    inspection, not for metrics that compare the attribution with x. The ReLU
    (``relu=True``) is applied before resizing; no normalisation is applied (pytorch-grad-cam
    rescales every map to [0, 1], which hides the map's scale from the metrics).

    Args:
        layer: name of the layer whose output is explained, or "auto".
        relu: keep only the positive part of the map (the papers' choice).
        upsample: resize to the input's shape (see above).
    """

    modalities = SPATIAL
    requires = ("conv",)
    # salbench.testing's image fixture is a GAP network whose target logits come from the bias:
    # there the ReLU'd map at the pooled layer is 0 everywhere, with a zero derivative, so the
    # contract checks (create_graph among them) run on the map before the ReLU.
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
        conv_type(x, type(self).__name__)  # refuses inputs without 1 to 3 spatial dimensions
        maps = self.layer_map(model, x, target, create_graph=create_graph)
        maps = maps.relu() if self.relu else maps
        return to_input_shape(maps, x) if self.upsample else maps

    def layer_map(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        """The map (N, 1, *s) at the layer's resolution, before the ReLU."""
        raise NotImplementedError

    def activation(self, model: nn.Module, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """Run ``model(x)`` once; (the output A (N, K, *s) of the explained layer, the logits).

        The logits are checked against ``target``. Gradients flow (or not) as the caller's
        grad mode says.
        """
        if self.layer == "auto":
            _, activation, logits = last_spatial_output(model, x)
        else:
            name, layer = find_layer(model, self.layer, conv_type(x, type(self).__name__), "layer")
            activation, logits = capture_output(model, layer, name, x)
        check_logits_target(logits, target)
        return activation, logits


class GradientActivationMap(ActivationMap):
    """Base of the gradient-weighted CAMs: map = combine(A, G) with G = ∂f_c/∂A (the target logit).

    A and G come from one forward and one backward pass (a forward hook on the layer). With
    ``create_graph=True`` both keep their graph, so the map is differentiable in x (second
    derivatives through G). Subclasses implement :meth:`combine`.
    """

    def layer_map(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        with torch.enable_grad():
            inputs = x if create_graph and x.requires_grad else x.detach().requires_grad_(True)
            activation, logits = self.activation(model, inputs, target)
            selected = logits.gather(1, target[:, None]).sum()
            (gradient,) = torch.autograd.grad(selected, activation, create_graph=create_graph)
        if not create_graph:
            activation = activation.detach()
        return self.combine(activation, gradient)

    def combine(self, activation: Tensor, gradient: Tensor) -> Tensor:
        """The map (N, 1, *s) from the activations A and their gradients G, both (N, K, *s)."""
        raise NotImplementedError
