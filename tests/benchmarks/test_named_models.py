"""torchvision / timm architectures by name (benchmarks/models/named.py).

Neither package imports here (never installed: they do not build against this torch), so the
tests check the error that names the extra, and the path through a module injected into
``sys.modules`` that mimics ``torchvision.models.get_model`` and ``timm.create_model``
(keyword ``weights`` / ``pretrained``, ``num_classes``, a ValueError for an unknown name).
"""

from __future__ import annotations

import sys
import types

import pytest
import torch
from salbench import models
from salbench.models.external import TwoLogits
from torch import nn

SHAPE = (3, 8, 8)


class Tiny(nn.Module):
    def __init__(self, num_classes: int, width: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.fc(self.conv(x).relu().mean((2, 3)))


def fake_library(monkeypatch, library: str, version: str = "0.0-fake") -> list[dict]:
    """Install a fake ``library`` whose builder records its calls (returned list) and builds :class:`Tiny`."""
    calls: list[dict] = []

    def build(name, **kwargs):
        calls.append({"name": name, **kwargs})
        if name != "tiny":
            raise ValueError(f"Unknown model {name}")
        kwargs.pop("weights" if library == "torchvision" else "pretrained")
        return Tiny(**kwargs)

    root = types.ModuleType(library)
    root.__version__ = version
    if library == "torchvision":
        sub = types.ModuleType("torchvision.models")
        sub.get_model = build
        root.models = sub
        monkeypatch.setitem(sys.modules, "torchvision.models", sub)
    else:
        root.create_model = build
    monkeypatch.setitem(sys.modules, library, root)
    return calls


@pytest.mark.parametrize("library", ["torchvision", "timm"])
def test_without_the_package_the_error_names_the_extra(monkeypatch, library):
    monkeypatch.setitem(sys.modules, library, None)  # an import of it fails, installed or not
    monkeypatch.delitem(sys.modules, "torchvision.models", raising=False)
    message = rf"model '{library}' needs the Python package '{library}'.*pip install 'salbench\[{library}\]'"
    with pytest.raises(ImportError, match=message):
        models.build(library, {"arch": "resnet18"}, SHAPE, 2)
    with pytest.raises(ImportError, match=message):
        models.content_digest(library, {"arch": "resnet18"})


@pytest.mark.parametrize("library", ["torchvision", "timm"])
def test_an_architecture_by_name_gets_the_data_sets_classes_and_no_downloaded_weights(monkeypatch, library):
    calls = fake_library(monkeypatch, library)
    net = models.build(library, {"arch": "tiny", "kwargs": {"width": 5}}, SHAPE, 3)
    no_download = {"weights": None} if library == "torchvision" else {"pretrained": False}
    assert calls[-1] == {"name": "tiny", **no_download, "num_classes": 3, "width": 5}
    assert isinstance(net, Tiny) and net.conv.out_channels == 5 and net(torch.zeros(2, *SHAPE)).shape == (2, 3)
    with pytest.raises(ValueError, match=rf"model '{library}': .*\('resnet9', \.\.\.\) fails: Unknown model resnet9"):
        models.build(library, {"arch": "resnet9"}, SHAPE, 3)
    with pytest.raises(ValueError, match=r"load downloaded weights, which salbench never does"):
        models.build(library, {"arch": "tiny", "kwargs": dict(no_download)}, SHAPE, 3)
    with pytest.raises(ValueError, match=rf"{library} architecture 'tiny' outputs 4 logits per sample but the data set has 3"):
        models.build(library, {"arch": "tiny", "kwargs": {"num_classes": 4}}, SHAPE, 3)


def test_a_checkpoint_and_one_logit(monkeypatch, tmp_path):
    fake_library(monkeypatch, "torchvision")
    torch.manual_seed(0)
    trained = Tiny(num_classes=1)
    torch.save({"model": trained.state_dict()}, tmp_path / "w.pt")
    params = {"arch": "tiny", "kwargs": {"num_classes": 1}, "checkpoint": str(tmp_path / "w.pt"), "state_dict_key": "model"}
    net = models.build("torchvision", params, SHAPE, 2)
    x = torch.randn(4, *SHAPE)
    assert isinstance(net, TwoLogits) and torch.equal(net(x)[:, 1], trained(x)[:, 0] / 2)
    assert models.given_weights("torchvision", params) and not models.given_weights("torchvision", {"arch": "tiny"})
    with pytest.raises(ValueError, match=r"checkpoint .*w.pt does not fit the model"):
        models.build("torchvision", {**params, "kwargs": {"num_classes": 1, "width": 6}}, SHAPE, 2)


def test_the_cache_key_follows_the_checkpoints_content_and_the_packages_version(monkeypatch, tmp_path):
    fake_library(monkeypatch, "timm")
    torch.save(Tiny(2).state_dict(), tmp_path / "a.pt")
    params = {"arch": "tiny", "checkpoint": str(tmp_path / "a.pt")}
    first = models.content_digest("timm", params)
    (tmp_path / "b.pt").write_bytes((tmp_path / "a.pt").read_bytes())
    assert models.content_digest("timm", {**params, "checkpoint": str(tmp_path / "b.pt")}) == first  # not the path
    assert "checkpoint" not in models.key_params("timm", params)
    torch.save(Tiny(2).state_dict(), tmp_path / "a.pt")  # new weights
    second = models.content_digest("timm", params)
    fake_library(monkeypatch, "timm", version="0.0-other")
    assert len({first, second, models.content_digest("timm", params)}) == 3
