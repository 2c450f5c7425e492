"""Guided backpropagation and DeepLIFT: hand-worked cases, agreement with Captum, the model left as it was."""

from __future__ import annotations

import pytest
import torch
from captum.attr import DeepLift, GuidedBackprop
from salbench import explainers
from torch import nn

TOL = dict(rtol=1e-7, atol=1e-10)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def conv_net(dims: int, inplace: bool = False) -> nn.Sequential:
    """conv → ReLU → conv → ReLU → GAP → linear over 1, 2 or 3 spatial dimensions, float64."""
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
    pool = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[dims]
    torch.manual_seed(dims)
    return nn.Sequential(
        conv(2, 4, 3, padding=1), nn.ReLU(inplace=inplace), conv(4, 5, 3, padding=1), nn.ReLU(),
        pool(1), nn.Flatten(), nn.Linear(5, 3),
    ).double().eval()  # fmt: skip


SHAPES = {1: (5, 2, 9), 2: (5, 2, 6, 7), 3: (5, 2, 4, 5, 3)}


@pytest.fixture(params=[1, 2, 3])
def spatial_case(request):
    dims = request.param
    x = torch.randn(SHAPES[dims], generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    return conv_net(dims, inplace=dims == 2), x, torch.tensor([0, 1, 2, 1, 0])


def two_layer_net() -> nn.Sequential:
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1, bias=False)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 1.0]]))
        net[0].bias.copy_(torch.tensor([0.0, -1.0]))
        net[2].weight.copy_(torch.tensor([[1.0, 1.0]]))
    return net


def test_deeplift_hand_worked():
    """x = (3, 1), b = 0: u(x) = (2, 6), u(b) = (0, −1), y(b) = (0, 0); multipliers m = (2/2, 6/7);
    m_x = W2 diag(m) W1 = (1 + 12/7, −1 + 6/7); E = x ⊙ m_x = (57/7, −1/7), summing to f(x) − f(b) = 8
    (gradient × input would give (9, 0))."""
    x = torch.tensor([[3.0, 1.0]], dtype=torch.float64)
    attr = explainers.get("deeplift")(two_layer_net(), x, 0)
    torch.testing.assert_close(attr, torch.tensor([[57 / 7, -1 / 7]], dtype=torch.float64), **TOL)


def test_deeplift_with_a_baseline_hand_worked():
    """b = 1: u(b) = (0, 2), y(b) = (0, 2); m = (1, 4/4); E = (x − b) ⊙ (1 + 2, −1 + 1) = (6, 0)."""
    x = torch.tensor([[3.0, 1.0]], dtype=torch.float64)
    attr = explainers.get("deeplift", baseline=1.0)(two_layer_net(), x, 0)
    torch.testing.assert_close(attr, torch.tensor([[6.0, 0.0]], dtype=torch.float64), **TOL)


@pytest.mark.parametrize("baseline", [0.0, 0.3])
def test_deeplift_matches_captum_and_sums_to_the_difference(spatial_case, baseline):
    model, x, t = spatial_case
    ours = explainers.get("deeplift", baseline=baseline)(model, x, t)
    torch.testing.assert_close(ours, DeepLift(model).attribute(x, baselines=baseline, target=t).detach(), **TOL)
    gap = (model(x) - model(torch.full_like(x, baseline))).gather(1, t[:, None])[:, 0]
    torch.testing.assert_close(ours.flatten(1).sum(1), gap.detach(), **TOL)


def test_deeplift_matches_captum_on_smooth_activations(table_batch):
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 3)).double()
    x, t = table_batch
    ours = explainers.get("deeplift", baseline=-0.2)(model, x, t)
    torch.testing.assert_close(ours, DeepLift(model).attribute(x, baselines=-0.2, target=t).detach(), **TOL)


def test_deeplift_at_the_baseline_uses_the_local_slope(mlp):
    """x = b on some features: Δu = 0 there, and the multiplier falls back to σ'(u); the map is 0 there."""
    x = torch.zeros(2, 6, dtype=torch.float64)
    x[1, 0] = 1.0
    ours = explainers.get("deeplift")(mlp, x, 0)
    assert torch.isfinite(ours).all() and (ours[0] == 0).all() and (ours[1, 1:] == 0).all()
    torch.testing.assert_close(ours, DeepLift(mlp).attribute(x, baselines=0.0, target=0).detach(), **TOL)


def test_guided_backprop_matches_captum(spatial_case):
    model, x, t = spatial_case
    ours = explainers.get("guided_backprop")(model, x, t)
    torch.testing.assert_close(ours, GuidedBackprop(model).attribute(x, target=t), **TOL)
    assert not torch.allclose(ours, explainers.get("gradient")(model, x, t))


def test_guided_backprop_hand_worked():
    """x = (3, 1): both ReLUs open; the signal into the ReLUs is W2 = (1, −1) → (1, 0); E = W1ᵀ(1, 0) = (1, −1)."""
    net = two_layer_net()
    with torch.no_grad():
        net[2].weight.copy_(torch.tensor([[1.0, -1.0]]))
    attr = explainers.get("guided_backprop")(net, torch.tensor([[3.0, 1.0]], dtype=torch.float64), 0)
    torch.testing.assert_close(attr, torch.tensor([[1.0, -1.0]], dtype=torch.float64), **TOL)


def test_guided_backprop_without_relu_modules_is_the_gradient(smooth_mlp):
    x = torch.randn(3, 4, dtype=torch.float64)
    torch.testing.assert_close(
        explainers.get("guided_backprop")(smooth_mlp, x, 1), explainers.get("gradient")(smooth_mlp, x, 1), rtol=0, atol=0
    )


class Failing(nn.Module):
    """A ReLU network whose forward raises after the activations ran."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 3), nn.ReLU(inplace=True))

    def forward(self, x):
        self.body(x)
        raise RuntimeError("boom")


@pytest.mark.parametrize("name", ["deeplift", "guided_backprop"])
def test_the_model_is_left_as_it_was_also_after_an_error(name):
    model = Failing()
    with pytest.raises(RuntimeError, match="boom"):
        explainers.get(name)(model, torch.randn(2, 3), 0)
    assert model.body[1].inplace and all(not m._forward_hooks for m in model.modules())
    net = conv_net(2, inplace=True)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    explainers.get(name)(net, torch.randn(2, 2, 5, 5, dtype=torch.float64), 1)
    assert net[1].inplace and all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_deeplift_refuses_unsupported_modules_and_training_mode(image_batch):
    x, t = image_batch
    pooled = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(18, 3)).double()
    with pytest.raises(ValueError, match=r"deeplift does not support module '2' \(MaxPool2d\); supported leaf modules: Linear"):
        explainers.get("deeplift")(pooled, x, t)
    normed = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(192), nn.Linear(192, 3)).double()
    with pytest.raises(ValueError, match=r"deeplift needs Dropout, BatchNorm1d, .* in eval mode; in training mode: '1'"):
        explainers.get("deeplift")(normed, x, t)
    explainers.get("deeplift")(normed.eval(), x, t)
