"""Small float64 models shared by the explainer tests (random init, fixed seeds)."""

from __future__ import annotations

import pytest
import torch
from torch import nn


def make_cnn(activation: type[nn.Module] = nn.ReLU, channels: int = 3, seed: int = 0) -> nn.Sequential:
    """conv → act → conv → act → global average pool → linear, 3 classes, float64."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(channels, 4, 3, padding=1),
        activation(),
        nn.Conv2d(4, 5, 3, padding=1),
        activation(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(5, 3),
    ).double().eval()


def make_mlp(activation: type[nn.Module] = nn.ReLU, features: int = 6, seed: int = 0) -> nn.Sequential:
    """linear → act → linear, 3 classes, float64."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(features, 16), activation(), nn.Linear(16, 3)).double().eval()


class Softplus5(nn.Softplus):
    """Softplus with β = 5: smooth, so second derivatives are nonzero."""

    def __init__(self):
        super().__init__(beta=5.0)


@pytest.fixture
def cnn():
    return make_cnn()


@pytest.fixture
def mlp():
    return make_mlp()


@pytest.fixture
def image_batch():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, 8, 8, generator=gen, dtype=torch.float64)
    return x, torch.tensor([0, 1, 2, 1, 0])


@pytest.fixture
def table_batch():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(5, 6, generator=gen, dtype=torch.float64)
    return x, torch.tensor([2, 0, 1, 1, 2])


@pytest.fixture
def smooth_mlp():
    """The MLP with softplus activations, on 4 features."""
    return make_mlp(Softplus5, features=4, seed=4)
