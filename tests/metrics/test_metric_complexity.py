"""Complexity metrics: sparseness (Gini index, Chalasani et al. 2020) and complexity (entropy, Bhatt et al. 2020)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from salbench import metrics
from salbench.metrics.complexity import ZERO_MAP
from salbench.metrics.base import Case

SHAPES = {"tabular": (4, 30), "signal": (4, 2, 40), "image": (4, 3, 8, 8), "volume": (4, 2, 4, 5, 6)}


def gini(values: np.ndarray) -> float:
    """Mean absolute difference over twice the mean (the textbook Gini coefficient), independently of the sort formula."""
    return np.abs(values[:, None] - values[None, :]).sum() / (2 * len(values) ** 2 * values.mean())


def entropy(values: np.ndarray) -> float:
    p = values / values.sum()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def random_map(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("kind", SHAPES)
def test_values_are_the_gini_and_entropy_of_the_channel_summed_magnitudes(kind):
    attr = random_map(SHAPES[kind])
    mass = (attr.abs().sum(1) if attr.dim() > 2 else attr.abs()).flatten(1).numpy()
    np.testing.assert_allclose(metrics.get("sparseness")(attr).numpy(), [gini(m) for m in mass], rtol=1e-12)
    np.testing.assert_allclose(metrics.get("complexity")(attr).numpy(), [entropy(m) for m in mass], rtol=1e-12)


def test_one_hot_and_uniform_maps_reach_the_bounds():
    d = 10
    one_hot = torch.zeros(1, d, dtype=torch.float64)
    one_hot[0, 3] = -2.0
    uniform = torch.full((1, d), 0.5, dtype=torch.float64)
    assert metrics.get("sparseness")(one_hot).item() == pytest.approx(1 - 1 / d)
    assert metrics.get("complexity")(one_hot).item() == 0.0
    assert metrics.get("sparseness")(uniform).item() == pytest.approx(0.0, abs=1e-15)
    assert metrics.get("complexity")(uniform).item() == pytest.approx(math.log(d))


@pytest.mark.parametrize("name", ["sparseness", "complexity"])
def test_invariant_to_scale_sign_and_permutation(name):
    attr = random_map((5, 3, 6, 6))
    metric = metrics.get(name)
    reference = metric(attr)
    perm = torch.randperm(36, generator=torch.Generator().manual_seed(1))
    permuted = attr.flatten(2)[:, :, perm].view_as(attr)
    for changed in (3.5 * attr, -attr, permuted):
        torch.testing.assert_close(metric(changed), reference, rtol=1e-12, atol=1e-12)


def test_a_random_map_lies_within_the_bounds():
    attr = random_map((50, 64))
    sparse, complexity = metrics.get("sparseness")(attr), metrics.get("complexity")(attr)
    assert torch.all((sparse > 0) & (sparse < 1 - 1 / 64))
    assert torch.all((complexity > 0) & (complexity < math.log(64)))


@pytest.mark.parametrize("name", ["sparseness", "complexity"])
def test_a_zero_map_is_nan_with_a_note(name):
    attr = random_map((3, 1, 4, 4))
    attr[1] = 0.0
    out = metrics.get(name).evaluate(Case(model=None, explainer=None, x=attr, target=torch.zeros(3), attr=attr))
    assert math.isnan(out.values[1]) and out.notes == [None, ZERO_MAP, None]
    assert not torch.isnan(out.values[[0, 2]]).any()


def test_nan_in_the_map_is_refused():
    attr = random_map((2, 6))
    attr[1, 2] = float("nan")
    with pytest.raises(ValueError, match="attr contains 1 NaN"):
        metrics.get("sparseness")(attr)


@pytest.mark.parametrize("name, quantus_name, tolerance", [("sparseness", "Sparseness", 1e-6), ("complexity", "Complexity", 1e-9)])
def test_agrees_with_quantus(name, quantus_name, tolerance):
    """Quantus 0.6.0 (abs=True, no normalisation) on the channel-summed |E| (N, 1, H, W). Its
    Sparseness adds 1e-7 to every value (G shrinks by Σa / (Σa + d·1e-7), about 1e-7 relative
    here) and its Complexity takes log(P + 1e-12): agreement within the stated tolerances."""
    quantus = pytest.importorskip("quantus")
    attr = random_map((6, 3, 8, 8), seed=4)
    summed = attr.abs().sum(1, keepdim=True).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = getattr(quantus, quantus_name)(normalise=False, abs=True, disable_warnings=True)(
            model=None, x_batch=np.zeros_like(summed), y_batch=np.zeros(6, dtype=int), a_batch=summed.copy(),
            channel_first=True,
        )
    np.testing.assert_allclose(metrics.get(name)(attr).numpy(), np.asarray(reference), rtol=tolerance)
