"""Input-gradient penalties of R2ET and its baselines: the loss gradient, Hessian norms, the adaptive weight.

Chen et al., "Training for Stable Explanation for Free", NeurIPS 2024; authors' code
ccha005/R2ET, ``batch_retrain.py`` (``get_batch_gradient``, ``estimate_Hessian``, the
``'_adapt'`` weighting in ``retrain``); the exact Hessian norms of the baselines Exact-H and SSR
(Wang et al., NeurIPS 2020). :func:`loss_gradient` is the ``loss_gradient`` explainer's
(:mod:`salbench.explainers.loss_gradient`). Every function is batched and keeps the graph, so that
the penalties can be differentiated with respect to the model's parameters (double backprop).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from salbench.explainers.loss_gradient import loss_gradient
from torch import Tensor, nn

__all__ = ["loss_gradient", "hessian_norm", "exact_hessian_norm", "hessian_top_eigenvalue", "adaptive_weight",
           "penalty_term"]


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


def exact_hessian_norm(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """‖∇²ₓ CE(f(x_i), y_i)‖_F per sample (N,), computed exactly: one Hessian row per input feature.

    Row j of sample i's Hessian is ∂(∇L)_ij/∂x_i; since samples are independent, one backward
    pass of Σ_i (∇L)_ij gives row j of every sample at once: d double-backward passes in all
    (d features per sample), their squared norms summed as they come. Exact for any
    twice-differentiable model (a ReLU network: the Hessian where it exists, that of the
    softmax through the piecewise-linear logits). Keeps the graph (parameters' gradients).
    Where the Hessian is exactly zero (a saturated softmax) the norm is 0 with a zero gradient,
    not the square root's infinite one. A loop rather than one ``is_grads_batched`` pass: on a small CNN with 784 inputs the
    batched form's parameter gradient was about 60 times slower (measured).
    """
    with torch.enable_grad():
        inputs = x.detach().requires_grad_(True)
        grad = loss_gradient(model, inputs, y, create_graph=True).flatten(1)
        squares = torch.zeros(len(x), dtype=grad.dtype, device=grad.device)
        for j in range(grad.shape[1]):
            (row,) = torch.autograd.grad(grad[:, j].sum(), inputs, retain_graph=True, create_graph=True)
            squares = squares + row.flatten(1).pow(2).sum(dim=1)
    # a saturated softmax has a zero Hessian in floating point, where the square root's gradient
    # is infinite (and 0·inf = nan in the chain rule): there the norm is 0 with a zero gradient
    nonzero = squares > 0
    return torch.where(nonzero, torch.where(nonzero, squares, torch.ones_like(squares)).sqrt(), 0.0)


def hessian_top_eigenvalue(model: nn.Module, x: Tensor) -> Tensor:
    """λ_max(J_iᵀ (diag p_i − p_i p_iᵀ) J_i) per sample (N,): SSR's β (Wang et al., NeurIPS 2020).

    J_i the (C × d) Jacobian of the logits, p_i = softmax(f(x_i)). For a piecewise-linear
    network (ReLU, max-pooling) the logits' Hessian is zero almost everywhere and this matrix is
    the input Hessian of the cross-entropy of *any* label, so β_i is its largest eigenvalue
    (its spectral norm). Computed in C × C: with A = diag p − ppᵀ = L Lᵀ, L = diag(√p)(I − √p√pᵀ)
    (I − √p√pᵀ is a projector since ‖√p‖ = 1), the nonzero eigenvalues of Jᵀ A J are those of
    Lᵀ (J Jᵀ) L; ``eigvalsh``'s gradient is finite also for repeated eigenvalues. C backward
    passes build J (kept in the graph).
    """
    with torch.enable_grad():
        inputs = x.detach().requires_grad_(True)
        logits = model(inputs)
        classes = logits.shape[1]
        basis = torch.eye(classes, dtype=logits.dtype, device=logits.device)[:, None, :].expand(-1, len(x), -1)
        (jacobian,) = torch.autograd.grad(logits, inputs, grad_outputs=basis, is_grads_batched=True, create_graph=True)
    jacobian = jacobian.flatten(2).transpose(0, 1)  # (N, C, d)
    root = (F.log_softmax(logits, dim=1) / 2).exp()  # √p, with a finite gradient where p underflows
    eye = torch.eye(classes, dtype=logits.dtype, device=logits.device)
    factor = root[:, :, None] * (eye - root[:, :, None] * root[:, None, :])  # L = diag(√p)(I − √p√pᵀ)
    inner = factor.transpose(1, 2) @ (jacobian @ jacobian.transpose(1, 2)) @ factor
    return torch.linalg.eigvalsh(inner)[:, -1]


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
