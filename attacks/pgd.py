"""The projected-ascent loop behind every iterative attack on explanations.

One loop, parametrised by the attack's objective and by the space it searches (Ghorbani et
al. AAAI 2019, Algorithm 1 — "iterative feature importance attacks"; Chen et al. NeurIPS
2024, R2ET's ``PGD_m``). The attack searches a variable z per sample that a
:class:`SearchSpace` turns into an input x′ = realise(z): for the ε-ball attacks z is x′
itself (:class:`BallSpace`); for the domain-plausible attacks z holds acquisition
parameters or clinical measurements in a box (:class:`BoxSpace`). From z⁰ (the space's
origin, where x′ = x, or a random point of the space), repeat ``steps`` times, for the whole
batch at once,

1. E′ = explainer(surrogate, realise(z), c, create_graph=True), the objective J(E′) per sample;
2. z̃ = Π(z + α·d(∇_z J)), d = sign for ℓ∞ and boxes (Ghorbani), d = g/‖g‖₂ for ℓ2 (R2ET);
   Π projects onto the space (the ε-ball around x and the valid range, or the box);
3. accept z̃ for the samples whose label on the *real* model at realise(z̃) is unchanged; a
   rejected sample stays at its last accepted point and stops (its step is a deterministic
   function of z, so it would only propose the same step again — R2ET's per-sample early stop);
4. evaluate the attack's score on the *real* model's explanation of the accepted x′ and keep,
   per sample, the best x′ seen (the start included; ties keep the earlier point).

Why the score uses the real model: the surrogate only supplies the gradients; what the
attack must change is the explanation of the real model, and the surrogate's explanation
can differ from it (Ghorbani et al. likewise keep the iterate with the lowest real top-k
intersection). The score compares the real E(x′) with the real E(x); the objective compares
the surrogate's E(x′) with a reference taken from the real or the surrogate's E(x), as the
attack declares (:attr:`ProjectedAscent.reference_from_real`).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, ClassVar, Literal, Protocol

import torch
from salbench import attacks
from salbench.attacks.base import Attack, AttackInputs, AttackResult, Bounds
from salbench.attacks.surrogate import softplus_surrogate
from salbench.attacks.threat_model import (
    Norm,
    ThreatModel,
    check_norm,
    label_verdict,
    predicted_label,
    select,
)
from salbench.core.seeding import SampleStreams
from salbench.core.validation import check_positive, check_positive_int, check_seed
from torch import Tensor, nn

__all__ = [
    "SearchSpace",
    "BallSpace",
    "BoxSpace",
    "ProjectedAscent",
    "ExplanationAttack",
    "BorrowedObjective",
    "Objective",
    "OBJECTIVES",
]

ALPHA_PER_STEP = 2.5
"""Default step size α = 2.5·radius/steps: the space's radius is crossed in steps/2.5 steps, which
leaves room to move along its surface (the rule of thumb of MadryLab's ``robustness`` library)."""


class SearchSpace(Protocol):
    """What the loop searches: a variable z per sample (batch first) and the input it stands for."""

    x: Tensor
    """The clean batch."""
    radius: float
    """The unit of the step size: the default α is 2.5·radius/steps."""

    def origin(self) -> Tensor:
        """The z with realise(z) = x (a fresh tensor)."""

    def sample(self, streams: SampleStreams) -> Tensor:
        """A random z of the space (the random start), each sample's from its own stream."""

    def project(self, z: Tensor) -> Tensor:
        """The point of the space nearest to (or standing for) ``z``, detached."""

    def direction(self, grad: Tensor) -> Tensor:
        """The ascent step of unit size for the gradient ``grad`` of the objective in z."""

    def realise(self, z: Tensor) -> Tensor:
        """The input x′ that z stands for; differentiable in z."""

    def keeps_label(self, x_adv: Tensor) -> Tensor:
        """Per-sample bool (N,): the real model predicts on ``x_adv`` the label it predicts on x."""

    def verify(self, z: Tensor, x_adv: Tensor, attack: str) -> Tensor:
        """Check a final (z, x′) is admissible; return ``label_kept`` (all True) or raise (a bug)."""


class BallSpace(ThreatModel):
    """The ε-ball threat model as a search space: z is x′ itself (:class:`ThreatModel`)."""

    @property
    def radius(self) -> float:
        return self.eps

    def origin(self) -> Tensor:
        return self.x.clone()

    def realise(self, z: Tensor) -> Tensor:
        return z

    def verify(self, z: Tensor, x_adv: Tensor, attack: str) -> Tensor:
        return super().verify(x_adv, attack)


class BoxSpace:
    """A box of per-coordinate intervals searched with sign steps scaled per coordinate.

    z lies in [low, high] (per sample and coordinate); a step moves each coordinate by
    α·scale·sign(g), so with ``scale`` the half-width of each interval every coordinate
    crosses its own interval at the same pace whatever its unit (radius 1: the default
    α = 2.5/steps). A coordinate with scale 0 never moves. x′ = realise(z).

    Args:
        model: the real model; its predicted label on x is the label to keep.
        x: the clean batch.
        origin: the z with realise(z) = x, (N, ...) like z; must lie in the box.
        low, high: the box, tensors broadcastable to z.
        scale: step scale per coordinate, broadcastable to z (>= 0).
        realise: z ↦ x′, differentiable in z.
    """

    radius = 1.0

    def __init__(
        self,
        model: nn.Module,
        x: Tensor,
        origin: Tensor,
        low: Tensor,
        high: Tensor,
        scale: Tensor,
        realise: Callable[[Tensor], Tensor],
    ):
        self.model = model
        self.x = x.detach()
        self._origin = origin.detach()
        self.low, self.high, self.scale = low, high, scale
        self._realise = realise
        if self._outside(self._origin).any():
            raise ValueError("bug: the origin of a box search space lies outside its box")
        self.label = predicted_label(model, self.x)

    def origin(self) -> Tensor:
        return self._origin.clone()

    def sample(self, streams: SampleStreams) -> Tensor:
        """A point drawn uniformly from the box, coordinate by coordinate, each sample's from its own stream."""
        u = streams.rand(self._origin.shape[1:], like=self._origin)
        return self.project(self.low + u * (self.high - self.low))

    def project(self, z: Tensor) -> Tensor:
        return torch.clamp(z.detach(), self.low, self.high)

    def direction(self, grad: Tensor) -> Tensor:
        return grad.sign() * self.scale

    def realise(self, z: Tensor) -> Tensor:
        return self._realise(z)

    def keeps_label(self, x_adv: Tensor) -> Tensor:
        return predicted_label(self.model, x_adv) == self.label

    def verify(self, z: Tensor, x_adv: Tensor, attack: str) -> Tensor:
        """Every z in its box, x′ = realise(z), and the label kept; a violation raises."""
        problems = []
        if self._outside(z).any():
            problems.append("leaves its box")
        if not torch.equal(self.realise(z).detach(), x_adv):
            problems.append("is not the input its variables stand for")
        return label_verdict(self.keeps_label(x_adv), problems, attack)

    def _outside(self, z: Tensor) -> Tensor:
        return (z < self.low) | (z > self.high)


class ProjectedAscent(Attack):
    """Base class of the gradient attacks on explanations: the loop over a search space.

    Subclasses implement :meth:`search_space` (what is searched), :meth:`reference` (what
    the objective compares against, from the explanation of x) and :meth:`objective` (per
    sample, to maximise, differentiable); they may override :meth:`score`, the criterion for
    keeping the best x′ (default: the objective), and set :attr:`reference_from_real`.

    Its parameters are declared here once; a subclass takes them as ``**loop`` (the registry
    reads them along the class hierarchy) and redeclares only those whose default it changes.

    Args (common to every subclass):
        steps: number of iterations (>= 1); default 50.
        alpha: step size (> 0) in the space's units (input units for the ε-ball, fractions
            of each coordinate's half-width for a box); None gives 2.5·radius/steps.
        surrogate_beta: β of the softplus surrogate the gradients are taken through (> 0);
            None attacks the model itself (for smooth models; on a ReLU network the
            gradient of a gradient explanation is then zero almost everywhere). β acts on
            pre-activations, so its useful range depends on their scale: a large β makes
            the surrogate ReLU-like and its second derivatives vanish again (on the test
            CNN with inputs in [0, 1], β = 1–30 work and β = 100 barely moves the map).
            Default 10.
        random_start: start from a uniform point of the space (kept only where it keeps the
            label) instead of its origin (x itself); default False.
        seed: seed of the random start, drawn per sample from (seed, the sample's content); default 0.
    """

    requires = ("differentiable",)
    reference_from_real: ClassVar[bool] = False
    """Where the objective's reference comes from. False: the surrogate's explanation of x, for
    attacks that measure a change (the surrogate's E(x′) against the surrogate's E(x), so that
    the gap between surrogate and model does not count as change). True: the real model's,
    for ranking attacks (the features to demote are the real top features; Ghorbani et al.'s
    code does the same). The score always uses the real model's."""

    def __init__(
        self,
        *,
        steps: int = 50,
        alpha: float | None = None,
        surrogate_beta: float | None = 10.0,
        random_start: bool = False,
        seed: int = 0,
    ):
        check_positive_int(steps, "steps")
        if alpha is not None:
            check_positive(alpha, "alpha")
        if surrogate_beta is not None:
            check_positive(surrogate_beta, "surrogate_beta")
        check_seed(seed)
        self.steps = steps
        self.alpha = alpha
        self.surrogate_beta = surrogate_beta
        self.random_start = random_start
        self.seed = seed

    # -- what a subclass defines -------------------------------------------------------------
    def search_space(self, model: nn.Module, x: Tensor, bounds: Bounds) -> SearchSpace:
        """The space searched around the clean batch ``x`` (checks its inputs first)."""
        raise NotImplementedError

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
    def attack(self, model: nn.Module, explainer, x: Tensor, target: Tensor, inputs: AttackInputs) -> AttackResult:
        return self.search(model, explainer, x, target, bounds=inputs.bounds)[0]

    def search(
        self, model: nn.Module, explainer, x: Tensor, target: Tensor, *, bounds: Bounds
    ) -> tuple[AttackResult, Tensor]:
        """The loop: the attack's result and the variable z of each returned x′ (x′ = realise(z))."""
        if not getattr(explainer, "differentiable", False):
            raise ValueError(
                f"attack {self._name()} differentiates the explanation, but explainer {explainer!r} is not "
                "differentiable; use a gradient-based explainer or the random_noise attack"
            )
        space = self.search_space(model, x, bounds)
        surrogate = model if self.surrogate_beta is None else softplus_surrogate(model, self.surrogate_beta)
        ref_real = self.reference(explainer(model, space.x, target).detach())
        if self.reference_from_real or surrogate is model:
            ref_surrogate = ref_real
        else:
            ref_surrogate = self.reference(explainer(surrogate, space.x, target).detach())
        alpha = self.alpha if self.alpha is not None else ALPHA_PER_STEP * space.radius / self.steps

        z = self._start(space)
        current = space.realise(z).detach()
        best, best_z = current, z
        best_score = self.score(explainer(model, current, target).detach(), ref_real)
        accepted = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        active = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        for _ in range(self.steps):
            grad = self._gradient(surrogate, explainer, space, z, target, ref_surrogate)
            z_candidate = space.project(z + alpha * space.direction(grad))
            candidate = space.realise(z_candidate).detach()
            active = active & space.keeps_label(candidate)
            z = select(active, z_candidate, z)
            current = select(active, candidate, current)
            accepted += active
            if not active.any():
                break
            score = self.score(explainer(model, current, target).detach(), ref_real)
            better = active & (score > best_score)
            best = select(better, current, best)
            best_z = select(better, z, best_z)
            best_score = torch.where(better, score, best_score)

        label_kept = space.verify(best_z, best, self._name())
        success = (best != space.x).flatten(1).any(dim=1)
        return AttackResult(x_adv=best, iterations=accepted, label_kept=label_kept, success=success), best_z

    def _start(self, space: SearchSpace) -> Tensor:
        if not self.random_start:
            return space.origin()
        start = space.sample(SampleStreams(self.seed, space.x))
        return select(space.keeps_label(space.realise(start).detach()), start, space.origin())

    def _gradient(
        self, surrogate: nn.Module, explainer, space: SearchSpace, z: Tensor, target: Tensor, reference: Any
    ) -> Tensor:
        """∇_z of the summed per-sample objective (samples are independent, so it is per sample)."""
        with torch.enable_grad():
            z_var = z.detach().requires_grad_(True)
            attr = explainer(surrogate, space.realise(z_var), target, create_graph=True)
            total = self.objective(attr, reference).sum()
            if not total.requires_grad:  # the explanation does not depend on z (e.g. a linear model)
                return torch.zeros_like(z_var)
            (grad,) = torch.autograd.grad(total, z_var, allow_unused=True)
        if grad is None:
            return torch.zeros_like(z_var)
        if not torch.isfinite(grad).all():
            bad = (~torch.isfinite(grad)).flatten(1).any(dim=1).nonzero().flatten().tolist()
            raise FloatingPointError(f"attack {self._name()}: the objective's gradient is NaN or infinite for sample(s) {bad}")
        return grad


class ExplanationAttack(ProjectedAscent):
    """Base class of the ε-ball attacks on explanations; they differ only in their objective.

    The search space is the ε-ball around x (ℓ∞ or ℓ2) ∩ the valid range (:class:`BallSpace`).

    Args (common to every subclass):
        eps: radius of the ball, in input units (> 0); default 8/255 (inputs in [0, 1]).
        norm: ``"linf"`` (sign steps, the default) or ``"l2"`` (normalised-gradient steps).
        **loop: steps, alpha, surrogate_beta, random_start, seed of :class:`ProjectedAscent`;
            α is in input units (default 2.5·eps/steps).
    """

    def __init__(self, *, eps: float = 8 / 255, norm: Norm = "linf", **loop):
        check_positive(eps, "eps")
        check_norm(norm)
        super().__init__(**loop)
        self.eps = eps
        self.norm = norm

    def search_space(self, model: nn.Module, x: Tensor, bounds: Bounds) -> BallSpace:
        return BallSpace(model, x, self.eps, self.norm, bounds)


Objective = Literal["topk", "mse"]
OBJECTIVES: tuple[str, ...] = typing.get_args(Objective)


class BorrowedObjective(ProjectedAscent):
    """Base class of attacks that search a space of their own for the objective of an ε-ball attack.

    The objective, reference, score and reference source are those of the registered attack
    named ``objective``: ``topk`` (Ghorbani et al.'s top-k mass, kept by the lowest real top-k
    intersection; :class:`salbench.attacks.ghorbani.TopKAttack`) or ``mse`` (R2ET's ‖E(x′) − E(x)‖₂²;
    :class:`salbench.attacks.r2et.MSEAttack`), so that a domain-plausible attack and its ε-ball
    counterpart optimise exactly the same thing.

    Args (common to every subclass):
        objective: ``"topk"`` (the default) or ``"mse"``.
        k: the top-k size of the ``topk`` objective (>= 1; at most the features per sample,
            checked per call); not used by ``mse``. Default 50, as ``topk``.
        random_start: as in :class:`ProjectedAscent`; None (the default) takes the borrowed
            attack's default (False for ``topk``; True for ``mse``, whose gradient is zero at x).
        **loop: steps, alpha, surrogate_beta, seed of :class:`ProjectedAscent`.
    """

    def __init__(self, *, objective: Objective = "topk", k: int = 50, random_start: bool | None = None, **loop):
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        check_positive_int(k, "k")
        goal = attacks.get("topk", k=k) if objective == "topk" else attacks.get("mse")
        random_start = goal.random_start if random_start is None else random_start
        super().__init__(random_start=random_start, **loop)
        self.objective_name = objective
        self.k = k
        self._goal = goal

    @property
    def reference_from_real(self) -> bool:  # type: ignore[override]
        return self._goal.reference_from_real

    def reference(self, attr: Tensor) -> Any:
        return self._goal.reference(attr)

    def check_features(self, n_features: int) -> None:
        self._goal.check_features(n_features)

    def objective(self, attr: Tensor, reference: Any) -> Tensor:
        return self._goal.objective(attr, reference)

    def score(self, attr: Tensor, reference: Any) -> Tensor:
        return self._goal.score(attr, reference)
