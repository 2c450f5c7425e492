"""Bad input to the selective region test gets a clear error; batching and dtypes do not change results."""

from __future__ import annotations

import math

import pytest
import torch
from salbench.metrics.selective import (
    LinePropagator,
    UnsupportedModuleError,
    cam_saliency,
    salient_region_test,
)
from torch import nn


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(3, 1, 3, padding=1),
                         nn.Upsample(scale_factor=2, mode="bilinear")).double().eval()  # fmt: skip


def _x(n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _threshold(net: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float(net(x).flatten(1).median(1).values.min()) - 1e-9


@pytest.fixture
def setup():
    net, x = _net(), _x()
    return net, x, _threshold(net, x)


def test_empty_region_raises_or_is_recorded(setup):
    net, x, _ = setup
    with pytest.raises(ValueError, match=r"x\[0\].*empty"):
        salient_region_test(net, x, threshold=1e6)
    (first, second) = salient_region_test(net, x, threshold=1e6, on_invalid="record")
    assert "empty" in first.reason and math.isnan(first.p_value) and math.isnan(second.naive_p_value)
    assert first.intervals.shape == (0, 2)


def test_full_region_has_no_complement_for_back(setup):
    net, x, _ = setup
    with pytest.raises(ValueError, match="complement"):
        salient_region_test(net, x, threshold=-1e6, statistic="back")
    ref = _x(seed=1)
    (result, _) = salient_region_test(net, x, x_ref=ref, threshold=-1e6, statistic="mean")
    assert result.region.all() and 0 <= result.p_value <= 1


def test_recorded_invalid_images_keep_the_others_in_order(setup):
    net, x, threshold = setup
    identity = nn.Conv2d(1, 1, 1).double()
    with torch.no_grad():
        identity.weight.fill_(1.0)
        identity.bias.zero_()
    mixed = torch.cat([x[:1], -torch.ones_like(x[:1]), x[1:]])  # the middle image has no pixel above 0
    results = salient_region_test(identity, mixed, threshold=0.0, on_invalid="record")
    alone = salient_region_test(identity, x, threshold=0.0)
    assert "empty" in results[1].reason and results[0].reason is None and results[2].reason is None
    assert results[0].p_value == pytest.approx(alone[0].p_value, rel=1e-9)
    assert results[2].p_value == pytest.approx(alone[1].p_value, rel=1e-9)


def test_threshold_equal_to_a_score_is_decided_consistently(setup):
    """A score exactly at the threshold (up to the last bit) gives one region, not an error."""
    net, x, _ = setup
    score = LinePropagator(net)(x, torch.zeros_like(x))[0][0].flatten()  # the bits the test itself sees
    threshold = float(score.sort().values[40])
    (result, _) = salient_region_test(net, x, threshold=threshold)
    assert int((result.region.flatten() != (score > threshold)).sum()) <= 1  # only the tied pixel may differ
    lo, hi = result.oc_interval
    assert lo <= result.z <= hi and hi - lo > 0
    # inside the OC interval the region is the observed one (the tie ends the piece on its side)
    inside = result.region.flatten().double()
    eta = inside / inside.sum() - (1 - inside) / (1 - inside).sum()
    direction = (eta / result.sigma).view(1, 1, 8, 8)
    base = x[:1] - direction * result.z
    for t in torch.linspace(max(lo, result.z - 5), min(hi, result.z + 5), 9, dtype=torch.float64)[1:-1]:
        with torch.no_grad():
            assert torch.equal(net(base + direction * t).flatten() > threshold, result.region.flatten())


def test_tied_max_pool_inputs_give_a_proper_piece(setup):
    """A constant image ties every max-pool window; the piece is the one just right of z (no NaN)."""
    net, _, _ = setup
    flat = torch.full((1, 1, 8, 8), 0.5, dtype=torch.float64)
    with torch.no_grad():
        threshold = float(net(flat).median()) - 1e-9
    (result,) = salient_region_test(net, flat, threshold=threshold)
    assert result.z == pytest.approx(0.0, abs=1e-12)
    lo, hi = result.oc_interval
    assert lo <= result.z < hi
    assert result.p_value == pytest.approx(1.0) and result.oc_p_value == pytest.approx(1.0)


@pytest.mark.parametrize(
    "x,match",
    [
        (torch.zeros(1, 8, dtype=torch.float64), r"x must have"),
        (torch.zeros(1, 1, 1, 1, 8, 8, dtype=torch.float64), r"\(N, C, T\), \(N, C, H, W\) or \(N, C, D, H, W\)"),
        (torch.full((1, 1, 8, 8), float("nan"), dtype=torch.float64), "NaN"),
        (torch.zeros(1, 1, 8, 8, dtype=torch.long), "floating"),
        (torch.zeros(1, 1, 6, 6, dtype=torch.float64), "score maps of shape"),
    ],
)
def test_bad_images(x, match):
    net = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.MaxPool2d(2)).double() if "score" in match else _net()
    with pytest.raises((ValueError, TypeError), match=match):
        salient_region_test(net, x, threshold=0.0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"sigma2": 0.0}, "sigma2"),
        ({"sigma2": -1.0}, "sigma2"),
        ({"sigma2": float("nan")}, "sigma2"),
        ({"statistic": "median"}, "statistic"),
        ({"mode": "exact"}, "mode"),
        ({"on_invalid": "skip"}, "on_invalid"),
        ({"threshold": float("inf")}, "threshold"),
        ({"threshold": True}, "threshold"),
        ({"normalize": 1}, "normalize"),
        ({"statistic": "mean"}, "needs x_ref"),
        ({"statistic": "back", "x_ref": torch.zeros(2, 1, 8, 8, dtype=torch.float64)}, "x_ref must be None"),
        ({"statistic": "mean", "x_ref": torch.zeros(1, 1, 8, 8, dtype=torch.float64)}, "x_ref must have shape"),
        ({"statistic": "abs", "x_ref": torch.zeros(2, 3, 1, 8, 9, dtype=torch.float64)}, "x_ref must have shape"),
        ({"statistic": "abs", "x_ref": torch.full((2, 1, 8, 8), float("inf"), dtype=torch.float64)}, "x_ref"),
    ],
)
def test_bad_options(setup, kwargs, match):
    net, x, threshold = setup
    options = {"threshold": threshold, **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        salient_region_test(net, x, **options)


@pytest.mark.parametrize(
    "model,match",
    [
        (nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Tanh()), r"Tanh at 'model\.1'"),
        (nn.Sequential(nn.Sequential(nn.Conv2d(1, 1, 1), nn.GELU())), r"GELU at 'model\.0\.1'"),
        (nn.Sequential(nn.Conv2d(1, 1, 1), nn.Sigmoid(), nn.Conv2d(1, 1, 1)), "only as the last"),
        (nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1).train()), "training mode"),
        (nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1, track_running_stats=False).eval()), "running statistics"),
        (nn.Sequential(nn.Conv2d(1, 1, 1), nn.Flatten(0)), "batch dimension"),
        (nn.Conv2d(1, 1, 1), None),
        (nn.ReLU6(), r"ReLU6 at 'model'"),
    ],
)
def test_unsupported_modules_are_named(model, match):
    x = _x()
    if match is None:  # a bare supported module is a one-step model
        assert LinePropagator(model)(x, x)[0].shape == x.shape
        return
    with pytest.raises(UnsupportedModuleError, match=match):
        salient_region_test(model.double(), x, threshold=0.0)


def test_sigmoid_head_thresholds_and_rejects_normalisation(setup):
    net, x, _ = setup
    head = nn.Sequential(*net, nn.Sigmoid())
    with pytest.raises(ValueError, match="normalize"):
        salient_region_test(head, x, threshold=0.5, normalize=True)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        salient_region_test(head, x, threshold=1.5)
    with torch.no_grad():
        tau = float(torch.sigmoid(net(x)).flatten(1).median(1).values.min()) - 1e-9
    ours = salient_region_test(head, x, threshold=tau)
    plain = salient_region_test(net, x, threshold=math.log(tau / (1 - tau)))
    assert [r.p_value for r in ours] == pytest.approx([r.p_value for r in plain], rel=1e-9)


def test_batch_equals_one_at_a_time_and_float32_is_computed_in_float64(setup):
    net, x, threshold = setup
    ref = _x(seed=3)
    batched = salient_region_test(net, x, x_ref=ref, threshold=threshold, statistic="mean")
    for i, result in enumerate(batched):
        (single,) = salient_region_test(net, x[i : i + 1], x_ref=ref[i : i + 1], threshold=threshold, statistic="mean")
        assert single.p_value == pytest.approx(result.p_value, rel=1e-10)
        assert torch.allclose(single.intervals, result.intervals, rtol=0, atol=1e-12)
    as_float = salient_region_test(net.float(), x.float(), x_ref=ref.float(), threshold=threshold, statistic="mean")
    assert all(0 <= r.p_value <= 1 for r in as_float)
    assert torch.equal(as_float[0].region, batched[0].region) or as_float[0].region.ne(batched[0].region).sum() <= 2


def test_multiple_references_use_their_mean_and_variance(setup):
    net, x, threshold = setup
    refs = torch.randn(2, 3, 1, 8, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    (result, _) = salient_region_test(net, x, x_ref=refs, threshold=threshold, statistic="mean", sigma2=2.0)
    size = int(result.region.sum())
    assert result.sigma == pytest.approx(math.sqrt(2.0 * (1 + 1 / 3) / size))
    diff = (x[0, 0] - refs[0, :, 0].mean(0))[result.region]
    assert result.statistic == pytest.approx(float(diff.mean()))
    assert result.z == pytest.approx(result.statistic / result.sigma)
    assert result.naive_p_value == pytest.approx(math.erfc(abs(result.z) / math.sqrt(2)))
    assert result.bonferroni_p_value == pytest.approx(min(1.0, result.naive_p_value * 2.0**64))


def test_cam_saliency_checks_its_classifier():
    features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
    good = nn.Sequential(features, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    with pytest.raises(ValueError, match="target"):
        cam_saliency(good, 3, (1, 8, 8))
    with pytest.raises(ValueError, match="ends in"):
        cam_saliency(nn.Sequential(features, nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(4, 3)), 0, (1, 8, 8))
    with pytest.raises(TypeError, match="classifier must be"):
        cam_saliency(nn.Conv2d(1, 1, 1), 0, (1, 8, 8))
    with pytest.raises(ValueError, match="input_shape"):
        cam_saliency(good, 0, (8, 8))
    with torch.no_grad():
        x = _x()
        cam = cam_saliency(good, 2, (1, 8, 8))(x.float())
        expected = (features(x.float()) * good[-1].weight[2].view(1, -1, 1, 1)).sum(1, keepdim=True)
    assert torch.allclose(cam, expected, atol=1e-6)
