"""The loss-gradient explainer (R2ET's I(x)): an independent autograd computation, the softmax relation on a
linear model by hand, the one-logit (TwoLogits) convention, and the recipes' use of the same code."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from salbench import explainers
from salbench.models.external import TwoLogits
from salbench.recipes import penalties
from torch import nn

from .conftest import Softplus5, make_cnn, make_mlp


@pytest.mark.parametrize("absolute", [False, True])
@pytest.mark.parametrize("make, shape", [(make_mlp, (5, 6)), (make_cnn, (3, 3, 6, 6))])
def test_matches_the_gradient_of_each_sample_s_own_loss(make, shape, absolute):
    """Per sample, torch.autograd.functional.jacobian of that sample's cross-entropy alone."""
    model = make(Softplus5)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    t = torch.arange(len(x)) % 3
    expected = torch.stack([
        torch.autograd.functional.jacobian(lambda v, i=i: F.cross_entropy(model(v[None]), t[i : i + 1]), x[i])
        for i in range(len(x))
    ])
    got = explainers.get("loss_gradient", absolute=absolute)(model, x, t)
    torch.testing.assert_close(got, expected.abs() if absolute else expected, rtol=1e-10, atol=1e-12)


def test_linear_model_by_hand():
    """f(x) = Wx, W rows w0 = (1, 0, 2), w1 = (0, 1, −1), w2 = (1, 1, 0); x = (1, 0, 0): logits (1, 0, 1).

    p = (e, 1, e) / (2e + 1); ∇L for target c = −Σ_j (δ_jc − p_j) w_j = Σ_j p_j w_j − w_c. For the two
    classes {0, 1} alone (a 2-row W) it is −(1 − p_c)(w_c − w_other).
    """
    w = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0], [1.0, 1.0, 0.0]], dtype=torch.float64)
    model = nn.Linear(3, 3, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w)
    x = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    e = torch.e
    p = torch.tensor([e, 1.0, e], dtype=torch.float64) / (2 * e + 1)
    mean_row = p @ w  # Σ_j p_j w_j = (2e, e + 1, 2e − 1) / (2e + 1)
    torch.testing.assert_close(mean_row, torch.tensor([2 * e, e + 1, 2 * e - 1], dtype=torch.float64) / (2 * e + 1))
    explain = explainers.get("loss_gradient", absolute=False)
    for c in range(3):
        torch.testing.assert_close(explain(model, x, torch.tensor([c]))[0], mean_row - w[c])

    two = nn.Linear(3, 2, bias=False).double()
    with torch.no_grad():
        two.weight.copy_(w[:2])
    p0 = torch.sigmoid(torch.tensor(1.0, dtype=torch.float64))  # logits (1, 0)
    for c, p_c in ((0, p0), (1, 1 - p0)):
        expected = -(1 - p_c) * (w[c] - w[1 - c])
        torch.testing.assert_close(explain(two, x, torch.tensor([c]))[0], expected)
        gradient = explainers.get("gradient")(two, x, torch.tensor([c]))[0]  # ∇f_c = w_c
        torch.testing.assert_close(gradient, w[c])


def test_one_logit_model_gives_the_binary_cross_entropy_gradient():
    """TwoLogits (−z/2, z/2): target 1 → −(1 − σ(z))∇z, target 0 → σ(z)∇z; the raw one-output model has a
    constant softmax, so its loss gradient is zero (why the explainer is compared on the wrapped model)."""
    torch.manual_seed(0)
    raw = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    x = torch.randn(6, 4, dtype=torch.float64)
    z = raw(x)[:, 0].detach()
    dz = explainers.get("gradient")(raw, x, torch.zeros(6, dtype=torch.long))
    explain = explainers.get("loss_gradient", absolute=False)
    ones, zeros = torch.ones(6, dtype=torch.long), torch.zeros(6, dtype=torch.long)
    torch.testing.assert_close(explain(TwoLogits(raw), x, ones), -(1 - torch.sigmoid(z))[:, None] * dz)
    torch.testing.assert_close(explain(TwoLogits(raw), x, zeros), torch.sigmoid(z)[:, None] * dz)
    assert torch.equal(explain(raw, x, zeros), torch.zeros_like(x))


def test_absolute_is_the_default_and_the_recipes_use_the_same_function():
    assert explainers.get("loss_gradient").absolute is True
    from salbench.explainers.loss_gradient import loss_gradient

    assert penalties.loss_gradient is loss_gradient


def test_keeps_the_graph_to_the_input_when_it_requires_a_gradient():
    """With create_graph and an x that requires a gradient, the map is differentiable in x (the Hessian)."""
    model = make_mlp(Softplus5)
    x = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
    grad = explainers.get("loss_gradient", absolute=False)(model, x, torch.tensor([0, 2]), create_graph=True)
    (second,) = torch.autograd.grad(grad[:, 0].sum(), x)
    hessian = torch.autograd.functional.hessian(lambda v: F.cross_entropy(model(v[None]), torch.tensor([0])), x[0].detach())
    torch.testing.assert_close(second[0], hessian[0], rtol=1e-10, atol=1e-12)
