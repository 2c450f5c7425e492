"""Explainers that ignore what a metric varies, shared by the metric tests: their values are known."""

from __future__ import annotations

import pytest
import torch
from salbench.explainers.base import Explainer


class Identity(Explainer):
    """E(x) = x: independent of the model's parameters and of the target."""

    def attribute(self, model, x, target, *, create_graph):
        return x.clone()


class Constant(Explainer):
    """E(x) = c everywhere: independent of everything (c = 0 gives the zero map)."""

    def __init__(self, value: float = 1.0):
        self.value = value

    def attribute(self, model, x, target, *, create_graph):
        return torch.full_like(x, self.value)


@pytest.fixture
def identity():
    return Identity()


@pytest.fixture
def constant():
    return Constant()


@pytest.fixture
def zero():
    return Constant(0.0)


@pytest.fixture
def spatial_case():
    """A builder of a gradient case on (N, C, L) signals or (N, C, D, H, W) volumes of ``shape``:
    a float64 conv → softplus → global pool → linear model with 3 classes (fixed seed), uniform inputs."""

    def build(shape: tuple[int, ...], target: list[int]):
        from salbench import explainers
        from salbench.metrics.base import Case

        torch.manual_seed(0)
        conv = torch.nn.Conv1d if len(shape) == 3 else torch.nn.Conv3d
        pool = torch.nn.AdaptiveAvgPool1d if len(shape) == 3 else torch.nn.AdaptiveAvgPool3d
        model = torch.nn.Sequential(
            conv(shape[1], 4, 3, padding=1), torch.nn.Softplus(), pool(1), torch.nn.Flatten(), torch.nn.Linear(4, 3)
        ).double()
        x = torch.rand(shape, dtype=torch.float64)
        return Case(model, explainers.get("gradient"), x, torch.tensor(target), None)

    return build
