"""Est-H: fine-tuning with a finite-difference penalty on the input Hessian's norm (R2ET's baseline)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from salbench.core.validation import check_positive
from salbench.datasets.base import DataBundle
from salbench.recipes import register
from salbench.recipes.finetuning import FineTuning
from salbench.recipes.penalties import hessian_norm, loss_gradient, penalty_term
from torch import Tensor, nn

__all__ = ["EstHessian"]


@register("est_hessian")
class EstHessian(FineTuning):
    """Est-H: fine-tune on CE + λ_eff·‖Ĥ‖, a finite-difference input-Hessian norm (R2ET's baseline).

    Chen et al., "Training for Stable Explanation for Free", NeurIPS 2024 (baseline "Est-H";
    authors' code ccha005/R2ET, ``batch_retrain.py`` mode ``est_norm``). A small input Hessian
    bounds how fast the gradient explanation changes, so penalising it stabilises the
    explanation. Per mini-batch:

        loss = CE + λ_eff · mean_i ‖(∇L(x_i + h·sign(∇L(x_i))/d) − ∇L(x_i)) / h‖₂,

    L the cross-entropy, d the features per sample, h = 1e-3
    (:func:`~salbench.recipes.penalties.hessian_norm`), λ_eff = |λ (CE + 1) / ‖Ĥ‖| the
    authors' adaptive weight (``adaptive=False``: λ_eff = λ). Fine-tunes the cached
    ``standard`` model (see :class:`~salbench.recipes.finetuning.FineTuning`).

    Departures: per-sample norms averaged (see ``hessian_norm``); the default schedule is Adam
    with lr 1e-3 for a few epochs (the authors': ``epochs=10, lr=1e-5``, on CIFAR-10).

    Args:
        lam: λ (>= 0; 0 is plain fine-tuning on CE).
        h: finite-difference step (> 0).
        adaptive: use the adaptive weight.
        base: parameters of the ``standard`` recipe that trained the model to fine-tune
            (None: its defaults).
        epochs: fine-tuning epochs (all run; the last weights are kept).
        lr: Adam learning rate.
        batch_size: mini-batch size.
        softplus: β of the softplus swapped for every ReLU before fine-tuning (None: keep
            ReLU); see :class:`~salbench.recipes.finetuning.FineTuning`.

    Example:
        >>> from salbench import recipes
        >>> recipes.get("est_hessian", lam=0.1, base={"epochs": 20}).base_params["epochs"]
        20
    """

    def __init__(
        self,
        lam: float = 1.0,
        h: float = 1e-3,
        adaptive: bool = True,
        **finetuning,
    ):
        check_positive(lam, "lam", allow_zero=True)
        check_positive(h, "h")
        self.lam, self.h, self.adaptive = float(lam), float(h), adaptive
        super().__init__(**finetuning)

    def batch_loss(
        self, model: nn.Module, x: Tensor, y: Tensor, *, data: DataBundle, generator: torch.Generator
    ) -> Tensor:
        ce = F.cross_entropy(model(x), y)
        grad = loss_gradient(model, x, y, create_graph=True)
        return ce + penalty_term(self.lam, ce, hessian_norm(model, x, y, grad, self.h).mean(), self.adaptive)
