"""The clinical attack: measurement-error-sized changes of a table row that change its explanation most."""

from __future__ import annotations

import copy

import torch
from salbench.attacks import register
from salbench.attacks.base import AttackInputs, Bounds
from salbench.attacks.pgd import BorrowedObjective, BoxSpace
from salbench.attacks.profiles import TableProfile, feature_fractions
from salbench.attacks.threat_model import _check_bounds
from torch import Tensor, nn

__all__ = ["ClinicalAttack", "IntegerGrid"]

GRID_TOLERANCE = 1e-3
"""How far (in grid steps) a clean value may sit from its grid and still count as on it
(float32 standardisation of an integer leaves errors of order 1e-6·|value|)."""


class IntegerGrid:
    """Snap the integer-valued columns of x′ to their grid inside the box; other columns pass.

    A value z of an integer column becomes x + k·spacing with k = round((z − x)/spacing)
    limited to the box [low, high] (x itself lies on the grid, so every such point does too),
    then clipped to the box against float rounding. The gradient passes straight through
    (the straight-through estimator, Bengio, Léonard, Courville, arXiv:1308.3432): the
    ascent moves the continuous z, and every point the attack evaluates, accepts or returns
    is the rounded one, its label checked after rounding.

    Args:
        x: the clean batch (N, F).
        low, high: the box (N, F).
        columns: bool (F,), the integer-valued columns.
        origin, spacing: (F,), the grids (ignored where ``columns`` is False).

    Raises ValueError if a clean value of an integer column is not on its grid.
    """

    def __init__(self, x: Tensor, low: Tensor, high: Tensor, columns: Tensor, origin: Tensor, spacing: Tensor):
        steps = (x - origin) / spacing
        off = columns & ((steps - steps.round()).abs() > GRID_TOLERANCE)
        if off.any():
            samples, features = off.nonzero().unbind(1)
            raise ValueError(
                f"x is not on the integer grid of feature column(s) {sorted(set(features.tolist()))} in sample(s) "
                f"{sorted(set(samples.tolist()))}: the profile declares them integer-valued (origin + spacing·k); "
                "check the profile's grid (origin −mean/std, spacing 1/std for a standardised integer feature)"
            )
        self.x, self.low, self.high, self.columns, self.spacing = x, low, high, columns, spacing
        self.k_min = ((low - x) / spacing - 1e-6).ceil()
        self.k_max = ((high - x) / spacing + 1e-6).floor()

    def __call__(self, z: Tensor) -> Tensor:
        k = torch.clamp(((z.detach() - self.x) / self.spacing).round(), self.k_min, self.k_max)
        snapped = torch.clamp(self.x + k * self.spacing, self.low, self.high)
        return torch.where(self.columns, snapped + (z - z.detach()), z)


@register("clinical")
class ClinicalAttack(BorrowedObjective):
    """Clinical attack: moves each mutable feature by at most its measurement error to change the explanation.

    The ε-ball attacks (Ghorbani et al., AAAI 2019) move every feature by the same ε in
    standardised units, age and sex included. Here a table profile
    (:data:`salbench.attacks.profiles.TABLE_PROFILES`) says, per column, how far a repeated
    measurement could move it: at most f_i·s_i, f_i the profile's fraction of the
    feature's training standard deviation s_i (a measurement-error model; f_i = 0 freezes
    an immutable feature), inside the observed range ``bounds`` (the data set's min/max),
    and on an integer grid for integer-valued features. It maximises the borrowed
    objective (``topk`` or ``mse``, :class:`salbench.attacks.pgd.BorrowedObjective`) over that box
    while the model keeps its label:

        max_{x′} J(E(x′)),   |x′_i − x_i| ≤ f_i·s_i,   low_i ≤ x′_i ≤ high_i,
        x′_i ∈ grid_i (integer features),   argmax f(x′) = argmax f(x),

    by the projected sign ascent of :mod:`salbench.attacks.pgd` in a :class:`BoxSpace`: feature i
    moves by α·f_i·s_i·sign(∂J/∂x′_i) per step (every feature crosses its own budget at the
    same pace), then is clipped to the box; integer features are rounded at every step
    (:class:`IntegerGrid`), so the label is checked, and the best x′ kept, after rounding.
    The idea follows DARE (Ivankay et al., ACL 2023; METHODS.md §5): the perturbation must
    be one the domain produces.

    Binding to columns: the attack sees only the input tensor, so the profile's rules apply
    by column position; the profile names its columns (a test checks the WDBC profile
    against scikit-learn's feature names) and overrides name features.

    Args:
        profile: a key of :data:`salbench.attacks.profiles.TABLE_PROFILES` (``"wdbc"``), or ``"data"``:
            the profile the data set declares (the attack input ``table_profile``, e.g. of a
            ``table`` data set with ``error_budgets``; its overrides are checked when it is attacked).
        fractions: overrides, feature name → fraction of its std (>= 0; 0 freezes it).
        objective: ``"topk"`` or ``"mse"``; k: the top-k size (default 8, R2ET's tabular k).
        steps, alpha, surrogate_beta, random_start, seed: see
            :class:`salbench.attacks.pgd.BorrowedObjective`; α is in units of each feature's budget
            (default 2.5/steps).

    Checks: the profile and the overrides when the attack is built; that x has one column
    per profile feature, lies inside ``bounds`` and on the integer grids before any work.

    Example:
        >>> from salbench import attacks, explainers
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> net = torch.nn.Sequential(torch.nn.Linear(30, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        >>> x = torch.randn(4, 30)
        >>> result = attacks.get("clinical", steps=5)(net, explainers.get("gradient"), x, net(x).argmax(1))
        >>> bool(result.label_kept.all()), bool(((result.x_adv - x).abs() <= 0.45 + 1e-6).all())
        (True, True)
    """

    modalities = ("tabular",)
    inputs = ("bounds", "table_profile")

    contract_exemption = (
        "needs a table whose columns match its profile (wdbc: 30 standardised columns, integer ones on their grid); "
        "tests/attacks/test_attack_clinical.py checks it on WDBC"
    )

    def __init__(self, profile: str = "wdbc", fractions: dict | None = None, k: int = 8, **borrowed):
        self._table, self._fractions = (None, ()) if profile == "data" else feature_fractions(profile, fractions)
        super().__init__(k=k, **borrowed)
        self.profile = profile
        self.fractions = fractions

    def attack(self, model: nn.Module, explainer, x: Tensor, target: Tensor, inputs: AttackInputs):
        if self._table is not None:
            return super().attack(model, explainer, x, target, inputs)
        if inputs.table_profile is None:
            raise ValueError(
                "attack clinical with profile='data' takes the table profile from the data set, which declares none "
                "(a table data set declares one with error_budgets); name a built-in profile instead"
            )
        bound = copy.copy(self)
        bound._table, bound._fractions = feature_fractions(inputs.table_profile, self.fractions)
        return BorrowedObjective.attack(bound, model, explainer, x, target, inputs)

    def search_space(self, model: nn.Module, x: Tensor, bounds: Bounds) -> BoxSpace:
        table: TableProfile = self._table
        if x.dim() != 2 or x.shape[1] != len(table.features):
            raise ValueError(
                f"table profile {table.name!r} describes {len(table.features)} feature columns, so attack clinical "
                f"needs x of shape (N, {len(table.features)}); got {tuple(x.shape)}"
            )
        x = x.detach()
        checked = _check_bounds(bounds, x)
        opts = {"dtype": x.dtype, "device": x.device}
        rules = [rule for _, rule in table.features]
        budget = torch.tensor([f * rule.std for f, rule in zip(self._fractions, rules)], **opts).expand_as(x)
        low, high = x - budget, x + budget
        if checked is not None:
            low, high = torch.maximum(low, checked[0]), torch.minimum(high, checked[1])
        columns = torch.tensor([rule.grid is not None for rule in rules], device=x.device)
        realise = _identity
        if columns.any():
            origin = torch.tensor([rule.grid[0] if rule.grid else 0.0 for rule in rules], **opts)
            spacing = torch.tensor([rule.grid[1] if rule.grid else 1.0 for rule in rules], **opts)
            realise = IntegerGrid(x, low, high, columns, origin, spacing)
        return BoxSpace(model, x, x.clone(), low, high, budget, realise)


def _identity(z: Tensor) -> Tensor:
    return z
