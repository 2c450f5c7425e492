"""DeepLIFT with the rescale rule (Shrikumar, Greenside, Kundaje 2017)."""

from __future__ import annotations

import math

import torch
from salbench.core.applicability import CONTINUOUS
from salbench.explainers import register
from salbench.explainers.base import Explainer, output_gradient
from salbench.explainers.modified_gradient import check_eval_mode, check_layers, forward_hooks, not_inplace, rerouted
from torch import Tensor, nn

NONLINEAR = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.GELU, nn.SiLU)
"""Elementwise activations, which get the rescale rule."""
LINEAR = (
    nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.BatchNorm1d, nn.BatchNorm2d,
    nn.BatchNorm3d, nn.Flatten, nn.Unflatten, nn.Dropout, nn.Identity,
)  # fmt: skip
"""Affine modules (batch norm and dropout in eval mode), whose multipliers are their gradients."""
_STOCHASTIC = (nn.Dropout, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)  # affine only in eval mode
_TINY = 1e-10  # Captum's threshold on |Δu| below which the local derivative replaces Δy/Δu


def _local_slope(module: nn.Module, u: Tensor) -> Tensor:
    """dy/du of an elementwise activation at u."""
    with torch.enable_grad():
        leaf = u.detach().requires_grad_(True)
        (slope,) = torch.autograd.grad(module.forward(leaf).sum(), leaf)
    return slope


def _rescale(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
    """Forward hook of an activation on rows [x; baseline]: both halves pass back m = Δy/Δu."""
    u = inputs[0]
    n = u.shape[0] // 2
    du, dy = u[:n] - u[n:], output[:n] - output[n:]
    small = du.abs() < _TINY
    multiplier = torch.where(small, _local_slope(module, u[:n]), dy / du) if small.any() else dy / du
    return rerouted(output, u, torch.cat([multiplier, multiplier]))


@register("deeplift")
class DeepLift(Explainer):
    """DeepLIFT with the rescale rule: multipliers Δy/Δu through every activation, times x − b (Shrikumar et al. 2017).

    Shrikumar, Greenside, Kundaje 2017, "Learning important features through propagating
    activation differences", ICML. With the baseline b (the constant ``baseline``, default 0)
    and every neuron's difference from its value at b, Δu = u(x) − u(b): an elementwise
    activation y = σ(u) gets the multiplier m = Δy/Δu (the rescale rule; where |Δu| < 1e-10,
    σ'(u(x)), as in Captum), affine layers their weights, and the chain rule composes the
    multipliers (the backward pass of the gradient with σ' replaced by m). E(x) = (x − b) ⊙
    m_{x→f_c}, which sums to f_c(x) − f_c(b) (summation-to-delta) on a network of affine layers and
    activations. Matches Captum's ``DeepLift`` (default rescale rule) on such networks.

    Departures: no RevealCancel rule; max pooling (which Captum treats with a rule of its
    own) is refused, as is any leaf module outside :data:`LINEAR` and :data:`NONLINEAR`
    (checked at the entry point, naming the module); in-place activations are run out of place
    for the call. Batch norm and dropout must be in eval mode. Operations written as functions in
    a ``forward`` (``F.relu``) are not seen: use modules. One forward and one backward pass of the
    2N rows [x; b], with forward hooks that are removed afterwards: the model is not modified.
    Not differentiable (the multipliers are constants of the backward pass).

    Args:
        baseline: the constant value of the baseline input b.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        >>> x = torch.randn(5, 3)
        >>> attr = explainers.get("deeplift")(model, x, 1)
        >>> gap = model(x)[:, 1] - model(torch.zeros_like(x))[:, 1]
        >>> bool(torch.allclose(attr.sum(1), gap, atol=1e-5))
        True
    """

    differentiable = False
    modalities = CONTINUOUS  # text goes through its embedding layer, which has no multiplier rule here

    def __init__(self, baseline: float = 0.0):
        if not math.isfinite(baseline):
            raise ValueError(f"baseline must be a finite number, got {baseline!r}")
        self.baseline = baseline

    def attribute(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        check_layers(model, LINEAR + NONLINEAR, "deeplift")
        check_eval_mode(model, _STOCHASTIC, "deeplift")
        x = x.detach()
        delta = x - self.baseline
        rows = torch.cat([x, torch.full_like(x, self.baseline)])
        with not_inplace(model), forward_hooks(model, lambda m: _rescale if isinstance(m, NONLINEAR) else None):
            grad, _ = output_gradient(model, rows, target.repeat(2), create_graph=False)
        return delta * grad[: x.shape[0]]
