"""Gradient × input saliency (Shrikumar et al. 2016)."""

from __future__ import annotations

from salbench.explainers import register
from salbench.explainers.base import Explainer, output_gradient
from torch import Tensor, nn


@register("gradient_x_input")
class GradientXInput(Explainer):
    """Input times the gradient of the target logit (Shrikumar et al. 2016).

    E(x) = x ⊙ ∂f_c(x)/∂x (Shrikumar, Greenside, Shcherbina, Kundaje 2016, "Not just a black
    box", arXiv:1605.01713). It is integrated gradients with a zero baseline and a single
    right-endpoint step; for a bias-free ReLU network it equals that integral exactly. Matches
    Captum's ``InputXGradient``. No parameters.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> model = torch.nn.Linear(3, 2)
        >>> explainers.get("gradient_x_input")(model, torch.ones(4, 3), 0).shape
        torch.Size([4, 3])
    """

    def attribute(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        grad, _ = output_gradient(model, x, target, create_graph=create_graph)
        return (x if create_graph else x.detach()) * grad
