"""Perturbation building blocks: step schedule, units, baselines (blur against scipy)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from salbench.metrics.perturbation import (
    baseline_input,
    default_step,
    resolve_unit,
    step_counts,
    unit_mask_shape,
    unit_scores,
)
from scipy.ndimage import gaussian_filter


@pytest.mark.parametrize(
    "n_units, step, fraction, expected",
    [
        (10, 3, 1.0, [0, 3, 6, 9, 10]),
        (4, 2, 0.75, [0, 2, 3]),
        (4, 1, 1.0, [0, 1, 2, 3, 4]),
        (1024, 64, 0.5, list(range(0, 513, 64))),  # ID-ExpO's CIFAR-10 setting: 8 steps
        (10, 20, 1.0, [0, 10]),
        (10, 1, 0.01, [0, 1]),                     # at least one unit
        (10, 1, 0.3, [0, 1, 2, 3]),                # 0.3 · 10 rounds to 3 despite binary rounding
    ],
)
def test_step_counts(n_units, step, fraction, expected):
    assert step_counts(n_units, step, fraction).tolist() == expected


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 500), st.integers(1, 70), st.floats(1e-3, 1.0))
def test_step_counts_are_increasing_and_end_at_the_fraction(n_units, step, fraction):
    counts = step_counts(n_units, step, fraction)
    assert counts[0] == 0 and (counts.diff() > 0).all() and (counts.diff() <= step).all()
    assert abs(counts[-1].item() - max(1.0, fraction * n_units)) <= 0.5


def test_default_step():
    assert [default_step(u) for u in (30, 64, 65, 784, 1024, 224 * 224)] == [1, 1, 2, 13, 16, 784]


def test_units_and_their_scores():
    image = torch.arange(12.0).view(1, 3, 2, 2) - 6
    assert resolve_unit("auto", image) == "pixel" and resolve_unit("auto", image.flatten(1)) == "feature"
    assert unit_scores(image, "pixel", absolute=False).tolist() == [[-6.0, -3.0, 0.0, 3.0]]
    assert unit_scores(image, "pixel", absolute=True).tolist() == [[10.0, 9.0, 8.0, 9.0]]
    assert unit_scores(image, "feature", absolute=True).flatten().tolist() == [6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5]


def test_signal_and_volume_units_are_positions_with_all_their_channels():
    signal = torch.tensor([[[1.0, -2.0, 3.0], [10.0, 20.0, -30.0]]])  # (N, C, L) = (1, 2, 3)
    assert resolve_unit("auto", signal) == "pixel"
    assert unit_scores(signal, "pixel", absolute=False).tolist() == [[11.0, 18.0, -27.0]]
    assert unit_mask_shape(signal, "pixel") == (1, 3)
    volume = torch.arange(16.0).view(1, 2, 2, 2, 2)  # (N, C, D, H, W)
    assert resolve_unit("auto", volume) == "pixel" and unit_mask_shape(volume, "pixel") == (1, 2, 2, 2)
    assert unit_scores(volume, "pixel", absolute=False).tolist() == [[8.0, 10.0, 12.0, 14.0, 16.0, 18.0, 20.0, 22.0]]


def test_mean_baseline_is_per_sample_per_channel():
    x = torch.tensor([[[[1.0, 3.0]], [[10.0, 20.0]]], [[[0.0, 0.0]], [[-1.0, 1.0]]]])
    assert baseline_input(x, "mean", 1.0).tolist() == [[[[2.0, 2.0]], [[15.0, 15.0]]], [[[0.0, 0.0]], [[0.0, 0.0]]]]
    assert baseline_input(torch.tensor([[1.0, 2.0, 6.0]]), "mean", 1.0).tolist() == [[3.0, 3.0, 3.0]]
    assert baseline_input(torch.zeros(2, 3), -0.5, 1.0).unique().tolist() == [-0.5]


@pytest.mark.parametrize(
    "sigma, shape",
    [(0.5, (2, 3, 7, 5)), (1.3, (1, 1, 9, 9)), (5.0, (2, 2, 6, 8)), (1.3, (2, 3, 11)), (0.8, (2, 2, 5, 6, 7))],
)
def test_blur_matches_scipy_gaussian_filter(sigma, shape):
    """Images, signals (N, C, L) and volumes (N, C, D, H, W): blurred over the spatial dims only."""
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    spatial = (sigma,) * (len(shape) - 2)
    expected = gaussian_filter(x.numpy(), sigma=(0, 0, *spatial), mode="nearest", truncate=3.0)
    assert torch.allclose(baseline_input(x, "blur", sigma), torch.from_numpy(expected), atol=1e-12)
