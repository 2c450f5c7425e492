"""Model architectures (small_cnn, mlp) and the standard training recipe."""

from __future__ import annotations

import re

import pytest
import salbench.recipes.standard as standard_module
import torch
from salbench import models, recipes
from salbench.core.registry import ParameterError
from salbench.datasets import load_dataset
from salbench.datasets.base import Split
from salbench.recipes.base import balanced_accuracy, evaluate
from torch import nn


def swap_relus(model: nn.Module, replacement: type[nn.Module]) -> nn.Module:
    """Replace every nn.ReLU module in place (what attacks do to get a smooth surrogate)."""
    for name, child in model.named_children():
        if isinstance(child, nn.ReLU):
            setattr(model, name, replacement())
        else:
            swap_relus(child, replacement)
    return model


# -- small_cnn ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 16, 16), (3, 8, 8), (1, 4, 4)])
def test_small_cnn_shapes(shape):
    net = models.build("small_cnn", {}, shape, 3)
    x = torch.randn(5, *shape)
    assert net(x).shape == (5, 3)
    maps = net.features(x)
    assert maps.shape == (5, 32, shape[1] // 4, shape[2] // 4)  # default (8, 16, 32): two 2×2 pools


def test_small_cnn_is_a_cam_network():
    torch.manual_seed(0)
    net = models.build("small_cnn", {"channels": (4, 6)}, (1, 16, 16), 3).double()
    x = torch.randn(7, 1, 16, 16, dtype=torch.float64)
    feature_maps = net.features(x)  # A = ReLU(last conv)
    assert isinstance(net.features[-1], nn.ReLU)
    assert net.last_conv is [m for m in net.modules() if isinstance(m, nn.Conv2d)][-1]
    assert torch.equal(feature_maps, torch.relu(net.last_conv(net.features[:-2](x))))
    cam = torch.einsum("ck,nkij->ncij", net.classifier.weight, feature_maps)  # CAM_c = Σ_k w_ck A_k
    logits = net(x)
    assert torch.allclose(cam.mean((2, 3)) + net.classifier.bias, logits, atol=1e-12, rtol=0)
    assert feature_maps.shape[-2:] == (8, 8)


@pytest.mark.parametrize(
    "name, shape, conv",
    [("small_cnn", (2, 16), nn.Conv1d), ("small_cnn1d", (1, 12), nn.Conv1d), ("small_cnn", (1, 8, 8, 8), nn.Conv3d),
     ("small_cnn3d", (2, 4, 8, 6), nn.Conv3d)],
)
def test_small_cnn_on_signals_and_volumes_is_a_cam_network(name, shape, conv):
    """Conv1d/Conv3d chosen from the input shape; logits = spatial mean of Σ_k w_ck A_k + b (CAM exact)."""
    torch.manual_seed(0)
    net = models.build(name, {"channels": (3, 5)}, shape, 3).double()
    x = torch.randn(4, *shape, dtype=torch.float64)
    assert all(not isinstance(m, nn.Conv2d) for m in net.modules())
    assert net.last_conv is [m for m in net.modules() if isinstance(m, conv)][-1]
    feature_maps = net.features(x)
    assert feature_maps.shape == (4, 5, *(side // 2 for side in shape[1:]))  # one pool of side 2
    cam = torch.einsum("ck,nk...->nc...", net.classifier.weight, feature_maps)
    spatial = tuple(range(2, cam.dim()))
    torch.testing.assert_close(cam.mean(spatial) + net.classifier.bias, net(x), rtol=0, atol=1e-12)
    assert models.provides(name) == {"conv", "gap_head"}


@pytest.mark.parametrize(
    "name, shape, message",
    [("small_cnn3d", (1, 16, 16), r"input_shape must be \(channels, depth, height, width\)"),
     ("small_cnn1d", (1, 8, 8, 8), r"input_shape must be \(channels, length\)"),
     ("small_cnn", (30,), r"input_shape must be \(channels, length\) or \(channels, height, width\) or \(channels, depth"),
     ("small_cnn", (1, 2, 2, 2, 2), "input_shape must be")],
)
def test_small_cnn_names_the_shapes_it_accepts(name, shape, message):
    with pytest.raises(ValueError, match=message):
        models.build(name, {}, shape, 2)


def test_small_cnn_on_images_keeps_its_modules_and_state_dict_keys():
    """The 2-d network has the layout its checkpoints were saved with (examples/own_model, the model cache)."""
    net = models.build("small_cnn", {"channels": (4, 6)}, (1, 8, 8), 2)
    assert [type(m).__name__ for m in net.features] == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU"]
    assert type(net.pool).__name__ == "AdaptiveAvgPool2d"
    assert list(net.state_dict()) == ["features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias",
                                      "classifier.weight", "classifier.bias"]


# -- resnet --------------------------------------------------------------------------------------
def test_resnet_has_torchvisions_resnet18_layout():
    """Names and shapes of torchvision's resnet18 (3 channels, 1000 classes), spot-checked: the
    stem, a downsampling block, the last block and the head, and the count of its state dict's
    122 tensors (20 convolutions, 20 BatchNorms with 5 tensors each, the head's 2)."""
    state = models.build("resnet", {}, (3, 224, 224), 1000).state_dict()
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes["conv1.weight"] == (64, 3, 7, 7)
    assert shapes["layer2.0.downsample.0.weight"] == (128, 64, 1, 1)
    assert shapes["layer2.0.downsample.1.running_var"] == (128,)
    assert shapes["layer4.1.bn2.weight"] == (512,)
    assert shapes["fc.weight"] == (1000, 512)
    assert "layer1.0.downsample.0.weight" not in shapes and "layer5.0.conv1.weight" not in shapes
    assert len(shapes) == 20 + 20 * 5 + 2


@pytest.mark.parametrize(
    "params, message",
    [
        ({"blocks": (2, 2), "widths": (8,)}, "blocks and widths need one entry per stage, got 2 and 1"),
        ({"stem": "cifar"}, "stem must be one of ('imagenet', 'small'), got 'cifar'"),
        ({"blocks": ()}, "blocks must be a non-empty tuple"),
        ({"widths": (8, 0, 4, 4)}, "widths[1]"),
        ({"blocks": (1,) * 5, "widths": (4,) * 5}, "at most 4 stages (torchvision's layer1 … layer4), got 5"),
    ],
)
def test_resnet_rejects_bad_parameters(params, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        models.build("resnet", params, (1, 28, 28), 2)


@pytest.mark.parametrize(
    "name, params, shape",
    [
        ("small_cnn", {"channels": (3, 4), "pool": False}, (2, 8, 8)),
        ("mlp", {}, (5,)),
        ("resnet", {"blocks": (1, 2), "widths": (3, 4), "stem": "small"}, (2, 8, 8)),
    ],
)
def test_relus_are_modules_so_swapping_them_linearises_the_model(name, params, shape):
    torch.manual_seed(1)
    net = swap_relus(models.build(name, params, shape, 2).double().eval(), nn.Identity)
    a, b = torch.randn(3, *shape, dtype=torch.float64), torch.randn(3, *shape, dtype=torch.float64)
    zero = torch.zeros(3, *shape, dtype=torch.float64)
    # no functional ReLU left (and no max-pool here): the model is affine, f(a + b) + f(0) = f(a) + f(b)
    assert torch.allclose(net(a + b) + net(zero), net(a) + net(b), atol=1e-10)
    relu_net = models.build(name, params, shape, 2).double().eval()
    assert not torch.allclose(relu_net(a + b) + relu_net(zero), relu_net(a) + relu_net(b), atol=1e-6)


def test_small_cnn_without_pooling_keeps_the_resolution():
    net = models.build("small_cnn", {"channels": (2, 2, 2), "pool": False}, (1, 6, 6), 2)
    assert net.features(torch.zeros(1, 1, 6, 6)).shape == (1, 2, 6, 6)
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())


@pytest.mark.parametrize(
    "params, shape, classes, match",
    [
        ({}, (28,), 2, "input_shape"),  # (1, 28) is a signal now
        ({}, (1, 2, 2), 2, "too small"),
        ({"kernel_size": 4}, (1, 8, 8), 2, "kernel_size"),
        ({"channels": ()}, (1, 8, 8), 2, "channels"),
        ({"channels": (4, 0)}, (1, 8, 8), 2, "channels\\[1\\]"),
        ({}, (1, 8, 8), 1, "num_classes"),
    ],
)
def test_small_cnn_bad_arguments_are_named(params, shape, classes, match):
    with pytest.raises(ValueError, match=match):
        models.build("small_cnn", params, shape, classes)


# -- mlp ---------------------------------------------------------------------------------------
def test_mlp_flattens_any_input_and_hidden_empty_is_linear():
    net = models.build("mlp", {"hidden": [16, 8]}, (2, 3), 4)
    assert net(torch.zeros(5, 2, 3)).shape == (5, 4)
    widths = [m.out_features for m in net.modules() if isinstance(m, nn.Linear)]
    assert widths == [16, 8, 4]
    linear = models.build("mlp", {"hidden": ()}, (30,), 2)
    assert [type(m) for m in linear.layers] == [nn.Flatten, nn.Linear]
    with pytest.raises(ValueError, match="hidden\\[0\\]"):
        models.build("mlp", {"hidden": (0,)}, (30,), 2)


def test_model_params_are_validated_without_the_harness_filled_ones():
    expected = {"channels": (4, 8), "kernel_size": 3, "pool": True}
    assert models.validate_params("small_cnn", {"channels": [4, 8]}) == expected
    assert models.validate_params("mlp", None) == {"hidden": (64, 64)}
    with pytest.raises(ParameterError, match="input_shape"):
        models.validate_params("mlp", {"input_shape": (30,)})
    with pytest.raises(ParameterError, match="hiden"):
        models.validate_params("mlp", {"hiden": (3,)})
    with pytest.raises(ParameterError, match="channels"):
        models.validate_params("small_cnn", {"channels": 8})


# -- evaluate ------------------------------------------------------------------------------------
def test_evaluate_matches_a_direct_computation_and_restores_the_mode():
    data = load_dataset("wdbc", {})
    torch.manual_seed(0)
    net = models.build("mlp", {"hidden": (4,)}, data.input_shape, 2).train()
    accuracy, loss = evaluate(net, data.test, batch_size=7)
    with torch.no_grad():
        logits = net(data.test.x)
    assert accuracy == (logits.argmax(1) == data.test.y).sum().item() / len(data.test)
    assert loss == pytest.approx(nn.functional.cross_entropy(logits, data.test.y).item(), rel=1e-5)
    assert net.training


def sign_classifier() -> nn.Module:
    """Logits (−x, x) of a single feature: predicts class 1 exactly where x > 0."""
    net = nn.Linear(1, 2)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[-1.0], [1.0]]))
        net.bias.zero_()
    return net


def test_balanced_accuracy_is_the_mean_recall_of_an_imbalanced_split():
    # class 0: x = −1, −2, 3 -> predicted 0, 0, 1 (recall 2/3); class 1: x = 4, −5 -> 1, 0 (recall 1/2)
    split = Split(torch.tensor([[-1.0], [-2.0], [3.0], [4.0], [-5.0]]), torch.tensor([0, 0, 0, 1, 1]))
    net = sign_classifier().train()
    assert balanced_accuracy(net, split, batch_size=2) == pytest.approx((2 / 3 + 1 / 2) / 2)  # 7/12
    assert evaluate(net, split)[0] == pytest.approx(3 / 5)  # plain accuracy weighs class 0 by its 3 samples
    assert net.training


def test_balanced_accuracy_excludes_a_class_absent_from_the_split():
    # only class 1 occurs (recall 1/2): class 0 has no samples, so no recall, and is not averaged in
    split = Split(torch.tensor([[4.0], [-5.0]]), torch.tensor([1, 1]))
    assert balanced_accuracy(sign_classifier(), split) == pytest.approx(0.5)


# -- standard recipe -----------------------------------------------------------------------------
def tiny_blocks():
    return load_dataset("synthetic_blocks", {"size": 8, "delta": 3.0, "n_train": 96, "n_val": 32, "n_test": 32})


def fitted(data, recipe_params, seed, model_seed=0):
    torch.manual_seed(model_seed)
    net = models.build("small_cnn", {"channels": (4, 4)}, data.input_shape, data.num_classes)
    info = recipes.get("standard", **recipe_params).fit(net, data, seed=seed)
    return net, info


def test_standard_is_deterministic_given_the_seed():
    data = tiny_blocks()
    a, _ = fitted(data, {"epochs": 2, "batch_size": 32}, seed=5)
    b, _ = fitted(data, {"epochs": 2, "batch_size": 32}, seed=5)
    c, _ = fitted(data, {"epochs": 2, "batch_size": 32}, seed=6)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # bitwise identical
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)  # another shuffling seed, other weights


def test_standard_learns_the_planted_block():
    data = tiny_blocks()
    net, info = fitted(data, {"epochs": 15, "batch_size": 16, "lr": 1e-2}, seed=0)
    assert not net.training
    accuracy = evaluate(net, data.test)[0]
    # a 4×4 block shifted by 3 sigma: chance is 0.5; 32 test images
    assert accuracy >= 0.9 and info["best_val_accuracy"] >= 0.9
    assert set(info) >= {"epochs_run", "best_epoch", "best_val_accuracy", "best_val_loss", "last_train_loss"}


def test_early_stopping_restores_the_best_validation_weights(monkeypatch):
    # scripted validation results: best accuracy at epoch 3 (epoch 2 ties epoch 3's accuracy
    # with a higher loss), then `patience` = 2 epochs without improvement stop training at 5
    script = iter([(0.5, 1.0), (0.75, 0.9), (0.75, 0.8), (0.7, 0.1), (0.75, 0.85), (0.9, 0.1)])
    snapshots = []

    def scripted_evaluate(model, split, **kwargs):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(script)

    monkeypatch.setattr(standard_module, "evaluate", scripted_evaluate)
    net, info = fitted(tiny_blocks(), {"epochs": 20, "patience": 2, "batch_size": 32}, seed=0)
    assert info["epochs_run"] == 5 and info["best_epoch"] == 3 and len(snapshots) == 5
    assert info["best_val_accuracy"] == 0.75 and info["best_val_loss"] == 0.8
    final = net.state_dict()
    assert all(torch.equal(final[k], snapshots[2][k]) for k in final)
    assert not all(torch.equal(final[k], snapshots[4][k]) for k in final)


def test_standard_runs_at_most_epochs():
    _, info = fitted(tiny_blocks(), {"epochs": 2, "patience": 5}, seed=0)
    assert info["epochs_run"] == 2


@pytest.mark.parametrize(
    "params, name",
    [({"lr": 0.0}, "lr"), ({"lr": -1e-3}, "lr"), ({"epochs": 0}, "epochs"), ({"batch_size": 0}, "batch_size"),
     ({"patience": 0}, "patience"), ({"weight_decay": -1.0}, "weight_decay")],
)
def test_standard_bad_parameters_are_named(params, name):
    with pytest.raises(ValueError, match=name):
        recipes.get("standard", **params)


def test_standard_rejects_a_bad_seed():
    net = models.build("mlp", {"hidden": ()}, (64,), 2)
    with pytest.raises(ValueError, match="seed"):
        recipes.get("standard").fit(net, tiny_blocks(), seed=-1)
