"""Layer-wise relevance propagation with the ε, γ and α1β0 (z⁺) rules (Bach et al. 2015; Montavon et al. 2019)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from salbench.core.applicability import CONTINUOUS
from salbench.core.validation import check_positive
from salbench.explainers import register
from salbench.explainers.base import Explainer, output_gradient
from salbench.explainers.modified_gradient import check_eval_mode, check_layers, forward_hooks, not_inplace, rerouted
from torch import Tensor, nn

Rule = Literal["epsilon", "gamma", "alpha1beta0"]
WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
"""Layers with weights, which get the composite's rule (convolutions the first, Linear the second)."""
POOLS = (
    nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
)  # fmt: skip
"""Pooling layers, which get the ε rule (max pooling: the winner takes the relevance)."""
PASSING = (nn.ReLU, nn.Flatten, nn.Unflatten, nn.Dropout, nn.Identity)
"""Modules that pass relevance on unchanged (dropout in eval mode)."""
COMPOSITES: dict[str, tuple[Rule, Rule]] = {
    "epsilon": ("epsilon", "epsilon"),
    "epsilon_plus": ("alpha1beta0", "epsilon"),
    "epsilon_gamma": ("gamma", "epsilon"),
    "alpha1beta0": ("alpha1beta0", "alpha1beta0"),
}
"""Composite name → (rule of the convolutions, rule of the Linear layers)."""


def _stabilised(z: Tensor, epsilon: float) -> Tensor:
    """z + ε·sign(z), with sign(0) = 1 (never zero)."""
    return z + epsilon * torch.where(z >= 0, 1.0, -1.0).to(z)


def _with_params(module: nn.Module, a: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """The Linear or convolution layer applied to ``a`` with other parameters (bypassing its hooks)."""
    if isinstance(module, nn.Linear):
        return F.linear(a, weight, bias)
    return module._conv_forward(a, weight, bias)


def _rule_output(rule: Rule, module: nn.Module, a: Tensor, z: Tensor, gamma: float) -> Tensor:
    """z' of the rule: the layer output whose gradient distributes the relevance."""
    if rule == "epsilon":
        return z
    w, b = module.weight, module.bias
    if rule == "gamma":
        return _with_params(module, a, w + gamma * w.clamp(min=0), None if b is None else b + gamma * b.clamp(min=0))
    positive = _with_params(module, a.clamp(min=0), w.clamp(min=0), None if b is None else b.clamp(min=0))
    return positive + _with_params(module, a.clamp(max=0), w.clamp(max=0), None)  # Σ_j (a_j w_jk)⁺ + b_k⁺


@register("lrp")
class LRP(Explainer):
    """Layer-wise relevance propagation with a composite of ε, γ and α1β0 rules (Bach et al. 2015; Montavon et al. 2019).

    Bach, Binder, Montavon, Klauschen, Müller, Samek 2015, "On pixel-wise explanations for
    non-linear classifier decisions by layer-wise relevance propagation", PLoS ONE; the rules
    as in Montavon, Binder, Lapuschkin, Samek, Müller 2019, "Layer-wise relevance propagation:
    an overview". The relevance of the output is the target logit, R = f_c(x); a layer with
    inputs a_j, weights w_jk and outputs z_k = Σ_j a_j w_jk + b_k passes
    R_j = Σ_k a_j w'_jk R_k / (z'_k + ε·sign(z'_k)), with z'_k = Σ_j a_j w'_jk + b'_k and:

    - ε rule: w' = w, b' = b;
    - γ rule: w' = w + γ w⁺, b' = b + γ b⁺;
    - α1β0 rule: z'_k = Σ_j (a_j w_jk)⁺ + b_k⁺, relevance split in proportion to the positive
      contributions (the z⁺ rule when a ≥ 0, as after a ReLU).

    ``composite`` picks the rules: "epsilon" (ε everywhere), "epsilon_plus" (α1β0 in the
    convolutions, ε in the Linear layers: Zennit's EpsilonPlus), "epsilon_gamma" (γ in the
    convolutions, ε in Linear), "alpha1beta0" (α1β0 everywhere). Pooling layers get the ε rule
    (max pooling hands the relevance to the winner), ReLU, flatten and dropout pass it on.
    E(x) = R at the input. With ε → 0, no biases and the ε or α1β0 rules, Σ_i E_i = f_c(x)
    (conservation). Defaults ε = 1e-6 (Zennit's; Captum's is 1e-9, which is also its
    stabiliser of the other rules), γ = 0.25 (Captum's and Zennit's).

    Implementation: the modified-gradient trick. Each layer's forward hook keeps its output z
    but routes the gradient through z' scaled by z / (z' + ε sign z'), so that the gradient g
    satisfies R = a ⊙ g at every layer's input; the input relevance is x ⊙ ∂f_c/∂x of that
    backward pass. One forward and one backward pass, with hooks removed afterwards (also on
    errors) and parameters never modified (z' is computed functionally). Agrees with
    Captum's ``LRP`` with EpsilonRule / GammaRule / Alpha1_Beta0_Rule where the rules coincide:
    Captum's γ rule keeps b (not b + γb⁺), and its Alpha1_Beta0_Rule is w⁺ with b (not
    (a w)⁺ with b⁺), equal to ours for bias-free layers with a ≥ 0.

    Supported leaf modules: :data:`WEIGHTED`, :data:`POOLS`, :data:`PASSING` (checked at the entry
    point, naming any other, e.g. BatchNorm, which would need to be merged into the layer
    before it); in-place ReLUs run out of place for the call. Operations written as functions in a
    ``forward`` (``F.relu``, additions) are differentiated plainly: the rules hold only for
    networks of modules. Not differentiable.

    Args:
        composite: which rule the convolutions and the Linear layers get (above).
        epsilon: ε > 0, the ε rule's term and the stabiliser of every rule.
        gamma: γ >= 0 of the γ rule.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4, bias=False), torch.nn.ReLU(), torch.nn.Linear(4, 2, bias=False))
        >>> x = torch.randn(5, 3)
        >>> relevance = explainers.get("lrp", composite="epsilon", epsilon=1e-9)(model, x, 0)
        >>> bool(torch.allclose(relevance.sum(1), model(x)[:, 0], atol=1e-5))  # conservation
        True
    """

    differentiable = False
    modalities = CONTINUOUS  # text goes through its embedding layer, which has no rule here

    def __init__(self, composite: Literal["epsilon", "epsilon_plus", "epsilon_gamma", "alpha1beta0"] = "epsilon_plus",
                 epsilon: float = 1e-6, gamma: float = 0.25):  # fmt: skip
        if composite not in COMPOSITES:
            raise ValueError(f"composite must be one of {', '.join(map(repr, COMPOSITES))}; got {composite!r}")
        check_positive(epsilon, "epsilon")
        check_positive(gamma, "gamma", allow_zero=True)
        self.composite = composite
        self.epsilon = epsilon
        self.gamma = gamma

    def _hook(self, module: nn.Module):
        """The forward hook of ``module``: its rule's rerouting, or None."""
        if isinstance(module, WEIGHTED):
            rule = COMPOSITES[self.composite][0 if not isinstance(module, nn.Linear) else 1]
        elif isinstance(module, POOLS):
            rule = "epsilon"
        else:
            return None

        def hook(module: nn.Module, inputs: tuple[Tensor, ...], z: Tensor) -> Tensor:
            z_rule = _rule_output(rule, module, inputs[0], z, self.gamma)
            return rerouted(z, z_rule, z / _stabilised(z_rule, self.epsilon))

        return hook

    def attribute(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        check_layers(model, WEIGHTED + POOLS + PASSING, "lrp")
        check_eval_mode(model, (nn.Dropout,), "lrp")
        x = x.detach()
        with not_inplace(model), forward_hooks(model, self._hook):
            grad, _ = output_gradient(model, x, target, create_graph=False)
        return x * grad


