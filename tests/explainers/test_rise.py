"""RISE: the batched explainer against a loop over its documented masks, on signals, images, volumes
and tables; the normalisation E[M] = p; per-sample seeding."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from salbench import explainers
from salbench.core.seeding import sample_seed
from torch import nn

MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


def net(shape: tuple[int, ...]) -> nn.Module:
    """A small float64 classifier (3 classes) of inputs of ``shape`` (one sample): conv for spatial data."""
    torch.manual_seed(0)
    if len(shape) == 1:
        return nn.Sequential(nn.Linear(shape[0], 8), nn.Tanh(), nn.Linear(8, 3)).double().eval()
    conv = {2: nn.Conv1d, 3: nn.Conv2d, 4: nn.Conv3d}[len(shape)]
    return nn.Sequential(conv(shape[0], 3, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.LazyLinear(3)).double().eval()


def brute_force_rise(model, x, t, n_masks, cells, p, seed):
    """RISE by a loop over samples and masks, drawing each mask as the docstring says."""
    out = torch.zeros_like(x)
    spatial = x.dim() > 2
    shape = x.shape[2:] if spatial else x.shape[1:]
    d = len(shape)
    for i in range(len(x)):
        gen = torch.Generator().manual_seed(sample_seed(seed, x[i]))
        for _ in range(n_masks):
            if spatial:
                u = torch.rand(cells**d + d, generator=gen, dtype=x.dtype)
                cell = [math.ceil(s / cells) for s in shape]
                grid = (u[: cells**d] < p).to(x.dtype).view(1, 1, *[cells] * d)
                up = F.interpolate(grid, size=[(cells + 1) * c for c in cell], mode=MODE[d], align_corners=False)[0, 0]
                shift = [int(u[cells**d + k] * cell[k]) for k in range(d)]
                mask = up[tuple(slice(s, s + size) for s, size in zip(shift, shape))]
            else:
                mask = (torch.rand(shape[0], generator=gen, dtype=x.dtype) < p).to(x.dtype)
            with torch.no_grad():
                score = model((x[i] * mask)[None]).softmax(1)[0, t[i]]
            out[i] += score * mask / (n_masks * p)
    return out


@pytest.mark.parametrize(
    "shape", [(5,), (2, 11), (1, 9, 7), (1, 3, 5, 4)], ids=["tabular", "signal", "image", "volume"]
)
def test_rise_is_the_loop_over_its_masks(shape):
    gen = torch.Generator().manual_seed(3)
    x, t = torch.randn(3, *shape, generator=gen, dtype=torch.float64), torch.tensor([0, 2, 1])
    model = net(shape)
    model(x)  # materialise the lazy layer
    params = dict(n_masks=13, cells=3, p=0.4, seed=5)
    expected = brute_force_rise(model, x, t, **params)
    for batch_size in (1, 4, 256):
        ours = explainers.get("rise", batch_size=batch_size, **params)(model, x, t)
        torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-12)
    assert not torch.equal(expected[0], expected[1])


def test_rise_of_a_constant_model_is_its_probability():
    """f constant: E = q · mean_j M_j / p, and a smooth mask is a convex mix of Bernoulli(p) cells, so
    E[M(s)] = p and E ≈ q = 1/3 at every pixel (5 standard errors of 2000 masks: sd ≤ q·0.5/(p·√n))."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 3)).double()
    nn.init.zeros_(model[1].weight)
    nn.init.zeros_(model[1].bias)
    x = torch.rand(2, 1, 6, 6, dtype=torch.float64)
    maps = explainers.get("rise", n_masks=2000, cells=3, p=0.5)(model, x, 0)
    assert (maps - 1 / 3).abs().max() < 5 * (1 / 3) * 0.5 / (0.5 * 2000**0.5)


def test_rise_seed_and_batch():
    """A sample's map depends on the seed, not on the rest of its batch."""
    model, x = net((1, 6, 6)), torch.rand(3, 1, 6, 6, dtype=torch.float64)
    model(x)
    rise = explainers.get("rise", n_masks=16, seed=1)
    full = rise(model, x, 1)
    torch.testing.assert_close(rise(model, x[[2]], 1), full[[2]], rtol=1e-12, atol=1e-14)
    assert not torch.equal(full, explainers.get("rise", n_masks=16, seed=2)(model, x, 1))


@pytest.mark.parametrize("params,field", [({"n_masks": 0}, "n_masks"), ({"cells": 0}, "cells"), ({"p": 0.0}, "p"),
                                          ({"p": 1.5}, "p"), ({"seed": -1}, "seed"), ({"batch_size": 0}, "batch_size")])
def test_rise_validates_its_parameters(params, field):
    with pytest.raises(ValueError, match=field):
        explainers.get("rise", **params)


def test_rise_refuses_more_than_three_spatial_dimensions():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2)).double()
    with pytest.raises(ValueError, match="1 to 3 spatial dimensions, got shape"):
        explainers.get("rise")(model, torch.rand(1, 1, 2, 2, 2, 2, dtype=torch.float64), 0)


def test_rise_is_not_differentiable():
    model, x = net((4,)), torch.randn(2, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="not differentiable"):
        explainers.get("rise")(model, x, 0, create_graph=True)
