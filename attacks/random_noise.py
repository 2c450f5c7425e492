"""Random perturbation at the same budget: the baseline every explanation attack must beat."""

from __future__ import annotations

import torch
from salbench.attacks import register
from salbench.attacks.base import Attack, AttackInputs, AttackResult
from salbench.attacks.threat_model import Norm, ThreatModel, check_norm, select
from salbench.core.seeding import SampleStreams
from salbench.core.validation import check_positive, check_positive_int, check_seed
from torch import Tensor, nn

__all__ = ["RandomNoise"]


@register("random_noise")
class RandomNoise(Attack):
    """Uniform noise in the ε-ball that keeps the label: the baseline of Ghorbani et al. (2019).

    Ghorbani, Abid, Zou (AAAI 2019) compare every attack with a random sign perturbation of
    the same ℓ∞ size. Here a perturbation is drawn uniformly from the ball (ℓ∞: each δ_i ~
    U(−ε, ε); ℓ2: uniform in the d-dimensional ball), x + δ is clipped to the valid range, and
    up to ``n_tries`` draws are made; each sample keeps its *first* draw whose label on the
    real model is unchanged (not the one that changes the explanation most: the baseline does
    not look at the explanation). A sample with no such draw stays at x (``success`` False).
    The explainer is not used.

    Departure: the authors' random baseline is an iterative walk of random sign steps
    (α·sign(Gaussian), projected), keeping the iterate with the lowest real top-k
    intersection, i.e. a search guided by the explanation. Here the baseline is blind, so it
    measures what noise of the same size does by itself; the uniform draw is the same one
    the iterative attacks use as their random start, for ℓ∞ and ℓ2 alike.

    Args:
        eps: radius of the ball (> 0), in input units; default 8/255 as ``topk``.
        norm: ``"linf"`` or ``"l2"``.
        n_tries: draws per sample (>= 1); iterations is 1 where a draw was kept, else 0.
        seed: seed of the draws; each sample draws from its own stream seeded by (seed, its
            content), so a sample gets the same noise in every batch.

    Example:
        >>> from salbench import attacks, explainers
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
        >>> x = torch.rand(3, 1, 4, 4)
        >>> result = attacks.get("random_noise", eps=0.1)(net, explainers.get("gradient"), x, 0, bounds=(0.0, 1.0))
        >>> bool((result.x_adv - x).abs().max() <= 0.1)
        True
    """

    baseline = True

    def __init__(self, eps: float = 8 / 255, norm: Norm = "linf", n_tries: int = 10, seed: int = 0):
        check_positive(eps, "eps")
        check_norm(norm)
        check_positive_int(n_tries, "n_tries")
        check_seed(seed)
        self.eps = eps
        self.norm = norm
        self.n_tries = n_tries
        self.seed = seed

    def attack(self, model: nn.Module, explainer, x: Tensor, target: Tensor, inputs: AttackInputs) -> AttackResult:
        threat = ThreatModel(model, x, self.eps, self.norm, inputs.bounds)
        streams = SampleStreams(self.seed, threat.x)
        x_adv = threat.x.clone()
        found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for _ in range(self.n_tries):
            candidate = threat.sample(streams)
            take = ~found & threat.keeps_label(candidate)
            x_adv = select(take, candidate, x_adv)
            found |= take
            if found.all():
                break
        label_kept = threat.verify(x_adv, "random_noise")
        success = (x_adv != threat.x).flatten(1).any(dim=1)
        return AttackResult(x_adv=x_adv, iterations=found.long(), label_kept=label_kept, success=success)
