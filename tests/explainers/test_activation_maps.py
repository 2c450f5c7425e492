"""The CAM family (salbench.explainers.activation_map and its subclasses): hand-worked weights,
identities between the variants, Score-CAM against a loop over its channels, and 1-D signals and
3-D volumes as well as images."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam
from salbench import explainers
from torch import nn

from .conftest import Softplus5

CAMS = ["gradcam", "gradcam_plusplus", "hirescam", "layercam", "xgradcam", "scorecam", "eigencam"]
GRADIENT_CAMS = ["gradcam", "gradcam_plusplus", "hirescam", "layercam", "xgradcam"]
CONV = {1: (nn.Conv1d, nn.AdaptiveAvgPool1d), 2: (nn.Conv2d, nn.AdaptiveAvgPool2d), 3: (nn.Conv3d, nn.AdaptiveAvgPool3d)}
SIZE = {1: (12,), 2: (6, 6), 3: (3, 4, 4)}
MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


def gap_net(dims: int, activation: type[nn.Module] = nn.ReLU, seed: int = 0, stride: int = 1) -> nn.Sequential:
    """conv → act → conv → act → global average pool → linear (3 classes), float64, over ``dims`` spatial dims."""
    conv, pool = CONV[dims]
    torch.manual_seed(seed)
    return nn.Sequential(
        conv(2, 4, 3, padding=1, stride=stride), activation(), conv(4, 5, 3, padding=1), activation(),
        pool(1), nn.Flatten(), nn.Linear(5, 3),
    ).double().eval()


def batch(dims: int, n: int = 4, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, *SIZE[dims], generator=gen, dtype=torch.float64), torch.arange(n) % 3


def readout(gradient: torch.Tensor) -> nn.Sequential:
    """Identity layer "0" then a linear read-out whose class-0 weights are ``gradient`` (K, *s): at
    layer "0" the activations A are the input and ∂f_0/∂A = ``gradient`` exactly."""
    head = nn.Linear(gradient.numel(), 2).double()
    with torch.no_grad():
        head.weight.zero_()
        head.weight[0] = gradient.flatten()
    return nn.Sequential(nn.Identity(), nn.Flatten(), head).eval()


# A (2 channels × 3 positions) and G = ∂f_0/∂A, and each method's map (before the ReLU) by hand:
A = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 3.0]], dtype=torch.float64)
G = torch.tensor([[1.0, -1.0, 2.0], [0.5, 0.5, -1.0]], dtype=torch.float64)
BY_HAND = {
    # α_k = mean_s G: (2/3, 0)
    "gradcam": [2 / 3, 4 / 3, 0.0],
    # Σ_k G ⊙ A
    "hirescam": [1.0, -1.5, -3.0],
    # Σ_k ReLU(G) ⊙ A
    "layercam": [1.0, 0.5, 0.0],
    # w = Σ_s A G / Σ_s A: (1 − 2 + 0)/3, (0 + 0.5 − 3)/4
    "xgradcam": [-1 / 3, -2 / 3 - 0.625, -1.875],
    # ΣA = (3, 4); α = G²/(2G² + ΣA·G³): ch0 (1/5, −1, 1/8), ch1 (1/4, 1/4, −1/2);
    # w = Σ α ReLU(G): 1/5 + 2/8 = 0.45, 1/8 + 1/8 = 0.25
    "gradcam_plusplus": [0.45, 0.9 + 0.25, 0.75],
}


@pytest.mark.parametrize("shape", [(3,), (1, 3), (1, 1, 3)], ids=["signal", "image", "volume"])
@pytest.mark.parametrize("name", GRADIENT_CAMS)
def test_gradient_cams_by_hand(name, shape):
    """The same 2 × 3 activations laid out as a signal, an image and a volume give the same map."""
    model, x = readout(G.view(2, *shape)), A.view(1, 2, *shape)
    signed = explainers.get(name, layer="0", relu=False, upsample=False)(model, x, 0)
    expected = torch.tensor(BY_HAND[name], dtype=torch.float64).view(1, 1, *shape)
    torch.testing.assert_close(signed, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(explainers.get(name, layer="0")(model, x, 0), expected.relu().expand_as(x))


@pytest.mark.parametrize("name", ["gradcam_plusplus", "xgradcam"])
def test_undefined_weights_are_zero(name):
    """Grad-CAM++: ΣA = −2 and G = 1 make the denominator 2G² + ΣA·G³ zero; XGradCAM: ΣA = 0.
    That channel gets weight 0 (no inf or NaN); the other channel is untouched."""
    a = torch.tensor([[[-1.0, -1.0, 0.0], [1.0, 2.0, 1.0]]], dtype=torch.float64)
    a = a if name == "gradcam_plusplus" else torch.tensor([[[1.0, -1.0, 0.0], [1.0, 2.0, 1.0]]], dtype=torch.float64)
    g = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    maps = explainers.get(name, layer="0", relu=False, upsample=False)(readout(g), a, 0)
    # the second channel alone: Grad-CAM++ ΣA = 4, α(1) = 1/(2 + 4) = 1/6, w = 1/6; XGradCAM w = 2/4
    weight = 1 / 6 if name == "gradcam_plusplus" else 0.5
    torch.testing.assert_close(maps, weight * a[:, 1:], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_hirescam_is_gradcam_and_cam_on_a_gap_linear_head(dims):
    """After GAP + linear, G_k(s) = w_ck / Z for every s: HiResCAM = Grad-CAM, and CAM = Z · Grad-CAM."""
    model, (x, t) = gap_net(dims), batch(dims)
    gradcam = explainers.get("gradcam", relu=False)(model, x, t)
    torch.testing.assert_close(explainers.get("hirescam", relu=False)(model, x, t), gradcam, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(explainers.get("cam")(model, x, t), math.prod(SIZE[dims]) * gradcam, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dims", [1, 3])
@pytest.mark.parametrize("relu", [True, False])
def test_gradcam_matches_captum_on_signals_and_volumes(dims, relu):
    """Captum's LayerGradCam (means over every dimension after the channel) + interpolate(linear/trilinear)."""
    model, (x, t) = gap_net(dims, stride=2), batch(dims)
    ours = explainers.get("gradcam", relu=relu)(model, x, t)
    raw = LayerGradCam(model, model[3]).attribute(x, target=t, relu_attributions=relu)
    assert raw.shape[2:] != x.shape[2:]  # the stride makes the resizing matter
    theirs = LayerAttribution.interpolate(raw, x.shape[2:], MODE[dims])
    torch.testing.assert_close(ours, theirs.expand_as(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dims", [1, 3])
def test_resizing_is_linear_along_each_axis(dims):
    """A layer map (0, 1) along the last axis, resized ×2 with align_corners=False: (0, 1/4, 3/4, 1),
    constant along the other axes. The layer is an Identity after pairwise averaging of x's last axis."""
    shape, pool = ((2,), nn.AvgPool1d(2)) if dims == 1 else ((1, 1, 2), nn.AvgPool3d((1, 1, 2)))
    net = nn.Sequential(pool, *readout(torch.ones(1, *shape, dtype=torch.float64))).eval()
    x = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64).view(1, 1, *shape[:-1], 4)
    maps = explainers.get("layercam", layer="1")(net, x, 0)  # G = 1: the map is the layer's output (0, 1)
    expected = torch.tensor([0.0, 0.25, 0.75, 1.0], dtype=torch.float64).expand(x.shape)
    torch.testing.assert_close(maps, expected, rtol=1e-12, atol=1e-12)


def test_eigencam_of_rank_one_activations_is_its_component():
    """A_k(s) = u(s) v_k: centred, (u − ū) vᵀ, whose first principal direction is v/‖v‖, so the map is
    (u − ū)‖v‖, signed so that its larger excursion is positive — also when u is negated."""
    u, v = torch.tensor([3.0, 0.0, 1.0, 0.0], dtype=torch.float64), torch.tensor([1.0, 2.0], dtype=torch.float64)
    expected = torch.tensor([2.0, -1.0, 0.0, -1.0], dtype=torch.float64) * 5**0.5
    eigencam = explainers.get("eigencam", layer="0", relu=False, upsample=False)
    model = readout(torch.ones(2, 2, 2, dtype=torch.float64))
    for sign in (1, -1):
        x = (sign * torch.outer(v, u)).view(1, 2, 2, 2)
        torch.testing.assert_close(eigencam(model, x, 0), expected.view(1, 1, 2, 2), rtol=1e-10, atol=1e-12)
    relu = explainers.get("eigencam", layer="0", upsample=False)(model, x, 1)
    torch.testing.assert_close(relu, expected.relu().view(1, 1, 2, 2), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("channels,side", [(6, 6), (12, 3)], ids=["dead channels", "more channels than positions"])
def test_eigencam_derivative_with_repeated_singular_values(channels, side):
    """Three dead (constant) channels give three singular values 0, where the SVD's own backward
    divides 0 by 0; with more channels than positions the thin SVD has fewer vectors than channels.
    The map's Jacobian is still the one finite differences give."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), Softplus5(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(channels, 3)).double()
    with torch.no_grad():  # the last three (where the first three happen to leave torch's SVD backward finite)
        model[0].weight[-3:].zero_()
        model[0].bias[-3:] = 0.0
    x = torch.randn(2, 1, side, side, dtype=torch.float64, requires_grad=True)
    eigencam = explainers.get("eigencam", relu=False)
    assert torch.autograd.gradcheck(lambda inp: eigencam(model, inp, 0, create_graph=True), (x,))


def brute_force_scorecam(model, layer, x, t):
    """Score-CAM by a loop over samples and channels, from the paper's algorithm."""
    captured = []
    handle = layer.register_forward_hook(lambda m, i, out: captured.append(out.detach()))
    with torch.no_grad():
        model(x)
    handle.remove()
    (activation,) = captured
    maps = []
    for i in range(len(x)):
        total = torch.zeros_like(activation[i, 0])
        for k in range(activation.shape[1]):
            channel = activation[i, k]
            mask = F.interpolate(channel[None, None], size=x.shape[2:], mode=MODE[x.dim() - 2], align_corners=False)[0]
            if mask.max() == mask.min():
                continue
            mask = (mask - mask.min()) / (mask.max() - mask.min())
            with torch.no_grad():
                score = model((x[i] * mask)[None]).softmax(1)[0, t[i]]
            total += score * channel
        maps.append(total.relu())
    resized = F.interpolate(torch.stack(maps)[:, None], size=x.shape[2:], mode=MODE[x.dim() - 2], align_corners=False)
    return resized.expand_as(x)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_scorecam_is_the_loop_over_channels(dims):
    """Any batch_size gives the loop's map; a constant channel (zero weights, zero bias) scores 0."""
    model, (x, t) = gap_net(dims, stride=2), batch(dims, n=3)
    with torch.no_grad():
        model[2].weight[1].zero_()
        model[2].bias[1] = 0.0
    expected = brute_force_scorecam(model, model[3], x, t)
    assert (expected > 0).any()
    for batch_size in (1, 4, 256):
        ours = explainers.get("scorecam", batch_size=batch_size)(model, x, t)
        torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dims", [1, 3])
@pytest.mark.parametrize("name", CAMS)
def test_cams_on_signals_and_volumes(name, dims):
    """Shape of x, "auto" = the ReLU feeding the pool (recorded by layer_used), each sample's map
    alone as in its batch, and with create_graph the same map with the Jacobian finite differences
    give (on a smooth twin of the net, a batch of two)."""
    model, (x, t) = gap_net(dims, stride=2), batch(dims)
    explainer = explainers.get(name, relu=False)
    maps = explainer(model, x, t)
    assert maps.shape == x.shape and maps.dtype == x.dtype
    assert explainer.layer_used(model, x) == "3"
    torch.testing.assert_close(maps, explainers.get(name, layer="3", relu=False)(model, x, t), rtol=0, atol=0)
    torch.testing.assert_close(explainer(model, x[2:3], t[2:3]), maps[2:3], rtol=1e-10, atol=1e-12)
    smooth, x2, t2 = gap_net(dims, Softplus5, stride=2), x[:2].clone().requires_grad_(True), t[:2]
    graph = explainer(smooth, x2, t2, create_graph=True)
    assert graph.requires_grad
    torch.testing.assert_close(graph.detach(), explainer(smooth, x2.detach(), t2), rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(lambda inp: explainer(smooth, inp, t2, create_graph=True), (x2,), atol=1e-6)


@pytest.mark.parametrize("name", CAMS)
def test_cams_refuse_inputs_without_spatial_dimensions(name, mlp, table_batch):
    with pytest.raises(ValueError, match="1 to 3 spatial dimensions"):
        explainers.get(name)(mlp, *table_batch)


@pytest.mark.parametrize("name", ["scorecam"])
def test_batch_size_is_validated(name):
    with pytest.raises(ValueError, match="batch_size"):
        explainers.get(name, batch_size=0)
