"""The explanation attacks R2ET is evaluated with (Chen et al., "Training for Stable Explanation
for Free", NeurIPS 2024; authors' code github.com/ccha005/R2ET, ``batch_retrain.PGD_m``):
the ranking attack (ERAttack, ``atk_method='topk'``) and the MSE attack (``'norm'``).

Both take normalised-gradient steps x′ ← x′ + α·∇J/‖∇J‖₂ (ascent on J, i.e. descent on the
authors' loss −J) and stop a sample when its label would change; the loop is
:mod:`salbench.attacks.pgd`. The authors' defaults are η = 5e-3, 100 steps, and a clip to an ℓ∞ box of
radius 100·η = 0.5 that the ℓ2 path (length ≤ 0.5) never reaches; here the defaults are the
ℓ2 ball of radius 0.5 and 100 steps with α = 2.5·ε/steps. To reproduce the authors' budget
exactly, pass ``eps=0.5, steps=100, alpha=5e-3``.

Departures shared by the two: the authors return the last iterate before the label flips
(their early stop); here the iterate whose objective, on the real model, is best. They rank
pixels by Σ_channels |∇_x CE|; here the features are the explainer's map elements, ranked as
the ``topk_intersection`` metric ranks them (the same for one-channel images and tabular
data; the explanation, e.g. the CE gradient, is the explainer's choice).
"""

from __future__ import annotations

import torch
from salbench.attacks import register
from salbench.attacks.pgd import ExplanationAttack
from salbench.attacks.ranking import magnitudes, ranked_features
from salbench.attacks.threat_model import Norm
from salbench.core.validation import check_positive_int
from torch import Tensor

__all__ = ["ERAttack", "MSEAttack", "ranking_pairs"]


def ranking_pairs(k: int, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """R2ET's pairs P of original ranks (upper, lower), 0-based, each of length 2k − 1.

    P = {(i, k−1) : 0 ≤ i < k−1} ∪ {(k−1, k+j) : 0 ≤ j < k}: every other top-k feature against
    the k-th, and the k-th against each of the k features ranked after it (the authors'
    ``topk_pair``). Summed, Σ_P (|g_upper| − |g_lower|) = Σ_{r<k} |g_r| − Σ_{k≤r<2k} |g_r|.
    """
    pivot = torch.full((k,), k - 1, dtype=torch.long, device=device)
    upper = torch.cat([torch.arange(k - 1, device=device), pivot])
    lower = torch.cat([pivot[: k - 1], torch.arange(k, 2 * k, device=device)])
    return upper, lower


@register("er_attack")
class ERAttack(ExplanationAttack):
    """R2ET's ranking attack (ERAttack): push the top-k features below the next k (Chen et al. 2024).

    With π₀ the original ranking of |E(x)| and P the pairs of :func:`ranking_pairs`, it
    maximises

        J(x′) = −Σ_{(i, j) ∈ P} (|E_{π₀(i)}(x′)| − |E_{π₀(j)}(x′)|),

    the negative of the authors' loss, and keeps the x′ with the largest J on the real model.
    π₀ is the real model's ranking (the one the attack must break).

    Args:
        k: the top-k size; ranks up to 2k are compared, so 1 ≤ k ≤ features/2 (checked per
            call). Default 50 (the authors' image setting; tabular data: 8).
        eps, norm, steps, alpha, surrogate_beta, random_start, seed: see
            :class:`salbench.attacks.pgd.ExplanationAttack`; defaults ℓ2, ε = 0.5, 100 steps,
            α = 2.5·ε/steps, softplus β = 10, start at x.

    Example:
        >>> from salbench import attacks, explainers
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> net = torch.nn.Sequential(torch.nn.Linear(10, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        >>> x = torch.randn(4, 10)
        >>> result = attacks.get("er_attack", k=3, steps=5)(net, explainers.get("gradient"), x, net(x).argmax(1))
        >>> bool(result.label_kept.all()), bool((result.x_adv - x).norm(dim=1).max() <= 0.5 + 1e-6)
        (True, True)
    """

    reference_from_real = True
    test_params = {"k": 3}  # the contract checks' tables have 6 features (k at most half)

    def __init__(self, k: int = 50, eps: float = 0.5, norm: Norm = "l2", steps: int = 100, **ball):
        check_positive_int(k, "k")
        super().__init__(eps=eps, norm=norm, steps=steps, **ball)
        self.k = k

    def check_features(self, n_features: int) -> None:
        if 2 * self.k > n_features:
            raise ValueError(
                f"er_attack compares original ranks up to 2k, so k must be at most {n_features // 2} "
                f"(half the {n_features} features per sample), got k={self.k}"
            )

    def reference(self, attr: Tensor) -> tuple[Tensor, Tensor]:
        """Flat indices (N, 2k − 1) of the upper and lower feature of each pair."""
        self.check_features(attr[0].numel())
        ranking = ranked_features(attr, 2 * self.k)
        upper, lower = ranking_pairs(self.k, attr.device)
        return ranking[:, upper], ranking[:, lower]

    def objective(self, attr: Tensor, reference: tuple[Tensor, Tensor]) -> Tensor:
        mass = magnitudes(attr)
        upper, lower = reference
        return -(mass.gather(1, upper) - mass.gather(1, lower)).sum(dim=1)


@register("mse")
class MSEAttack(ExplanationAttack):
    """R2ET's MSE attack: push the explanation away from the original in ℓ2 (Chen et al. 2024).

    Maximises J(x′) = ‖E(x′) − E(x)‖₂² (the authors' ``'norm'`` attack) and keeps the x′
    with the largest J on the real model.

    Departure: J and its gradient are zero at x′ = x. The authors offset the difference by
    0.01 (−‖E(x′) − E(x) + 0.01‖₂), which biases the first steps towards one direction; here
    the attack starts by default from a uniform point of the ball (``random_start=True``,
    seeded), falling back to x for samples where it changes the label.

    Args:
        eps, norm, steps, alpha, surrogate_beta, random_start, seed: see
            :class:`salbench.attacks.pgd.ExplanationAttack`; defaults as for ``er_attack`` except
            ``random_start=True``.

    Example:
        >>> from salbench import attacks
        >>> attacks.get("mse").norm
        'l2'
    """

    def __init__(self, eps: float = 0.5, norm: Norm = "l2", steps: int = 100, random_start: bool = True, **ball):
        super().__init__(eps=eps, norm=norm, steps=steps, random_start=random_start, **ball)

    def reference(self, attr: Tensor) -> Tensor:
        """The original explanation."""
        return attr

    def objective(self, attr: Tensor, reference: Tensor) -> Tensor:
        return (attr - reference).flatten(1).square().sum(dim=1)
