"""Robustness metrics comparing two maps: top-k intersection, Spearman, Kendall tau-b, centre-of-mass shift."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from salbench import metrics
from salbench.metrics import rank_correlation
from salbench.metrics.base import Case
from salbench.metrics.center_of_mass import center_of_mass
from scipy import stats

SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def map_pairs(draw, min_features: int = 2, max_features: int = 24):
    """Two (N, F) float64 maps with small integer values, so that ties are frequent."""
    n = draw(st.integers(1, 4))
    f = draw(st.integers(min_features, max_features))
    values = st.integers(-4, 4).map(float)
    a = draw(arrays(np.float64, (n, f), elements=values))
    b = draw(arrays(np.float64, (n, f), elements=values))
    return torch.from_numpy(a), torch.from_numpy(b)


def non_constant(t: torch.Tensor) -> bool:
    return bool((t != t[:, :1]).any(dim=1).all())


# -- declared categories and directions -------------------------------------------------------
@pytest.mark.parametrize(
    "name, higher",
    [("topk_intersection", True), ("spearman", True), ("kendall_tau", True), ("center_of_mass_shift", False)],
)
def test_declared_robustness_direction(name, higher):
    entry = metrics.registry.entry(name)
    assert (entry.attrs["category"], entry.attrs["higher_is_better"]) == ("robustness", higher)
    assert metrics.get(name).needs_attack


# -- top-k intersection -------------------------------------------------------------------------
def brute_force_topk_intersection(a: np.ndarray, b: np.ndarray, k: int, absolute: bool) -> list[float]:
    """Set intersection with the documented tie rule: larger score first, then lower index."""
    out = []
    for row_a, row_b in zip(a, b):
        if absolute:
            row_a, row_b = np.abs(row_a), np.abs(row_b)
        top_a = set(sorted(range(len(row_a)), key=lambda i: (-row_a[i], i))[:k])
        top_b = set(sorted(range(len(row_b)), key=lambda i: (-row_b[i], i))[:k])
        out.append(len(top_a & top_b) / k)
    return out


@SETTINGS
@given(map_pairs(), st.integers(1, 24), st.booleans())
def test_topk_matches_brute_force_sets(pair, k, absolute):
    a, b = pair
    assume(k <= a.shape[1])
    got = metrics.get("topk_intersection", k=k, absolute=absolute)(a, b)
    expected = brute_force_topk_intersection(a.numpy(), b.numpy(), k, absolute)
    assert got.tolist() == pytest.approx(expected, abs=0)
    assert ((got >= 0) & (got <= 1)).all()


@SETTINGS
@given(map_pairs(), st.integers(1, 24))
def test_topk_identical_maps_give_exactly_one_even_with_ties(pair, k):
    a, _ = pair
    assume(k <= a.shape[1])
    assert torch.equal(metrics.get("topk_intersection", k=k)(a, a.clone()), torch.ones(a.shape[0], dtype=a.dtype))
    zeros = torch.zeros_like(a)
    assert torch.equal(metrics.get("topk_intersection", k=k)(zeros, zeros), torch.ones(a.shape[0], dtype=a.dtype))


def test_topk_hand_worked_and_absolute():
    a = torch.tensor([[5.0, -9.0, 1.0, 0.0, 3.0]])
    b = torch.tensor([[5.0, 0.0, 9.0, 1.0, -3.0]])
    # |a| top-2 = {1, 0}, |b| top-2 = {2, 0} -> 1/2;  signed top-3: a {0, 4, 2}, b {2, 0, 3} -> 2/3
    assert metrics.get("topk_intersection", k=2)(a, b).item() == 0.5
    assert metrics.get("topk_intersection", k=3, absolute=False)(a, b).item() == pytest.approx(2 / 3)
    # sign flips do not change the absolute ranking
    assert metrics.get("topk_intersection", k=2)(a, -a).item() == 1.0
    assert metrics.get("topk_intersection", k=2, absolute=False)(a, -a).item() == 0.0


def test_topk_features_are_all_non_batch_elements():
    a = torch.arange(24.0).view(2, 3, 2, 2)
    b = a.flip(-1)  # swaps columns: top-4 per sample (elements 8..11) becomes 9, 8, 11, 10 -> same set
    assert metrics.get("topk_intersection", k=4)(a, b).tolist() == [1.0, 1.0]


# -- Spearman and Kendall -----------------------------------------------------------------------
@SETTINGS
@given(map_pairs(min_features=3), st.booleans())
def test_rank_correlations_agree_with_scipy_with_ties(pair, absolute):
    a, b = pair
    sa, sb = (a.abs(), b.abs()) if absolute else (a, b)
    assume(non_constant(sa) and non_constant(sb))
    rho = metrics.get("spearman", absolute=absolute)(a, b)
    tau = metrics.get("kendall_tau", absolute=absolute)(a, b)
    for i in range(a.shape[0]):
        assert rho[i].item() == pytest.approx(stats.spearmanr(sa[i].numpy(), sb[i].numpy()).statistic, abs=1e-12)
        assert tau[i].item() == pytest.approx(stats.kendalltau(sa[i].numpy(), sb[i].numpy()).statistic, abs=1e-12)
    assert ((rho.abs() <= 1 + 1e-12) & (tau.abs() <= 1 + 1e-12)).all()


@SETTINGS
@given(map_pairs(min_features=2))
def test_identical_maps_correlate_one_and_reversed_minus_one(pair):
    a, _ = pair
    assume(non_constant(a))
    for name in ("spearman", "kendall_tau"):
        metric = metrics.get(name, absolute=False)
        assert metric(a, a.clone()).tolist() == pytest.approx([1.0] * a.shape[0], abs=1e-12)
        assert metric(a, -a).tolist() == pytest.approx([-1.0] * a.shape[0], abs=1e-12)
        # a monotone increasing transform keeps the ranking
        assert metric(a, a.pow(3) + 2 * a).tolist() == pytest.approx([1.0] * a.shape[0], abs=1e-12)


def test_rank_correlations_hand_worked():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
    b = torch.tensor([[1.0, 3.0, 2.0, 4.0]], dtype=torch.float64)
    # d = (0, 1, -1, 0): rho = 1 - 6 * 2 / (4 * 15) = 0.8; tau = (5 - 1) / 6
    assert metrics.get("spearman")(a, b).item() == pytest.approx(0.8, abs=1e-12)
    assert metrics.get("kendall_tau")(a, b).item() == pytest.approx(4 / 6, abs=1e-12)


def test_kendall_blocks_give_the_same_result(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(-3, 4, (3, 40), generator=gen).double()
    b = torch.randint(-3, 4, (3, 40), generator=gen).double()
    whole = metrics.get("kendall_tau", absolute=False)(a, b)
    monkeypatch.setattr(rank_correlation, "_PAIR_BLOCK_ELEMENTS", 7)  # one row of the pair matrix at a time
    assert torch.equal(metrics.get("kendall_tau", absolute=False)(a, b), whole)


@pytest.mark.parametrize("name", ["spearman", "kendall_tau"])
def test_constant_map_is_an_error_naming_the_argument_and_sample(name):
    a = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    b = torch.tensor([[1.0, 2.0, 3.0], [2.0, -2.0, 2.0]])
    with pytest.raises(ValueError, match=r"\|attr_adv\| is constant .* sample\(s\) \[1\]"):
        metrics.get(name)(a, b)
    assert metrics.get(name, absolute=False)(a, b)[1].item() < 1  # signed map is not constant


# -- centre-of-mass shift ---------------------------------------------------------------------------
def test_center_of_mass_hand_worked_image_and_vector():
    attr = torch.zeros(1, 2, 3, 4)
    attr[0, 0, 0, 1] = 1.0   # mass 1 at (0, 1)
    attr[0, 1, 2, 3] = -3.0  # mass 3 at (2, 3), other channel, negative sign
    assert center_of_mass(attr).tolist() == [[1.5, 2.5]]  # ((0 + 6) / 4, (1 + 9) / 4)
    vec = torch.tensor([[0.0, 2.0, 0.0, -2.0]])
    assert center_of_mass(vec).tolist() == [[2.0]]
    shifted = torch.tensor([[2.0, 0.0, 0.0, 2.0]])
    assert metrics.get("center_of_mass_shift")(vec, shifted).tolist() == [0.5]


@SETTINGS
@given(st.integers(0, 3), st.integers(0, 3), st.integers(1, 3), st.integers(0, 2**16))
def test_center_of_mass_shift_of_a_translated_map(dy, dx, channels, seed):
    gen = torch.Generator().manual_seed(seed)
    attr = torch.zeros(2, channels, 10, 10, dtype=torch.float64)
    attr[:, :, 2:6, 1:6] = torch.randn(2, channels, 4, 5, generator=gen, dtype=torch.float64)
    moved = torch.roll(attr, shifts=(dy, dx), dims=(2, 3))  # stays inside the 10 x 10 frame
    shift = metrics.get("center_of_mass_shift")(attr, moved)
    assert shift.tolist() == pytest.approx([math.hypot(dy, dx)] * 2, abs=1e-12)
    assert metrics.get("center_of_mass_shift")(attr, -attr).tolist() == [0.0, 0.0]


def test_center_of_mass_of_zero_map_is_an_error():
    with pytest.raises(ValueError, match=r"attr_adv is zero everywhere in sample\(s\) \[0\]"):
        metrics.get("center_of_mass_shift")(torch.ones(2, 5), torch.zeros(2, 5) + torch.tensor([[0.0], [1.0]]))


def test_center_of_mass_shift_in_a_grid_gives_nan_and_a_note_for_a_zero_map():
    # sample 0 is shifted by one position; sample 1's attacked map and sample 2's clean map are zero
    attr = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    adv = torch.tensor([[0.0, 3.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    case = Case(model=None, explainer=None, x=attr, target=torch.zeros(3, dtype=torch.long), attr=attr, attr_adv=adv)
    out = metrics.get("center_of_mass_shift").evaluate(case)
    assert out.values[0].item() == 1.0 and out.values[1:].isnan().all()
    assert out.notes[0] is None
    assert out.notes[1].startswith("attr_adv zero everywhere") and out.notes[2].startswith("attr zero everywhere")


@pytest.mark.parametrize("name", ["spearman", "kendall_tau"])
def test_rank_correlation_in_a_grid_gives_nan_and_a_note_for_a_constant_map(name):
    # sample 0: the same ordering (ρ = τ = 1); sample 1: the attacked map is all zero (no ordering)
    attr = torch.tensor([[1.0, 2.0, 3.0], [3.0, 1.0, 2.0]])
    adv = torch.tensor([[2.0, 4.0, 6.0], [0.0, 0.0, 0.0]])
    case = Case(model=None, explainer=None, x=attr, target=torch.zeros(2, dtype=torch.long), attr=attr, attr_adv=adv)
    out = metrics.get(name).evaluate(case)
    assert out.values[0].item() == pytest.approx(1.0) and out.values[1].isnan()
    assert out.notes == [None, "|attr_adv| constant over all features: no ordering, the rank correlation is undefined"]


# -- bad inputs -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", sorted(n for n in metrics.names() if issubclass(metrics.registry.entry(n).factory, metrics.base.PairMetric))
)
def test_bad_inputs_name_the_argument(name):
    """Every registered robustness metric comparing two maps (its cheap test parameters)."""
    metric = metrics.get(name, **getattr(metrics.registry.entry(name).factory, "test_params", {}))
    a = torch.randn(2, 6)
    with pytest.raises(ValueError, match="attr and attr_adv must have the same shape"):
        metric(a, torch.randn(2, 7))
    bad = a.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="attr_adv contains 1 NaN"):
        metric(a, bad)
    with pytest.raises(ValueError, match="attr contains 1 NaN"):
        metric(bad, a)
    with pytest.raises(ValueError, match="needs an attack"):
        metric.evaluate(metrics.base.Case(model=None, explainer=None, x=a, target=None, attr=a))


def test_topk_k_errors():
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 6\]"):
        metrics.get("topk_intersection", k=7)(torch.randn(2, 6), torch.randn(2, 6))
    for k in (0, -1):
        with pytest.raises(ValueError, match="k must be an integer >= 1"):
            metrics.get("topk_intersection", k=k)
