"""R2ET: fine-tuning for thick top-k explanations, with its -mm and \\H variants (Chen et al., NeurIPS 2024)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from salbench.attacks.r2et import ranking_pairs
from salbench.core.validation import check_positive, check_positive_int
from salbench.datasets.base import DataBundle
from salbench.recipes import register
from salbench.recipes.finetuning import FineTuning
from salbench.recipes.penalties import hessian_norm, loss_gradient, penalty_term
from torch import Tensor, nn

__all__ = ["R2ET", "explanation_mass", "ranking_regulariser", "explained_features"]


def explanation_mass(grad: Tensor) -> Tensor:
    """R2ET's explanation I(x), (N, F): Σ_channels |∇_x L| per pixel for inputs (N, C, *spatial),
    |∇_x L| per feature for (N, F)."""
    mass = grad.abs()
    return (mass.sum(dim=1) if grad.dim() > 2 else mass).flatten(1)


def explained_features(input_shape: tuple[int, ...]) -> int:
    """F, the number of entries of :func:`explanation_mass` for one sample of ``input_shape``."""
    return math.prod(input_shape[1:]) if len(input_shape) > 1 else input_shape[0]


def ranking_regulariser(mass: Tensor, k: int, mm_terms: int | None = None, order: Tensor | None = None) -> Tensor:
    """R per sample (N,): Σ over pairs (upper, lower) of the current ranking of (I_lower − I_upper).

    The ranking is that of ``mass`` itself (detached: which features form the pairs is a
    constant for autograd, their values are not), or ``order`` (N, F), feature indices by
    decreasing rank, when given (an attack keeps the clean input's ranking). Pairs of ranks (0-based):

    - ``mm_terms=None`` (R2ET): {(i, k−1) : i < k−1} ∪ {(k−1, k+j) : j < k}
      (:func:`salbench.attacks.r2et.ranking_pairs`, the authors' ``topk_pair``), so
      R = Σ_{k ≤ r < 2k} I_(r) − Σ_{r < k} I_(r);
    - ``mm_terms=n`` (R2ET-mm): the n largest values below the top k minus the n smallest in
      it, R = Σ_{k ≤ r < k+n} I_(r) − Σ_{k−n ≤ r < k} I_(r); n = 1 is the minimal margin
      I_(k) − I_(k−1) between the top-k set and the rest.

    R ≤ 0; minimising it widens the gaps around the k-th feature, which is what keeps the
    top k in place under a perturbation ("thickness").
    """
    if order is None:
        order = mass.detach().sort(dim=1, descending=True, stable=True).indices
    if mm_terms is None:
        upper, lower = ranking_pairs(k, mass.device)
    else:
        upper = torch.arange(k - mm_terms, k, device=mass.device)
        lower = torch.arange(k, k + mm_terms, device=mass.device)
    return (mass.gather(1, order[:, lower]) - mass.gather(1, order[:, upper])).sum(dim=1)


@register("r2et")
class R2ET(FineTuning):
    """R2ET: fine-tune on CE + λ_eff·R (top-k ranking thickness) [+ λ_eff·‖Ĥ‖] (Chen et al. 2024).

    Chen, Guo, Chen, Ma, Zeng, Liao, Zhang, Xie, "Training for Stable Explanation for Free",
    NeurIPS 2024; authors' code ccha005/R2ET, ``batch_retrain.py`` (``retrain``,
    ``retrain_regularizer`` modes ``tx`` and ``tx_mm<n>``, ``estimate_Hessian``). Per mini-batch,
    with L = CE(f(x), y) and the explanation I(x) = Σ_channels |∇_x L| (:func:`explanation_mass`):

        loss = CE + λ_R · mean_i R(x_i) + λ_H · mean_i ‖Ĥ(x_i)‖   (the last term only with ``hessian``)

    R the ranking regulariser over pairs of the current ranking (:func:`ranking_regulariser`;
    the -mm form with ``mm_terms``), ‖Ĥ‖ the finite-difference Hessian norm with step h
    (:func:`~salbench.recipes.penalties.hessian_norm`). Each term has the authors' adaptive
    weight λ_R = |λ (CE + 1) / mean R|, λ_H = |λ (CE + 1) / mean ‖Ĥ‖| (constants for autograd;
    ``adaptive=False``: both λ), with one λ for both terms as in the authors' script. The
    variants of the paper: R2ET (defaults), R2ET-mm (``mm_terms=n``), R2ET\\H (``hessian=False``),
    R2ET-mm\\H (both). The authors' shipped run (``MODES = ['sp0.5,est_norm,tx']``) is
    ``softplus=0.5`` with the defaults: the ReLUs of the pretrained model swapped for
    softplus_0.5 (:class:`~salbench.recipes.finetuning.FineTuning`'s ``softplus``), then CE +
    the Est-H term + the ranking term, each with its own adaptive weight from the one λ
    (``weights[mode] = weight`` for every mode); its parts alone are ``finetune`` with
    ``softplus=0.5``, ``est_hessian`` and ``r2et`` with ``hessian=False``. Fine-tunes the cached ``standard`` model
    (:class:`~salbench.recipes.finetuning.FineTuning`). With the adaptive weights each term's
    value is ±λ(CE + 1) by construction, so the reported ``last_train_loss`` says little; the
    terms act through their gradients, λ(CE + 1)·∇R/|R|.

    Departures: (1) the -mm form follows the paper and METHODS.md (n largest values below the
    top k minus n smallest in it, per sample); the authors' ``tx_mm`` code gathers the *sorted*
    values at feature indices and slices the batch dimension, which we read as a bug. (2)
    Hessian norms per sample, averaged (see ``hessian_norm``). (3) The default schedule is Adam
    with lr 1e-3 for a few epochs; the authors' is ``epochs=10, lr=1e-5``. (4) The explanation regularised is the loss gradient,
    as in the paper; a benchmark that attacks the logit gradient (``gradient`` explainer)
    measures a related but not identical map (for two classes, ∇L ∝ ∇(f_other − f_y)).

    Args:
        k: top-k size; the pairs reach rank 2k − 1 (R2ET) or k + n − 1 (-mm), which must not
            exceed the number of explanation entries (pixels, or features) — checked against
            the data before training.
        lam: λ (>= 0).
        mm_terms: None for R2ET's pairs; n >= 1 (at most k) for the R2ET-mm form.
        hessian: add the Hessian-norm term (False: the "\\H" variants).
        h: finite-difference step of the Hessian term (> 0; used only with ``hessian``).
        adaptive: use the adaptive weights.
        base, epochs, lr, batch_size, softplus: see :class:`~salbench.recipes.finetuning.FineTuning`.

    Example:
        >>> import torch
        >>> mass = torch.tensor([[6.0, 5.0, 4.0, 3.0, 2.0, 1.0]])  # already ranked
        >>> ranking_regulariser(mass, k=2)  # (5 − 6) + (4 − 5) + (3 − 5) = 4 + 3 − (6 + 5)
        tensor([-4.])
    """

    def __init__(
        self,
        k: int = 50,
        lam: float = 1.0,
        mm_terms: int | None = None,
        hessian: bool = True,
        h: float = 1e-3,
        adaptive: bool = True,
        **finetuning,
    ):
        check_positive_int(k, "k")
        check_positive(lam, "lam", allow_zero=True)
        if mm_terms is not None:
            check_positive_int(mm_terms, "mm_terms")
            if mm_terms > k:
                raise ValueError(f"mm_terms must be at most k={k} (the top-k set has k values), got {mm_terms}")
        check_positive(h, "h")
        self.k, self.lam, self.mm_terms = k, float(lam), mm_terms
        self.hessian, self.h, self.adaptive = hessian, float(h), adaptive
        super().__init__(**finetuning)

    def check(self, model: nn.Module, data: DataBundle) -> None:
        features = explained_features(data.input_shape)
        reach = 2 * self.k if self.mm_terms is None else self.k + self.mm_terms
        if reach > features:
            form = "2k" if self.mm_terms is None else "k + mm_terms"
            raise ValueError(
                f"k={self.k}: R2ET's pairs reach rank {form} = {reach}, but inputs of shape {data.input_shape} "
                f"have {features} explanation entries; choose k (and mm_terms) with {form} <= {features}"
            )

    def batch_loss(
        self, model: nn.Module, x: Tensor, y: Tensor, *, data: DataBundle, generator: torch.Generator
    ) -> Tensor:
        ce = F.cross_entropy(model(x), y)
        grad = loss_gradient(model, x, y, create_graph=True)
        ranking = ranking_regulariser(explanation_mass(grad), self.k, self.mm_terms).mean()
        loss = ce + penalty_term(self.lam, ce, ranking, self.adaptive)
        if self.hessian:
            loss = loss + penalty_term(self.lam, ce, hessian_norm(model, x, y, grad, self.h).mean(), self.adaptive)
        return loss
