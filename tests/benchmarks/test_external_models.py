"""Models the user brings: checkpoints (strict, weights only), TorchScript and torch.export archives,
and binary classifiers with one logit."""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F
from salbench import explainers, models
from salbench.models.external import (
    TwoLogits,
    load_checkpoint,
    load_exported,
    load_torchscript,
    resolve_factory,
    two_class,
)
from torch import nn


def small_resnet() -> nn.Module:
    torch.manual_seed(0)
    return models.build("resnet", {"blocks": (1, 1), "widths": (4, 6), "stem": "small"}, (1, 12, 12), 3).eval()


# -- checkpoints ----------------------------------------------------------------------------------
def test_a_checkpoint_restores_the_outputs_exactly(tmp_path):
    trained, fresh = small_resnet(), models.build("resnet", {"blocks": (1, 1), "widths": (4, 6), "stem": "small"},
                                                  (1, 12, 12), 3).eval()
    with torch.no_grad():
        trained.fc.bias.add_(1.0)  # differ from the fresh model's initialisation
    torch.save(trained.state_dict(), tmp_path / "w.pt")
    x = torch.randn(2, 1, 12, 12)
    assert not torch.equal(fresh(x), trained(x))
    assert torch.equal(load_checkpoint(fresh, tmp_path / "w.pt")(x), trained(x))


def test_a_wrapped_state_dict_needs_its_key(tmp_path):
    net = nn.Linear(3, 2)
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, tmp_path / "w.pt")
    with pytest.raises(ValueError, match=r"is not a state dict .*non-tensor entries include \['state_dict'\].*state_dict_key"):
        load_checkpoint(nn.Linear(3, 2), tmp_path / "w.pt")
    assert torch.equal(load_checkpoint(nn.Linear(3, 2), tmp_path / "w.pt", "state_dict").weight, net.weight)
    with pytest.raises(ValueError, match=r"state_dict_key 'model' is not in it; its top-level keys: \['epoch', 'state_dict'\]"):
        load_checkpoint(nn.Linear(3, 2), tmp_path / "w.pt", "model")


def test_missing_and_unexpected_entries_are_listed_not_dropped(tmp_path):
    state = nn.Sequential(nn.Linear(3, 2)).state_dict()  # names "0.weight", "0.bias"
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(ValueError, match=r'does not fit the model: .*Missing key\(s\).*"weight".*Unexpected key\(s\).*"0.weight"'):
        load_checkpoint(nn.Linear(3, 2), tmp_path / "w.pt")


def test_a_pickled_model_is_refused_without_running_its_code(tmp_path):
    """weights_only=True: a whole pickled module (which could run arbitrary code) is not loaded."""
    torch.save(nn.Linear(3, 2), tmp_path / "model.pt")
    with pytest.raises(ValueError, match=r"weights_only=True\) \(Unsupported global: GLOBAL torch.nn.modules.linear.Linear\); save the model's state_dict\(\)"):
        load_checkpoint(nn.Linear(3, 2), tmp_path / "model.pt")
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(print))  # a global that weights_only refuses
    with pytest.raises(ValueError, match=r"weights_only=True\) \(UnpicklingError: Weights only load failed"):
        load_checkpoint(nn.Linear(3, 2), tmp_path / "evil.pt")


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"checkpoint .*nope.pt does not exist"):
        load_checkpoint(nn.Linear(3, 2), tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError, match=r"TorchScript archive .*nope.ts does not exist"):
        load_torchscript(tmp_path / "nope.ts")


# -- archives -------------------------------------------------------------------------------------
def test_torchscript_and_export_archives_give_the_models_outputs_and_gradients(tmp_path):
    net = small_resnet()
    x = torch.randn(2, 1, 12, 12)
    torch.jit.script(net).save(str(tmp_path / "m.ts"))
    batch = torch.export.Dim("batch")
    torch.export.save(torch.export.export(net, (x,), dynamic_shapes=({0: batch},)), tmp_path / "m.pt2")
    reference = explainers.get("gradient")(net, x, torch.tensor([0, 2]))
    for loaded in (load_torchscript(tmp_path / "m.ts"), load_exported(tmp_path / "m.pt2")):
        loaded.eval()  # the harness switches modes; an exported program cannot, the wrapper absorbs it
        y = torch.randn(5, 1, 12, 12)
        torch.testing.assert_close(loaded(y), net(y), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(explainers.get("gradient")(loaded, x, torch.tensor([0, 2])), reference,
                                   rtol=1e-4, atol=1e-6)


def test_a_broken_archive_is_an_error_naming_it(tmp_path):
    (tmp_path / "m.pt2").write_bytes(b"not an archive")
    with pytest.raises(ValueError, match=r"torch.export archive .*m.pt2 cannot be loaded"):
        load_exported(tmp_path / "m.pt2")


# -- one-logit binary classifiers -----------------------------------------------------------------
@pytest.mark.parametrize("squeeze", [False, True])
def test_two_logits_reproduce_the_sigmoid_model(squeeze):
    torch.manual_seed(0)
    linear = nn.Linear(4, 1).double()
    sigmoid_model = nn.Sequential(linear, nn.Flatten(0)) if squeeze else linear
    x, y = torch.randn(50, 4, dtype=torch.float64), torch.randint(0, 2, (50,))
    wrapped = two_class(sigmoid_model, x)
    assert isinstance(wrapped, TwoLogits)
    z = linear(x)[:, 0]
    logits = wrapped(x)
    torch.testing.assert_close(logits.softmax(1)[:, 1], torch.sigmoid(z))
    torch.testing.assert_close(F.cross_entropy(logits, y), F.binary_cross_entropy_with_logits(z, y.double()))
    assert torch.equal(logits.argmax(1), (z > 0).long())


def test_maps_of_the_two_classes_of_a_one_logit_model_are_negatives():
    """Target c explains ±z/2: IG's completeness gives the sum of the map, and class 0's map is −class 1's."""
    torch.manual_seed(1)
    net = TwoLogits(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)).double())
    x = torch.randn(3, 4, dtype=torch.float64)
    ig = explainers.get("integrated_gradients", steps=64)
    ones, zeros = torch.ones(3, dtype=torch.long), torch.zeros(3, dtype=torch.long)
    z, z0 = net.model(x)[:, 0], net.model(torch.zeros_like(x))[:, 0]
    torch.testing.assert_close(ig(net, x, ones).sum(1), (z - z0).detach() / 2, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ig(net, x, zeros), -ig(net, x, ones))


def test_two_class_keeps_multiclass_models_and_rejects_other_outputs():
    x = torch.randn(4, 3)
    multi = nn.Linear(3, 2)
    assert two_class(multi, x) is multi
    with pytest.raises(ValueError, match=r"logits \(N, C\) with C >= 2 .* \(N,\) or \(N, 1\).*got \(4, 2, 3\)"):
        two_class(nn.Sequential(nn.Linear(3, 6), nn.Unflatten(1, (2, 3))), x)
    with pytest.raises(ValueError, match=r"one output per sample"):
        TwoLogits(multi)(x)


# -- registered architectures ---------------------------------------------------------------------
FACTORY = '''
from torch import nn

def build(width=4, outputs=2):
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, outputs))
'''


def test_a_factory_file_builds_the_model_with_its_checkpoint(tmp_path):
    (tmp_path / "nets.py").write_text(FACTORY)
    spec = f"{tmp_path / 'nets.py'}:build"
    torch.manual_seed(0)
    trained = resolve_factory(spec)(width=3)
    torch.save(trained.state_dict(), tmp_path / "w.pt")
    params = {"factory": spec, "kwargs": {"width": 3}, "checkpoint": str(tmp_path / "w.pt")}
    net = models.build("factory", params, (1, 8, 8), 2)
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(net(x), trained(x))
    assert models.content_digest("factory", params) == models.content_digest("factory", params)
    before = models.content_digest("factory", params)
    (tmp_path / "nets.py").write_text(FACTORY + "\n# edited\n")
    assert models.content_digest("factory", params) != before  # the factory's source is content too
    (tmp_path / "nets.py").write_text(FACTORY)
    torch.save(small_resnet().state_dict(), tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"does not fit the model: .*Missing key\(s\)"):
        models.build("factory", {**params, "checkpoint": str(tmp_path / "other.pt")}, (1, 8, 8), 2)


def test_a_one_logit_factory_model_becomes_two_logits_and_other_class_counts_are_refused(tmp_path):
    (tmp_path / "nets.py").write_text(FACTORY)
    spec = f"{tmp_path / 'nets.py'}:build"
    assert isinstance(models.build("factory", {"factory": spec, "kwargs": {"outputs": 1}}, (1, 8, 8), 2), TwoLogits)
    with pytest.raises(ValueError, match=r"outputs 3 logits per sample but the data set has 2 classes"):
        models.build("factory", {"factory": spec, "kwargs": {"outputs": 3}}, (1, 8, 8), 2)
    with pytest.raises(ValueError, match=r"fails on a batch of zeros of the data set's shape \(2, 3, 8, 8\)"):
        models.build("factory", {"factory": spec}, (3, 8, 8), 2)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nets.py", "factory must be 'pkg.module:name' or 'path/to/file.py:name'"),
        ("missing.py:build", "file missing.py does not exist"),
        ("salbench.nonexistent:build", "module 'salbench.nonexistent' cannot be imported"),
        ("salbench.models.resnet:nothing", r"has no callable 'nothing'; callables in it: \['BasicBlock'"),
    ],
)
def test_bad_factories_are_named(spec, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        resolve_factory(spec)


def test_a_package_factory_and_archives_are_registered_architectures(tmp_path):
    params = {"factory": "salbench.models:build",  # a package's function, with TOML-like (list) arguments
              "kwargs": {"name": "resnet", "params": {"blocks": [1, 1], "widths": [4, 6], "stem": "small"},
                         "input_shape": [1, 12, 12], "num_classes": 3}}
    torch.manual_seed(0)
    net = models.build("factory", params, (1, 12, 12), 3).eval()
    torch.jit.script(net).save(str(tmp_path / "m.ts"))
    loaded = models.build("torchscript", {"path": str(tmp_path / "m.ts")}, (1, 12, 12), 3)
    x = torch.randn(2, 1, 12, 12)
    torch.testing.assert_close(loaded(x), net(x))
    assert models.content_digest("torchscript", {"path": str(tmp_path / "m.ts")}) is not None
