"""The softplus surrogate: replaces every ReLU/LeakyReLU module, keeps the weights, is smooth."""

from __future__ import annotations

import pytest
import torch
from salbench import attacks, explainers
from salbench.attacks.surrogate import SmoothLeakyReLU, softplus_surrogate
from torch import nn


def second_order_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """∇_x Σ (∂f_c/∂x)²: zero almost everywhere for a piecewise-linear network."""
    x = x.detach().requires_grad_(True)
    grad = explainers.get("gradient")(model, x, target, create_graph=True)
    (hess,) = torch.autograd.grad(grad.square().sum(), x, allow_unused=True)
    return torch.zeros_like(x) if hess is None else hess


def test_surrogate_has_no_relu_and_the_model_keeps_its_own(blocks):
    surrogate = softplus_surrogate(blocks.model, beta=10.0)
    kinds = [type(m) for m in surrogate.modules()]
    assert nn.ReLU not in kinds and kinds.count(nn.Softplus) == 2
    assert all(m.beta == 10.0 for m in surrogate.modules() if isinstance(m, nn.Softplus))
    assert [type(m) for m in blocks.model.modules()].count(nn.ReLU) == 2


def test_surrogate_gives_nonzero_second_order_gradients_where_the_model_gives_zero(blocks):
    x, y = blocks.x[:8], blocks.y[:8]
    assert second_order_gradient(blocks.model, x, y).abs().max() == 0
    hess = second_order_gradient(softplus_surrogate(blocks.model, beta=10.0), x, y)
    assert (hess.flatten(1).abs().amax(dim=1) > 0).all()


def test_surrogate_computes_the_softplus_network_with_the_same_weights():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5), nn.LeakyReLU(0.2), nn.Linear(5, 2)).double()
    x = torch.randn(7, 4, dtype=torch.float64)
    beta = 3.0

    def softplus(z):
        return torch.log1p(torch.exp(beta * z)) / beta

    h = softplus(net[0](x))
    h = net[2](h)
    h = 0.2 * h + 0.8 * softplus(h)
    expected = net[4](h)
    surrogate = softplus_surrogate(net, beta)
    assert isinstance(surrogate[3], SmoothLeakyReLU)
    assert torch.allclose(surrogate(x), expected, atol=1e-12)


def test_smooth_leaky_relu_tends_to_leaky_relu():
    z = torch.linspace(-3, 3, 61, dtype=torch.float64)
    assert torch.allclose(SmoothLeakyReLU(0.1, beta=1e4)(z), nn.functional.leaky_relu(z, 0.1), atol=1e-4)


def test_surrogate_of_a_network_without_activation_modules_is_an_error():
    class FunctionalRelu(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            return torch.relu(self.fc(x))

    with pytest.raises(ValueError, match="no nn.ReLU or nn.LeakyReLU module.*surrogate_beta=None"):
        softplus_surrogate(FunctionalRelu(), beta=10.0)


def test_a_smooth_network_is_its_own_surrogate_so_one_attack_setting_serves_both():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.Softplus(beta=2.0), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))
    surrogate = softplus_surrogate(net, beta=10.0)
    assert surrogate is not net and [type(m) for m in surrogate] == [type(m) for m in net]
    x = torch.randn(5, 6)
    assert torch.equal(surrogate(x), net(x))
    target = net(x).argmax(1)
    default = attacks.get("topk", k=2, eps=0.1, steps=3)(net, explainers.get("gradient"), x, target)
    direct = attacks.get("topk", k=2, eps=0.1, steps=3, surrogate_beta=None)(net, explainers.get("gradient"), x, target)
    assert default.label_kept.all() and torch.equal(default.x_adv, direct.x_adv)


def test_without_the_surrogate_a_relu_network_gives_the_attack_no_gradient(blocks):
    """METHODS §3: on a ReLU net the gradient of a gradient explanation is zero a.e., so x′ stays x."""
    x, y = blocks.x[:16], blocks.y[:16]
    plain = attacks.get("topk", k=10, steps=5, surrogate_beta=None)(blocks.model, explainers.get("gradient"), x, y)
    smooth = attacks.get("topk", k=10, steps=5)(blocks.model, explainers.get("gradient"), x, y)
    assert torch.equal(plain.x_adv, x) and not plain.success.any()
    assert smooth.success.any()
