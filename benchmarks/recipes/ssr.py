"""SSR: fine-tuning with smooth surrogate regularisation of the input Hessian's largest eigenvalue (Wang et al. 2020)."""

from __future__ import annotations

from salbench.recipes import register
from salbench.recipes.exact_hessian import ExactHessian
from salbench.recipes.penalties import hessian_top_eigenvalue
from torch import Tensor, nn

__all__ = ["SSR"]


@register("ssr")
class SSR(ExactHessian):
    """SSR: fine-tune on CE + λ_eff · mean_i β(x_i), β the largest eigenvalue of the input Hessian of the loss.

    Wang, Wang, Ramkumar, Fredrikson, Mardziel, Datta, "Smoothed Geometry for Robust
    Attribution", NeurIPS 2020 (authors' code zifanw/smoothed_geometry, ``robust/smooth_space.py``,
    ``BetaLoss``); a baseline of R2ET (Chen et al., NeurIPS 2024). For a piecewise-linear
    network the input Hessian of the cross-entropy is Jᵀ(diag p − ppᵀ)J (J the logits'
    Jacobian, p the softmax), and β = its largest eigenvalue bounds how fast the gradient
    explanation turns; β from :func:`~salbench.recipes.penalties.hessian_top_eigenvalue`
    (C backward passes, a C × C eigenproblem; C classes). Fine-tunes the cached ``standard``
    model with the loop, λ and adaptive weight of :class:`~salbench.recipes.exact_hessian.ExactHessian`.

    Wang et al.'s loss is (1 − α)·CE + α·s·mean β (α = 0.3, s = 0.3 in their CIFAR-10 script,
    trained from scratch with Adam). It is (1 − α) times CE + λ·mean β with λ = α·s / (1 − α)
    (≈ 0.129 for their values), and Adam's step does not depend on a constant factor of the
    loss (up to its ε): ``adaptive=False, lam=0.129`` is their objective. The R2ET authors'
    code holds no SSR, so how they weighted it is not known; the default here is the adaptive
    weight of R2ET's other regularisers, λ_eff = |λ (CE + 1) / mean β|.

    Departures: (1) J is the full Jacobian; Wang et al. average the logit gradients over the
    colour channels before forming JJᵀ (the same for one-channel images and tables). (2) β is
    the Gauss–Newton matrix's eigenvalue also for smooth (e.g. softplus) networks, as in
    Wang et al.; there it is not the whole Hessian. (3) Fine-tuning (R2ET's protocol), not
    training from scratch.

    Args:
        lam, adaptive, base, epochs, lr, batch_size: see
            :class:`~salbench.recipes.exact_hessian.ExactHessian`.

    Example:
        >>> from salbench import recipes
        >>> recipes.get("ssr", lam=0.129, adaptive=False).lam
        0.129
    """

    def penalty(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """The regulariser per sample (N,): β, the largest eigenvalue of the loss's input Hessian."""
        return hessian_top_eigenvalue(model, x)
