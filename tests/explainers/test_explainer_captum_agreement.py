"""Agreement with Captum (the reference implementation) to 1e-5 in float64."""

from __future__ import annotations

import pytest
import torch
from captum.attr import (
    DeepLift,
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from salbench import explainers

TOL = dict(rtol=1e-5, atol=1e-5)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:captum")


@pytest.fixture(params=["cnn", "mlp"])
def case(request, cnn, mlp, image_batch, table_batch):
    """(model, x, target) for the CNN on images and the MLP on tables."""
    return (cnn, *image_batch) if request.param == "cnn" else (mlp, *table_batch)


@pytest.mark.parametrize("absolute", [False, True])
def test_gradient_matches_saliency(case, absolute):
    model, x, t = case
    ours = explainers.get("gradient", absolute=absolute)(model, x, t)
    theirs = Saliency(model).attribute(x, target=t, abs=absolute)
    torch.testing.assert_close(ours, theirs, **TOL)


def test_gradient_x_input_matches_captum(case):
    model, x, t = case
    ours = explainers.get("gradient_x_input")(model, x, t)
    torch.testing.assert_close(ours, InputXGradient(model).attribute(x, target=t), **TOL)


@pytest.mark.parametrize(
    "method", ["gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle"]
)
def test_integrated_gradients_matches_captum(case, method):
    model, x, t = case
    ig = explainers.get("integrated_gradients", steps=12, baseline=0.25, method=method, internal_batch_size=7)
    theirs = IntegratedGradients(model).attribute(x, baselines=0.25, target=t, n_steps=12, method=method)
    torch.testing.assert_close(ig(model, x, t), theirs, **TOL)


@pytest.mark.parametrize("relu", [True, False])
def test_gradcam_matches_layer_gradcam_interpolated(cnn, image_batch, relu):
    x, t = image_batch
    ours = explainers.get("gradcam", relu=relu)(cnn, x, t)  # "auto": the ReLU feeding the pool, cnn[3]
    raw = LayerGradCam(cnn, cnn[3]).attribute(x, target=t, relu_attributions=relu)
    theirs = LayerAttribution.interpolate(raw, x.shape[2:], "bilinear")
    assert ours.shape == x.shape
    torch.testing.assert_close(ours, theirs.expand_as(x), **TOL)
    assert relu or (ours < 0).any()  # without ReLU the map keeps negative evidence


@pytest.mark.parametrize("window,stride,baseline,batch_size", [((3, 3), (2, 2), 0.0, None), ((2, 3), (1, 3), 0.3, 7)])
def test_occlusion_matches_captum_on_images(cnn, image_batch, window, stride, baseline, batch_size):
    x, t = image_batch
    occ = explainers.get("occlusion", window=window, stride=stride, baseline=baseline, batch_size=batch_size)
    theirs = Occlusion(cnn).attribute(
        x, sliding_window_shapes=(3, *window), strides=(1, *stride), baselines=baseline, target=t
    )
    torch.testing.assert_close(occ(cnn, x, t), theirs.to(x.dtype), **TOL)


@pytest.mark.parametrize("window,stride", [((1,), (1,)), ((2,), (1,)), ((4,), (3,))])
def test_occlusion_matches_captum_on_tables(mlp, table_batch, window, stride):
    x, t = table_batch
    ours = explainers.get("occlusion", window=window, stride=stride, batch_size=4)(mlp, x, t)
    theirs = Occlusion(mlp).attribute(x, sliding_window_shapes=window, strides=stride, baselines=0.0, target=t)
    torch.testing.assert_close(ours, theirs.to(x.dtype), **TOL)


def documented_noise(x: torch.Tensor, n_samples: int, noise: float, seed: int) -> torch.Tensor:
    """SmoothGrad's noise as its docstring specifies it: (n_samples, *x.shape), σ_i ε_j."""
    gen = torch.Generator().manual_seed(seed)  # the same ε_j for every sample
    eps = torch.stack([torch.randn(x.shape[1:], generator=gen, dtype=x.dtype) for _ in range(n_samples)])[:, None]
    flat = x.flatten(1)
    sigma = noise * (flat.max(1).values - flat.min(1).values)
    return eps * sigma.view(1, -1, *[1] * (x.dim() - 1))


@pytest.mark.parametrize(
    "variant,absolute", [("smoothgrad", False), ("smoothgrad", True), ("smoothgrad_sq", False), ("vargrad", False)]
)
def test_smoothgrad_matches_noise_tunnel_with_the_same_noise(case, monkeypatch, variant, absolute):
    """Captum draws its noise from the global RNG; feed it ours through its noise hook."""
    model, x, t = case
    n = 6
    noise = documented_noise(x, n, 0.2, seed=11)  # (n, N, ...); Captum's rows are sample-major

    def add_our_noise(inputs, stdev, n_partition):
        assert n_partition == n
        return inputs.repeat_interleave(n, dim=0) + noise.transpose(0, 1).reshape(-1, *x.shape[1:])

    monkeypatch.setattr(NoiseTunnel, "_add_noise_to_input", staticmethod(add_our_noise))
    theirs = NoiseTunnel(Saliency(model)).attribute(
        x, nt_type=variant, nt_samples=n, stdevs=1.0, target=t, abs=absolute
    )
    params = dict(n_samples=n, noise=0.2, seed=11, batch_size=4, variant=variant, absolute=absolute)
    ours = explainers.get("smoothgrad", **params)
    torch.testing.assert_close(ours(model, x, t), theirs, **TOL)


def test_captum_adapter_saliency_is_the_gradient(case):
    model, x, t = case
    adapter = explainers.get("captum:Saliency", kwargs={"abs": False})
    torch.testing.assert_close(adapter(model, x, t), explainers.get("gradient")(model, x, t), **TOL)


def test_captum_adapter_deeplift_is_complete(mlp, table_batch):
    """DeepLift (rescale rule) on a ReLU MLP: attributions sum to f_c(x) − f_c(baseline)."""
    x, t = table_batch
    attr = explainers.get("captum:DeepLift", kwargs={"baselines": 0.0})(mlp, x, t)
    gap = (mlp(x) - mlp(torch.zeros_like(x))).gather(1, t[:, None])[:, 0]
    torch.testing.assert_close(attr.sum(1), gap.detach(), **TOL)
    torch.testing.assert_close(attr, DeepLift(mlp).attribute(x, baselines=0.0, target=t), **TOL)
