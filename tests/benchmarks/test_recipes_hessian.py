"""Exact-H and SSR (R2ET's baselines): the exact Hessian norm and SSR's β against autograd's full input Hessian and
by hand, the parameter gradient through them, training, determinism, parameter checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from salbench import datasets, models, recipes
from salbench.datasets import load_dataset
from salbench.recipes.penalties import exact_hessian_norm, hessian_top_eigenvalue
from torch import nn

from .test_recipes_robust import _Functional

BLOCKS = {"size": 8, "delta": 3.0, "n_train": 48, "n_val": 16, "n_test": 16}


@pytest.fixture(autouse=True)
def _fresh_data_cache():
    datasets._cache.clear()
    yield
    datasets._cache.clear()


def sample_hessians(model, x, y):
    """(N, d, d): torch.autograd.functional.hessian of each sample's own cross-entropy (independent computation)."""
    return torch.stack([
        torch.autograd.functional.hessian(
            lambda v, i=i: F.cross_entropy(model(v.reshape(x.shape[1:])[None]), y[i : i + 1]), x[i].flatten()
        )
        for i in range(len(x))
    ])


def mlp(activation: nn.Module, n_in: int = 5, classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(n_in, 7), activation, nn.Linear(7, classes)).double()


def test_linear_two_class_model_by_hand():
    """f(x) = Wx + b, two classes: H = p0 p1 (w1 − w0)(w1 − w0)ᵀ, rank one, so ‖H‖_F = λ_max = p0 p1 ‖w1 − w0‖²."""
    model = nn.Linear(2, 2).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, -1.0]]))  # w1 − w0 = (2, −3), ‖·‖² = 13
        model.bias.zero_()
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)  # logits (0, 0) and (3, 2)
    p1 = torch.sigmoid(torch.tensor([0.0, -1.0], dtype=torch.float64))
    expected = p1 * (1 - p1) * 13  # 13/4 at x = 0
    y = torch.tensor([0, 1])
    torch.testing.assert_close(exact_hessian_norm(model, x, y), expected)
    torch.testing.assert_close(hessian_top_eigenvalue(model, x), expected)
    assert exact_hessian_norm(model, x[:1], y[:1]).item() == pytest.approx(13 / 4)


@pytest.mark.parametrize("activation", [nn.Softplus(beta=3.0), nn.ReLU()], ids=["softplus", "relu"])
def test_exact_norm_is_the_frobenius_norm_of_autograd_s_hessian(activation):
    model = mlp(activation)
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 1])
    expected = sample_hessians(model, x, y).flatten(1).norm(dim=1)
    torch.testing.assert_close(exact_hessian_norm(model, x, y), expected, rtol=1e-10, atol=1e-12)


def test_exact_norm_of_an_image_model_counts_every_pixel_and_channel():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Softplus(), nn.Flatten(), nn.Linear(3 * 16, 2)).double()
    x = torch.randn(2, 2, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y = torch.tensor([1, 0])
    expected = sample_hessians(model, x, y).flatten(1).norm(dim=1)
    torch.testing.assert_close(exact_hessian_norm(model, x, y), expected, rtol=1e-10, atol=1e-12)


def test_ssr_beta_is_the_largest_hessian_eigenvalue_of_a_relu_network_for_any_label():
    """Piecewise-linear logits: the loss's input Hessian is Jᵀ(diag p − ppᵀ)J whatever the label."""
    model = mlp(nn.ReLU())
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    beta = hessian_top_eigenvalue(model, x)
    for y in (torch.tensor([0, 1, 2, 1]), torch.tensor([2, 2, 0, 0])):
        expected = torch.linalg.eigvalsh(sample_hessians(model, x, y))[:, -1]
        torch.testing.assert_close(beta, expected, rtol=1e-9, atol=1e-12)


def test_ssr_beta_of_a_smooth_network_is_the_gauss_newton_eigenvalue():
    """Softplus: β is the top eigenvalue of Jᵀ(diag p − ppᵀ)J (J from torch.autograd.functional.jacobian), not of the
    full Hessian, which adds Σ_j (p_j − δ_jy) ∇²f_j."""
    model = mlp(nn.Softplus(beta=3.0))
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    expected = []
    for xi in x:
        jac = torch.autograd.functional.jacobian(lambda v: model(v[None])[0], xi)  # (C, d)
        p = torch.softmax(model(xi[None])[0], 0).detach()
        expected.append(torch.linalg.eigvalsh(jac.T @ (torch.diag(p) - torch.outer(p, p)) @ jac)[-1])
    torch.testing.assert_close(hessian_top_eigenvalue(model, x), torch.stack(expected), rtol=1e-9, atol=1e-12)
    full = torch.linalg.eigvalsh(sample_hessians(model, x, torch.tensor([0, 1, 2])))[:, -1]
    assert not torch.allclose(full, torch.stack(expected), rtol=1e-3)


def test_ssr_gradient_is_finite_on_saturated_softmax():
    """p = (1, 0) to float precision: √p's gradient is taken through exp(log_softmax / 2), so nothing is infinite."""
    model = nn.Linear(2, 2).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[400.0, 0.0], [0.0, 0.0]]))
        model.bias.zero_()
    beta = hessian_top_eigenvalue(model, torch.tensor([[1.0, 0.0]], dtype=torch.float64)).sum()
    beta.backward()
    assert torch.isfinite(model.weight.grad).all() and beta.item() == pytest.approx(0.0, abs=1e-100)


def test_exact_norm_of_a_saturated_softmax_is_zero_with_a_finite_gradient():
    """p = (1, 0) exactly in float32 (logit gap 400): the Hessian is 0, and the square root's
    infinite gradient at 0 made the parameters' gradient nan (wdbc's exact_hessian training in r2et2024)."""
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2))
        model[0].bias.zero_()
        model[2].weight.copy_(torch.tensor([[400.0, 0.0], [0.0, 0.0]]))
        model[2].bias.zero_()
    x = torch.tensor([[1.0, 0.5], [0.001, 0.2]])  # logit gaps 400 (saturated) and 0.4
    norm = exact_hessian_norm(model, x, torch.tensor([0, 1]))
    norm.sum().backward()
    assert norm[0].item() == 0.0 and norm[1].item() > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", ["exact_hessian", "ssr"])
def test_parameter_gradient_of_the_regularised_loss_matches_finite_differences(name):
    data = load_dataset("wdbc", {})
    x, y = data.train.x[:4].double(), data.train.y[:4]
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(30, 3), nn.Softplus(), nn.Linear(3, 2)).double()
    recipe = recipes.get(name, lam=1.0, adaptive=False)
    names = [n for n, _ in model.named_parameters()]

    def loss(*values):
        wrapped = _Functional(model, dict(zip(names, values)))
        return recipe.batch_loss(wrapped, x, y, data=data, generator=torch.Generator().manual_seed(0))

    values = tuple(p.detach().clone().requires_grad_(True) for p in model.parameters())
    assert torch.autograd.gradcheck(loss, values, eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["exact_hessian", "ssr"])
def test_the_loss_is_ce_plus_the_weighted_mean_penalty(name):
    torch.manual_seed(0)
    model, data = mlp(nn.Softplus(), n_in=30, classes=2), load_dataset("wdbc", {})
    x, y = data.train.x[:6].double(), data.train.y[:6]
    penalty = (exact_hessian_norm(model, x, y) if name == "exact_hessian" else hessian_top_eigenvalue(model, x)).mean()
    ce = F.cross_entropy(model(x), y)
    fixed = recipes.get(name, lam=0.5, adaptive=False).batch_loss(model, x, y, data=data, generator=None)
    adaptive = recipes.get(name, lam=0.5).batch_loss(model, x, y, data=data, generator=None)
    torch.testing.assert_close(fixed, ce + 0.5 * penalty)
    torch.testing.assert_close(adaptive, ce + 0.5 * (ce + 1))  # λ_eff·R = λ(CE + 1) by construction


def small_cnn(data):
    torch.manual_seed(0)
    return models.build("small_cnn", {"channels": (3, 4)}, data.input_shape, data.num_classes)


@pytest.mark.parametrize("name", ["exact_hessian", "ssr"])
def test_adam_on_the_full_batch_loss_decreases_it(name):
    data = load_dataset("synthetic_blocks", BLOCKS)
    model, recipe = small_cnn(data), recipes.get(name, lam=1.0, adaptive=False)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = recipe.batch_loss(model, data.train.x, data.train.y, data=data, generator=None)
        optimiser.zero_grad()
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("name", ["exact_hessian", "ssr"])
def test_fine_tuning_is_deterministic_under_a_seed(name):
    data = load_dataset("synthetic_blocks", BLOCKS)

    def fitted(seed):
        model = small_cnn(data)
        recipes.get(name, epochs=2, batch_size=16).fit(model, data, seed=seed)
        return model.state_dict()

    a, b, c = fitted(1), fitted(1), fitted(2)
    assert all(torch.equal(v, b[k]) for k, v in a.items())
    assert not all(torch.equal(v, c[k]) for k, v in a.items())


@pytest.mark.parametrize("name, params, match", [
    ("exact_hessian", {"lam": -1.0}, "lam"), ("ssr", {"lam": -0.5}, "lam"), ("ssr", {"epochs": 0}, "epochs"),
    ("exact_hessian", {"base": {"epochs": 0}}, "epochs"),
])
def test_bad_parameters_are_named(name, params, match):
    with pytest.raises(ValueError, match=match):
        recipes.get(name, **params)


def test_parameters_and_base():
    assert list(recipes.validate_params("ssr", {})) == ["lam", "adaptive", "base", "epochs", "lr", "batch_size", "softplus"]
    assert recipes.validate_params("exact_hessian", {"base": {"epochs": 7}})["base"]["epochs"] == 7
