"""Exact propagation of a line of inputs through a piecewise-linear torch network.

Along a line of inputs x(z) = a + b·z a network built from affine layers and ReLU-type
activations is piecewise linear in z. :class:`LinePropagator` evaluates the network at one z
together with its derivative along the line — a (value, slope) pair for every unit — and the
interval of z around that point on which every activation pattern and every max-pool
arg-max stay what they are, so that the output is exactly value + slope·(z' − z) there.
This is the computation at the heart of selective inference for deep networks (Duy, Toda,
Sugiyama, Takeuchi, NeurIPS 2022; Miwa, Duy, Takeuchi, ICLR 2023, "Valid P-Value for Deep
Learning-driven Salient Region"); the authors' code propagates separate value, bias,
intercept and slope tensors through Keras layers. Here one stacked tensor (values; slopes)
goes through each module once, the bias entering the values only.

Supported modules (exact types; a subclass could change ``forward`` and is refused):
``Conv2d`` (any stride, padding, padding mode, dilation, groups), ``Linear``, ``ReLU``,
``LeakyReLU``, ``MaxPool2d`` (any kernel, stride, padding, dilation, ceil mode),
``AvgPool2d``, ``AdaptiveAvgPool2d``, ``Upsample`` (any mode: nearest and bilinear are
linear maps), eval-mode ``BatchNorm1d``/``BatchNorm2d`` with running statistics, ``Flatten``,
``Unflatten``, ``Identity``, eval-mode ``Dropout``, nested ``Sequential``, and a ``Sigmoid`` as
the very last module, which is not propagated but reported (:attr:`LinePropagator.final_sigmoid`)
so that a threshold on its output can be moved through the monotone map. Anything else raises
:class:`UnsupportedModuleError` naming the module's type and its path in the model.

All bounds are offsets t relative to the current point: the pattern is constant for
z' = z + t with t in (lo, hi), lo <= 0 <= hi (±inf where nothing binds).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LinePropagator", "UnsupportedModuleError", "decision_bounds"]

_INF = float("inf")

# A step maps the stacked (values; slopes) tensor of 2B rows to the next one and, for a
# piecewise module, the per-line bounds (lo, hi) of its pattern.
Step = Callable[[Tensor, int], tuple[Tensor, tuple[Tensor, Tensor] | None]]


class UnsupportedModuleError(TypeError):
    """A module the line propagation cannot pass through exactly."""


def decision_bounds(g0: Tensor, g1: Tensor) -> tuple[Tensor, Tensor]:
    """Offsets (lo, hi) around t = 0 on which no quantity ``g0 + g1·t`` changes sign.

    ``g0`` and ``g1`` have shape (B, ...): the value and slope of each quantity for each of B
    lines. Returns two tensors of shape (B,) with lo <= 0 <= hi: the nearest zero crossings
    t = −g0/g1 ahead and behind (±inf where none). Quantities with zero slope never bind (also
    0/0, as for dead units and tied copies). A quantity at exactly +0 with a non-zero slope (a
    tie, e.g. two equal values in a max-pool window) counts as ">= 0": it pins the bound on the
    side where it turns negative to 0.
    """
    # g1/g0 = −1/t: the most negative is the nearest crossing ahead, the most positive behind
    rate = torch.div(g1, g0).nan_to_num_(nan=0.0, posinf=_INF, neginf=-_INF).flatten(1)
    low, high = rate.amin(1), rate.amax(1)
    hi = torch.where(low < 0, -1.0 / low, _INF)
    lo = torch.where(high > 0, -1.0 / high, -_INF)
    return lo, hi


class LinePropagator:
    """Evaluate a piecewise-linear network along lines of inputs, with the interval of validity.

    ``propagator(value, slope)`` takes a batch of B points ``value`` = x(z) and directions
    ``slope`` = dx/dz (same shape, float64, on the model's device) and returns
    ``(out_value, out_slope, lo, hi)``: the network output at each point, its derivative along
    the line, and per line the offsets (lo, hi) within which every ReLU/LeakyReLU pattern and
    max-pool arg-max — hence the linear piece — stay the same.

    Parameters are copied once, in float64, on the device of the model's parameters. The
    model is not modified.

    Args:
        model: an ``nn.Sequential`` (possibly nested) of supported modules, or one such module.

    Raises:
        UnsupportedModuleError: for a module type that is not supported (naming type and path),
            for a Sigmoid anywhere but last, and for a BatchNorm/Dropout in training mode.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
        >>> prop = LinePropagator(net)
        >>> x = torch.zeros(1, 2, dtype=torch.float64); d = torch.ones(1, 2, dtype=torch.float64)
        >>> value, slope, lo, hi = prop(x, d)
        >>> bool(lo <= 0 <= hi)
        True
    """

    def __init__(self, model: nn.Module):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        leaves = list(_leaves(model, "model"))
        self.final_sigmoid = bool(leaves) and type(leaves[-1][1]) is nn.Sigmoid
        if self.final_sigmoid:
            leaves = leaves[:-1]
        self._steps: list[tuple[str, Step]] = [(path, _compile(path, module)) for path, module in leaves]
        self._head = next((i for i, (_, m) in enumerate(leaves) if type(m) in _PIECEWISE), len(leaves))

    def __call__(self, value: Tensor, slope: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.tail(*self.head(value, slope))

    def head(self, value: Tensor, slope: Tensor) -> tuple[Tensor, Tensor]:
        """The leading modules before the first piecewise one, which are affine in z.

        A scan along a fixed line can map (base, direction) through them once and start every
        step from ``tail(head_base + head_direction·z, head_direction)``.
        """
        if value.shape != slope.shape:
            raise ValueError(f"value and slope must have the same shape, got {tuple(value.shape)} and {tuple(slope.shape)}")
        stacked = self._run(self._steps[: self._head], torch.cat([value, slope]), value.shape[0], None)
        return stacked.chunk(2)

    def tail(self, value: Tensor, slope: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The remaining modules, from the output of :meth:`head`: (value, slope, lo, hi)."""
        batch = value.shape[0]
        bounds = (value.new_full((batch,), -_INF), value.new_full((batch,), _INF))
        stacked = self._run(self._steps[self._head :], torch.cat([value, slope]), batch, bounds)
        return stacked[:batch], stacked[batch:], bounds[0], bounds[1]

    @staticmethod
    def _run(steps: list[tuple[str, Step]], stacked: Tensor, batch: int, bounds: tuple[Tensor, Tensor] | None) -> Tensor:
        """Apply ``steps``, tightening ``bounds`` (lo, hi) in place."""
        for path, step in steps:
            stacked, piece = step(stacked, batch)
            if stacked.shape[0] != 2 * batch:
                raise UnsupportedModuleError(f"module at {path!r} changed the batch dimension; it cannot be propagated")
            if piece is not None:
                torch.maximum(bounds[0], piece[0], out=bounds[0])
                torch.minimum(bounds[1], piece[1], out=bounds[1])
        return stacked


# -- the model's modules in order ------------------------------------------------------------
def _leaves(module: nn.Module, path: str) -> Iterator[tuple[str, nn.Module]]:
    if type(module) is nn.Sequential:
        for name, child in module.named_children():
            yield from _leaves(child, f"{path}.{name}")
    else:
        yield path, module


def _compile(path: str, module: nn.Module) -> Step:
    kind = type(module)
    if kind is nn.Sigmoid:
        raise UnsupportedModuleError(
            f"Sigmoid at {path!r} is supported only as the last module of the model (a monotone output map)"
        )
    if kind in (nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout) and module.training:
        raise UnsupportedModuleError(f"{kind.__name__} at {path!r} is in training mode; call model.eval() first")
    factory = _FACTORIES.get(kind)
    if factory is None:
        supported = ", ".join(sorted(k.__name__ for k in _FACTORIES)) + ", Sequential, a final Sigmoid"
        raise UnsupportedModuleError(
            f"unsupported module {kind.__name__} at {path!r}: the line propagation handles only {supported}"
        )
    return factory(path, module)


def _float64(tensor: Tensor | None) -> Tensor | None:
    """A float64 copy of a parameter or buffer (None stays None)."""
    return None if tensor is None else tensor.detach().to(torch.float64).clone()


# -- linear modules without offset: apply to values and slopes alike ---------------------------
def _linear_module(path: str, module: nn.Module) -> Step:
    def step(stacked: Tensor, batch: int) -> tuple[Tensor, None]:
        return module(stacked), None

    return step


# -- affine modules: the offset enters the values only ----------------------------------------
def _add_offset(stacked: Tensor, batch: int, offset: Tensor) -> Tensor:
    stacked[:batch] += offset
    return stacked


def _conv2d(path: str, module: nn.Conv2d) -> Step:
    weight, bias = _float64(module.weight), _float64(module.bias)
    pad = _conv_padding(module)
    stride, dilation, groups = module.stride, module.dilation, module.groups

    def step(stacked: Tensor, batch: int) -> tuple[Tensor, None]:
        if module.padding_mode == "zeros":
            out = F.conv2d(stacked, weight, None, stride, module.padding, dilation, groups)
        else:
            out = F.conv2d(F.pad(stacked, pad, mode=module.padding_mode), weight, None, stride, 0, dilation, groups)
        if bias is not None:
            out = _add_offset(out, batch, bias.view(-1, 1, 1))
        return out, None

    return step


def _conv_padding(module: nn.Conv2d) -> tuple[int, ...]:
    """(left, right, top, bottom) padding of a Conv2d, as its padding mode applies it."""
    if module.padding == "valid":
        return (0, 0, 0, 0)
    if module.padding == "same":
        pad: list[int] = []
        for k, d in zip(reversed(module.kernel_size), reversed(module.dilation)):
            total = d * (k - 1)
            pad += [total // 2, total - total // 2]
        return tuple(pad)
    ph, pw = module.padding
    return (pw, pw, ph, ph)


def _linear(path: str, module: nn.Linear) -> Step:
    weight, bias = _float64(module.weight), _float64(module.bias)

    def step(stacked: Tensor, batch: int) -> tuple[Tensor, None]:
        out = F.linear(stacked, weight)
        return (out if bias is None else _add_offset(out, batch, bias)), None

    return step


def _batch_norm(path: str, module: nn.BatchNorm1d | nn.BatchNorm2d) -> Step:
    if module.running_mean is None or module.running_var is None:
        raise UnsupportedModuleError(
            f"{type(module).__name__} at {path!r} has no running statistics (track_running_stats=False), "
            "so it normalises with batch statistics and is not an affine map"
        )
    scale = 1.0 / torch.sqrt(_float64(module.running_var) + module.eps)
    if module.weight is not None:
        scale = scale * _float64(module.weight)
    shift = -_float64(module.running_mean) * scale
    if module.bias is not None:
        shift = shift + _float64(module.bias)

    def step(stacked: Tensor, batch: int) -> tuple[Tensor, None]:
        shape = (-1,) + (1,) * (stacked.dim() - 2)
        return _add_offset(stacked * scale.view(shape), batch, shift.view(shape)), None

    return step


# -- piecewise-linear modules ------------------------------------------------------------------
def _activation(path: str, module: nn.ReLU | nn.LeakyReLU) -> Step:
    negative = module.negative_slope if type(module) is nn.LeakyReLU else 0.0

    def step(stacked: Tensor, batch: int) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        value, slope = stacked[:batch], stacked[batch:]
        bounds = decision_bounds(value, slope)
        active = value > 0
        if bool(((bounds[0] == 0) | (bounds[1] == 0)).any()):
            # a pre-activation at exactly 0 with a slope (zero inputs, no bias): take the piece
            # just right of z, where its sign is the slope's
            tie = (value == 0) & (slope != 0)
            active |= tie & (slope > 0)
            bounds = decision_bounds(torch.where(tie, torch.zeros_like(value).copysign(slope), value), slope)
        if negative == 0.0:
            factor = active.to(stacked.dtype)
        else:
            factor = torch.where(active, stacked.new_tensor(1.0), stacked.new_tensor(negative))
        out = (stacked.view(2, *value.shape) * factor).view(stacked.shape)
        return out, bounds

    return step


def _max_pool(path: str, module: nn.MaxPool2d) -> Step:
    kernel = _pair(module.kernel_size)
    stride = _pair(module.stride if module.stride is not None else module.kernel_size)
    padding = _pair(module.padding)
    dilation = _pair(module.dilation)
    if module.return_indices:
        raise UnsupportedModuleError(f"MaxPool2d at {path!r} returns indices; only return_indices=False is supported")

    disjoint = stride == kernel and padding == (0, 0) and dilation == (1, 1)

    def step(stacked: Tensor, batch: int) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        value, slope = stacked[:batch], stacked[batch:]
        n, c, height, width = value.shape
        out_h = _pool_size(height, kernel[0], stride[0], padding[0], dilation[0], module.ceil_mode)
        out_w = _pool_size(width, kernel[1], stride[1], padding[1], dilation[1], module.ceil_mode)
        if disjoint and out_h * kernel[0] <= height and out_w * kernel[1] <= width:
            # every input lies in one window only: the windows are a view of the input
            top = _tile_max(value, kernel, out_h, out_w)
            cols, cols_slope = _tiles(value, kernel, out_h, out_w), _tiles(slope, kernel, out_h, out_w)
            tops = top.view(n, c, out_h, 1, out_w, 1)
            tied = torch.where(cols == tops, cols_slope, -_INF)
            top_slope = _tile_max(tied.view(n, c, out_h * kernel[0], out_w * kernel[1]), kernel, out_h, out_w)
            top_slopes = top_slope.view(n, c, out_h, 1, out_w, 1)
        else:
            cols, cols_slope = _windows(value, slope, kernel, stride, padding, dilation, out_h, out_w)
            tops = cols.amax(2, keepdim=True)
            top_slopes = torch.where(cols == tops, cols_slope, -_INF).amax(2, keepdim=True)
            top, top_slope = tops.view(n, c, out_h, out_w), top_slopes.view(n, c, out_h, out_w)
        # among tied maxima the steepest wins: the piece is the one just right of z (ties of
        # values with different slopes are real on images with constant backgrounds)
        bounds = decision_bounds(tops - cols, top_slopes - cols_slope)
        return torch.cat([top, top_slope]), bounds

    return step


def _tile_max(t: Tensor, kernel: tuple[int, int], out_h: int, out_w: int) -> Tensor:
    """Max over disjoint kh×kw tiles, as an elementwise maximum of the kh·kw strided sub-grids.

    (PyTorch's float64 max-pool always computes indices and is several times slower.)
    """
    kh, kw = kernel
    grids = [t[:, :, i : out_h * kh : kh, j : out_w * kw : kw] for i in range(kh) for j in range(kw)]
    best = grids[0]
    for grid in grids[1:]:
        best = torch.maximum(best, grid)
    return best.contiguous()


def _tiles(t: Tensor, kernel: tuple[int, int], out_h: int, out_w: int) -> Tensor:
    """The disjoint kh×kw tiles of a max-pool with stride = kernel, as (B, C, oh, kh, ow, kw) (a view)."""
    t = t[:, :, : out_h * kernel[0], : out_w * kernel[1]]
    return t.unflatten(2, (out_h, kernel[0])).unflatten(4, (out_w, kernel[1]))


def _windows(
    value: Tensor,
    slope: Tensor,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    out_h: int,
    out_w: int,
) -> tuple[Tensor, Tensor]:
    """Every max-pool window's inputs, (B, C, kh·kw, L): values padded with −inf, slopes with 0."""
    height, width = value.shape[-2:]
    extra_h = _pool_extra(height, kernel[0], stride[0], padding[0], dilation[0], out_h)
    extra_w = _pool_extra(width, kernel[1], stride[1], padding[1], dilation[1], out_w)
    pad = (padding[1], padding[1] + extra_w, padding[0], padding[0] + extra_h)
    n, c = value.shape[:2]
    cols = F.unfold(F.pad(value, pad, value=-_INF), kernel, dilation=dilation, stride=stride)
    cols_slope = F.unfold(F.pad(slope, pad), kernel, dilation=dilation, stride=stride)
    return cols.view(n, c, kernel[0] * kernel[1], -1), cols_slope.view(n, c, kernel[0] * kernel[1], -1)


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def _pool_size(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil: bool) -> int:
    """Output length of a max-pool along one axis (PyTorch's rule, ceil mode included)."""
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _pool_extra(size: int, kernel: int, stride: int, pad: int, dilation: int, out: int) -> int:
    """Padding beyond the right/bottom pad that the last window reads (ceil mode)."""
    return max(0, (out - 1) * stride + dilation * (kernel - 1) + 1 - (size + 2 * pad))


_PIECEWISE = (nn.ReLU, nn.LeakyReLU, nn.MaxPool2d)

_FACTORIES: dict[type, Callable[[str, nn.Module], Step]] = {
    nn.Conv2d: _conv2d,
    nn.Linear: _linear,
    nn.BatchNorm1d: _batch_norm,
    nn.BatchNorm2d: _batch_norm,
    nn.ReLU: _activation,
    nn.LeakyReLU: _activation,
    nn.MaxPool2d: _max_pool,
    nn.AvgPool2d: _linear_module,
    nn.AdaptiveAvgPool2d: _linear_module,
    nn.Upsample: _linear_module,
    nn.UpsamplingNearest2d: _linear_module,
    nn.UpsamplingBilinear2d: _linear_module,
    nn.Flatten: _linear_module,
    nn.Unflatten: _linear_module,
    nn.Identity: _linear_module,
    nn.Dropout: _linear_module,
}
