"""Segments, region perturbation (Samek et al. 2017) and IROF (Rieger & Hansen 2020)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from salbench import metrics
from salbench.metrics.segments import patch_segments, segment_relevance


def flat_linear(shape: tuple[int, ...], seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    n_in = int(np.prod(shape))
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(n_in, 2)).double().eval()


def small_cnn(channels: int = 1) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(channels, 4, 3),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 3),
    ).eval()


# -- segments -------------------------------------------------------------------------------------
def test_patch_segments_tile_signals_and_volumes_with_short_last_patches():
    assert patch_segments(torch.zeros(2, 3, 5), 2).tolist() == [[0, 0, 1, 1, 2]] * 2
    volume = patch_segments(torch.zeros(1, 1, 2, 3, 4), 2)[0]
    # grid 1 × 2 × 2 patches: id = (d // 2) · 4 + (h // 2) · 2 + w // 2
    expected = torch.tensor(
        [[[(d // 2) * 4 + (h // 2) * 2 + w // 2 for w in range(4)] for h in range(3)] for d in range(2)]
    )
    assert torch.equal(volume, expected)


def test_segment_relevance_sums_means_and_ranks_unused_ids_last():
    attr = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[1.0, 1.0], [1.0, 1.0]]]])
    segments = torch.tensor([[[0, 0], [1, 2]], [[1, 1], [1, 0]]])
    relevance, sizes = segment_relevance(attr, segments, "mean")
    assert relevance[0].tolist() == [1.5, 3.0, 4.0] and sizes[0].tolist() == [2, 1, 1]
    assert relevance[1, :2].tolist() == [1.0, 1.0] and relevance[1, 2] == float("-inf") and sizes[1, 2] == 0
    sums, _ = segment_relevance(attr, segments, "sum")
    assert sums[0].tolist() == [3.0, 3.0, 4.0]


# -- region perturbation --------------------------------------------------------------------------
def test_region_perturbation_hand_worked_on_a_linear_logit():
    # logit = Σ w x + b: removing a patch (to 0) drops the logit by the patch's Σ w x; with attr = w ⊙ x
    # the patches go in order of that contribution, so the curve is the running sum of the sorted
    # contributions, and AOPC their mean over k = 0..L
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 2, 4, 6, generator=g, dtype=torch.float64)
    model = flat_linear((2, 4, 6))
    w = model[1].weight[1].detach().view(2, 4, 6)
    contribution = (w * x).sum(1).view(2, 2, 2, 3, 2).permute(0, 1, 3, 2, 4).reshape(2, 6, 4).sum(2)  # 2×2 patches
    aopc, curve = metrics.get(
        "region_perturbation", region=2, n_regions=4, baseline=0.0, output="logit"
    ).evaluate_curve(model, x, w * x, 1)
    top = contribution.sort(dim=1, descending=True).values[:, :4]
    expected = torch.cat([torch.zeros(2, 1, dtype=torch.float64), top.cumsum(1)], 1)
    torch.testing.assert_close(curve, expected)
    torch.testing.assert_close(aopc, expected.mean(1))


def test_region_perturbation_of_a_constant_model_is_zero_and_of_signals_and_volumes_runs():
    class Constant(torch.nn.Module):
        def forward(self, x):
            return torch.ones(len(x), 2, dtype=x.dtype)

    for shape in ((3, 2, 10), (3, 1, 4, 4, 4)):
        x, attr = torch.rand(shape, dtype=torch.float64), torch.rand(shape, dtype=torch.float64)
        aopc, curve = metrics.get("region_perturbation", region=2).evaluate_curve(Constant(), x, attr, 0)
        assert torch.equal(aopc, torch.zeros(3, dtype=torch.float64))
        assert curve.shape == (3, 1 + (5 if len(shape) == 3 else 8))


def test_region_perturbation_refuses_tables():
    with pytest.raises(ValueError, match="at least 3 dimensions"):
        metrics.get("region_perturbation")(flat_linear((4,)), torch.rand(2, 4), torch.rand(2, 4), 0)


def test_region_perturbation_agrees_with_quantus():
    quantus = pytest.importorskip("quantus")
    g = torch.Generator().manual_seed(4)
    x, attr = torch.rand(4, 1, 8, 8, generator=g), torch.randn(4, 1, 8, 8, generator=g)
    model = small_cnn()
    target = model(x).argmax(1)
    ref = quantus.RegionPerturbation(
        patch_size=2,
        regions_evaluation=10,
        perturb_baseline=0.0,
        normalise=False,
        return_aggregate=False,
        disable_warnings=True,
    )(model=model, x_batch=x.numpy(), y_batch=target.numpy(), a_batch=attr.numpy(), device="cpu")
    _, curve = metrics.get("region_perturbation", region=2, n_regions=10, baseline=0.0).evaluate_curve(
        model, x, attr, target
    )
    torch.testing.assert_close(curve[:, 1:], torch.tensor(np.array(ref)), rtol=0, atol=1e-5)


# -- IROF -----------------------------------------------------------------------------------------
def test_irof_hand_worked_with_patches():
    # one 2×2 image of four 1-pixel "segments", probabilities of a 2-class linear model computed by hand
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64)
    model = flat_linear((1, 2, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[0.5, -0.2, 0.3, 0.1], [0.0, 0.0, 0.0, 0.0]]))
        model[1].bias.zero_()
    attr = torch.tensor([[[[0.1, 0.4], [0.3, 0.2]]]], dtype=torch.float64)  # removal order: 2, 3, 4, 1 (pixel values)
    flat = x.flatten()
    kept = torch.ones(4, dtype=torch.float64)
    probs = []
    for k in [None, 1, 2, 3, 0]:
        if k is not None:
            kept[k] = 0
        probs.append(torch.sigmoid((model[1].weight[0] * flat * kept).sum()))
    y = torch.stack(probs) / probs[0]
    expected = 1 - torch.trapezoid(y, dx=0.25)
    got = metrics.get("irof", segmentation="patches", patch=1, baseline=0.0)(model, x, attr, 0)
    torch.testing.assert_close(got, expected.view(1))


def test_irof_of_a_constant_model_is_zero():
    class Constant(torch.nn.Module):
        def forward(self, x):
            return torch.tensor([[0.3, 0.1]], dtype=x.dtype).expand(len(x), 2)

    x = torch.rand(2, 3, 12, 12, dtype=torch.float64)
    values = metrics.get("irof", n_segments=20)(Constant(), x, torch.rand_like(x), 1)
    torch.testing.assert_close(values, torch.zeros(2, dtype=torch.float64))


def test_irof_agrees_with_quantus_given_a_constant_fill(monkeypatch):
    quantus = pytest.importorskip("quantus")
    monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)  # Quantus's AUC helper; removed in NumPy 2.4
    g = torch.Generator().manual_seed(5)
    x, attr = torch.rand(4, 1, 16, 16, generator=g), torch.randn(4, 1, 16, 16, generator=g)
    model = small_cnn()
    target = model(x).argmax(1)
    ref = quantus.IROF(perturb_baseline=0.0, normalise=False, return_aggregate=False, disable_warnings=True)(
        model=model, x_batch=x.numpy(), y_batch=target.numpy(), a_batch=attr.numpy(), device="cpu"
    )
    _, curve, axis = metrics.get("irof", baseline=0.0).curve(model, x, attr, target)
    n_segments = (axis > 0).sum(1)
    # Quantus: S − trapz(y_1..y_S), unit spacing, no y_0
    converted = [s - torch.trapezoid(curve[i, 1 : s + 1]).item() for i, s in enumerate(n_segments.tolist())]
    np.testing.assert_allclose(converted, ref, rtol=0, atol=1e-4)
