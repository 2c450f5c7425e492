"""ONNX models through load_onnx: the same outputs as the exported network, the same selective
p-values, hand-built graphs for the operators PyTorch's exporter does not emit here, clear errors."""

from __future__ import annotations

import io

import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from salbench.core.onnx_model import SUPPORTED_OPERATORS, load_onnx
from salbench.metrics.selective import cam_saliency, salient_region_test
from torch import nn


def _export(net: nn.Module, shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    torch.onnx.export(net.eval(), torch.zeros(1, *shape), buffer, dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})  # fmt: skip
    return buffer.getvalue()


def _cam_classifier() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1), nn.LeakyReLU(0.1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2),
    )  # fmt: skip


class _UNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.down = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ConvTranspose2d(3, 3, 2, stride=2)
        self.head = nn.Sequential(nn.Conv2d(6, 1, 3, padding=1), nn.Upsample(scale_factor=1.0), nn.Sigmoid())
        for m in self.down:
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)

    def forward(self, x):
        skip = self.down(x)
        return self.head(torch.cat([skip, self.up(self.pool(skip))], 1))


def test_an_exported_cam_gives_the_same_pvalues_as_the_network():
    """The acceptance check: export the CAM saliency network, load it, test the same images."""
    saliency = cam_saliency(_cam_classifier(), 1, (1, 8, 8))
    loaded = load_onnx(_export(saliency, (1, 8, 8))).double()
    g = torch.Generator().manual_seed(2)
    x, ref = torch.randn(2, 4, 1, 8, 8, generator=g, dtype=torch.float64)
    with torch.no_grad():  # ONNX stores LeakyRelu's alpha as float32 (0.1 + 1.5e-9): maps agree to ~1e-9
        torch.testing.assert_close(loaded(x), saliency.double()(x), rtol=1e-7, atol=1e-9)
    for statistic in ("mean", "abs"):
        ours = salient_region_test(saliency, x, x_ref=ref, threshold=0.5, normalize=True, statistic=statistic)
        theirs = salient_region_test(loaded, x, x_ref=ref, threshold=0.5, normalize=True, statistic=statistic)
        for a, b in zip(ours, theirs):
            assert torch.equal(a.region, b.region)
            assert b.p_value == pytest.approx(a.p_value, rel=1e-6, abs=1e-12)
            torch.testing.assert_close(b.intervals, a.intervals, rtol=1e-6, atol=1e-7)


def test_a_unet_with_batch_norm_concatenation_and_transposed_convolution():
    net = _UNet().eval()
    loaded = load_onnx(_export(net, (1, 8, 8)))
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x), rtol=1e-5, atol=1e-6)  # the exporter folds BN into the conv in float32
    (result, _, _) = salient_region_test(loaded.double(), x.double(), threshold=0.5, statistic="back")
    assert 0 <= result.p_value <= 1


def _graph(nodes, initializers, shape_in, shape_out) -> bytes:
    graph = helper.make_graph(
        nodes, "hand", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape_in)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape_out)],
        [numpy_helper.from_array(v.numpy(), name) for name, v in initializers.items()],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def test_hand_built_graph_of_shape_operators_matches_torch():
    """Pad, Split, Slice, Transpose, Concat, Reshape, Gemm, Relu, Sub/Mul by constants, ReduceMean."""
    g = torch.Generator().manual_seed(4)
    w = torch.randn(3, 2 * 6 * 6, generator=g)
    c = {"pads": torch.tensor([0, 0, 1, 1, 0, 0, 1, 1]), "split": torch.tensor([1, 1]), "starts": torch.tensor([1]),
         "ends": torch.tensor([7]), "axes": torch.tensor([3]), "shape": torch.tensor([1, -1]), "w": w,
         "b": torch.randn(3, generator=g), "half": torch.tensor(0.5), "shift": torch.tensor(0.25)}  # fmt: skip
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"], mode="constant"),
        helper.make_node("Split", ["p", "split"], ["s0", "s1"], axis=1),
        helper.make_node("Sub", ["s0", "shift"], ["d"]),
        helper.make_node("Mul", ["s1", "half"], ["m"]),
        helper.make_node("Concat", ["d", "m"], ["cat"], axis=1),
        helper.make_node("Slice", ["cat", "starts", "ends", "axes"], ["sl"]),
        helper.make_node("Transpose", ["sl"], ["t"], perm=[0, 1, 3, 2]),
        helper.make_node("Relu", ["t"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w", "b"], ["y"], transB=1),
    ]
    model = load_onnx(_graph(nodes, c, [None, 2, 4, 6], [None, 3]))
    x = torch.randn(5, 2, 4, 6, generator=g)
    p = torch.nn.functional.pad(x, (1, 1, 1, 1))  # ONNX pads: begins (n, c, h, w), then ends
    h = torch.cat([p[:, :1] - 0.25, p[:, 1:] * 0.5], 1)[:, :, :, 1:7].transpose(2, 3).relu()
    want = h.reshape(5, -1) @ w.t() + c["b"]
    torch.testing.assert_close(model(x), want)


def test_unsupported_operator_names_it_with_the_node_and_the_file(tmp_path):
    path = tmp_path / "tanh.onnx"
    path.write_bytes(_graph([helper.make_node("Tanh", ["x"], ["y"], name="act")], {}, [None, 3], [None, 3]))
    with pytest.raises(ValueError, match=r"tanh\.onnx: operator Tanh \(node 'act'\) is not supported; supported: .*Conv"):
        load_onnx(path)
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        load_onnx(tmp_path / "missing.onnx")
    assert {"Conv", "Relu", "MaxPool", "Add", "Concat", "Resize"} <= set(SUPPORTED_OPERATORS)
    assert onnx.checker.check_model(onnx.load(str(path))) is None


def test_interval_bounds_of_a_loaded_unet_enclose_its_outputs():
    """The loaded graph's functional convolutions (positional bias and weights) have interval bounds:
    the box of a segment of a line contains the (pre-sigmoid) output at 201 points of it."""
    from salbench.metrics.selective import LinePropagator

    loaded = load_onnx(_export(_UNet().eval(), (1, 8, 8))).double()
    propagator = LinePropagator(loaded)
    assert propagator.bounded and propagator.final_sigmoid
    a, b = torch.randn(2, 2, 1, 8, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    base, direction = propagator.head(a, b)
    center, radius = propagator.bounds(base + direction * 0.25, direction.abs() * 0.75)  # z in [-0.5, 1]
    with torch.no_grad():
        for z in torch.linspace(-0.5, 1.0, 201, dtype=torch.float64):
            out = torch.logit(loaded(a + b * z))
            assert bool(((out - center).abs() <= radius + 1e-12 * (1 + out.abs())).all()), f"z = {float(z)}"
