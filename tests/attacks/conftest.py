"""Small trained models shared by the attack tests (seeded, trained in a second or two on CPU).

- ``blocks``: 1×12×12 images in [0, 1]; class 1 holds a bright 4×4 block at a random place,
  class 0 a dim one. A conv → ReLU → conv → ReLU → GAP → linear CNN built from nn.ReLU modules.
- ``tabular``: 10 standard-normal features, label = [x₀ + x₁ − x₂ > 0]; a ReLU MLP.

Each fixture returns a :class:`Trained` with the model (eval mode), evaluation inputs that the
model classifies correctly, and their labels.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import Tensor, nn

SIDE = 12


@dataclasses.dataclass
class Trained:
    model: nn.Module
    x: Tensor
    y: Tensor


def block_images(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Background U(0, 0.3); a 4×4 block of brightness 0.9 (class 1) or 0.45 (class 0)."""
    x = 0.3 * torch.rand(n, 1, SIDE, SIDE, generator=generator)
    y = torch.randint(0, 2, (n,), generator=generator)
    top = torch.randint(0, SIDE - 4, (n,), generator=generator)
    left = torch.randint(0, SIDE - 4, (n,), generator=generator)
    rows = torch.arange(SIDE)
    inside = ((rows[None, :] >= top[:, None]) & (rows[None, :] < top[:, None] + 4))[:, :, None] & (
        (rows[None, :] >= left[:, None]) & (rows[None, :] < left[:, None] + 4)
    )[:, None, :]
    level = torch.where(y == 1, 0.9, 0.45)[:, None, None]
    x[:, 0] = torch.where(inside, level, x[:, 0])
    return x, y


def tabular_data(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    x = torch.randn(n, 10, generator=generator)
    return x, (x[:, 0] + x[:, 1] - x[:, 2] > 0).long()


def train(model: nn.Module, x: Tensor, y: Tensor, steps: int = 150, lr: float = 3e-2) -> nn.Module:
    """Full-batch Adam."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, foreach=False)
    for _ in range(steps):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
    return model.eval()


def correctly_classified(model: nn.Module, x: Tensor, y: Tensor, n: int) -> Trained:
    with torch.no_grad():
        right = model(x).argmax(1) == y
    assert right.float().mean() > 0.9, "the fixture model did not train"
    return Trained(model, x[right][:n], y[right][:n])


@pytest.fixture(scope="session")
def blocks() -> Trained:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 2),
    )
    train(model, *block_images(128, generator), steps=60, lr=5e-2)
    return correctly_classified(model, *block_images(128, generator), n=48)


@pytest.fixture(scope="session")
def tabular() -> Trained:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2))
    train(model, *tabular_data(512, generator))
    return correctly_classified(model, *tabular_data(128, generator), n=48)
