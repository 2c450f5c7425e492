"""Invariants of the explainers: the contract of every registered one (double backprop, batching,
seeds; :mod:`salbench.testing`), completeness, CAM identities."""

from __future__ import annotations

import pytest
import torch
from salbench import explainers, models
from salbench.testing import check_explainer, registered
from torch import nn


@pytest.mark.parametrize("name", registered("explainers"))
def test_every_registered_explainer_keeps_its_contract(name):
    """Shape, device, batch invariance, NaN rejection, gradcheck when differentiable and
    determinism (salbench.testing), for every registered explainer: built-in or plug-in."""
    report = check_explainer(name)
    if not report.applicable:
        pytest.skip(report.describe())


def test_smoothgrad_is_the_mean_gradient_over_its_noise(smooth_mlp):
    """Per sample, a loop over the documented noise copies (the same ε_j for every sample) gives the
    same map, for any batch_size, and a sample's map does not depend on the rest of its batch."""
    gen = torch.Generator().manual_seed(6)
    x, t = torch.randn(3, 4, generator=gen, dtype=torch.float64), torch.tensor([0, 1, 2])
    n, noise, seed = 5, 0.3, 9
    draw = torch.Generator().manual_seed(seed)
    eps = torch.stack([torch.randn(x.shape[1:], generator=draw, dtype=x.dtype) for _ in range(n)])
    gradient = explainers.get("gradient")
    expected = torch.zeros_like(x)
    for i in range(3):
        sigma = noise * (x[i].max() - x[i].min())
        for j in range(n):
            expected[i] += gradient(smooth_mlp, (x[i] + sigma * eps[j])[None], t[i : i + 1])[0] / n
    for batch_size in (None, 1, 2):
        sg = explainers.get("smoothgrad", n_samples=n, noise=noise, seed=seed, batch_size=batch_size)
        torch.testing.assert_close(sg(smooth_mlp, x, t), expected, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(sg(smooth_mlp, x[[2, 0]], t[[2, 0]]), expected[[2, 0]], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "name,params", [("smoothgrad", {"n_samples": 3}), ("random", {}), ("random", {"distribution": "normal"})]
)
def test_seeded_explainers_are_deterministic(name, params, mlp, table_batch):
    x, t = table_batch
    first = explainers.get(name, seed=4, **params)(mlp, x, t)
    torch.testing.assert_close(first, explainers.get(name, seed=4, **params)(mlp, x, t), rtol=0, atol=0)
    assert not torch.equal(first, explainers.get(name, seed=5, **params)(mlp, x, t))


def test_random_map_of_a_sample_does_not_depend_on_its_batch(mlp, table_batch):
    x, t = table_batch
    random = explainers.get("random", seed=2)
    full = random(mlp, x, t)
    torch.testing.assert_close(random(mlp, x[[3, 1]], t[[3, 1]]), full[[3, 1]], rtol=0, atol=0)
    assert not torch.equal(full[0], full[1])


def test_random_distributions(mlp):
    """Moments of 10^4 draws: U[0,1) mean 1/2, var 1/12; N(0,1) mean 0, var 1 (5 standard errors).
    The 100 samples differ (each sample's map comes from a stream seeded by its content)."""
    x = torch.arange(100, dtype=torch.float64)[:, None].expand(100, 100)
    uniform = explainers.get("random")(mlp, x, 0)
    normal = explainers.get("random", distribution="normal")(mlp, x, 0)
    assert uniform.dtype == x.dtype and uniform.shape == x.shape
    assert 0 <= uniform.min() and uniform.max() < 1
    assert abs(uniform.mean() - 0.5) < 5 * (1 / 12) ** 0.5 / 100
    assert abs(normal.mean()) < 5 / 100 and abs(normal.var() - 1) < 5 * 2**0.5 / 100


def completeness_error(model, x, t, method, steps):
    attr = explainers.get("integrated_gradients", steps=steps, method=method)(model, x, t)
    gap = (model(x) - model(torch.zeros_like(x))).gather(1, t[:, None])[:, 0].detach()
    return attr.sum(1), gap


def test_integrated_gradients_completeness_improves_with_steps(smooth_mlp):
    """Σ E = f(x) − f(0): Gauss–Legendre converges fast, the midpoint rule as 1/steps²,
    Captum's trapezoid weights (sum 1 − 1/steps) to (1 − 1/steps)·gap up to 1/steps²."""
    gen = torch.Generator().manual_seed(7)
    x, t = 2 * torch.randn(4, 4, generator=gen, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    errors = {}
    for method in ("gausslegendre", "riemann_middle", "riemann_trapezoid"):
        for steps in (8, 32):
            total, gap = completeness_error(smooth_mlp, x, t, method, steps)
            target = gap * (1 - 1 / steps) if method == "riemann_trapezoid" else gap
            errors[method, steps] = (total - target).abs().max().item()
    assert errors["gausslegendre", 32] < 1e-9
    assert errors["gausslegendre", 32] < errors["gausslegendre", 8] / 100
    for method in ("riemann_middle", "riemann_trapezoid"):
        assert errors[method, 32] < errors[method, 8] / 8  # 1/steps² predicts a factor 16


def test_cam_hand_computed():
    """1×1 conv with weights (1, −1), ReLU, GAP, linear: CAM_c = Σ_k w_ck ReLU(a_k x)."""
    model = nn.Sequential(
        nn.Conv2d(1, 2, 1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2)
    )
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        model[4].weight.copy_(torch.tensor([[2.0, 1.0], [-1.0, 3.0]]))
        model[4].bias.copy_(torch.tensor([0.5, -0.5]))
    x = torch.tensor([[1.0, -2.0], [3.0, 0.5]]).view(1, 1, 2, 2)
    cam = explainers.get("cam", upsample=False)
    torch.testing.assert_close(cam(model, x, 0), torch.tensor([[2.0, 2.0], [6.0, 1.0]]).view(1, 1, 2, 2))
    torch.testing.assert_close(cam(model, x, 1), torch.tensor([[-1.0, 6.0], [-3.0, -0.5]]).view(1, 1, 2, 2))
    torch.testing.assert_close(explainers.get("cam")(model, x, 1), cam(model, x, 1))  # 2×2 → 2×2 is the identity


def test_cam_is_spatial_size_times_gradcam_without_relu(cnn, image_batch):
    """On GAP + linear, ∂f_c/∂A_k(s) = w_ck / Z, so Grad-CAM weights are w_ck / Z and CAM = Z · Grad-CAM."""
    x, t = image_batch
    cam = explainers.get("cam")(cnn, x, t)  # "auto" finds cnn[3], the ReLU feeding the pool
    gradcam = explainers.get("gradcam", layer="3", relu=False)(cnn, x, t)
    torch.testing.assert_close(cam, 8 * 8 * gradcam, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(cam, explainers.get("cam", layer="3", fc="6")(cnn, x, t), rtol=0, atol=0)


def test_cam_map_averages_to_the_logit_minus_bias(cnn, image_batch):
    x, t = image_batch
    maps = explainers.get("cam", upsample=False)(cnn, x, t)
    logits = cnn(x).gather(1, t[:, None])[:, 0] - cnn[6].bias[t]
    torch.testing.assert_close(maps.mean((1, 2, 3)), logits.detach(), rtol=1e-10, atol=1e-10)


def test_gradcam_auto_is_the_map_that_reaches_the_pool(cnn, image_batch):
    """conv → ReLU → pool: "auto" is the ReLU module's output (cnn[3]), not the convolution (cnn[2])."""
    x, t = image_batch
    auto = explainers.get("gradcam", upsample=False)(cnn, x, t)
    torch.testing.assert_close(auto, explainers.get("gradcam", layer="3", upsample=False)(cnn, x, t), rtol=0, atol=0)
    assert not torch.equal(auto, explainers.get("gradcam", layer="2", upsample=False)(cnn, x, t))
    assert auto.shape == (5, 1, 8, 8) and (auto >= 0).all()


@pytest.mark.parametrize("name", ["gradcam", "cam"])
def test_auto_layer_of_a_resnet_is_the_last_stage_output(name):
    """In torchvision's ResNet layout "auto" is ``layer2`` here (the last stage: after the skip
    addition and the ReLU), which pytorch-grad-cam recommends; the last Conv2d
    (``layer2.0.conv2``) comes before BatchNorm, the addition and the ReLU and gives another map."""
    torch.manual_seed(0)
    net = models.build("resnet", {"blocks": (1, 1), "widths": (4, 6), "stem": "small"},
                       input_shape=(1, 12, 12), num_classes=3).double().eval()
    for module in net.modules():  # non-trivial BatchNorm statistics, so BN is not the identity
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    x = torch.randn(4, 1, 12, 12, dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 1])
    auto = explainers.get(name, upsample=False)(net, x, t)
    torch.testing.assert_close(auto, explainers.get(name, layer="layer2", upsample=False)(net, x, t), rtol=0, atol=0)
    if name == "gradcam":
        assert not torch.allclose(auto, explainers.get(name, layer="layer2.0.conv2", upsample=False)(net, x, t))


def test_occlusion_of_a_linear_model_is_weight_times_input():
    """f linear: removing feature i (baseline 0) drops the logit by w_ci x_i."""
    model = nn.Linear(5, 3).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 0])
    expected = model.weight[t].detach() * x
    torch.testing.assert_close(explainers.get("occlusion")(model, x, t), expected)
    # with overlapping windows of 2, each feature averages the drops of the windows covering it
    pairs = explainers.get("occlusion", window=(2,))(model, x, t)
    window_drop = expected[:, :-1] + expected[:, 1:]
    mean = torch.cat([window_drop[:, :1], (window_drop[:, :-1] + window_drop[:, 1:]) / 2, window_drop[:, -1:]], 1)
    torch.testing.assert_close(pairs, mean)
