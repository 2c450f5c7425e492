"""Input-gradient penalties of R2ET and Est-H: the loss gradient, the Hessian-norm estimate, the adaptive weight.

Chen et al., "Training for Stable Explanation for Free", NeurIPS 2024; authors' code
ccha005/R2ET, ``batch_retrain.py`` (``get_batch_gradient``, ``estimate_Hessian``, the
``'_adapt'`` weighting in ``retrain``). Every function is batched and keeps the graph, so that
the penalties can be differentiated with respect to the model's parameters (double backprop).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["loss_gradient", "hessian_norm", "adaptive_weight", "penalty_term"]


def loss_gradient(model: nn.Module, x: Tensor, y: Tensor, *, create_graph: bool) -> Tensor:
    """∇_x CE(f(x_i), y_i) for each sample, shape of ``x``: R2ET's explanation before |·| and the channel sum.

    One backward pass of the summed cross-entropy (samples are independent, so each sample's
    slice is its own gradient; the authors differentiate the batch mean, which scales every
    gradient by 1/N and changes no ranking). With ``create_graph`` the result can be
    differentiated again, with respect to x and to the parameters.
    """
    with torch.enable_grad():
        inputs = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(inputs), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, inputs, create_graph=create_graph)
    return grad


def hessian_norm(model: nn.Module, x: Tensor, y: Tensor, grad: Tensor, h: float) -> Tensor:
    """Finite-difference estimate of ‖H_x‖ per sample (N,): ‖(∇L(x + h·sign(∇L)/d) − ∇L(x)) / h‖₂.

    L = CE(f(x), y), d = features per sample, ``grad`` = ∇L(x) from :func:`loss_gradient` with
    ``create_graph=True`` (reused rather than computed again). The step h·sign(∇L)/d moves
    every feature by h/d along the gradient's sign (a constant for autograd: sign has no
    gradient), so the difference of gradients is h/d times the Hessian applied to sign(∇L),
    divided by h (the authors' ``estimate_Hessian``, with d = 3072 for their CIFAR-10 inputs).

    Departure: the norm is taken per sample and averaged by the caller; the authors take one
    Frobenius norm over the batch's mean-loss gradients, which makes a sample's term depend on
    its batch-mates. Under the adaptive weight (:func:`adaptive_weight`) only the direction of
    the penalty's gradient matters, which the two share up to that coupling.

    For a ReLU network the input gradient is piecewise constant, so the estimate is exactly 0
    unless the step crosses an activation boundary (and then large): Est-H acts on such
    networks only through those crossings.
    """
    shifted = x.detach() + h * grad.detach().sign() / x[0].numel()
    difference = (loss_gradient(model, shifted, y, create_graph=True) - grad) / h
    return difference.flatten(1).norm(dim=1)


def adaptive_weight(lam: float, ce: Tensor, penalty: Tensor) -> Tensor:
    """The authors' adaptive weight λ_eff = |λ (CE + 1) / R|, a constant for autograd; 0 where R = 0.

    ``ce`` and ``penalty`` are the batch's scalar cross-entropy and penalty. λ_eff·R then has
    the magnitude λ(CE + 1) whatever the penalty's scale, so λ sets the share of the penalty
    in the update. R = 0 (e.g. a Hessian estimate on a ReLU network that crossed no boundary)
    gives weight 0 instead of 0/0: the term has no gradient to scale.
    """
    ce, penalty = ce.detach(), penalty.detach()
    safe = torch.where(penalty != 0, penalty, torch.ones_like(penalty))
    return torch.where(penalty != 0, (lam * (ce + 1) / safe).abs(), torch.zeros_like(penalty))


def penalty_term(lam: float, ce: Tensor, penalty: Tensor, adaptive: bool) -> Tensor:
    """λ_eff·R with the adaptive weight, or λ·R with ``adaptive=False``."""
    return (adaptive_weight(lam, ce, penalty) if adaptive else lam) * penalty
