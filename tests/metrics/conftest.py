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
