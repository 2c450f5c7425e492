"""Adversarial training: fine-tuning on PGD adversarial examples of the prediction (Madry et al., ICLR 2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from salbench.attacks.pgd import ALPHA_PER_STEP
from salbench.attacks.threat_model import Norm, ThreatModel, check_norm
from salbench.core.seeding import SampleStreams
from salbench.core.validation import check_positive, check_positive_int
from salbench.datasets.base import DataBundle
from salbench.recipes import register
from salbench.recipes.finetuning import FineTuning
from torch import Tensor, nn

__all__ = ["Adversarial"]


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

    Departure from R2ET's "AT": the authors' code perturbs each sample, one at a time, with one
    ℓ2 step of their ranking attack on the explanation (``PGD_m``, ε = 1) and trains CE on
    the result; here the adversary attacks the prediction, the standard meaning of
    adversarial training, batched.

    Args:
        eps: radius of the ball, in input units (> 0).
        norm: ``"linf"`` or ``"l2"``.
        steps: PGD steps per mini-batch (>= 1).
        alpha: PGD step size (> 0); None gives 2.5·eps/steps.
        random_start: start PGD from a uniform point of the ball.
        base, epochs, lr, batch_size: see :class:`~salbench.recipes.est_hessian.EstHessian`.

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
        **finetuning,
    ):
        check_positive(eps, "eps")
        check_norm(norm)
        check_positive_int(steps, "steps")
        if alpha is not None:
            check_positive(alpha, "alpha")
        self.eps, self.norm, self.steps, self.alpha, self.random_start = float(eps), norm, steps, alpha, random_start
        super().__init__(**finetuning)

    def batch_loss(
        self, model: nn.Module, x: Tensor, y: Tensor, *, data: DataBundle, generator: torch.Generator
    ) -> Tensor:
        return F.cross_entropy(model(self.perturb(model, x, y, data.bounds, generator)), y)

    def perturb(
        self, model: nn.Module, x: Tensor, y: Tensor, bounds: tuple[Tensor, Tensor] | None, generator: torch.Generator
    ) -> Tensor:
        """The PGD adversarial examples x′ of the batch (detached). The random start of each sample
        comes from its own stream (:class:`salbench.core.seeding.SampleStreams`) seeded by a number
        drawn from the training ``generator``, so training stays determined by its seed."""
        threat = ThreatModel(model, x, self.eps, self.norm, bounds)
        alpha = self.alpha if self.alpha is not None else ALPHA_PER_STEP * self.eps / self.steps
        if self.random_start:
            seed = int(torch.randint(2**62, (), generator=generator))
            current = threat.sample(SampleStreams(seed, threat.x))
        else:
            current = threat.x
        for _ in range(self.steps):
            with torch.enable_grad():
                inputs = current.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(F.cross_entropy(model(inputs), y), inputs)
            current = threat.project(current + alpha * threat.direction(grad))
        return current
