"""The threat model: projection, steepest-ascent steps, uniform draws, bounds checks, verification."""

from __future__ import annotations

import math

import pytest
import torch
from salbench.attacks.threat_model import ThreatModel
from salbench.core.seeding import SampleStreams
from torch import nn


class Sign(nn.Module):
    """Class 1 iff the first feature is positive: the label changes exactly at x₀ = 0."""

    def forward(self, x):
        first = x.flatten(1)[:, :1]
        return torch.cat([-first, first], dim=1)


def distinct(n, d):
    """n different samples of d features near 0 (each sample's draws come from its content)."""
    return torch.arange(n * d, dtype=torch.float64).view(n, d) * 1e-9


def threat(x, eps=1.0, norm="linf", bounds=None):
    return ThreatModel(Sign(), x, eps, norm, bounds)


def test_linf_projection_clips_each_coordinate_then_the_bounds():
    x = torch.tensor([[0.5, 0.5, 0.9]], dtype=torch.float64)
    t = threat(x, eps=0.2, bounds=(0.0, 1.0))
    out = t.project(torch.tensor([[0.0, 0.6, 1.5]], dtype=torch.float64))
    assert torch.equal(out, torch.tensor([[0.3, 0.6, 1.0]], dtype=torch.float64))


def test_l2_projection_scales_onto_the_sphere_and_keeps_interior_points():
    x = torch.zeros(2, 2, dtype=torch.float64)
    t = threat(x + 0.0, eps=1.0, norm="l2")
    out = t.project(torch.tensor([[3.0, 4.0], [0.3, -0.4]], dtype=torch.float64))
    assert torch.allclose(out, torch.tensor([[0.6, 0.8], [0.3, -0.4]], dtype=torch.float64))


def test_l2_projection_with_bounds_stays_in_the_ball():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 4, 4, generator=gen, dtype=torch.float64)
    t = threat(x, eps=0.5, norm="l2", bounds=(0.0, 1.0))
    out = t.project(x + torch.randn(x.shape, generator=gen, dtype=torch.float64))
    assert (out - x).flatten(1).norm(dim=1).max() <= 0.5 + 1e-12
    assert out.min() >= 0 and out.max() <= 1


def test_direction_is_the_unit_steepest_ascent_step():
    x = torch.zeros(3, 2, dtype=torch.float64)
    g = torch.tensor([[3.0, -4.0], [0.0, 0.0], [-1e-3, 0.0]], dtype=torch.float64)
    assert torch.equal(threat(x).direction(g), g.sign())
    step = threat(x, norm="l2").direction(g)
    assert torch.allclose(step, torch.tensor([[0.6, -0.8], [0.0, 0.0], [-1.0, 0.0]], dtype=torch.float64))


def test_linf_draws_are_uniform_in_the_box():
    x = distinct(4000, 5)
    delta = threat(x, eps=0.3).sample(SampleStreams(0, x)) - x
    assert delta.abs().max() <= 0.3
    # P(|δ_i| < ε/2) = 1/2; 20000 draws: 5σ = 5·0.5/√20000 ≈ 0.018
    assert abs((delta.abs() < 0.15).double().mean().item() - 0.5) < 0.018


def test_l2_draws_are_uniform_in_the_ball():
    d, n = 6, 4000
    x = distinct(n, d)
    delta = threat(x, eps=2.0, norm="l2").sample(SampleStreams(1, x)) - x
    radius = delta.norm(dim=1)
    assert radius.max() <= 2.0 + 1e-12
    # uniform in the ball: P(r ≤ ε·2^(-1/d)) = 1/2 (5σ = 0.04); directions centred (5σ of a mean of n
    # coordinates with variance E[r²]/d ≤ ε²/d: 5·2/√(n·d) ≈ 0.065)
    assert abs((radius <= 2.0 * 0.5 ** (1 / d)).double().mean().item() - 0.5) < 0.04
    assert delta.mean(dim=0).abs().max() < 0.065


def test_same_seed_gives_the_same_draw_and_a_sample_draws_the_same_in_any_batch():
    x = distinct(5, 4).float()
    t = threat(x, eps=0.1, norm="l2")
    first = t.sample(SampleStreams(5, x))
    assert torch.equal(first, t.sample(SampleStreams(5, x)))
    assert not torch.equal(first, t.sample(SampleStreams(6, x)))
    part = x[[3, 1]]
    assert torch.equal(threat(part, eps=0.1, norm="l2").sample(SampleStreams(5, part)), first[[3, 1]])


def test_label_is_the_prediction_on_x_and_keeps_label_compares_with_it():
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    t = threat(x)
    assert torch.equal(t.label, torch.tensor([1, 0]))
    assert torch.equal(t.keeps_label(torch.tensor([[0.5, 9.0], [0.5, 0.0]])), torch.tensor([True, False]))


def test_tensor_bounds_broadcast_per_feature():
    x = torch.tensor([[0.5, 5.0], [0.1, 9.0]])
    t = threat(x, eps=2.0, bounds=(torch.tensor([0.0, 4.0]), torch.tensor([1.0, 10.0])))
    assert torch.equal(t.project(x + 3.0), torch.tensor([[1.0, 7.0], [1.0, 10.0]]))


@pytest.mark.parametrize(
    "bounds, error, match",
    [
        ((1.0, 0.0), ValueError, "low <= high"),
        ((0.0, 0.5), ValueError, "outside bounds in sample"),
        ((torch.zeros(3), 1.0), ValueError, "does not broadcast"),
        ((float("nan"), 1.0), ValueError, "NaN"),
        (0.0, TypeError, "pair"),
        (("0", 1.0), TypeError, "float or a tensor"),
    ],
)
def test_bad_bounds_raise_clear_errors(bounds, error, match):
    with pytest.raises(error, match=match):
        threat(torch.full((2, 2), 0.75), bounds=bounds)


def test_unknown_norm_raises():
    with pytest.raises(ValueError, match="norm must be one of"):
        threat(torch.zeros(1, 2), norm="l1")


def test_verify_accepts_admissible_points_and_raises_on_violations():
    x = torch.tensor([[0.1, 0.5], [-0.5, 0.5]])
    t = threat(x, eps=0.25, norm="l2", bounds=(-1.0, 1.0))
    assert torch.equal(t.verify(x + torch.tensor([[0.0, 0.25], [0.1, 0.0]]), "probe"), torch.tensor([True, True]))
    with pytest.raises(RuntimeError, match=r"bug in attack probe: its result changes the label of sample\(s\) \[0\]"):
        t.verify(x + torch.tensor([[-0.2, 0.0], [0.0, 0.0]]), "probe")
    with pytest.raises(RuntimeError, match="leaves the l2 ball"):
        t.verify(x + torch.tensor([[0.0, 0.25 + 1e-3], [0.0, 0.0]]), "probe")
    with pytest.raises(RuntimeError, match="leaves the bounds"):
        threat(torch.tensor([[0.5, 0.95]]), eps=0.25, bounds=(-1.0, 1.0)).verify(torch.tensor([[0.5, 1.05]]), "probe")


def test_verify_tolerates_only_rounding():
    d = 10_000
    x = torch.zeros(1, d)
    t = threat(x + 1.0, eps=1.0, norm="l2")
    on_sphere = t.project(x + 1.0 + torch.full((1, d), 1.0))  # float32 rounding of a projection
    assert t.verify(on_sphere, "probe").all()
    assert math.isclose((on_sphere - 1.0).norm().item(), 1.0, rel_tol=1e-5)
