"""ID-ExpO: fine-tuning with differentiable insertion/deletion regularisers (Yoshikawa & Iwata, AISTATS 2024)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from salbench import explainers
from salbench.core.validation import check_fraction, check_positive, check_positive_int
from salbench.datasets.base import DataBundle
from salbench.metrics.perturbation import check_baseline
from salbench.metrics.soft_insertion_deletion import soft_insertion_deletion
from salbench.recipes import register
from salbench.recipes.base import model_device
from salbench.recipes.finetuning import FineTuning
from torch import Tensor, nn

__all__ = ["IDExpO"]

_PROBE = 2
"""Training samples the explainer and the regulariser are tried on before training (:meth:`IDExpO.check`)."""


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

    Departures: Adam with lr 1e-3 for a few epochs and the last weights kept (the authors: SGD
    with Nesterov momentum 0.9, weight decay 5e-4, lr 1e-4, up to 100 epochs, checkpoint
    selected on 2·accuracy + insertion + (1 − deletion) on validation); Grad-CAM upsampled
    bilinearly (the authors repeat each cell), which changes ‖E‖²/numel slightly.

    Args:
        explainer: registered name of a differentiable explainer.
        explainer_params: its parameters (None: its defaults).
        lam_insdel: λ₁ (>= 0).
        lam_norm: λ₂ (>= 0).
        steps: M, points of the insertion/deletion schedule over all units.
        fraction: K in (0, 1].
        temperature: T (> 0).
        baseline: a constant, ``"mean"`` or ``"blur"`` (see the soft costs).
        base, epochs, lr, batch_size: see :class:`~salbench.recipes.est_hessian.EstHessian`.

    Example:
        >>> from salbench import recipes
        >>> recipes.get("idexpo", explainer="gradient").lam_insdel
        0.01
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
        **finetuning,
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
        self.explainer, self.explainer_params = explainer, explainer_params
        self.lam_insdel, self.lam_norm = float(lam_insdel), float(lam_norm)
        self.steps, self.fraction, self.temperature, self.baseline = steps, float(fraction), float(temperature), baseline
        super().__init__(**finetuning)

    def check(self, model: nn.Module, data: DataBundle) -> None:
        device = model_device(model)
        x, y = data.train.x[:_PROBE].to(device), data.train.y[:_PROBE].to(device)
        try:
            self._regularisers(model, x, y)
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"recipe idexpo: explainer {self.explainer!r} with these settings cannot be trained through on "
                f"{type(model).__name__} with inputs of shape {data.input_shape}: {err}"
            ) from err

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
