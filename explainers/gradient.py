"""Vanilla gradient saliency (Simonyan, Vedaldi, Zisserman 2014)."""

from __future__ import annotations

from salbench.explainers import register
from salbench.explainers.base import Explainer, output_gradient
from torch import Tensor, nn


@register("gradient")
class Gradient(Explainer):
    """Gradient of the target logit with respect to the input (Simonyan et al. 2014).

    E(x) = ∂f_c(x)/∂x, or |∂f_c(x)/∂x| with ``absolute=True`` (the paper's saliency map takes
    the absolute value and the maximum over channels; here the channel reduction is left to
    the caller so that the map keeps the input's shape). Matches Captum's ``Saliency``
    (``abs=absolute``).

    Args:
        absolute: return the absolute gradient.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> model = torch.nn.Linear(3, 2)
        >>> explainers.get("gradient")(model, torch.ones(4, 3), torch.tensor([0, 1, 0, 1])).shape
        torch.Size([4, 3])
    """

    def __init__(self, absolute: bool = False):
        self.absolute = absolute

    def attribute(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        grad, _ = output_gradient(model, x, target, create_graph=create_graph)
        return grad.abs() if self.absolute else grad
