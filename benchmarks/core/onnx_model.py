"""ONNX models as PyTorch modules, so that salbench's engines (selective inference above all) run on them.

``load_onnx(path)`` reads an ``.onnx`` file (or bytes) with the ``onnx`` package and returns an
:class:`OnnxModule`: an ``nn.Module`` whose forward evaluates the ONNX graph node by node with
torch operations, in float64 or whatever dtype the module is cast to. The forward has no control
flow on values, so ``torch.fx`` traces it into plain torch operations — the same operations a
hand-written PyTorch model uses — and the line propagation of
:mod:`salbench.metrics.selective.piecewise` passes through it: a network exported from PyTorch
gives the same p-values as the network itself. This is how users of si4onnx (Miwa et al.'s
lab's ONNX package) bring their models.

Nothing runs from the file but the operators below (an ONNX file holds no code). Supported
operators (opset >= 11): Conv, ConvTranspose, Gemm, MatMul (constant right operand),
BatchNormalization, Relu, LeakyRelu, Sigmoid, MaxPool, AveragePool, GlobalAveragePool,
ReduceMean (constant axes), Add, Sub, Mul, Div, Neg, Concat, Split, Slice (constant starts,
ends, axes, steps), Pad (constant pads), Resize / Upsample (constant scales or sizes; nearest,
(bi)linear), Flatten, Reshape (constant shape), Transpose, Squeeze, Unsqueeze, Identity,
Dropout, Constant. Any other operator raises ValueError naming it, the node and the file.
Initialisers become buffers (weights) or, where an operator reads them as shapes, indices or
scales, Python values fixed when the file is loaded; Constant nodes likewise. Reshape keeps the
batch dimension (the first entry of an exported target shape is the batch size of the export).

Why not ``onnx2torch``: it depends on torchvision, which pins a torch build (here it replaced
the installed torch with another); an operator table of this size is short to keep here.

Example:
    >>> import io, torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 1, 1)).eval()
    >>> buffer = io.BytesIO()
    >>> torch.onnx.export(net, torch.zeros(1, 1, 8, 8), buffer, dynamo=False)  # doctest: +SKIP
    >>> model = load_onnx(buffer.getvalue())  # doctest: +SKIP
    >>> x = torch.randn(2, 1, 8, 8)
    >>> torch.allclose(model(x), net(x), atol=1e-6)  # doctest: +SKIP
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from salbench.core.optional import require_package

__all__ = ["OnnxModule", "load_onnx", "SUPPORTED_OPERATORS"]


@dataclasses.dataclass(frozen=True)
class _Node:
    op: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, Any]


class OnnxModule(nn.Module):
    """An ONNX graph evaluated with torch operations (see the module docstring).

    Args:
        nodes: the graph's nodes in topological order (as ONNX stores them).
        initializers: constant tensors by name (registered as buffers).
        input_name, output_name: the graph's single input and output.
        source: where the graph came from, for messages.
    """

    def __init__(self, nodes: list[_Node], initializers: dict[str, Tensor], input_name: str, output_name: str, source: str):
        super().__init__()
        self._nodes = nodes
        static = {node.inputs[k] for node in nodes for k in _STATIC.get(node.op, ()) if k < len(node.inputs)}
        used = {name for node in nodes for name in node.inputs}
        self._static = {name: value for name, value in initializers.items() if name in static}
        self._names = {name: f"c{i}" for i, name in enumerate(initializers) if name in used and name not in static}
        for name, buffer_name in self._names.items():
            self.register_buffer(buffer_name, initializers[name])
        self._input, self._output, self.source = input_name, output_name, source
        for node in nodes:
            if node.op not in _OPERATORS:
                raise ValueError(
                    f"{source}: operator {node.op} (node {node.name!r}) is not supported; supported: {', '.join(SUPPORTED_OPERATORS)}"
                )

    def forward(self, x: Tensor) -> Tensor:
        values: dict[str, Any] = {self._input: x, "": None, **self._static}
        for name, buffer_name in self._names.items():
            values[name] = getattr(self, buffer_name)
        for node in self._nodes:
            outputs = _OPERATORS[node.op]([values[i] for i in node.inputs], node.attrs)
            outputs = outputs if isinstance(outputs, tuple) else (outputs,)
            values.update(zip(node.outputs, outputs))
        return values[self._output]


def load_onnx(source: str | Path | bytes) -> OnnxModule:
    """The ONNX model in ``source`` (a file path or the file's bytes) as an :class:`OnnxModule`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the graph has not exactly one input and one output, or uses an operator
            that is not supported (named with its node).
    """
    onnx = require_package("onnx", "onnx", "loading ONNX models", extra="salbench[onnx]")
    numpy_helper = onnx.numpy_helper
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX file {str(path)!r} does not exist")
        model, where = onnx.load(str(path)), str(path)
    else:
        model, where = onnx.load_from_string(bytes(source)), "<bytes>"
    graph = model.graph
    shapes = _static_shapes(onnx, model)
    initializers = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ValueError(f"{where}: the graph must have one input and one output, it has inputs {inputs} and outputs {[o.name for o in graph.output]}")
    nodes = []
    for i, node in enumerate(graph.node):
        attrs = {a.name: _attribute(onnx, a) for a in node.attribute}
        name = node.name or f"#{i}"
        spec = _Node(node.op_type, name, tuple(node.input), tuple(node.output), attrs)
        folded = _fold(spec, initializers, shapes)
        if folded is None:
            nodes.append(spec)
        else:
            initializers.update(zip(spec.outputs, folded))
    return OnnxModule(nodes, initializers, inputs[0], graph.output[0].name, where)


def _static_shapes(onnx: Any, model: Any) -> dict[str, list[int]]:
    """Every tensor's shape from ONNX shape inference, unknown dims (the batch) as -1."""
    inferred = onnx.shape_inference.infer_shapes(model).graph
    shapes = {}
    for info in [*inferred.input, *inferred.value_info, *inferred.output]:
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
    return shapes


_SHAPE_ARITHMETIC = ("Shape", "Gather", "Cast", "Slice", "Concat", "Unsqueeze", "Squeeze", "Add", "Sub", "Mul", "Div", "Identity")


def _fold(node: _Node, constants: dict[str, Tensor], shapes: dict[str, list[int]]) -> tuple[Tensor, ...] | None:
    """The outputs of a shape computation (Constant, Shape of a tensor of inferred shape, and
    arithmetic on such values), evaluated once at load; None for a node that depends on the input.

    The exporter builds resize sizes and reshape targets this way (Shape -> Slice -> Concat); the
    batch dim, unknown at load, is -1 there, and Resize and Reshape read only the other dims.
    """
    if node.op == "Constant":
        return (node.attrs["value"],)
    if node.op == "Shape" and node.inputs[0] in shapes:
        dims = shapes[node.inputs[0]][node.attrs.get("start", 0) : node.attrs.get("end", None)]
        return (torch.tensor(dims, dtype=torch.int64),)
    if node.op not in _SHAPE_ARITHMETIC or not all(i in constants or i == "" for i in node.inputs):
        return None
    inputs = [constants.get(i) for i in node.inputs]
    if node.op == "Gather":
        return (torch.index_select(inputs[0], node.attrs.get("axis", 0), inputs[1].flatten()).reshape(
            *inputs[0].shape[: node.attrs.get("axis", 0)], *inputs[1].shape, *inputs[0].shape[node.attrs.get("axis", 0) + 1 :]),)
    if node.op == "Cast":
        return (inputs[0],)
    out = _OPERATORS[node.op](inputs, node.attrs)
    return out if isinstance(out, tuple) else (out,)


def _attribute(onnx: Any, attribute: Any) -> Any:
    value = onnx.helper.get_attribute_value(attribute)
    if isinstance(value, onnx.TensorProto):
        return torch.from_numpy(onnx.numpy_helper.to_array(value).copy())
    if isinstance(value, bytes):
        return value.decode()
    return value


# -- operators: (inputs, attributes) -> output(s), torch operations only ---------------------------
def _ints(t: Tensor | None) -> list[int]:
    return [] if t is None else [int(v) for v in t.tolist()]


def _conv(inputs: list, attrs: dict) -> Tensor:
    x, weight, bias = (inputs + [None])[:3]
    dims = weight.dim() - 2
    pads = attrs.get("pads", [0] * 2 * dims)
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise ValueError(f"Conv auto_pad={attrs['auto_pad']!r} is not supported; export with explicit pads")
    x = _symmetric_pad(x, pads, dims)
    conv = (F.conv1d, F.conv2d, F.conv3d)[dims - 1]
    return conv(x, weight, bias, attrs.get("strides", 1), _half(pads, dims), attrs.get("dilations", 1), attrs.get("group", 1))


def _symmetric_pad(x: Tensor, pads: list[int], dims: int) -> Tensor:
    """Pad explicitly where ONNX's begin and end pads differ (torch's convolutions pad symmetrically)."""
    begin, end = pads[:dims], pads[dims:]
    if begin == end:
        return x
    extra = []
    for b, e in zip(reversed(begin), reversed(end)):
        extra += [0, e - b] if e >= b else [b - e, 0]
    return F.pad(x, extra)


def _half(pads: list[int], dims: int) -> list[int]:
    return [min(b, e) for b, e in zip(pads[:dims], pads[dims:])]


def _conv_transpose(inputs: list, attrs: dict) -> Tensor:
    x, weight, bias = (inputs + [None])[:3]
    dims = weight.dim() - 2
    pads = attrs.get("pads", [0] * 2 * dims)
    if pads[:dims] != pads[dims:] or "output_shape" in attrs:
        raise ValueError("ConvTranspose with asymmetric pads or output_shape is not supported")
    transpose = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[dims - 1]
    return transpose(
        x, weight, bias, attrs.get("strides", 1), pads[:dims], attrs.get("output_padding", 0), attrs.get("group", 1), attrs.get("dilations", 1)
    )


def _gemm(inputs: list, attrs: dict) -> Tensor:
    a, b, c = (inputs + [None])[:3]
    if attrs.get("transA", 0):
        raise ValueError("Gemm with transA is not supported")
    weight = b if attrs.get("transB", 0) else b.t()
    out = F.linear(a, weight * attrs.get("alpha", 1.0))
    return out if c is None else out + c * attrs.get("beta", 1.0)


def _pool(kind: str) -> Callable[[list, dict], Tensor]:
    def pool(inputs: list, attrs: dict) -> Tensor:
        (x,) = inputs[:1]
        kernel = attrs["kernel_shape"]
        dims = len(kernel)
        pads = attrs.get("pads", [0] * 2 * dims)
        if pads[:dims] != pads[dims:] or attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            raise ValueError(f"{kind} with asymmetric or automatic padding is not supported")
        stride, ceil = attrs.get("strides", [1] * dims), bool(attrs.get("ceil_mode", 0))
        if kind == "MaxPool":
            if dims != 2:
                raise ValueError("only 2-D MaxPool is supported")
            return F.max_pool2d(x, kernel, stride, pads[:dims], attrs.get("dilations", 1), ceil)
        average = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[dims - 1]
        return average(x, kernel, stride, pads[:dims], ceil, bool(attrs.get("count_include_pad", 0)))

    return pool


def _global_average_pool(inputs: list, attrs: dict) -> Tensor:
    x = inputs[0]
    return x.mean(dim=tuple(range(2, x.dim())), keepdim=True)


def _reduce_mean(inputs: list, attrs: dict) -> Tensor:
    axes = attrs.get("axes") or _ints(inputs[1] if len(inputs) > 1 else None)
    return inputs[0].mean(dim=tuple(axes), keepdim=bool(attrs.get("keepdims", 1)))


def _batch_norm(inputs: list, attrs: dict) -> Tensor:
    x, scale, bias, mean, var = inputs[:5]
    return F.batch_norm(x, mean, var, scale, bias, False, 0.0, attrs.get("epsilon", 1e-5))


def _concat(inputs: list, attrs: dict) -> Tensor:
    return torch.cat(inputs, dim=attrs["axis"])


def _split(inputs: list, attrs: dict) -> tuple[Tensor, ...]:
    x = inputs[0]
    sizes = attrs.get("split") or _ints(inputs[1] if len(inputs) > 1 else None)
    axis = attrs.get("axis", 0)
    if not sizes:
        parts = attrs["num_outputs"]
        sizes = [x.shape[axis] // parts] * parts
    return tuple(torch.split(x, sizes, dim=axis))


def _slice(inputs: list, attrs: dict) -> Tensor:
    x, starts, ends = inputs[:3]
    axes = _ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else list(range(len(starts)))
    steps = _ints(inputs[4]) if len(inputs) > 4 and inputs[4] is not None else [1] * len(axes)
    index = [slice(None)] * x.dim()
    for axis, start, end, step in zip(axes, _ints(starts), _ints(ends), steps):
        index[axis] = slice(start, None if end >= 2**62 else end, step)
    return x[tuple(index)]


def _pad(inputs: list, attrs: dict) -> Tensor:
    x = inputs[0]
    pads = attrs.get("pads") or _ints(inputs[1])
    value = float(inputs[2]) if len(inputs) > 2 and inputs[2] is not None else attrs.get("value", 0.0)
    dims = len(pads) // 2
    torch_pads = []
    for b, e in zip(reversed(pads[:dims]), reversed(pads[dims:])):
        torch_pads += [b, e]
    mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}[attrs.get("mode", "constant")]
    return F.pad(x, torch_pads, mode=mode, value=value) if mode == "constant" else F.pad(x, torch_pads, mode=mode)


def _resize(inputs: list, attrs: dict) -> Tensor:
    x = inputs[0]
    scales = inputs[2] if len(inputs) > 2 else (inputs[1] if len(inputs) == 2 else None)  # Upsample: (X, scales)
    sizes = inputs[3] if len(inputs) > 3 else None
    mode = attrs.get("mode", "nearest")
    transform = attrs.get("coordinate_transformation_mode", "half_pixel" if mode != "nearest" else "asymmetric")
    spatial = (sizes if sizes is not None and sizes.numel() else scales).numel() - 2  # static, unlike x.dim() in a trace
    if mode == "nearest":
        kwargs: dict[str, Any] = {"mode": "nearest"}
    elif mode == "linear":
        kwargs = {"mode": ("linear", "bilinear", "trilinear")[spatial - 1], "align_corners": transform == "align_corners"}
    else:
        raise ValueError(f"Resize mode {mode!r} is not supported (nearest, linear)")
    if sizes is not None and sizes.numel():
        return F.interpolate(x, size=_ints(sizes)[2:], **kwargs)
    factors = [float(s) for s in scales.tolist()][2:]
    return F.interpolate(x, scale_factor=factors, **kwargs)


def _reshape(inputs: list, attrs: dict) -> Tensor:
    """Reshape keeping the batch dim: the target's first entry is the exported batch size (or 0 /
    -1) and is replaced by the input's; 0 elsewhere copies the input's dim, as ONNX specifies."""
    x, shape = inputs[:2]
    target = _ints(shape)
    rest = [x.shape[i] if s == 0 else s for i, s in enumerate(target) if i > 0]
    return x.reshape(x.shape[0], *rest)


def _flatten(inputs: list, attrs: dict) -> Tensor:
    axis = attrs.get("axis", 1)
    if axis != 1:
        raise ValueError(f"Flatten with axis={axis} is not supported (only 1: keep the batch)")
    return torch.flatten(inputs[0], 1)


def _squeeze(inputs: list, attrs: dict, insert: bool = False) -> Tensor:
    x = inputs[0]
    axes = attrs.get("axes") or _ints(inputs[1] if len(inputs) > 1 else None)
    for axis in (sorted(axes) if insert else sorted(axes, reverse=True)):
        x = x.unsqueeze(axis) if insert else x.squeeze(axis)
    return x


def _binary(op: Callable[[Any, Any], Tensor]) -> Callable[[list, dict], Tensor]:
    return lambda inputs, attrs: op(inputs[0], inputs[1])


def _matmul(inputs: list, attrs: dict) -> Tensor:
    return F.linear(inputs[0], inputs[1].t()) if inputs[1].dim() == 2 else torch.matmul(*inputs)


_STATIC = {  # inputs that are shapes, indices or scales: read as Python values when the file is loaded
    "Reshape": (1,), "Slice": (1, 2, 3, 4), "Resize": (1, 2, 3), "Upsample": (1,), "Split": (1,),
    "Pad": (1, 2), "Squeeze": (1,), "Unsqueeze": (1,), "ReduceMean": (1,),
}  # fmt: skip

_OPERATORS: dict[str, Callable[[list, dict], Any]] = {
    "Conv": _conv, "ConvTranspose": _conv_transpose, "Gemm": _gemm, "MatMul": _matmul,
    "BatchNormalization": _batch_norm,
    "Relu": lambda inputs, attrs: F.relu(inputs[0]),
    "LeakyRelu": lambda inputs, attrs: F.leaky_relu(inputs[0], attrs.get("alpha", 0.01)),
    "Sigmoid": lambda inputs, attrs: torch.sigmoid(inputs[0]),
    "MaxPool": _pool("MaxPool"), "AveragePool": _pool("AveragePool"), "GlobalAveragePool": _global_average_pool,
    "ReduceMean": _reduce_mean,
    "Add": _binary(torch.add), "Sub": _binary(torch.sub), "Mul": _binary(torch.mul), "Div": _binary(torch.div),
    "Neg": lambda inputs, attrs: torch.neg(inputs[0]),
    "Concat": _concat, "Split": _split, "Slice": _slice, "Pad": _pad, "Resize": _resize, "Upsample": _resize,
    "Flatten": _flatten, "Reshape": _reshape,
    "Transpose": lambda inputs, attrs: inputs[0].permute(*attrs["perm"]),
    "Squeeze": _squeeze, "Unsqueeze": lambda inputs, attrs: _squeeze(inputs, attrs, insert=True),
    "Identity": lambda inputs, attrs: inputs[0], "Dropout": lambda inputs, attrs: inputs[0],
}  # fmt: skip

SUPPORTED_OPERATORS = tuple(sorted(_OPERATORS))
"""The ONNX operators :func:`load_onnx` reads (see the module docstring), plus Constant."""
