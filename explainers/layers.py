"""Layer maps for class-activation methods: find a layer, capture its output, resize a map to the input."""

from __future__ import annotations

import contextlib

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["conv_type", "find_layer", "last_spatial_output", "capture_output", "resize", "to_input_shape"]

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_INTERPOLATION = {1: "linear", 2: "bilinear", 3: "trilinear"}


def conv_type(x: Tensor, method: str) -> type[nn.Module]:
    """The convolution class for ``x`` = (N, C, *spatial) (Conv1d/2d/3d); 1 to 3 spatial dims."""
    d = x.dim() - 2
    if d not in _CONV:
        raise ValueError(
            f"{method} needs x of shape (N, C, *spatial) with 1 to 3 spatial dimensions "
            f"(e.g. images (N, C, H, W)), got shape {tuple(x.shape)}"
        )
    return _CONV[d]


def find_layer(model: nn.Module, name: str, kind: type[nn.Module], argument: str) -> tuple[str, nn.Module]:
    """The submodule called ``name`` or, for ``name="auto"``, the last module of type ``kind``.

    "Last" is in ``model.named_modules()`` order (registration order). ``argument`` is the
    name of the parameter that gave ``name``, for error messages, which list the candidates.
    """
    candidates = [n for n, m in model.named_modules() if isinstance(m, kind) and n]
    if name == "auto":
        if not candidates:
            raise ValueError(
                f"{argument}='auto' found no {kind.__name__} in the model; name a layer with {argument}=..."
            )
        name = candidates[-1]
    try:
        return name, model.get_submodule(name)
    except AttributeError:
        raise ValueError(
            f"{argument}={name!r} is not a submodule of the model; {kind.__name__} layers: "
            f"{', '.join(map(repr, candidates)) or '(none)'}"
        ) from None


def last_spatial_output(model: nn.Module, x: Tensor, channels: int | None = None) -> tuple[str, Tensor, Tensor]:
    """Run ``model(x)`` once; (the name of the last submodule to finish whose output is a feature
    map, that output, the model's output).

    A feature map is (N, K, *s) of ``x``'s rank with more than one spatial position (and K =
    ``channels`` where given). "Last to finish" is the forward-hook order, so a container wins
    over the modules inside it: in a torchvision ResNet it is ``layer4``, the last block's output
    after the skip addition and the ReLU (not ``layer4.1.conv2``, the last convolution); in a
    DenseNet ``features`` (after ``norm5``); in conv → ReLU → pool → linear the ReLU. That is the
    map that reaches the global pooling, the layer CAM libraries recommend (pytorch-grad-cam's
    ``model.layer4[-1]``; Zhou et al.'s CAM is defined on it).
    """
    found: dict[str, tuple[str, Tensor]] = {}

    def recorder(name: str):
        def record(module: nn.Module, args: object, out: object) -> None:
            if (
                isinstance(out, Tensor) and out.dim() == x.dim() and out.shape[0] == x.shape[0]
                and (channels is None or out.shape[1] == channels) and out[0, 0].numel() > 1
            ):
                found["last"] = (name, out)

        return record

    with contextlib.ExitStack() as hooks:
        for name, module in model.named_modules():
            if name:
                hooks.callback(module.register_forward_hook(recorder(name)).remove)
        logits = model(x)
    if "last" not in found:
        wanted = f"{channels} channels (the input features of the final linear layer) and " if channels else ""
        raise ValueError(
            f"layer='auto' found no submodule whose output has {wanted}more than one spatial position "
            f"(shape (N, K, *spatial) like the input {tuple(x.shape)}); name the layer with layer=..."
        )
    return found["last"] + (logits,)


def capture_output(model: nn.Module, layer: nn.Module, name: str, x: Tensor) -> tuple[Tensor, Tensor]:
    """Run ``model(x)`` once and return (the output of ``layer``, the model's output).

    The layer must run exactly once in the forward pass and return a tensor of the rank of
    ``x`` (batch, channels, spatial dimensions).
    """
    outputs: list[Tensor] = []
    handle = layer.register_forward_hook(lambda module, args, out: outputs.append(out))
    try:
        logits = model(x)
    finally:
        handle.remove()
    if len(outputs) != 1:
        raise ValueError(f"layer {name!r} ran {len(outputs)} times in one forward pass; it must run exactly once")
    (activation,) = outputs
    if not isinstance(activation, Tensor) or activation.dim() != x.dim() or activation.shape[0] != x.shape[0]:
        shape = tuple(activation.shape) if isinstance(activation, Tensor) else type(activation).__name__
        raise ValueError(
            f"layer {name!r} must output (N, channels, *spatial) like the input {tuple(x.shape)}, got {shape}"
        )
    return activation, logits


def resize(maps: Tensor, size: tuple[int, ...]) -> Tensor:
    """Resize (N, K, *s) maps to spatial ``size`` (1 to 3 dimensions, as many as s has).

    Linear / bilinear / trilinear interpolation for 1 / 2 / 3 spatial dimensions
    (``align_corners=False``, as Captum's ``LayerAttribution.interpolate``).
    """
    return F.interpolate(maps, size=tuple(size), mode=_INTERPOLATION[maps.dim() - 2], align_corners=False)


def to_input_shape(maps: Tensor, x: Tensor) -> Tensor:
    """Resize (N, 1, *layer_spatial) maps to x's spatial size (:func:`resize`) and repeat them
    over x's channels: the result has the shape of ``x``."""
    return resize(maps, x.shape[2:]).expand(x.shape).contiguous()
