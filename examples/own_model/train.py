"""Make the example's checkpoint: train the factory's ResNet-18 briefly and save its state dict.

Run: ``python examples/own_model/train.py`` (writes ``examples/own_model/resnet18.pt``), then
``salbench run examples/own_model/suite.toml``. With your own model, skip this and point the
suite's ``checkpoint`` at your file.
"""

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from salbench.datasets import load_dataset

HERE = Path(__file__).resolve().parent


def _factory():
    """``build`` of the factory file beside this script (the one the suite names)."""
    spec = importlib.util.spec_from_file_location("own_model_nets", HERE / "nets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build


def train(steps: int = 30, seed: int = 0, out: Path = HERE / "resnet18.pt") -> Path:
    """``steps`` Adam steps of 32 training images of the suite's data set, from a seeded initialisation."""
    torch.manual_seed(seed)
    net = _factory()(size=16)
    data = load_dataset("synthetic_blocks", {"size": 16, "n_test": 64})
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    for step in range(steps):
        start = 32 * step % len(data.train)
        loss = F.cross_entropy(net(data.train.x[start : start + 32]), data.train.y[start : start + 32])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    torch.save(net.eval().state_dict(), out)
    return out


if __name__ == "__main__":
    print(train())
