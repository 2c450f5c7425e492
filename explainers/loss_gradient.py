"""Loss gradient: ∇ₓ of the cross-entropy of the target class, R2ET's explanation I(x) (Chen et al., NeurIPS 2024)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from salbench.core.validation import check_logits_target
from salbench.explainers import register
from salbench.explainers.base import Explainer
from torch import Tensor, nn

__all__ = ["LossGradient", "loss_gradient"]


def loss_gradient(model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
    """∇ₓ CE(f(x_i), target_i) for each sample, shape of ``x``.

    One backward pass of the summed cross-entropy (samples are independent, so each sample's
    slice is its own gradient; the R2ET authors differentiate the batch mean, which scales every
    gradient by 1/N and changes no ranking). ``x`` is detached first, unless it already requires
    a gradient and ``create_graph`` is set: then the graph reaches ``x`` itself, so that the
    result can be differentiated with respect to it (second derivatives, e.g. the input Hessian)
    as well as to the parameters.
    """
    with torch.enable_grad():
        inputs = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
        logits = model(inputs)
        check_logits_target(logits, target)
        loss = F.cross_entropy(logits, target, reduction="sum")
        (grad,) = torch.autograd.grad(loss, inputs, create_graph=create_graph)
    return grad


@register("loss_gradient")
class LossGradient(Explainer):
    """Gradient of the cross-entropy loss of the target class with respect to the input.

    Chen, Guo, Chen, Ma, Zeng, Liao, Zhang, Xie, "Training for Stable Explanation for Free",
    NeurIPS 2024: the explanation R2ET regularises and its attacks manipulate (authors' code
    ccha005/R2ET, ``batch_retrain.get_batch_gradient``; ranked in ``rank_batch_gradient`` as
    Σ_channels |·|). With p = softmax(f(x)) and c the target,

        E(x) = ∇ₓ CE(f(x), c) = −Σ_j (δ_jc − p_j) ∇ₓ f_j(x),   |E(x)| with ``absolute=True``.

    Sign and target: the gradient of the loss points away from class c (for two classes,
    E = −(1 − p_c)·∇(f_c − f_other)), so it is the class-score gradient's direction scaled by
    the model's doubt 1 − p_c and reversed; with ``absolute=True`` (the default, as the authors
    rank |∇ₓL|) the sign is gone. The authors take c = the true label; salbench explains the
    target the runner passes. A one-logit model z is seen as
    :class:`~salbench.models.external.TwoLogits` (−z/2, z/2): the cross-entropy of target 1 is
    then the binary cross-entropy of sigmoid(z), E = −(1 − σ(z))·∇z, and of target 0,
    E = σ(z)·∇z.

    Departure: the channel sum of the authors' ranking is left to the caller (the map keeps
    the input's shape, as every salbench explainer's does; R2ET's own regulariser sums the
    channels, :func:`salbench.recipes.r2et.explanation_mass`).

    Args:
        absolute: return |∇ₓL| (default True, the authors' explanation); False keeps the sign.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> model = torch.nn.Linear(2, 2, bias=False)
        >>> with torch.no_grad():
        ...     _ = model.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        >>> # logits (0, 0): p = (1/2, 1/2); E = −(1 − 1/2)·(w_0 − w_1) = (−1/2, 1/2)
        >>> explainers.get("loss_gradient", absolute=False)(model, torch.zeros(1, 2), torch.tensor([0]))
        tensor([[-0.5000,  0.5000]])
    """

    def __init__(self, absolute: bool = True):
        self.absolute = absolute

    def attribute(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        grad = loss_gradient(model, x, target, create_graph=create_graph)
        return grad.abs() if self.absolute else grad
