"""ID-ExpO: fine-tuning with differentiable insertion/deletion regularisers (Yoshikawa & Iwata, AISTATS 2024)."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from salbench import explainers, metrics
from salbench.core.validation import check_fraction, check_positive, check_positive_int, check_seed
from salbench.datasets.base import DataBundle
from salbench.metrics.perturbation import check_baseline
from salbench.metrics.soft_insertion_deletion import soft_insertion_deletion
from salbench.recipes import register
from salbench.recipes.base import evaluate, model_device
from salbench.recipes.finetuning import FineTuning
from torch import Tensor, nn

__all__ = ["IDExpO"]

_PROBE = 2
"""Training samples the explainer and the regulariser are tried on before training (:meth:`IDExpO.check`)."""

OPTIMISERS = ("sgd", "adam")
"""``sgd``: the authors' SGD (Nesterov momentum 0.9, weight decay 5e-4); ``adam``: Adam without decay."""

_SGD = {"momentum": 0.9, "weight_decay": 5e-4, "nesterov": True}
"""The authors' SGD settings (``IDExpOFinetuneBase.configure_optimizers``)."""


@register("idexpo")
class IDExpO(FineTuning):
    """ID-ExpO: fine-tune on CE + λ₁(cIns + cDel) + λ₂‖E‖²/numel for a differentiable explainer E.

    Yoshikawa & Iwata, "Explanation-based training with differentiable insertion/deletion
    metric-aware regularizers", AISTATS 2024; authors' code yuyay/idexpo
    (``IDExpOBase.training_step``, ``IDExpOFinetuneGradCam``, ``examples/cifar10_gradcam.yaml``).
    Per mini-batch, with E = explainer(f, x, y) computed with ``create_graph=True`` (so the
    loss is differentiated through the explanation, double backprop):

        loss = CE(f(x), y) + λ₁ · mean_i [cIns_i + cDel_i] + λ₂ · ‖E‖² / numel(E)

    cIns, cDel the soft insertion/deletion costs of
    :func:`salbench.metrics.soft_insertion_deletion.soft_insertion_deletion` (M = ``steps`` points over
    all units, the first fraction K of the curve, temperature T, the ``baseline`` input; the
    differentiable costs converge to the exact insertion/deletion as T grows — tested in
    ``tests/metrics/test_metric_soft_insertion_deletion.py``). Defaults are the authors':
    λ₁ = 0.01, λ₂ = 1e-4, M = 64, K = 0.5, T = 1, explainer Grad-CAM, baseline the channel
    mean (the authors use the data set's channel mean; here ``"mean"`` is each image's own
    channel mean, as the ``insertion``/``deletion`` metrics take it). The labels y are the
    true labels, as in the authors' training step. Fine-tunes the cached ``standard`` model
    (:class:`~salbench.recipes.finetuning.FineTuning`).

    The explainer must be differentiable (``gradient``, ``gradcam``, ``integrated_gradients``,
    ``smoothgrad``, ... — not ``occlusion`` or ``random``): that is checked when the recipe
    is built, and :meth:`check` tries the explainer and the regulariser on two training
    samples before any training, so an explainer that cannot explain the model (Grad-CAM
    without a convolution) fails before the base model is trained.

    Optimiser and checkpoint (the authors' ``IDExpOFinetuneBase.configure_optimizers``,
    ``validation_epoch_end`` and ``examples/cifar10_gradcam.yaml``): SGD with Nesterov momentum
    0.9, weight decay 5e-4, lr 1e-4, batch size 128, no schedule; after each epoch the model is
    scored on the VALIDATION split by :meth:`checkpoint_score`, 2·accuracy + insertion +
    (1 − deletion) of the trained explainer, or −∞ when the validation accuracy is below
    ``select_accuracy`` (0.8); the weights of the best-scoring epoch are kept (the first of
    equal scores, as Lightning's ``ModelCheckpoint(mode="max")`` keeps them; the base model
    itself is no candidate). ``optimiser="adam", select=False`` is the earlier salbench setting
    (Adam, the last epoch kept).

    Departures: the authors train up to 100 epochs and score every 5th; here ``epochs`` (few,
    for a CPU benchmark) and every epoch is scored. Insertion/deletion of the criterion are
    salbench's ``insertion``/``deletion`` metrics with this recipe's ``fraction`` and
    ``baseline`` on the first ``select_samples`` validation samples (None: all, as the
    authors), for the true labels. Grad-CAM upsampled bilinearly (the authors repeat each
    cell), which changes ‖E‖²/numel slightly.

    Args:
        explainer: registered name of a differentiable explainer.
        explainer_params: its parameters (None: its defaults).
        lam_insdel: λ₁ (>= 0).
        lam_norm: λ₂ (>= 0).
        steps: M, points of the insertion/deletion schedule over all units.
        fraction: K in (0, 1].
        temperature: T (> 0).
        baseline: a constant, ``"mean"`` or ``"blur"`` (see the soft costs).
        optimiser: ``"sgd"`` (the authors') or ``"adam"`` (:data:`OPTIMISERS`).
        select: keep the epoch with the best :meth:`checkpoint_score` (True) or the last (False).
        select_accuracy: the validation accuracy an epoch needs to be selectable, in [0, 1].
        select_samples: validation samples the criterion's insertion/deletion use (None: all).
        base: parameters of the ``standard`` recipe that trained the model to fine-tune.
        epochs: fine-tuning epochs (all run).
        lr: learning rate.
        batch_size: mini-batch size.

    Example:
        >>> from salbench import recipes
        >>> recipe = recipes.get("idexpo", explainer="gradient")
        >>> recipe.lam_insdel, recipe.optimiser, recipe.lr, recipe.batch_size, recipe.select
        (0.01, 'sgd', 0.0001, 128, True)
    """

    def __init__(
        self,
        explainer: str = "gradcam",
        explainer_params: dict | None = None,
        lam_insdel: float = 0.01,
        lam_norm: float = 1e-4,
        steps: int = 64,
        fraction: float = 0.5,
        temperature: float = 1.0,
        baseline: float | Literal["blur", "mean"] = "mean",
        optimiser: Literal["sgd", "adam"] = "sgd",
        select: bool = True,
        select_accuracy: float = 0.8,
        select_samples: int | None = None,
        base: dict | None = None,
        epochs: int = 5,
        lr: float = 1e-4,
        batch_size: int = 128,
    ):
        self._explainer = explainers.get(explainer, **(explainer_params or {}))
        if not getattr(self._explainer, "differentiable", False):
            raise ValueError(
                f"explainer {explainer!r} is not differentiable, but ID-ExpO differentiates the loss through the "
                f"explanation; use a gradient-based explainer (e.g. 'gradient', 'gradcam', 'integrated_gradients')"
            )
        check_positive(lam_insdel, "lam_insdel", allow_zero=True)
        check_positive(lam_norm, "lam_norm", allow_zero=True)
        check_positive_int(steps, "steps")
        check_fraction(fraction, "fraction")
        check_positive(temperature, "temperature")
        check_baseline(baseline, 5.0)
        if optimiser not in OPTIMISERS:
            raise ValueError(f"optimiser must be one of {OPTIMISERS}, got {optimiser!r}")
        if not isinstance(select, bool):
            raise ValueError(f"select must be true or false, got {select!r}")
        check_fraction(select_accuracy, "select_accuracy", allow_zero=True)
        if select_samples is not None:
            check_positive_int(select_samples, "select_samples")
        self.explainer, self.explainer_params = explainer, explainer_params
        self.lam_insdel, self.lam_norm = float(lam_insdel), float(lam_norm)
        self.steps, self.fraction, self.temperature, self.baseline = steps, float(fraction), float(temperature), baseline
        self.optimiser, self.select = optimiser, select
        self.select_accuracy, self.select_samples = float(select_accuracy), select_samples
        self._curves = [
            metrics.get(name, fraction=self.fraction, baseline=baseline) for name in ("insertion", "deletion")
        ]
        super().__init__(base=base, epochs=epochs, lr=lr, batch_size=batch_size)

    def check(self, model: nn.Module, data: DataBundle) -> None:
        if self.select and self.select_samples is not None and self.select_samples > len(data.val):
            raise ValueError(
                f"recipe idexpo: select_samples={self.select_samples} exceeds the {len(data.val)} validation samples"
            )
        device = model_device(model)
        x, y = data.train.x[:_PROBE].to(device), data.train.y[:_PROBE].to(device)
        try:
            self._regularisers(model, x, y)
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"recipe idexpo: explainer {self.explainer!r} with these settings cannot be trained through on "
                f"{type(model).__name__} with inputs of shape {data.input_shape}: {err}"
            ) from err

    def fit(self, model: nn.Module, data: DataBundle, *, seed: int) -> dict[str, Any]:
        """Fine-tune for ``epochs`` epochs; keep the best-scoring epoch (``select``) or the last.

        Returns the loop's information plus ``checkpoint_scores`` (one per epoch; None below
        ``select_accuracy``; empty without ``select``).
        """
        check_seed(seed)
        self.check(model, data)
        device = model_device(model)
        x, y = data.train.x.to(device), data.train.y.to(device)
        generator = torch.Generator().manual_seed(seed)
        optimiser = self._make_optimiser(model)
        scores: list[float] = []
        best_state, best_epoch, train_loss = None, 0, math.nan
        for epoch in range(1, self.epochs + 1):
            train_loss = self._epoch(model, optimiser, x, y, data, generator, epoch)
            if self.select:
                scores.append(self.checkpoint_score(model, data))
            if not self.select or epoch == 1 or scores[-1] > max(scores[:-1]):
                best_state, best_epoch = {k: v.detach().clone() for k, v in model.state_dict().items()}, epoch
        model.load_state_dict(best_state)
        model.eval()
        accuracy, loss = evaluate(model, data.val)
        return {
            "epochs_run": self.epochs,
            "best_epoch": best_epoch,
            "best_val_accuracy": accuracy,
            "best_val_loss": loss,
            "last_train_loss": train_loss,
            "checkpoint_scores": [s if math.isfinite(s) else None for s in scores],
        }

    def checkpoint_score(self, model: nn.Module, data: DataBundle) -> float:
        """The authors' checkpoint criterion on the validation split (higher is better).

        2·accuracy + insertion + (1 − deletion), accuracy over the whole validation split,
        insertion/deletion (means over the first ``select_samples`` samples, true labels) of
        this recipe's explainer; −∞ when the accuracy is below ``select_accuracy``. Leaves
        the model in eval mode.
        """
        model.eval()
        accuracy, _ = evaluate(model, data.val)
        if accuracy < self.select_accuracy:
            return -math.inf
        device = model_device(model)
        n = len(data.val) if self.select_samples is None else self.select_samples
        x, y = data.val.x[:n].to(device), data.val.y[:n].to(device)
        attr = self._explainer(model, x, y).detach()
        insertion, deletion = (float(curve(model, x, attr, y).mean()) for curve in self._curves)
        return 2 * accuracy + insertion + (1 - deletion)

    def _make_optimiser(self, model: nn.Module) -> torch.optim.Optimizer:
        if self.optimiser == "sgd":
            return torch.optim.SGD(model.parameters(), lr=self.lr, **_SGD)
        return torch.optim.Adam(model.parameters(), lr=self.lr)

    def batch_loss(
        self, model: nn.Module, x: Tensor, y: Tensor, *, data: DataBundle, generator: torch.Generator
    ) -> Tensor:
        insdel, norm = self._regularisers(model, x, y)
        return F.cross_entropy(model(x), y) + self.lam_insdel * insdel + self.lam_norm * norm

    def _regularisers(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """mean_i (cIns_i + cDel_i) and ‖E‖²/numel, differentiable in the model's parameters."""
        attr = self._explainer(model, x, y, create_graph=True)
        c_ins, c_del = soft_insertion_deletion(
            model, x, attr, y, steps=self.steps, fraction=self.fraction, temperature=self.temperature,
            baseline=self.baseline,
        )
        return (c_ins + c_del).mean(), attr.square().mean()
