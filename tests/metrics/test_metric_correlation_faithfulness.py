"""Faithfulness correlation (Bhatt et al. 2020) and monotonicity correlation (Nguyen & Martínez 2020)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from salbench import metrics
from salbench.metrics.base import Case
from salbench.metrics.faithfulness_correlation import random_subsets
from salbench.testing import fixture


class Constant(torch.nn.Module):
    def forward(self, x):
        return torch.zeros(len(x), 3, dtype=x.dtype) + torch.tensor([1.0, 2.0, 0.5], dtype=x.dtype)


def linear(n_in: int, seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(n_in, 3, bias=True).double()


# -- faithfulness correlation ---------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(5, 7), (3, 2, 6), (3, 2, 4, 5), (2, 1, 3, 3, 4)])
def test_faithfulness_correlation_is_one_for_gradient_times_input_of_a_linear_logit(shape):
    # logit drop when S goes to 0 is Σ_{i∈S} w_i x_i = Σ_{i∈S} (w ⊙ x)_i: a perfect correlation,
    # for tables, signals, images and volumes alike
    g = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    model = torch.nn.Sequential(torch.nn.Flatten(), linear(x[0].numel()))
    w = model[1].weight[2].detach().view(x.shape[1:])
    values = metrics.get("faithfulness_correlation", n_samples=30, subset_size=3, unit="feature")(model, x, w * x, 2)
    torch.testing.assert_close(values, torch.ones(len(x), dtype=torch.float64), rtol=0, atol=1e-12)
    # the negated map correlates perfectly negatively
    negated = metrics.get("faithfulness_correlation", n_samples=30, subset_size=3, unit="feature")(model, x, -w * x, 2)
    torch.testing.assert_close(negated, -torch.ones(len(x), dtype=torch.float64), rtol=0, atol=1e-12)


def test_faithfulness_correlation_of_a_constant_model_is_nan_with_a_note():
    x = torch.randn(3, 6, dtype=torch.float64)
    case = Case(
        model=Constant(),
        explainer=None,
        x=x,
        target=torch.tensor([0, 1, 2]),
        attr=torch.randn(3, 6, dtype=torch.float64),
    )
    values, curves, notes = metrics.get("faithfulness_correlation", n_samples=10, subset_size=2).evaluate(case)
    assert torch.isnan(values).all() and curves is None
    assert notes == ["output drops all equal: correlation undefined"] * 3


def test_faithfulness_correlation_of_random_maps_is_near_zero():
    # a map independent of the model: the per-sample correlations over 200 subsets have mean 0 and
    # sd ≈ 1/√200 ≈ 0.07 each; their mean over 40 samples has sd ≈ 0.011, |mean| < 0.05 at > 4 sd
    g = torch.Generator().manual_seed(2)
    x = torch.randn(40, 20, generator=g, dtype=torch.float64)
    model = linear(20)
    attr = torch.randn(40, 20, generator=g, dtype=torch.float64)
    values = metrics.get("faithfulness_correlation", n_samples=200, subset_size=5)(model, x, attr, 0)
    assert abs(values.mean().item()) < 0.05


def test_faithfulness_correlation_subsets_are_uniform_and_distinct():
    subsets = random_subsets(torch.zeros(1, 10), 4000, 10, 3, seed=0)[0]
    assert all(len(set(s)) == 3 for s in subsets.tolist())
    counts = torch.bincount(subsets.flatten(), minlength=10).double()
    # each unit is in a subset with probability 3/10: 1200 ± 29 (sd) of 4000
    assert ((counts - 1200).abs() < 5 * 29).all()


def test_faithfulness_correlation_needs_subsets_no_larger_than_a_sample():
    with pytest.raises(ValueError, match="subset_size must be at most the 6 units"):
        metrics.get("faithfulness_correlation", subset_size=7)(
            linear(6), torch.randn(2, 6, dtype=torch.float64), torch.randn(2, 6, dtype=torch.float64), 0
        )


def test_faithfulness_correlation_agrees_with_quantus_given_the_same_subsets(monkeypatch):
    quantus = pytest.importorskip("quantus")
    data = fixture("image")
    model, x = data.model.float(), data.x.float()
    attr = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    subsets = random_subsets(x, 10, 64, 5, seed=0)
    # Quantus draws one subset per run and sample (runs outer) with np.random.choice: hand it ours
    draws = iter([subsets[b, r].numpy() for r in range(10) for b in range(len(x))])
    monkeypatch.setattr(np.random, "choice", lambda *args, **kwargs: next(draws))
    ref = quantus.FaithfulnessCorrelation(
        nr_runs=10, subset_size=5, normalise=False, perturb_baseline=0.0, return_aggregate=False, disable_warnings=True
    )(model=model, x_batch=x.numpy(), y_batch=data.target.numpy(), a_batch=attr.numpy(), device="cpu")
    ours = metrics.get("faithfulness_correlation", n_samples=10, subset_size=5, unit="feature")(
        model, x, attr, data.target
    )
    torch.testing.assert_close(ours, torch.tensor(ref), rtol=0, atol=1e-5)  # float32 model


# -- monotonicity correlation ---------------------------------------------------------------------
def test_monotonicity_hand_worked_linear_logit_with_a_constant_baseline():
    # v_i = (w_i (x_i − 0))²; |a| = |w ⊙ x| has the same order: ρ = 1; a = 1/|w ⊙ x| reverses it: ρ = −1
    x = torch.tensor([[1.0, -2.0, 3.0, 0.5]], dtype=torch.float64)
    model = torch.nn.Linear(4, 2, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 1.0, -1.0, 4.0], [0.0, 0.0, 0.0, 0.0]]))
    contribution = model.weight[0].detach() * x  # 1, -2, -3, 2: |.| ranks 1, 2.5, 4, 2.5 (a tie)
    metric = metrics.get("monotonicity_correlation", baseline=0.0, output="logit")
    torch.testing.assert_close(metric(model, x, contribution, 0), torch.tensor([1.0], dtype=torch.float64))
    torch.testing.assert_close(metric(model, x, 1 / contribution, 0), torch.tensor([-1.0], dtype=torch.float64))
    # by hand, another map: |a| = (4, 3, 2, 1) vs v = (1, 4, 9, 4): ranks (4, 3, 2, 1) vs (1, 2.5, 4, 2.5)
    ra, rv = torch.tensor([4.0, 3, 2, 1]), torch.tensor([1.0, 2.5, 4, 2.5])
    expected = ((ra - ra.mean()) * (rv - rv.mean())).sum() / ((ra - ra.mean()).norm() * (rv - rv.mean()).norm())
    got = metric(model, x, torch.tensor([[4.0, 3.0, 2.0, 1.0]], dtype=torch.float64), 0)
    torch.testing.assert_close(got, expected.double().view(1))


def test_monotonicity_with_uniform_draws_estimates_the_expected_change():
    # logit of a linear model: v_i = w_i² E[(x_i − X_i)²], X_i ~ U[0, 1]: for x_i = 0.5 that is w_i²/12
    model = torch.nn.Linear(5, 2, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0], [0.0] * 5]))
    x = torch.full((1, 5), 0.5, dtype=torch.float64)
    metric = metrics.get("monotonicity_correlation", n_samples=2000, output="logit")
    _, changes, _ = metric.correlation(model, x, torch.ones(1, 5, dtype=torch.float64), 0)
    torch.testing.assert_close(
        changes[0], torch.tensor([1.0, 4, 9, 16, 25], dtype=torch.float64) / 12, rtol=0.1, atol=0
    )
    assert metric(model, x, model.weight[:1].detach(), 0).item() == 1.0


def test_monotonicity_of_a_constant_model_is_nan_with_a_note():
    x = torch.rand(2, 1, 3, 3, dtype=torch.float64)
    case = Case(
        model=Constant(),
        explainer=None,
        x=x,
        target=torch.tensor([0, 1]),
        attr=torch.rand(2, 1, 3, 3, dtype=torch.float64),
    )
    values, _, notes = metrics.get("monotonicity_correlation", n_samples=3).evaluate(case)
    assert torch.isnan(values).all()
    assert notes == ["output changes v_i all equal: correlation undefined"] * 2


def test_monotonicity_of_random_maps_is_near_zero():
    # Spearman of 30 units for a map independent of the model: sd ≈ 1/√29 ≈ 0.19 per sample; mean of
    # 40 samples sd ≈ 0.03, |mean| < 0.15 at 5 sd
    g = torch.Generator().manual_seed(4)
    x = torch.rand(40, 30, generator=g, dtype=torch.float64)
    attr = torch.randn(40, 30, generator=g, dtype=torch.float64)
    values = metrics.get("monotonicity_correlation", n_samples=5)(linear(30), x, attr, 1)
    assert abs(values.mean().item()) < 0.15


def test_monotonicity_agrees_with_quantus_with_a_constant_baseline():
    quantus = pytest.importorskip("quantus")
    data = fixture("image")
    model, x = data.model.float(), data.x.float()
    attr = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    ref = quantus.MonotonicityCorrelation(
        nr_samples=2, perturb_baseline=0.0, normalise=False, return_aggregate=False, disable_warnings=True
    )(model=model, x_batch=x.numpy(), y_batch=data.target.numpy(), a_batch=attr.numpy(), device="cpu")
    ours = metrics.get("monotonicity_correlation", baseline=0.0, unit="feature")(model, x, attr, data.target)
    torch.testing.assert_close(ours.double(), torch.tensor(ref, dtype=torch.float64), rtol=0, atol=1e-6)
    assert not any(math.isnan(v) for v in ref)
