"""Adversarial training: fine-tuning on PGD adversarial examples of the prediction (Madry et al., ICLR 2018)
or of the explanation (R2ET's "AT")."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from salbench.attacks.pgd import ALPHA_PER_STEP
from salbench.attacks.threat_model import Norm, ThreatModel, check_norm
from salbench.core.seeding import SampleStreams
from salbench.core.validation import check_positive, check_positive_int
from salbench.datasets.base import DataBundle
from salbench.recipes import register
from salbench.recipes.finetuning import FineTuning
from salbench.recipes.penalties import loss_gradient
from salbench.recipes.r2et import (
    explained_features,
    explanation_mass,
    ranking_regulariser,
)
from torch import Tensor, nn

__all__ = ["Adversarial"]

Target = Literal["prediction", "explanation"]
TARGETS = ("prediction", "explanation")


@register("adversarial")
class Adversarial(FineTuning):
    """PGD adversarial training: fine-tune on CE at the worst-case input of an ε-ball (Madry et al. 2018).

    Madry, Makelov, Schmidt, Tsipras, Vladu, "Towards Deep Learning Models Resistant to
    Adversarial Attacks", ICLR 2018; the "AT" baseline of R2ET (Chen et al., NeurIPS 2024).
    Per mini-batch, x′ approximately maximises CE(f(x′), y) over the ℓ∞ or ℓ2 ball of radius
    ``eps`` intersected with the data set's valid range (its ``bounds``):

        x′⁰ = uniform point of the ball (``random_start``) or x,
        x′^{t+1} = Π(x′^t + α·d(∇_{x′} CE)),  d = sign for ℓ∞, g/‖g‖₂ for ℓ2,

    ``steps`` times, α = 2.5·ε/steps unless given (the projection, step direction and uniform
    start are :class:`salbench.attacks.threat_model.ThreatModel`'s), then one Adam step on
    CE(f(x′), y). The random start draws from the training generator (seeded by ``seed``).
    Fine-tunes the cached ``standard`` model (:class:`~salbench.recipes.finetuning.FineTuning`),
    as the authors of R2ET fine-tune every baseline.

    ``target`` says what the adversary attacks. ``"prediction"`` (default): CE as above, the
    standard meaning of adversarial training. ``"explanation"``: R2ET's "AT" (authors'
    ``batch_retrain.retrain``, mode ``at``: each sample, one at a time, gets one ℓ2 step of
    their ranking attack ``PGD_m(..., epochs=1, 'topk', epsilon=1)`` and CE is trained on the
    result): the ascended objective is R2ET's ranking regulariser Σ_i R(x′_i)
    (:func:`~salbench.recipes.r2et.ranking_regulariser`) of the explanation I(x′) = Σ_channels
    |∇_{x′} CE| (:func:`~salbench.recipes.r2et.explanation_mass`) over the pairs of the *clean*
    ranking of I(x) with top-k size ``k``: pushing the top k below the next k. Samples are
    independent in the summed objective, so the batch is attacked at once and each sample's step
    is its own. The authors' setting is ``target="explanation", norm="l2", eps=1, steps=1,
    alpha=1, random_start=False`` (one normalised step of length 1). Departures: the step is
    projected onto the data's bounds (the authors clip only to an ℓ∞ box of radius ε); CE is the
    batch mean (the authors sum the per-sample losses, which scales their step by the batch
    size); the model stays in training mode during the attack (the authors' ``PGD_m`` switches
    to eval mode, which matters only for dropout or batch-norm layers).

    Args:
        eps: radius of the ball, in input units (> 0).
        norm: ``"linf"`` or ``"l2"``.
        steps: PGD steps per mini-batch (>= 1).
        alpha: PGD step size (> 0); None gives 2.5·eps/steps.
        random_start: start PGD from a uniform point of the ball.
        target: ``"prediction"`` (ascend CE) or ``"explanation"`` (ascend R2ET's ranking
            regulariser of the loss-gradient explanation).
        k: top-k size of the explanation target (required there, and only there; the pairs reach
            rank 2k, which must not exceed the explanation entries — checked against the data).
        base, epochs, lr, batch_size, softplus: see :class:`~salbench.recipes.finetuning.FineTuning`.

    Example:
        >>> from salbench import recipes
        >>> recipes.get("adversarial", eps=0.05, steps=5).alpha is None
        True
    """

    def __init__(
        self,
        eps: float = 0.1,
        norm: Norm = "linf",
        steps: int = 10,
        alpha: float | None = None,
        random_start: bool = True,
        target: Target = "prediction",
        k: int | None = None,
        **finetuning,
    ):
        check_positive(eps, "eps")
        check_norm(norm)
        check_positive_int(steps, "steps")
        if alpha is not None:
            check_positive(alpha, "alpha")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        if (k is None) != (target == "prediction"):
            raise ValueError(f"k (the top-k size of the ranking attack) is required with target='explanation' "
                             f"and only there; got k={k!r} with target={target!r}")
        if k is not None:
            check_positive_int(k, "k")
        self.eps, self.norm, self.steps, self.alpha, self.random_start = float(eps), norm, steps, alpha, random_start
        self.target, self.k = target, k
        super().__init__(**finetuning)

    def check(self, model: nn.Module, data: DataBundle) -> None:
        if self.k is not None and 2 * self.k > explained_features(data.input_shape):
            raise ValueError(
                f"k={self.k}: the explanation target's pairs reach rank 2k = {2 * self.k}, but inputs of shape "
                f"{data.input_shape} have {explained_features(data.input_shape)} explanation entries"
            )

    def batch_loss(
        self, model: nn.Module, x: Tensor, y: Tensor, *, data: DataBundle, generator: torch.Generator
    ) -> Tensor:
        return F.cross_entropy(model(self.perturb(model, x, y, data.bounds, generator)), y)

    def perturb(
        self, model: nn.Module, x: Tensor, y: Tensor, bounds: tuple[Tensor, Tensor] | None, generator: torch.Generator
    ) -> Tensor:
        """The PGD adversarial examples x′ of the batch (detached). The random start of each sample
        comes from its own stream (:class:`salbench.core.seeding.SampleStreams`) seeded by a number
        drawn from the training ``generator``, so training stays determined by its seed. The
        explanation target ranks the clean explanation I(x) once; every step keeps its pairs."""
        threat = ThreatModel(model, x, self.eps, self.norm, bounds)
        alpha = self.alpha if self.alpha is not None else ALPHA_PER_STEP * self.eps / self.steps
        if self.random_start:
            seed = int(torch.randint(2**62, (), generator=generator))
            current = threat.sample(SampleStreams(seed, threat.x))
        else:
            current = threat.x
        order = None if self.target == "prediction" else self._ranking(model, threat.x, y)
        for _ in range(self.steps):
            with torch.enable_grad():
                inputs = current.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(self._objective(model, inputs, y, order), inputs)
            current = threat.project(current + alpha * threat.direction(grad))
        return current

    def _objective(self, model: nn.Module, inputs: Tensor, y: Tensor, order: Tensor | None) -> Tensor:
        """The scalar one step ascends: the mean CE, or Σ_i R(x′_i) over the clean ranking ``order``."""
        if order is None:
            return F.cross_entropy(model(inputs), y)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(inputs), y, reduction="sum"), inputs, create_graph=True)
        return ranking_regulariser(explanation_mass(grad), self.k, order=order).sum()

    def _ranking(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Features of the clean explanation I(x) by decreasing rank (N, F)."""
        mass = explanation_mass(loss_gradient(model, x, y, create_graph=False))
        return mass.sort(dim=1, descending=True, stable=True).indices
