"""The attacks' objectives and scores against hand-worked values and independent computations."""

from __future__ import annotations

import itertools

import pytest
import torch
from salbench import attacks, metrics
from salbench.attacks.ghorbani import centre_of_mass, mass_share
from salbench.attacks.pgd import ExplanationAttack
from salbench.attacks.r2et import ranking_pairs


def test_mass_share_is_the_normalised_magnitude_and_zero_for_a_zero_map():
    attr = torch.tensor([[1.0, -3.0, 0.0, 4.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    share = mass_share(attr)
    assert torch.equal(share, torch.tensor([[1 / 8, 3 / 8, 0.0, 4 / 8], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64))
    (grad,) = torch.autograd.grad(share[:, 0].sum(), attr)
    assert torch.isfinite(grad).all() and torch.equal(grad[1], torch.zeros(4, dtype=torch.float64))


def test_mass_share_treats_a_numerically_zero_map_as_zero():
    tiny_map = torch.tensor([[1e-36, 0.0, 3e-36, 0.0]], requires_grad=True)  # total below √tiny ≈ 1e-19
    small_map = torch.tensor([[1e-15, 0.0, 3e-15, 0.0]], requires_grad=True)
    assert torch.equal(mass_share(tiny_map), torch.zeros(1, 4))
    assert torch.allclose(mass_share(small_map), torch.tensor([[0.25, 0.0, 0.75, 0.0]]))
    (grad,) = torch.autograd.grad(mass_share(tiny_map)[:, 0].sum(), tiny_map)
    assert torch.equal(grad, torch.zeros(1, 4))


def test_centre_of_mass_of_images_sums_channels_and_uses_index_coordinates():
    attr = torch.zeros(1, 2, 4, 5, dtype=torch.float64)
    attr[0, 0, 1, 2] = 2.0  # (row 1, col 2), weight 2
    attr[0, 1, 3, 4] = -1.0  # (row 3, col 4), weight 1 (absolute value, other channel)
    assert torch.allclose(centre_of_mass(attr), torch.tensor([[(2 * 1 + 3) / 3, (2 * 2 + 4) / 3]], dtype=torch.float64))


def test_centre_of_mass_of_flat_inputs_is_the_mean_feature_index():
    attr = torch.tensor([[0.0, 0.0, 1.0, -1.0], [4.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    assert torch.equal(centre_of_mass(attr), torch.tensor([[2.5], [0.0]], dtype=torch.float64))


def test_centre_of_mass_of_volumes_and_signals_sums_channels():
    volume = torch.zeros(1, 2, 3, 4, 5, dtype=torch.float64)
    volume[0, 0, 2, 1, 4] = 3.0  # (depth 2, row 1, col 4), weight 3
    volume[0, 1, 0, 3, 0] = -1.0  # (depth 0, row 3, col 0), weight 1, other channel
    assert torch.allclose(centre_of_mass(volume), torch.tensor([[6 / 4, 6 / 4, 12 / 4]], dtype=torch.float64))
    signal = torch.zeros(2, 3, 7, dtype=torch.float64)
    signal[0, 2, 5], signal[1, 0, 1], signal[1, 1, 4] = 2.0, 1.0, -1.0
    assert torch.equal(centre_of_mass(signal), torch.tensor([[5.0], [2.5]], dtype=torch.float64))
    moved = torch.zeros_like(volume)
    moved[0, 0, 1, 3, 0] = 3.0  # the weight-3 voxel moved by (−1, 2, −4): the centre by (−3, 6, −12)/4
    moved[0, 1, 0, 3, 0] = -1.0
    assert metrics.get("center_of_mass_shift")(volume, moved).item() == pytest.approx((9 + 36 + 144) ** 0.5 / 4)


def test_ranking_pairs_are_the_authors_pairs():
    upper, lower = ranking_pairs(3)
    pairs = list(zip(upper.tolist(), lower.tolist()))
    # R2ET's topk_pair for k = 3: [(i, k−1) for i < k−1] + [(k−1, k+i) for i < k]
    assert pairs == [(0, 2), (1, 2), (2, 3), (2, 4), (2, 5)]
    assert ranking_pairs(1)[0].tolist() == [0] and ranking_pairs(1)[1].tolist() == [1]


def test_er_objective_against_a_brute_force_sum_over_pairs():
    gen = torch.Generator().manual_seed(0)
    attr0 = torch.randn(5, 2, 3, 3, generator=gen, dtype=torch.float64)
    attr = torch.randn(5, 2, 3, 3, generator=gen, dtype=torch.float64)
    k = 4
    attack = attacks.get("er_attack", k=k)
    got = attack.objective(attr, attack.reference(attr0))
    for i in range(5):
        order = sorted(range(18), key=lambda f: -abs(attr0[i].flatten()[f].item()))
        g = attr[i].flatten().abs()
        pairs = [(r, k - 1) for r in range(k - 1)] + [(k - 1, k + r) for r in range(k)]
        expected = -sum(g[order[a]] - g[order[b]] for a, b in pairs)
        # the pair sum telescopes to (top k) − (next k)
        telescoped = -(g[order[:k]].sum() - g[order[k : 2 * k]].sum())
        assert got[i].item() == pytest.approx(expected.item(), abs=1e-12)
        assert got[i].item() == pytest.approx(telescoped.item(), abs=1e-12)


def test_topk_score_is_minus_the_topk_intersection_metric():
    gen = torch.Generator().manual_seed(1)
    attr0 = torch.randn(16, 1, 5, 5, generator=gen)
    attr = attr0 + 0.7 * torch.randn(16, 1, 5, 5, generator=gen)
    attack = attacks.get("topk", k=6)
    expected = metrics.get("topk_intersection", k=6)(attr0, attr)
    assert torch.equal(-attack.score(attr, attack.reference(attr0)), expected)
    assert expected.min() < 1  # the case is not trivial


def test_topk_objective_is_minus_the_share_of_the_original_top_k():
    attr0 = torch.tensor([[5.0, -4.0, 1.0, 0.5]])
    attr = torch.tensor([[1.0, 1.0, -2.0, 4.0]])
    attack = attacks.get("topk", k=2)
    assert attack.objective(attr, attack.reference(attr0)).item() == pytest.approx(-2 / 8)


def test_target_region_mask_covers_the_region_in_every_channel():
    attack = attacks.get("target_region", region=(1, 2, 2, 3))
    mask = attack.reference(torch.zeros(3, 2, 4, 5)).view(2, 4, 5)
    expected = torch.zeros(4, 5)
    expected[1:3, 2:5] = 1
    assert torch.equal(mask, expected.expand(2, 4, 5))
    attr = torch.ones(1, 2, 4, 5)
    assert attack.objective(attr, attack.reference(attr)).item() == pytest.approx(6 / 20)


def test_target_region_on_volumes_and_signals_is_a_box_in_every_channel():
    box = attacks.get("target_region", region=(1, 0, 2, 2, 3, 1)).reference(torch.zeros(2, 2, 4, 3, 5)).view(2, 4, 3, 5)
    expected = torch.zeros(4, 3, 5)
    expected[1:3, 0:3, 2:3] = 1
    assert torch.equal(box, expected.expand(2, 4, 3, 5))
    interval = attacks.get("target_region", region=(3, 2)).reference(torch.zeros(1, 2, 6)).view(2, 6)
    assert interval.tolist() == [[0, 0, 0, 1, 1, 0]] * 2
    with pytest.raises(ValueError, match=r"must give 6 numbers .* 3 spatial dimension\(s\)"):
        attacks.get("target_region", region=(0, 0, 2, 2)).reference(torch.zeros(1, 1, 4, 4, 4))


def test_target_region_on_flat_inputs_is_a_feature_range():
    attack = attacks.get("target_region", region=(2, 3))
    assert attack.reference(torch.zeros(1, 6)).tolist() == [[0, 0, 1, 1, 1, 0]]


@pytest.mark.parametrize(
    "region, shape, match",
    [((0, 0, 4, 4), (1, 6), "must give 2 numbers"), ((3, 3), (1, 5), "does not fit"), ((0, 3, 2, 3), (1, 1, 4, 5), "does not fit")],
)
def test_target_region_that_does_not_match_the_input_raises(region, shape, match):
    with pytest.raises(ValueError, match=match):
        attacks.get("target_region", region=region).reference(torch.zeros(shape))


def test_mse_objective_is_the_squared_distance():
    attack = attacks.get("mse")
    a0, a = torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[1.0, 4.0], [3.0, 4.0]])
    assert attack.objective(a, attack.reference(a0)).tolist() == [4.0, 25.0]


def test_mass_center_objective_is_the_squared_shift():
    attack = attacks.get("mass_center")
    a0 = torch.zeros(1, 1, 3, 3)
    a0[0, 0, 0, 0] = 1
    a = torch.zeros(1, 1, 3, 3)
    a[0, 0, 2, 1] = 1
    assert attack.objective(a, attack.reference(a0)).item() == pytest.approx(4 + 1)


@pytest.mark.parametrize(
    "name", sorted(n for n in attacks.names() if issubclass(attacks.registry.entry(n).factory, ExplanationAttack))
)
def test_every_objective_is_differentiable_in_the_explanation(name):
    params = {"region": (0, 1)} if name == "target_region" else {"k": 2} if name in ("topk", "er_attack") else {}
    attack = attacks.get(name, **params)
    gen = torch.Generator().manual_seed(2)
    attr0, attr = (torch.randn(3, 6, generator=gen, dtype=torch.float64) for _ in range(2))
    attr.requires_grad_(True)
    (grad,) = torch.autograd.grad(attack.objective(attr, attack.reference(attr0)).sum(), attr)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # per-sample: the objective of sample i depends on sample i only
    for i, j in itertools.permutations(range(3), 2):
        (gi,) = torch.autograd.grad(attack.objective(attr, attack.reference(attr0))[i], attr)
        assert torch.equal(gi[j], torch.zeros(6, dtype=torch.float64))


def test_centre_of_mass_agrees_with_the_metric_packages():
    from salbench.metrics.center_of_mass import center_of_mass

    gen = torch.Generator().manual_seed(3)
    for shape in [(4, 3, 5, 6), (4, 7), (4, 2, 9)]:
        attr = torch.randn(shape, generator=gen, dtype=torch.float64)
        assert torch.allclose(centre_of_mass(attr), center_of_mass(attr), atol=1e-12)
