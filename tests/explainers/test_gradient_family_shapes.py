"""Guided backprop, DeepLIFT, LRP, expected gradients, gradient SHAP, KernelSHAP and LIME on every input
layout: tables (N, F), signals (N, C, L), images (N, C, H, W), volumes (N, C, D, H, W)."""

from __future__ import annotations

import pytest
import torch
from salbench import explainers
from torch import nn

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SHAPES = {0: (4, 6), 1: (4, 2, 7), 2: (4, 2, 5, 6), 3: (4, 2, 3, 4, 5)}
EXPLAINERS = {
    "guided_backprop": {},
    "deeplift": {"baseline": 0.1},
    "lrp": {"composite": "epsilon_plus"},
    "expected_gradients": {"n_samples": 6},
    "gradient_shap": {"n_samples": 6, "stdev": 0.2},
    "kernel_shap": {"n_samples": 30},
    "lime": {"n_samples": 30, "alpha": 1e-4},
}


def model_for(dims: int) -> nn.Module:
    """An MLP for tables, else conv → ReLU → GAP → linear over ``dims`` spatial dimensions; 3 classes."""
    torch.manual_seed(dims)
    if dims == 0:
        return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).double().eval()
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
    pool = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[dims]
    return nn.Sequential(conv(2, 4, 3, padding=1), nn.ReLU(), pool(1), nn.Flatten(), nn.Linear(4, 3)).double().eval()


@pytest.mark.parametrize("name", sorted(EXPLAINERS))
@pytest.mark.parametrize("dims", sorted(SHAPES))
def test_every_layout_gives_a_map_of_its_shape_independent_of_the_batch(name, dims):
    x = torch.rand(SHAPES[dims], generator=torch.Generator().manual_seed(dims), dtype=torch.float64) - 0.3
    model = model_for(dims)
    t = torch.tensor([0, 1, 2, 1])
    explainer = explainers.get(name, **EXPLAINERS[name])
    attr = explainer(model, x, t)
    assert attr.shape == x.shape and attr.dtype == x.dtype and torch.isfinite(attr).all()
    assert attr.abs().max() > 0  # (guided backprop may give a sample no positive path)
    torch.testing.assert_close(explainer(model, x[2:3], t[2:3]), attr[2:3], rtol=1e-6, atol=1e-9)
