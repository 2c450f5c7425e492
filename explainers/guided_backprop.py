"""Guided backpropagation (Springenberg, Dosovitskiy, Brox, Riedmiller 2015)."""

from __future__ import annotations

from salbench.explainers import register
from salbench.explainers.base import Explainer, output_gradient
from salbench.explainers.modified_gradient import forward_hooks
from torch import Tensor, nn


def _guide(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
    """Forward hook of a ReLU: only positive gradients flow back into its output."""
    if output.requires_grad:
        output.register_hook(lambda grad: grad.clamp(min=0))


@register("guided_backprop")
class GuidedBackprop(Explainer):
    """Guided backpropagation: the gradient with only positive signals passed back through ReLUs (Springenberg et al. 2015).

    Springenberg, Dosovitskiy, Brox, Riedmiller 2015, "Striving for simplicity: the all
    convolutional net", ICLR workshop. The backward pass is the gradient's except at every
    ReLU y = max(u, 0), where the signal g arriving at y leaves as
    R_u = 1[u > 0] · max(g, 0) (the gradient's mask on the forward input combined with the
    "deconvnet" mask on the backward signal); E(x) is the resulting signal at the input,
    for the target logit f_c. Matches Captum's ``GuidedBackprop``.

    Only ``nn.ReLU`` modules are guided (a ReLU written as ``F.relu`` inside a ``forward`` is
    differentiated plainly, as in Captum); without any the map is the gradient. The rule lives in
    forward hooks registered for the call and removed afterwards, also on errors
    (:mod:`salbench.explainers.modified_gradient`): the model is never modified.
    ``create_graph=True`` keeps the graph of the guided signal (on a ReLU network its
    derivative with respect to x is zero almost everywhere, as the gradient's). No parameters.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
        >>> with torch.no_grad():
        ...     _ = model[0].weight.copy_(torch.eye(2)), model[0].bias.zero_(), model[2].weight.copy_(torch.tensor([[1.0, -1.0]]))
        >>> explainers.get("guided_backprop")(model, torch.tensor([[1.0, 2.0]]), 0)  # the gradient is (1, −1)
        tensor([[1., 0.]])
    """

    def attribute(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        with forward_hooks(model, lambda module: _guide if isinstance(module, nn.ReLU) else None):
            grad, _ = output_gradient(model, x, target, create_graph=create_graph)
        return grad
