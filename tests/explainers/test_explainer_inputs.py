"""Bad inputs and parameters raise errors naming the argument; the registry lists every explainer.

NaN inputs, bad targets and ``create_graph`` on a non-differentiable explainer are refused by
every registered explainer: checked by its contract (:mod:`salbench.testing`,
``test_explainer_properties.py``)."""

from __future__ import annotations

import pytest
import torch.nn.functional as F
from salbench import explainers
from salbench.core.registry import ParameterError
from torch import nn

def test_registry_lists_every_explainer():
    for name in explainers.names():
        entry = explainers.registry.entry(name)
        assert entry.description and issubclass(entry.factory, explainers.base.Explainer)


@pytest.mark.parametrize("name,label", [("gradcam", "GradCAM"), ("cam", "cam")])
def test_class_activation_maps_need_spatial_inputs(name, label, mlp, table_batch):
    x, t = table_batch
    with pytest.raises(ValueError, match=rf"{label} needs x of shape \(N, C, \*spatial\)"):
        explainers.get(name, layer="0")(mlp, x, t)


@pytest.mark.parametrize("name", ["gradcam", "cam"])
def test_unknown_layer_lists_the_conv_layers(name, cnn, image_batch):
    x, t = image_batch
    with pytest.raises(ValueError, match=r"layer='conv9' is not a submodule of the model; Conv2d layers: '0', '2'"):
        explainers.get(name, layer="conv9")(cnn, x, t)


def test_unknown_fc_lists_the_linear_layers(cnn, image_batch):
    x, t = image_batch
    with pytest.raises(ValueError, match=r"fc='head' is not a submodule of the model; Linear layers: '6'"):
        explainers.get("cam", fc="head")(cnn, x, t)


def test_gradcam_without_conv_layers_says_so(image_batch):
    model = nn.Sequential(nn.Flatten(), nn.Linear(192, 3)).double()
    x, t = image_batch
    with pytest.raises(ValueError, match="layer='auto' found no submodule whose output has more than one spatial"):
        explainers.get("gradcam")(model, x, t)


class FunctionalReLU(nn.Module):
    """conv → F.relu → GAP → linear: the last module before the pool is the convolution."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(F.relu(self.conv(x)).mean((2, 3)))


def test_cam_rejects_a_layer_that_is_not_pooled_into_fc(image_batch):
    x, t = image_batch
    model = FunctionalReLU().double()
    with pytest.raises(ValueError, match="does not reproduce the model's logits"):
        explainers.get("cam")(model, x, t)


def test_a_layer_that_runs_twice_is_rejected(image_batch):
    conv = nn.Conv2d(3, 3, 3, padding=1)
    model = nn.Sequential(conv, nn.ReLU(), conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 3)).double()
    x, t = image_batch
    with pytest.raises(ValueError, match="layer '0' ran 2 times"):
        explainers.get("gradcam", layer="0")(model, x, t)


@pytest.mark.parametrize(
    "name,params,message",
    [
        ("integrated_gradients", {"steps": 0}, "steps must be an integer >= 1"),
        ("integrated_gradients", {"steps": 1, "method": "riemann_trapezoid"}, "steps must be >= 2"),
        ("integrated_gradients", {"internal_batch_size": 0}, "internal_batch_size must be"),
        ("integrated_gradients", {"baseline": float("inf")}, "baseline must be a finite number"),
        ("smoothgrad", {"n_samples": -1}, "n_samples must be an integer >= 1"),
        ("smoothgrad", {"noise": -0.1}, "noise must be a finite number >= 0"),
        ("smoothgrad", {"batch_size": 0}, "batch_size must be"),
        ("occlusion", {"window": (2, 2), "stride": (1,)}, "stride must have one entry per window dimension"),
        ("occlusion", {"window": (0,)}, "window entries must be"),
        ("occlusion", {"stride": (0,)}, "stride entries must be"),
        ("occlusion", {"window": ()}, "window must name a size"),
        ("gradcam", {"layer": ""}, "layer must be a submodule name"),
        ("cam", {"fc": ""}, "fc must be a submodule name"),
    ],
)
def test_bad_parameter_values_are_rejected(name, params, message):
    with pytest.raises(ValueError, match=message):
        explainers.get(name, **params)


@pytest.mark.parametrize(
    "name,params",
    [
        ("integrated_gradients", {"method": "simpson"}),
        ("smoothgrad", {"variant": "mean"}),
        ("smoothgrad", {"n_samples": 2.5}),
        ("random", {"distribution": "beta"}),
    ],
)
def test_ill_typed_parameters_are_rejected_by_the_registry(name, params):
    with pytest.raises(ParameterError, match=next(iter(params))):
        explainers.get(name, **params)


@pytest.mark.parametrize(
    "params,message",
    [
        ({"window": (9, 9)}, r"window \(9, 9\) does not fit a sample of shape \(3, 8, 8\)"),
        ({"window": (1, 1, 1, 1)}, "window .* has more dimensions than a sample"),
        ({"window": (2, 2), "stride": (3, 3)}, r"stride \(3, 3\) exceeds window"),
    ],
)
def test_occlusion_windows_must_fit(params, message, cnn, image_batch):
    x, t = image_batch
    with pytest.raises(ValueError, match=message):
        explainers.get("occlusion", **params)(cnn, x, t)


def test_captum_adapter_checks_its_method_and_kwargs():
    with pytest.raises(ValueError, match=r"method='LayerGradCam' is not a captum.attr class .*available: .*DeepLift"):
        explainers.get("captum:LayerGradCam")
    with pytest.raises(ValueError, match="method='Nope'"):
        explainers.get("captum", method="Nope")
    with pytest.raises(ValueError, match="other than inputs/target"):
        explainers.get("captum:Saliency", kwargs={"target": 1})
    with pytest.raises(ParameterError, match="needs parameter method"):
        explainers.get("captum")


def test_captum_adapter_explains_missing_captum(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "captum.attr", None)
    with pytest.raises(ImportError, match=r"pip install salbench\[captum\]"):
        explainers.get("captum:Saliency")
