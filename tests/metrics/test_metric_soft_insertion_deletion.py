"""Differentiable insertion/deletion costs (ID-ExpO): hard limit, gradients, batch independence, errors."""

from __future__ import annotations

import math

import pytest
import torch
from salbench import metrics
from salbench.metrics.soft_insertion_deletion import soft_insertion_deletion
from torch import nn

TEMPERATURES = (1.0, 10.0, 100.0, 1000.0)


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, dtype=torch.float64), nn.Tanh(), nn.Flatten(),
                         nn.Linear(3 * 4 * 4, 3, dtype=torch.float64))


def exact_costs(model, x, attr, target, *, steps, fraction, baseline):
    """cIns, cDel on the hard insertion/deletion inputs of the exact metrics' schedule (points m >= 1)."""
    n_units = attr.shape[2] * attr.shape[3] if attr.dim() == 4 else attr[0].numel()
    params = dict(step=math.ceil(n_units / steps), fraction=fraction, baseline=baseline)
    ins = metrics.get("insertion", **params).evaluate_curve(model, x, attr, target)[1][:, 1:]
    dele = metrics.get("deletion", **params).evaluate_curve(model, x, attr, target)[1][:, 1:]
    log_p_x = torch.log_softmax(model(x), 1).gather(1, target[:, None]).squeeze(1)
    return -ins.log().mean(1), dele.log().mean(1) - log_p_x


@pytest.mark.parametrize("fraction, baseline", [(0.5, 0.0), (1.0, "mean"), (0.75, -0.5)])
@pytest.mark.parametrize("spacing", ["even", "random"])
def test_soft_costs_converge_to_the_exact_ones_as_temperature_sharpens(fraction, baseline, spacing):
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(3, 2, 4, 4, generator=gen, dtype=torch.float64)
    target = torch.tensor([0, 1, 2])
    if spacing == "even":  # channel sums 0, 1, ..., 15 in a random order: every gap equals σ̄
        per_pixel = torch.stack([torch.randperm(16, generator=gen) for _ in range(3)]).double()
        attr = (per_pixel.view(3, 1, 4, 4) / 2).expand(3, 2, 4, 4).contiguous()
    else:
        attr = torch.randn(3, 2, 4, 4, generator=gen, dtype=torch.float64)
    model = small_cnn()
    with torch.no_grad():
        exact_ins, exact_del = exact_costs(model, x, attr, target, steps=5, fraction=fraction, baseline=baseline)
        gaps = []
        for temperature in TEMPERATURES:
            c_ins, c_del = soft_insertion_deletion(model, x, attr, target, steps=5, fraction=fraction,
                                                   temperature=temperature, baseline=baseline)
            gaps.append(max((c_ins - exact_ins).abs().max().item(), (c_del - exact_del).abs().max().item()))
    # strictly shrinking until it reaches float64 rounding (the even case is exact from T = 100 on)
    assert all(later < earlier or later < 1e-12 for earlier, later in zip(gaps, gaps[1:])), gaps
    assert gaps[-1] < 1e-9, gaps


def test_soft_costs_on_feature_vectors_converge_too():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(4, 9, generator=gen, dtype=torch.float64)
    attr = torch.randperm(9, generator=gen).double().expand(4, 9) * torch.tensor([[1.0], [2.0], [0.5], [3.0]])
    model = nn.Linear(9, 2, dtype=torch.float64)
    target = torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        exact = exact_costs(model, x, attr, target, steps=3, fraction=1.0, baseline="mean")
        soft = soft_insertion_deletion(model, x, attr, target, steps=3, fraction=1.0, temperature=1000.0,
                                       baseline="mean")
    # log-softmax of a scaled ranking is still evenly spaced, so T = 1000 is exact to rounding
    assert torch.allclose(soft[0], exact[0], atol=1e-10) and torch.allclose(soft[1], exact[1], atol=1e-10)


def test_gradients_reach_the_attribution_and_the_model():
    gen = torch.Generator().manual_seed(0)
    model = small_cnn()
    x = torch.randn(2, 2, 4, 4, generator=gen, dtype=torch.float64)
    attr = torch.randn(2, 2, 4, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    c_ins, c_del = soft_insertion_deletion(model, x, attr, torch.tensor([1, 2]), steps=8, baseline="blur",
                                           blur_sigma=1.0)
    (c_ins + c_del).sum().backward()
    assert torch.isfinite(attr.grad).all() and attr.grad.abs().sum() > 0
    for p in model.parameters():
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_a_sample_does_not_depend_on_its_batch_mates():
    gen = torch.Generator().manual_seed(4)
    model = small_cnn()
    x = torch.randn(3, 2, 4, 4, generator=gen, dtype=torch.float64)
    attr = torch.randn(3, 2, 4, 4, generator=gen, dtype=torch.float64)
    attr[2] *= 50  # very different gap scale from the others
    target = torch.tensor([0, 1, 2])
    with torch.no_grad():
        together = soft_insertion_deletion(model, x, attr, target, steps=4)
        for i in range(3):
            alone = soft_insertion_deletion(model, x[i : i + 1], attr[i : i + 1], target[i : i + 1], steps=4)
            assert torch.allclose(alone[0], together[0][i : i + 1], atol=1e-13)
            assert torch.allclose(alone[1], together[1][i : i + 1], atol=1e-13)


def test_all_tied_scores_give_half_masks_without_nan():
    model = nn.Linear(4, 2, dtype=torch.float64)
    x = torch.tensor([[1.0, -2.0, 0.5, 3.0]], dtype=torch.float64)
    with torch.no_grad():
        # points at 1 and 2 of 4 units, both thresholds at the common value: α = 1/2, baseline 0
        c_ins, c_del = soft_insertion_deletion(model, x, torch.zeros_like(x), 0, steps=4, fraction=0.5)
        half = torch.log_softmax(model(x / 2), 1)[0, 0]
        log_p_x = torch.log_softmax(model(x), 1)[0, 0]
    assert c_ins.item() == pytest.approx(-half.item(), abs=1e-14)
    assert c_del.item() == pytest.approx((half - log_p_x).item(), abs=1e-14)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"steps": 0}, "steps must be an integer >= 1"),
        ({"fraction": 0.0}, r"fraction must lie in \(0, 1\]"),
        ({"fraction": 1.01}, r"fraction must lie in \(0, 1\]"),
        ({"temperature": 0.0}, "temperature must be a finite number > 0"),
        ({"temperature": float("nan")}, "temperature must be a finite number > 0"),
        ({"baseline": "noise"}, "baseline must be a finite number, 'blur' or 'mean'"),
        ({"unit": "pixel"}, "unit='pixel' needs channel-first inputs"),
    ],
)
def test_bad_parameters_name_the_parameter(params, message):
    x = torch.randn(2, 6)
    with pytest.raises(ValueError, match=message):
        soft_insertion_deletion(nn.Linear(6, 2), x, x.clone(), 0, **params)


def test_bad_inputs_name_the_argument():
    x = torch.randn(2, 6)
    with pytest.raises(ValueError, match="attr and x must have the same shape"):
        soft_insertion_deletion(nn.Linear(6, 2), x, torch.randn(2, 3, 2), 0)
    bad = x.clone()
    bad[1, 1] = float("nan")
    with pytest.raises(ValueError, match="attr contains 1 NaN"):
        soft_insertion_deletion(nn.Linear(6, 2), x, bad, 0)
