"""Expected gradients and gradient SHAP: the documented draws, completeness in expectation, agreement with Captum."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import GradientShap, NoiseTunnel
from salbench import explainers
from torch import nn

TOL = dict(rtol=1e-7, atol=1e-10)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def documented_draws(x, background, n, stdev, seed):
    """The draws as the docstring specifies them: α (n,), baseline rows (n,), noise (n, *sample)."""
    gen = torch.Generator().manual_seed(seed)
    alpha = torch.rand(n, generator=gen, dtype=x.dtype)
    rows = torch.randint(len(background), (n,), generator=gen)
    if not stdev:
        return alpha, rows, torch.zeros(n, *x.shape[1:], dtype=x.dtype)
    return alpha, rows, stdev * torch.randn((n, *x.shape[1:]), generator=gen, dtype=x.dtype)


@pytest.mark.parametrize("stdev", [0.0, 0.3])
def test_gradient_shap_matches_captum_given_the_same_draws(cnn, image_batch, monkeypatch, stdev):
    """Captum draws rows (sample i, draw j) at i·n + j from numpy's and torch's global generators; feed it ours."""
    x, t = image_batch
    background = torch.randn(7, *x.shape[1:], generator=torch.Generator().manual_seed(5), dtype=x.dtype)
    n, seed = 6, 3
    alpha, rows, noise = documented_draws(x, background, n, stdev, seed)
    monkeypatch.setattr(np.random, "choice", lambda k, size: rows.repeat(len(x)).numpy())
    monkeypatch.setattr(np.random, "uniform", lambda lo, hi, size: alpha.repeat(len(x)).numpy())
    monkeypatch.setattr(
        NoiseTunnel, "_add_noise_to_input",
        staticmethod(lambda inp, sd, k: inp.repeat_interleave(k, dim=0) + noise.repeat(len(x), *[1] * (x.dim() - 1))),
    )  # fmt: skip
    theirs = GradientShap(cnn).attribute(x, baselines=background, n_samples=n, stdevs=stdev, target=t)
    ours = explainers.get("gradient_shap", stdev=stdev, n_samples=n, background=background, seed=seed, batch_size=4)
    torch.testing.assert_close(ours(cnn, x, t), theirs, **TOL)


def test_expected_gradients_is_complete_in_expectation(smooth_mlp):
    """Σ_i E_i is the mean over the documented draws of s_j = (x − b_j)·∇f(b_j + α_j(x − b_j)), and that
    mean lies within 5 standard errors of f(x) − mean_b f(b)."""
    gen = torch.Generator().manual_seed(8)
    x, t = torch.randn(2, 4, generator=gen, dtype=torch.float64), torch.tensor([1, 2])
    background = 2 * torch.randn(5, 4, generator=gen, dtype=torch.float64)
    n = 3000
    attr = explainers.get("expected_gradients", n_samples=n, background=background, seed=1, batch_size=1000)(smooth_mlp, x, t)
    alpha, rows, _ = documented_draws(x, background, n, 0.0, 1)
    for i in range(2):
        b = background[rows]
        points = (b + alpha[:, None] * (x[i] - b)).requires_grad_(True)
        (grad,) = torch.autograd.grad(smooth_mlp(points)[:, t[i]].sum(), points)
        s = ((x[i] - b) * grad).sum(1)
        torch.testing.assert_close(attr[i].sum(), s.mean(), rtol=1e-10, atol=1e-10)
        gap = smooth_mlp(x[i : i + 1])[0, t[i]] - smooth_mlp(background)[:, t[i]].mean()
        assert abs(s.mean() - gap) < 5 * s.std() / n**0.5
        assert s.std() > 0  # the check above has power: the draws differ


def test_expected_gradients_of_a_linear_model_is_exact():
    """f linear: ∇f = w_c everywhere, so E = w_c ⊙ (x − mean of the drawn baselines) for any α."""
    model = nn.Linear(5, 3).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    t = torch.tensor([0, 2, 1, 0])
    background = torch.randn(9, 5, dtype=torch.float64)
    _, rows, _ = documented_draws(x, background, 20, 0.0, 4)
    attr = explainers.get("expected_gradients", n_samples=20, background=background, seed=4)(model, x, t)
    torch.testing.assert_close(attr, model.weight[t].detach() * (x - background[rows].mean(0)), **TOL)
    zero = explainers.get("expected_gradients", n_samples=3)(model, x, t)  # no background: the baseline 0
    torch.testing.assert_close(zero, model.weight[t].detach() * x, **TOL)


@pytest.mark.parametrize("batch_size", [None, 1, 4])
def test_a_sample_gets_the_same_map_in_any_batch(cnn, image_batch, batch_size):
    x, t = image_batch
    shap = explainers.get("gradient_shap", n_samples=5, background=x[:2].clone(), batch_size=batch_size)
    full = shap(cnn, x, t)
    torch.testing.assert_close(shap(cnn, x[[4, 1]], t[[4, 1]]), full[[4, 1]], **TOL)
    torch.testing.assert_close(explainers.get("gradient_shap", n_samples=5, background=x[:2].clone())(cnn, x, t), full, **TOL)


def test_gradient_shap_without_noise_is_expected_gradients(mlp, table_batch):
    x, t = table_batch
    params = dict(n_samples=7, background=x.flip(0), seed=2)
    torch.testing.assert_close(
        explainers.get("gradient_shap", stdev=0.0, **params)(mlp, x, t),
        explainers.get("expected_gradients", **params)(mlp, x, t), rtol=0, atol=0,
    )  # fmt: skip


def test_bad_backgrounds_are_refused(mlp, table_batch):
    x, t = table_batch
    with pytest.raises(ValueError, match=r"background rows have shape \(5,\), a sample of x \(6,\)"):
        explainers.get("expected_gradients", background=torch.zeros(3, 5, dtype=torch.float64))(mlp, x, t)
    with pytest.raises(ValueError, match="background contains 1 NaN"):
        explainers.get("expected_gradients", background=torch.tensor([[float("nan")] + [0.0] * 5]))
    with pytest.raises(ValueError, match="stdev must be a finite number >= 0"):
        explainers.get("gradient_shap", stdev=-1.0)


def test_a_train_background_is_drawn_from_the_training_inputs_with_the_seed(mlp, table_batch):
    """background="train": the runner binds background_size training rows drawn without replacement
    by the cell's seed (the rows named by randperm); the bound map equals the map with those rows."""
    x, t = table_batch
    x_train = torch.randn(40, x.shape[1], dtype=x.dtype)
    unbound = explainers.get("expected_gradients", n_samples=6, background="train", background_size=5, seed=1)
    bound = unbound.with_training_data(x_train, seed=3)
    rows = torch.randperm(40, generator=torch.Generator().manual_seed(3))[:5].sort().values
    torch.testing.assert_close(bound.background, x_train[rows], rtol=0, atol=0)
    direct = explainers.get("expected_gradients", n_samples=6, background=x_train[rows], seed=1)
    torch.testing.assert_close(bound(mlp, x, t), direct(mlp, x, t), rtol=0, atol=0)
    assert unbound.background == "train"  # binding returns a copy
    assert not torch.equal(unbound.with_training_data(x_train, seed=4).background, bound.background)
    with pytest.raises(ValueError, match='background="train" is bound to training inputs by the grid runner'):
        unbound(mlp, x, t)
    with pytest.raises(ValueError, match=r"parameter 'background' of explainer 'expected_gradients': got 'test'"):
        explainers.get("expected_gradients", background="test")
