"""The projected-ascent loop behind every iterative attack on explanations.

One loop, parametrised by the attack's objective (Ghorbani et al. AAAI 2019, Algorithm 1 —
"iterative feature importance attacks"; Chen et al. NeurIPS 2024, R2ET's ``PGD_m``): from
x′⁰ (x, or a random point of the ball), repeat ``steps`` times, for the whole batch at once,

1. E′ = explainer(surrogate, x′, c, create_graph=True), the objective J(E′) per sample;
2. x̃ = Π(x′ + α·d(∇_{x′} J)), d = sign for ℓ∞ (Ghorbani), d = g/‖g‖₂ for ℓ2 (R2ET);
   Π projects onto the ε-ball around x and the valid range;
3. accept x̃ for the samples whose label on the *real* model is unchanged; a rejected sample
   stays at its last accepted point and stops (its step is a deterministic function of x′,
   so it would only propose the same step again — R2ET's per-sample early stop);
4. evaluate the attack's score on the *real* model's explanation of the accepted x′ and keep,
   per sample, the best x′ seen (x itself included; ties keep the earlier point).

Why the score uses the real model: the surrogate only supplies the gradients; what the
attack must change is the explanation of the real model, and the surrogate's explanation
can differ from it (Ghorbani et al. likewise keep the iterate with the lowest real top-k
intersection). The score compares the real E(x′) with the real E(x); the objective compares
the surrogate's E(x′) with a reference taken from the real or the surrogate's E(x), as the
attack declares (:attr:`ExplanationAttack.reference_from_real`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from attacks.base import Attack, AttackResult, Bounds
from attacks.surrogate import softplus_surrogate
from attacks.threat_model import Norm, ThreatModel, check_norm, select
from explainers.validation import check_positive, check_positive_int, check_seed

__all__ = ["ExplanationAttack"]

ALPHA_PER_STEP = 2.5
"""Default step size α = 2.5·ε/steps: the ball's radius is crossed in steps/2.5 steps, which
leaves room to move along its surface (the rule of thumb of MadryLab's ``robustness`` library)."""


class ExplanationAttack(Attack):
    """Base class of the gradient attacks on explanations; they differ only in their objective.

    Subclasses implement :meth:`reference` (what the objective compares against, from the
    explanation of x) and :meth:`objective` (per sample, to maximise, differentiable); they
    may override :meth:`score`, the criterion for keeping the best x′ (default: the objective),
    and set :attr:`reference_from_real`.

    Args (common to every subclass):
        eps: radius of the ball, in input units (> 0).
        norm: ``"linf"`` (sign steps) or ``"l2"`` (normalised-gradient steps).
        steps: number of iterations (>= 1).
        alpha: step size (> 0); None gives 2.5·eps/steps.
        surrogate_beta: β of the softplus surrogate the gradients are taken through (> 0);
            None attacks the model itself (for smooth models; on a ReLU network the
            gradient of a gradient explanation is then zero almost everywhere). β acts on
            pre-activations, so its useful range depends on their scale: a large β makes
            the surrogate ReLU-like and its second derivatives vanish again (on the test
            CNN with inputs in [0, 1], β = 1–30 work and β = 100 barely moves the map).
        random_start: start from a uniform point of the ball (kept only where it keeps the
            label) instead of x.
        seed: seed of the random start.
    """

    reference_from_real: ClassVar[bool] = False
    """Where the objective's reference comes from. False: the surrogate's explanation of x, for
    attacks that measure a change (the surrogate's E(x′) against the surrogate's E(x), so that
    the gap between surrogate and model does not count as change). True: the real model's,
    for ranking attacks (the features to demote are the real top features; Ghorbani et al.'s
    code does the same). The score always uses the real model's."""

    def __init__(
        self,
        *,
        eps: float,
        norm: Norm,
        steps: int,
        alpha: float | None,
        surrogate_beta: float | None,
        random_start: bool,
        seed: int,
    ):
        check_positive(eps, "eps")
        check_norm(norm)
        check_positive_int(steps, "steps")
        if alpha is not None:
            check_positive(alpha, "alpha")
        if surrogate_beta is not None:
            check_positive(surrogate_beta, "surrogate_beta")
        check_seed(seed)
        self.eps = eps
        self.norm = norm
        self.steps = steps
        self.alpha = alpha
        self.surrogate_beta = surrogate_beta
        self.random_start = random_start
        self.seed = seed

    # -- what a subclass defines -------------------------------------------------------------
    def reference(self, attr: Tensor) -> Any:
        """What the objective compares with, from the (detached) explanation of x, batch first."""
        raise NotImplementedError

    def objective(self, attr: Tensor, reference: Any) -> Tensor:
        """Per-sample value (N,) to maximise; differentiable in ``attr``."""
        raise NotImplementedError

    def score(self, attr: Tensor, reference: Any) -> Tensor:
        """Per-sample value (N,) by which the best x′ is kept (higher is better)."""
        return self.objective(attr, reference)

    # -- the loop ------------------------------------------------------------------------------
    def attack(self, model: nn.Module, explainer, x: Tensor, target: Tensor, *, bounds: Bounds) -> AttackResult:
        if not getattr(explainer, "differentiable", False):
            raise ValueError(
                f"attack {self._name()} differentiates the explanation, but explainer {explainer!r} is not "
                "differentiable; use a gradient-based explainer or the random_noise attack"
            )
        threat = ThreatModel(model, x, self.eps, self.norm, bounds)
        surrogate = model if self.surrogate_beta is None else softplus_surrogate(model, self.surrogate_beta)
        ref_real = self.reference(explainer(model, threat.x, target).detach())
        if self.reference_from_real or surrogate is model:
            ref_surrogate = ref_real
        else:
            ref_surrogate = self.reference(explainer(surrogate, threat.x, target).detach())
        alpha = self.alpha if self.alpha is not None else ALPHA_PER_STEP * self.eps / self.steps

        current = self._start(threat)
        best = current
        best_score = self.score(explainer(model, current, target).detach(), ref_real)
        accepted = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        for _ in range(self.steps):
            grad = self._gradient(surrogate, explainer, current, target, ref_surrogate)
            candidate = threat.project(current + alpha * threat.direction(grad))
            active = active & threat.keeps_label(candidate)
            current = select(active, candidate, current)
            accepted += active
            if not active.any():
                break
            score = self.score(explainer(model, current, target).detach(), ref_real)
            better = active & (score > best_score)
            best = select(better, current, best)
            best_score = torch.where(better, score, best_score)

        label_kept = threat.verify(best, self._name())
        success = (best != threat.x).flatten(1).any(dim=1)
        return AttackResult(x_adv=best, iterations=accepted, label_kept=label_kept, success=success)

    def _start(self, threat: ThreatModel) -> Tensor:
        if not self.random_start:
            return threat.x.clone()
        generator = torch.Generator(device=threat.x.device).manual_seed(self.seed)
        start = threat.sample(generator)
        return select(threat.keeps_label(start), start, threat.x)

    def _gradient(self, surrogate: nn.Module, explainer, x_adv: Tensor, target: Tensor, reference: Any) -> Tensor:
        """∇_{x′} of the summed per-sample objective (samples are independent, so it is per sample)."""
        with torch.enable_grad():
            x_var = x_adv.detach().requires_grad_(True)
            total = self.objective(explainer(surrogate, x_var, target, create_graph=True), reference).sum()
            if not total.requires_grad:  # the explanation does not depend on x (e.g. a linear model)
                return torch.zeros_like(x_var)
            (grad,) = torch.autograd.grad(total, x_var, allow_unused=True)
        if grad is None:
            return torch.zeros_like(x_var)
        if not torch.isfinite(grad).all():
            bad = (~torch.isfinite(grad)).flatten(1).any(dim=1).nonzero().flatten().tolist()
            raise FloatingPointError(f"attack {self._name()}: the objective's gradient is NaN or infinite for sample(s) {bad}")
        return grad

    def _name(self) -> str:
        return getattr(type(self), "registered_name", type(self).__name__)
