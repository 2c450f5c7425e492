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

The model is traced with ``torch.fx``; every node of the graph must be one of:

* modules (exact types; a subclass could change ``forward`` and is refused): ``Conv1d/2d/3d``
  (any stride, padding, padding mode, dilation, groups), ``ConvTranspose1d/2d/3d``, ``Linear``,
  eval-mode ``BatchNorm1d/2d/3d`` with running statistics, ``ReLU``, ``LeakyReLU``,
  ``MaxPool2d`` (any kernel, stride, padding, dilation, ceil mode), ``AvgPool1d/2d/3d``,
  ``AdaptiveAvgPool1d/2d/3d``, ``Upsample`` (any mode: nearest, (bi/tri)linear are linear maps),
  ``Flatten``, ``Unflatten``, ``Identity``, eval-mode ``Dropout*``; modules of other types (a
  ResNet ``BasicBlock``, a U-Net stage) are traced through to these;
* functions and tensor methods: additions and subtractions of input-dependent tensors and of
  constants (residual connections), multiplication and division by constants, negation,
  ``torch.cat``/``stack`` and ``split``/``chunk``/slicing along dims >= 1, ``flatten``,
  ``view``/``reshape``, ``permute``/``transpose``/``(un)squeeze`` that keep the batch dim,
  ``mean``/``sum`` over dims >= 1, functional pools and ``interpolate``, ``F.pad`` (a constant
  fill enters the values only), ``F.relu``/``leaky_relu``/``max_pool2d``, ``size``/``shape``;
* a module with a method ``line_step(path)`` returning its own step (Grad-CAM's weighted sum,
  :class:`~salbench.metrics.selective.saliency.GradCAMCore`);
* a ``Sigmoid`` (module or function) producing the output, which is not propagated but
  reported (:attr:`LinePropagator.final_sigmoid`) so that a threshold on its output can be
  moved through the monotone map.

Anything else raises :class:`UnsupportedModuleError` naming the operation, the graph node and
the module path. Parts of the graph that do not depend on the input (constants, parameter
arithmetic) are evaluated once, when the propagator is built.

All bounds are offsets t relative to the current point: the pattern is constant for
z' = z + t with t in (lo, hi), lo <= 0 <= hi (±inf where nothing binds).
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

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

    The model is traced with ``torch.fx`` into a graph, so any architecture made of supported
    operations works, whatever its nesting: residual additions (ResNet), concatenations
    (DenseNet, U-Net), splits and slices, reshapes, constants. Each graph node becomes one step
    over the stacked (values; slopes) tensor; see the module docstring for the operations.
    Parameters are copied once, in float64, on the device of the model's parameters. The model
    is not modified.

    Args:
        model: a module that ``torch.fx.symbolic_trace`` can trace (no control flow on input
            values) with one tensor input and one tensor output.

    Raises:
        UnsupportedModuleError: for an operation that is not supported (naming the operation,
            the graph node and the module path), for a Sigmoid anywhere but last, for a
            BatchNorm/Dropout in training mode, and for a model that cannot be traced.

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
        root, graph = _trace(model)
        modules = dict(root.named_modules())
        output = next(node for node in graph.nodes if node.op == "output")
        self.final_sigmoid = _is_sigmoid(output.args[0], modules)
        if self.final_sigmoid:  # a monotone output map: reported, not propagated
            output.args = (output.args[0].args[0],)
        live = _ancestors(output)
        varying = _descendants(next(iter(graph.nodes)))  # the placeholder comes first
        program = [_instruction(node, modules) for node in graph.nodes if node in live and node.op != "output"]
        if not program or program[0].name != next(iter(graph.nodes)).name:
            raise UnsupportedModuleError("the model's output does not depend on its input")
        self._constants: dict[str, Any] = {}
        for instruction in [ins for ins in program if ins.name not in varying]:  # folded once, here
            self._constants[instruction.name] = instruction.execute(self._constants, 0)[0]
        self._program = [ins for ins in program if ins.name in varying]
        self._output = output.args[0].name
        self._cut, self._handoff = _affine_prefix(self._program)
        self.bounded = all(ins.bound is not None for ins in self._program[self._cut :])
        """Whether :meth:`bounds` is available (every operation after :meth:`head` has interval bounds)."""

    def __call__(self, value: Tensor, slope: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.tail(*self.head(value, slope))

    def head(self, value: Tensor, slope: Tensor) -> tuple[Tensor, Tensor]:
        """The leading operations before the first piecewise one, which are affine in z.

        A scan along a fixed line can map (base, direction) through them once and start every
        step from ``tail(head_base + head_direction·z, head_direction)``.
        """
        if value.shape != slope.shape:
            raise ValueError(f"value and slope must have the same shape, got {tuple(value.shape)} and {tuple(slope.shape)}")
        env: dict[str, Any] = {**self._constants, self._program[0].name: _Line(torch.cat([value, slope]))}
        self._run(self._program[1 : self._cut], env, value.shape[0], None)
        return env[self._handoff].stacked.chunk(2)

    def tail(self, value: Tensor, slope: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The remaining operations, from the output of :meth:`head`: (value, slope, lo, hi)."""
        batch = value.shape[0]
        bounds = (value.new_full((batch,), -_INF), value.new_full((batch,), _INF))
        env: dict[str, Any] = {**self._constants, self._handoff: _Line(torch.cat([value, slope]))}
        self._run(self._program[self._cut :], env, batch, bounds)
        out = env[self._output]
        if not isinstance(out, _Line):
            raise UnsupportedModuleError("the model's output does not depend on its input")
        return out.stacked[:batch], out.stacked[batch:], bounds[0], bounds[1]

    def bounds(self, center: Tensor, radius: Tensor) -> tuple[Tensor, Tensor]:
        """Interval bounds of :meth:`tail`'s output over all inputs within ``center ± radius``.

        For inputs u with |u − center| <= radius elementwise (the box around a segment of a
        line after :meth:`head`: centre at its midpoint, radius |direction|·half-width), every
        output lies within ``out_center ± out_radius`` (interval arithmetic, up to float64
        rounding: affine maps act on centres and, with |weights|, on radii; ReLU, LeakyReLU and
        max-pool map the lower and upper ends). Returns (out_center, out_radius).

        Raises:
            UnsupportedModuleError: where :attr:`bounded` is False (an operation without
                interval bounds, e.g. Grad-CAM's weighted sum or bicubic interpolation).
        """
        if not self.bounded:
            missing = next(ins.where for ins in self._program[self._cut :] if ins.bound is None)
            raise UnsupportedModuleError(f"{missing} has no interval bounds")
        batch = center.shape[0]
        env: dict[str, Any] = {**self._constants, self._handoff: _Line(torch.cat([center, radius]))}
        for instruction in self._program[self._cut :]:
            env[instruction.name] = instruction.execute(env, batch, intervals=True)[0]
        out = env[self._output].stacked
        return out[:batch], out[batch:]

    @staticmethod
    def _run(program: list[_Instruction], env: dict[str, Any], batch: int, bounds: tuple[Tensor, Tensor] | None) -> None:
        """Execute ``program`` into ``env``, tightening ``bounds`` (lo, hi) in place."""
        for instruction in program:
            value, piece = instruction.execute(env, batch)
            for line in _lines_in(value):
                if line.stacked.shape[0] != 2 * batch:
                    raise UnsupportedModuleError(f"{instruction.where} changed the batch dimension; it cannot be propagated")
            if piece is not None:
                torch.maximum(bounds[0], piece[0], out=bounds[0])
                torch.minimum(bounds[1], piece[1], out=bounds[1])
            env[instruction.name] = value


# -- the traced graph ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Line:
    """A quantity that depends on the input: its values stacked over its slopes, (2B, ...)."""

    stacked: Tensor


def _lines_in(value: Any) -> list[_Line]:
    if isinstance(value, _Line):
        return [value]
    if isinstance(value, (tuple, list)):
        return [item for v in value for item in _lines_in(v)]
    return []


@dataclasses.dataclass(frozen=True)
class _Instruction:
    """One graph node: ``execute(env, batch)`` -> (its value, the bounds of its piece or None)."""

    name: str
    where: str
    inputs: tuple[str, ...]
    piecewise: bool
    run: Callable[[list[Any], dict[str, Any], int], tuple[Any, tuple[Tensor, Tensor] | None]]
    args: Any
    kwargs: Any
    bound: Callable[[list[Any], dict[str, Any], int], tuple[Any, None]] | None = None  # the interval runner

    def execute(self, env: dict[str, Any], batch: int, intervals: bool = False) -> tuple[Any, tuple[Tensor, Tensor] | None]:
        """The node's value (and piece bounds), or with ``intervals`` its (centres; radii) bounds."""

        def load(a: Any) -> Any:
            return env[a.name] if isinstance(a, fx.Node) else a

        args = fx.node.map_aggregate(self.args, load)
        kwargs = fx.node.map_aggregate(self.kwargs, load)
        run = self.bound if intervals else self.run
        assert run is not None, "bounds of an instruction without interval propagation"
        return run(list(args), dict(kwargs), batch)


class _Single(nn.Module):
    """A lone layer as the child ``model`` of a root, so that its path in messages is 'model'."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class _Tracer(fx.Tracer):
    """torch.fx's tracer, keeping the supported torch.nn modules (and any other torch.nn leaf) whole."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return type(m) in _FACTORIES or type(m) is nn.Sigmoid or _propagates_itself(m) or super().is_leaf_module(m, qualname)


def _propagates_itself(module: nn.Module) -> bool:
    """A module with ``line_step(path) -> Step`` propagates lines itself (e.g. Grad-CAM's weighted sum)."""
    return callable(getattr(module, "line_step", None))


def _trace(model: nn.Module) -> tuple[nn.Module, fx.Graph]:
    """The model's graph (a torch.nn layer on its own is traced as a one-node graph, named 'model')."""
    root = _Single(model) if _Tracer().is_leaf_module(model, "") else model
    try:
        graph = _Tracer().trace(root)
    except Exception as err:  # torch.fx raises many types; the cause is kept
        raise UnsupportedModuleError(
            f"{type(model).__name__} cannot be traced by torch.fx ({type(err).__name__}: {err}); the line "
            "propagation needs a forward without control flow on input values"
        ) from err
    inputs = [node for node in graph.nodes if node.op == "placeholder"]
    if len(inputs) != 1:
        raise UnsupportedModuleError(f"the model's forward must take one tensor input, it takes {len(inputs)}")
    return root, graph


def _ancestors(node: fx.Node) -> set[fx.Node]:
    """The nodes ``node`` depends on (dead nodes, e.g. a discarded chunk, are left out)."""
    seen: set[fx.Node] = set()
    todo = [node]
    while todo:
        for parent in todo.pop().all_input_nodes:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return seen


def _descendants(node: fx.Node) -> set[str]:
    """The names of ``node`` and of every node that depends on it (the input-dependent ones)."""
    seen = {node.name}
    todo = [node]
    while todo:
        for child in todo.pop().users:
            if child.name not in seen:
                seen.add(child.name)
                todo.append(child)
    return seen


def _is_sigmoid(node: Any, modules: dict[str, nn.Module]) -> bool:
    if not isinstance(node, fx.Node):
        return False
    if node.op == "call_module":
        return type(modules[node.target]) is nn.Sigmoid
    return node.target in (torch.sigmoid, F.sigmoid) or (node.op == "call_method" and node.target == "sigmoid")


def _affine_prefix(program: list[_Instruction]) -> tuple[int, str]:
    """(cut, handoff): the operations before ``cut`` are affine in z and only ``handoff`` is used
    after them, so :meth:`LinePropagator.head` can run them once per line; else (1, the input)."""
    cut = next((i for i, ins in enumerate(program) if ins.piecewise), len(program))
    live = {name for ins in program[cut:] for name in ins.inputs} & {ins.name for ins in program[:cut]}
    live |= {ins.name for ins in program[:cut]} & {program[-1].name}  # the output itself, if affine
    if cut > 1 and len(live) == 1:
        return cut, live.pop()
    return 1, program[0].name


def _instruction(node: fx.Node, modules: dict[str, nn.Module]) -> _Instruction:
    where = f"node {node.name!r} ({node.op} {_target_name(node)})"
    stack = node.meta.get("nn_module_stack") or {}
    if node.op in ("call_function", "call_method") and stack:
        path, kind = list(stack.values())[-1]
        where = f"{where} in 'model.{path}' ({getattr(kind, '__name__', kind)})"
    inputs = tuple(n.name for n in node.all_input_nodes)
    if node.op == "placeholder":
        return _Instruction(node.name, where, inputs, False, _input_error, (), {}, _input_error)
    if node.op == "get_attr":
        constant = _float64(_fetch(modules, node.target))
        return _Instruction(node.name, where, inputs, False, lambda args, kwargs, batch: (constant, None), (), {})
    if node.op == "call_module":
        module = modules[node.target]
        path = "model" if node.target == "layer" and type(modules[""]) is _Single else f"model.{node.target}"
        where = f"{where} at {path!r}"
        step = _compile(path, module)
        piecewise = type(module) in _PIECEWISE or _propagates_itself(module)
        bound = _interval_step(module)
        return _Instruction(
            node.name, where, inputs, piecewise, _module_runner(step, where), node.args, node.kwargs,
            None if bound is None else _module_runner(bound, where),
        )  # fmt: skip
    handler = _FUNCTIONS.get(node.target) if node.op == "call_function" else _METHODS.get(node.target)
    if handler is None:
        raise UnsupportedModuleError(
            f"unsupported operation {_target_name(node)} at {where}: the line propagation handles the modules "
            f"{', '.join(sorted(k.__name__ for k in _FACTORIES))} and the functions/methods "
            f"{', '.join(sorted(_SUPPORTED_NAMES))}"
        )
    bounds = handler.bounds if _monotone_call(node) else None
    return _Instruction(
        node.name, where, inputs, handler.piecewise, _function_runner(handler.apply, where), node.args, node.kwargs,
        None if bounds is None else _function_runner(bounds, where),
    )  # fmt: skip


def _monotone_call(node: fx.Node) -> bool:
    """False for an ``interpolate`` whose weights can be negative (bicubic), which the interval
    propagation of :meth:`LinePropagator.bounds` does not handle."""
    if node.target is not F.interpolate:
        return True
    mode = node.kwargs.get("mode", node.args[3] if len(node.args) > 3 else "nearest")
    return mode in _MONOTONE_MODES


def _target_name(node: fx.Node) -> str:
    target = node.target
    return target if isinstance(target, str) else getattr(target, "__name__", repr(target))


def _fetch(modules: dict[str, nn.Module], target: str) -> Tensor:
    owner, _, attr = target.rpartition(".")
    return getattr(modules[owner], attr)


def _input_error(args: list, kwargs: dict, batch: int) -> tuple[Any, None]:
    raise AssertionError("the input node is set by head/tail, never executed")


def _module_runner(step: Step, where: str):
    def run(args: list, kwargs: dict, batch: int) -> tuple[Any, tuple[Tensor, Tensor] | None]:
        if len(args) != 1 or kwargs or not isinstance(args[0], _Line):
            if not _lines_in((args, kwargs)):
                raise UnsupportedModuleError(f"{where} does not depend on the input; precompute it as a constant")
            raise UnsupportedModuleError(f"{where} must be called with one input-dependent tensor and nothing else")
        out, piece = step(args[0].stacked, batch)
        return _Line(out), piece

    return run


# -- functions and methods in the graph -----------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Handler:
    """How a call_function/call_method node acts on input-dependent tensors."""

    apply: Callable[[list, dict, int], tuple[Any, tuple[Tensor, Tensor] | None]]
    piecewise: bool = False
    bounds: Callable[[list, dict, int], tuple[Any, None]] | None = None
    """The same operation on interval bounds (centres; radii) (see :meth:`LinePropagator.bounds`);
    None where it is not implemented."""


def _function_runner(apply: Callable[[list, dict, int], tuple[Any, Any]], where: str):
    def run(args: list, kwargs: dict, batch: int) -> tuple[Any, tuple[Tensor, Tensor] | None]:
        try:
            return apply(args, kwargs, batch)
        except UnsupportedModuleError as err:
            raise UnsupportedModuleError(f"{where}: {err}") from None

    return run


def _constant_or(op: Callable[..., Any], on_lines: Callable[[list, dict, int], tuple[Any, Any]]) -> Callable:
    """Evaluate ``op`` directly when no argument depends on the input, else ``on_lines``."""

    def apply(args: list, kwargs: dict, batch: int) -> tuple[Any, Any]:
        if not _lines_in((args, kwargs)):
            return op(*args, **kwargs), None
        return on_lines(args, kwargs, batch)

    return apply


def _as_call(target: Any) -> Callable[..., Any]:
    """A call_method target (a name) as a function of (self, *args)."""
    if isinstance(target, str):
        return lambda self, *args, **kwargs: getattr(self, target)(*args, **kwargs)
    return target


def _dim(d: int, ndim: int) -> int:
    return d + ndim if d < 0 else d


def _keeps_batch(dims: Callable[[Tensor, list, dict], list[int]], what: str) -> Callable[[Tensor, list, dict], None]:
    def check(x: Tensor, args: list, kwargs: dict) -> None:
        if any(_dim(d, x.dim()) == 0 for d in dims(x, args, kwargs)):
            raise UnsupportedModuleError(f"{what} acts on the batch dimension (dim 0); only dims >= 1 can be propagated")

    return check


def _unary_linear(target: Any, check: Callable[[Tensor, list, dict], None] | None = None) -> _Handler:
    """An operation linear in its first argument (the only input-dependent one), applied to
    values and slopes at once: reshapes, pools, interpolation, slicing, reductions over dims >= 1."""
    call = _as_call(target)

    def on_lines(args: list, kwargs: dict, batch: int) -> tuple[Any, None]:
        first, rest = args[0], args[1:]
        if not isinstance(first, _Line) or _lines_in((rest, kwargs)):
            raise UnsupportedModuleError("only the first argument may depend on the input")
        if check is not None:
            check(first.stacked, rest, kwargs)
        out = call(first.stacked, *rest, **kwargs)
        return (tuple(_Line(t) for t in out) if isinstance(out, (tuple, list)) else _Line(out)), None

    apply = _constant_or(call, on_lines)
    return _Handler(apply, bounds=apply)  # the maps are rearrangements or have weights >= 0


def _negate(target: Any) -> _Handler:
    """−x: values and slopes change sign; interval centres too, radii stay."""
    call = _as_call(target)

    def on_lines(args: list, kwargs: dict, batch: int) -> tuple[_Line, None]:
        return _Line(-args[0].stacked), None

    def on_bounds(args: list, kwargs: dict, batch: int) -> tuple[_Line, None]:
        return _scaled_bounds(args[0], -1.0, batch), None

    return _Handler(_constant_or(call, on_lines), bounds=_constant_or(call, on_bounds))


def _scaled_bounds(value: Any, factor: Any, batch: int) -> Any:
    """Interval bounds (centres; radii) times a constant: centres·factor, radii·|factor|."""
    if not isinstance(value, _Line):
        return value * factor
    magnitude = factor.abs() if isinstance(factor, Tensor) else abs(factor)
    return _Line(torch.cat([value.stacked[:batch] * factor, value.stacked[batch:] * magnitude]))


def _metadata(target: Any) -> _Handler:
    """size/dim/shape of an input-dependent tensor: read from the stacked tensor (dim 0 is 2B,
    so a reshape to ``x.size(0)`` rows keeps each line's values and slopes apart)."""
    call = _as_call(target)

    def apply(args: list, kwargs: dict, batch: int) -> tuple[Any, None]:
        loaded = fx.node.map_aggregate(args, lambda a: a.stacked if isinstance(a, _Line) else a)
        return call(*loaded, **kwargs), None

    return _Handler(apply, bounds=apply)


def _offset(line: _Line, constant: Any, batch: int, sign: float) -> _Line:
    """line + sign·constant: a constant shifts the values only."""
    values = line.stacked[:batch] + sign * constant
    if values.shape != line.stacked[:batch].shape:
        raise UnsupportedModuleError(f"a constant of shape {tuple(torch.as_tensor(constant).shape)} would broadcast the input's shape")
    return _Line(torch.cat([values, line.stacked[batch:]]))


def _add(sign: float) -> _Handler:
    op = operator.add if sign > 0 else operator.sub

    def on_lines(args: list, kwargs: dict, batch: int) -> tuple[_Line, None]:
        a, b = args[:2]
        alpha = kwargs.get("alpha", 1)
        if _lines_in((alpha, args[2:])):
            raise UnsupportedModuleError("alpha must not depend on the input")
        b = _scaled(b, alpha)
        if isinstance(a, _Line) and isinstance(b, _Line):
            return _Line(op(a.stacked, b.stacked)), None
        if isinstance(a, _Line):
            return _offset(a, b, batch, sign), None
        negated = b if sign > 0 else _Line(-b.stacked)
        return _offset(negated, a, batch, 1.0), None

    def on_bounds(args: list, kwargs: dict, batch: int) -> tuple[_Line, None]:
        a, b = args[:2]
        b = _scaled_bounds(b, sign * kwargs.get("alpha", 1), batch)
        if isinstance(a, _Line) and isinstance(b, _Line):
            return _Line(a.stacked + b.stacked), None  # centres add, and so do radii
        return (_offset(a, b, batch, 1.0) if isinstance(a, _Line) else _offset(b, a, batch, 1.0)), None

    constant = _constant_or(lambda a, b, alpha=1: op(a, b * alpha if alpha != 1 else b), on_lines)
    return _Handler(constant, bounds=_constant_or(lambda a, b, alpha=1: op(a, b * alpha if alpha != 1 else b), on_bounds))


def _scaled(value: Any, factor: Any) -> Any:
    if factor == 1:
        return value
    return _Line(value.stacked * factor) if isinstance(value, _Line) else value * factor


def _scale(divide: bool) -> _Handler:
    op = operator.truediv if divide else operator.mul

    def operands(args: list) -> tuple[_Line, Any]:
        """(the input-dependent tensor, the constant factor or divisor)."""
        a, b = args[:2]
        if isinstance(a, _Line) and isinstance(b, _Line):
            raise UnsupportedModuleError("the product of two input-dependent tensors is not piecewise linear")
        if isinstance(b, _Line):
            if divide:
                raise UnsupportedModuleError("dividing by an input-dependent tensor is not piecewise linear")
            return b, a
        return a, b

    def on_lines(args: list, kwargs: dict, batch: int) -> tuple[_Line, None]:
        line, factor = operands(args)
        out = op(line.stacked, factor)
        if out.shape != line.stacked.shape:
            raise UnsupportedModuleError("a constant factor would broadcast the input's shape")
        return _Line(out), None

    def on_bounds(args: list, kwargs: dict, batch: int) -> tuple[_Line, None]:
        line, factor = operands(args)
        return _scaled_bounds(line, 1.0 / factor if divide else factor, batch), None

    return _Handler(_constant_or(op, on_lines), bounds=_constant_or(op, on_bounds))


def _concatenate(target: Any) -> _Handler:
    def on_lines(args: list, kwargs: dict, batch: int) -> tuple[_Line, None]:
        items, rest = args[0], args[1:]
        dim = rest[0] if rest else kwargs.get("dim", 0)
        if not all(isinstance(item, _Line) for item in items):
            raise UnsupportedModuleError("concatenating a constant with input-dependent tensors is not supported")
        stacked = [item.stacked for item in items]
        if _dim(dim, stacked[0].dim() + (target is torch.stack)) == 0:
            raise UnsupportedModuleError("concatenation along the batch dimension (dim 0) cannot be propagated")
        return _Line(target(stacked, dim)), None

    apply = _constant_or(target, on_lines)
    return _Handler(apply, bounds=apply)


def _affine_function(target: Any, bias_at: int) -> _Handler:
    """A functional convolution / linear map / eval-mode batch norm with constant weights: the map
    without its bias acts on values and slopes, the bias (argument ``bias_at``) on the values only."""

    def on_lines(args: list, kwargs: dict, batch: int) -> tuple[_Line, None]:
        x, rest = args[0], list(args[1:])
        if not isinstance(x, _Line) or _lines_in((rest, kwargs)):
            raise UnsupportedModuleError("only the input may depend on the input; weights must be constants")
        name = "bias"
        bias = rest[bias_at - 1] if len(rest) >= bias_at else kwargs.get(name)
        if len(rest) >= bias_at:
            rest[bias_at - 1] = None
        else:
            kwargs = {**kwargs, name: None}
        out = target(x.stacked, *rest, **kwargs)
        if bias is not None:
            out = _add_offset(out, batch, bias.view(-1, *([1] * (out.dim() - 2))))
        return _Line(out), None

    def on_bounds(args: list, kwargs: dict, batch: int) -> tuple[_Line, None]:
        x, rest = args[0], list(args[1:])
        center = target(x.stacked[:batch], *rest, **kwargs)
        if len(rest) >= bias_at:
            rest[bias_at - 1] = None
        else:
            kwargs = {**kwargs, "bias": None}
        if rest:
            rest[0] = rest[0].abs()
        else:
            kwargs = {**kwargs, "weight": kwargs["weight"].abs()}
        return _Line(torch.cat([center, target(x.stacked[batch:], *rest, **kwargs)])), None

    return _Handler(_constant_or(target, on_lines), bounds=_constant_or(target, on_bounds))


def _batch_norm_function() -> _Handler:
    def affine(args: list, kwargs: dict) -> tuple[_Line, Tensor, Tensor]:
        """(input, scale, shift) of an eval-mode batch norm, shaped to broadcast over the input."""
        x, mean, var, weight, bias, training, _, eps = (list(args) + [None] * 8)[:8]
        weight, bias = kwargs.get("weight", weight), kwargs.get("bias", bias)
        training, eps = kwargs.get("training", training), kwargs.get("eps", 1e-5 if eps is None else eps)
        if training or not isinstance(x, _Line) or _lines_in((mean, var, weight, bias)):
            raise UnsupportedModuleError("batch_norm needs running statistics (training=False) and constant parameters")
        scale = 1.0 / torch.sqrt(var + eps) * (1.0 if weight is None else weight)
        shift = -mean * scale + (0.0 if bias is None else bias)
        shape = (-1,) + (1,) * (x.stacked.dim() - 2)
        return x, scale.view(shape), shift.view(shape)

    def on_lines(args: list, kwargs: dict, batch: int) -> tuple[_Line, None]:
        x, scale, shift = affine(args, kwargs)
        return _Line(_add_offset(x.stacked * scale, batch, shift)), None

    def on_bounds(args: list, kwargs: dict, batch: int) -> tuple[_Line, None]:
        x, scale, shift = affine(args, kwargs)
        return _Line(_add_offset(_scaled_bounds(x, scale, batch).stacked, batch, shift)), None

    return _Handler(_constant_or(F.batch_norm, on_lines), bounds=_constant_or(F.batch_norm, on_bounds))


def _pad() -> _Handler:
    def on_lines(args: list, kwargs: dict, batch: int) -> tuple[_Line, None]:
        x, pad, *rest = args
        mode = rest[0] if rest else kwargs.get("mode", "constant")
        value = (rest[1] if len(rest) > 1 else kwargs.get("value", None)) or 0.0
        if not isinstance(x, _Line) or _lines_in((pad, rest, kwargs)):
            raise UnsupportedModuleError("only the padded tensor may depend on the input")
        if mode != "constant":
            return _Line(F.pad(x.stacked, pad, mode=mode)), None
        values, slopes = x.stacked.chunk(2)  # the fill value is a constant: values only
        return _Line(torch.cat([F.pad(values, pad, value=value), F.pad(slopes, pad, value=0.0)])), None

    apply = _constant_or(F.pad, on_lines)
    return _Handler(apply, bounds=apply)  # as a centre the fill has radius 0; other modes copy entries


def _piecewise(target: Any, build: Callable[[list, dict], nn.Module]) -> _Handler:
    """A functional ReLU / LeakyReLU / max-pool: the module's step, built from the call's arguments."""
    call = _as_call(target)

    def on_lines(args: list, kwargs: dict, batch: int) -> tuple[_Line, tuple[Tensor, Tensor]]:
        if not isinstance(args[0], _Line) or _lines_in((args[1:], kwargs)):
            raise UnsupportedModuleError("only the first argument may depend on the input")
        module = build(args[1:], {k: v for k, v in kwargs.items() if k != "inplace"})
        out, piece = _FACTORIES[type(module)]("function", module)(args[0].stacked, batch)
        return _Line(out), piece

    def on_bounds(args: list, kwargs: dict, batch: int) -> tuple[_Line, None]:
        module = build(args[1:], {k: v for k, v in kwargs.items() if k != "inplace"})
        step = _interval_step(module)
        if step is None:
            raise UnsupportedModuleError(f"{type(module).__name__} has no interval propagation")
        return _Line(step(args[0].stacked, batch)[0]), None

    return _Handler(_constant_or(call, on_lines), piecewise=True, bounds=_constant_or(call, on_bounds))


def _same_bounds(apply: Callable[[list, dict, int], tuple[Any, Any]]) -> _Handler:
    """A handler whose operation moves entries without weighing them: bounds pass as lines do."""
    return _Handler(apply, bounds=apply)


def _eval_dropout(args: list, kwargs: dict) -> tuple[_Line, None]:
    training = args[2] if len(args) > 2 else kwargs.get("training", True)
    if training:
        raise UnsupportedModuleError("dropout in training mode is random; call model.eval() first")
    return args[0], None


def _relu(args: list, kwargs: dict) -> nn.Module:
    return nn.ReLU()


def _leaky_relu(args: list, kwargs: dict) -> nn.Module:
    return nn.LeakyReLU(*[a for a in args[:1]], **{k: v for k, v in kwargs.items() if k == "negative_slope"})


def _max_pool2d(args: list, kwargs: dict) -> nn.Module:
    names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")  # F.max_pool2d's order
    return nn.MaxPool2d(**dict(zip(names, args)), **kwargs)


def _getitem(args: list) -> tuple[Any, None]:
    """An element of a split's tuple, or a slice of an input-dependent tensor (dims >= 1 only)."""
    container, index = args
    if isinstance(container, (tuple, list)):
        return container[index], None
    if _lines_in(index):
        raise UnsupportedModuleError("an index must not depend on the input")
    _INDEX(container.stacked, [index], {})
    return _Line(container.stacked[index]), None


def _first_dims(name: str, position: int, default: Any) -> Callable[[Tensor, list, dict], list[int]]:
    """The dims named by an argument (at ``position`` among the arguments after the tensor, or ``name``)."""

    def dims(x: Tensor, args: list, kwargs: dict) -> list[int]:
        value = args[position] if len(args) > position else kwargs.get(name, default)
        if value is None:
            return [0]  # a reduction over every dim includes the batch
        return list(value) if isinstance(value, (tuple, list)) else [value]

    return dims


def _index_dims(x: Tensor, args: list, kwargs: dict) -> list[int]:
    index = args[0]
    first = index[0] if isinstance(index, tuple) and index else index
    if first == slice(None):
        return []
    if first is Ellipsis and isinstance(index, tuple) and len(index) <= x.dim():
        return []
    return [0]


def _permute_dims(x: Tensor, args: list, kwargs: dict) -> list[int]:
    order = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else list(args) or kwargs.get("dims")
    return [0] if _dim(order[0], x.dim()) != 0 else []


def _flatten_dims(x: Tensor, args: list, kwargs: dict) -> list[int]:
    start = args[0] if args else kwargs.get("start_dim", 0)
    return [start]


_REDUCE = _keeps_batch(_first_dims("dim", 0, None), "a reduction")
_SPLIT = _keeps_batch(_first_dims("dim", 1, 0), "a split")
_SQUEEZE = _keeps_batch(_first_dims("dim", 0, None), "squeeze")
_UNSQUEEZE = _keeps_batch(_first_dims("dim", 0, 0), "unsqueeze")
_TRANSPOSE = _keeps_batch(lambda x, args, kwargs: list(args[:2]), "a transpose")
_PERMUTE = _keeps_batch(_permute_dims, "a permutation")
_FLATTEN = _keeps_batch(_flatten_dims, "flatten")
_INDEX = _keeps_batch(_index_dims, "indexing")

_FUNCTIONS: dict[Any, _Handler] = {
    operator.add: _add(1.0), torch.add: _add(1.0), operator.iadd: _add(1.0),
    operator.sub: _add(-1.0), torch.sub: _add(-1.0), operator.isub: _add(-1.0),
    operator.mul: _scale(False), torch.mul: _scale(False), operator.imul: _scale(False),
    operator.truediv: _scale(True), torch.div: _scale(True), operator.itruediv: _scale(True),
    operator.neg: _negate(operator.neg), torch.neg: _negate(torch.neg),
    operator.getitem: _same_bounds(_constant_or(operator.getitem, lambda args, kwargs, batch: _getitem(args))),
    getattr: _metadata(getattr),
    torch.cat: _concatenate(torch.cat), torch.concat: _concatenate(torch.cat), torch.stack: _concatenate(torch.stack),
    torch.flatten: _unary_linear(torch.flatten, _FLATTEN),
    torch.reshape: _unary_linear(torch.reshape),
    torch.permute: _unary_linear(torch.permute, _PERMUTE),
    torch.transpose: _unary_linear(torch.transpose, _TRANSPOSE),
    torch.squeeze: _unary_linear(torch.squeeze, _SQUEEZE), torch.unsqueeze: _unary_linear(torch.unsqueeze, _UNSQUEEZE),
    torch.split: _unary_linear(torch.split, _SPLIT), torch.chunk: _unary_linear(torch.chunk, _SPLIT),
    torch.mean: _unary_linear(torch.mean, _REDUCE), torch.sum: _unary_linear(torch.sum, _REDUCE),
    F.avg_pool1d: _unary_linear(F.avg_pool1d), F.avg_pool2d: _unary_linear(F.avg_pool2d), F.avg_pool3d: _unary_linear(F.avg_pool3d),
    F.adaptive_avg_pool1d: _unary_linear(F.adaptive_avg_pool1d),
    F.adaptive_avg_pool2d: _unary_linear(F.adaptive_avg_pool2d),
    F.adaptive_avg_pool3d: _unary_linear(F.adaptive_avg_pool3d),
    F.interpolate: _unary_linear(F.interpolate),
    F.dropout: _same_bounds(_constant_or(F.dropout, lambda args, kwargs, batch: _eval_dropout(args, kwargs))),
    F.pad: _pad(),
    F.conv1d: _affine_function(F.conv1d, 2), F.conv2d: _affine_function(F.conv2d, 2), F.conv3d: _affine_function(F.conv3d, 2),
    F.conv_transpose1d: _affine_function(F.conv_transpose1d, 2),
    F.conv_transpose2d: _affine_function(F.conv_transpose2d, 2),
    F.conv_transpose3d: _affine_function(F.conv_transpose3d, 2),
    F.linear: _affine_function(F.linear, 2),
    F.batch_norm: _batch_norm_function(),
    F.relu: _piecewise(F.relu, _relu), torch.relu: _piecewise(torch.relu, _relu),
    F.leaky_relu: _piecewise(F.leaky_relu, _leaky_relu),
    F.max_pool2d: _piecewise(F.max_pool2d, _max_pool2d), torch.max_pool2d: _piecewise(torch.max_pool2d, _max_pool2d),
}  # fmt: skip

_METHODS: dict[str, _Handler] = {
    "add": _add(1.0), "add_": _add(1.0), "sub": _add(-1.0), "sub_": _add(-1.0),
    "mul": _scale(False), "mul_": _scale(False), "div": _scale(True), "div_": _scale(True),
    "neg": _negate("neg"),
    "size": _metadata("size"), "dim": _metadata("dim"),
    "view": _unary_linear("view"), "reshape": _unary_linear("reshape"), "flatten": _unary_linear("flatten", _FLATTEN),
    "contiguous": _unary_linear("contiguous"), "clone": _unary_linear("clone"),
    "permute": _unary_linear("permute", _PERMUTE), "transpose": _unary_linear("transpose", _TRANSPOSE),
    "squeeze": _unary_linear("squeeze", _SQUEEZE), "unsqueeze": _unary_linear("unsqueeze", _UNSQUEEZE),
    "split": _unary_linear("split", _SPLIT), "chunk": _unary_linear("chunk", _SPLIT),
    "mean": _unary_linear("mean", _REDUCE), "sum": _unary_linear("sum", _REDUCE),
    "relu": _piecewise("relu", _relu), "relu_": _piecewise("relu_", _relu),
}  # fmt: skip

_SUPPORTED_NAMES = {getattr(k, "__name__", str(k)) for k in _FUNCTIONS} | set(_METHODS)


# -- modules ----------------------------------------------------------------------------------
def _compile(path: str, module: nn.Module) -> Step:
    if _propagates_itself(module):
        return module.line_step(path)
    kind = type(module)
    if kind is nn.Sigmoid:
        raise UnsupportedModuleError(
            f"Sigmoid at {path!r} is supported only as the last module of the model (a monotone output map)"
        )
    if kind in _TRAINING_SENSITIVE and module.training:
        raise UnsupportedModuleError(f"{kind.__name__} at {path!r} is in training mode; call model.eval() first")
    factory = _FACTORIES.get(kind)
    if factory is None:
        supported = ", ".join(sorted(k.__name__ for k in _FACTORIES)) + ", a final Sigmoid"
        raise UnsupportedModuleError(
            f"unsupported module {kind.__name__} at {path!r}: the line propagation handles only the modules {supported} "
            "(and any module whose forward traces into supported operations)"
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


def _conv(path: str, module: nn.Conv1d | nn.Conv2d | nn.Conv3d) -> Step:
    """Conv1d/2d/3d with any stride, padding, padding mode, dilation and groups (the module's own
    convolution, with float64 weights and the bias added to the values only)."""
    weight, bias = _float64(module.weight), _float64(module.bias)

    def step(stacked: Tensor, batch: int) -> tuple[Tensor, None]:
        out = module._conv_forward(stacked, weight, None)
        if bias is not None:
            out = _add_offset(out, batch, bias.view(-1, *([1] * (out.dim() - 2))))
        return out, None

    return step


def _conv_transpose(path: str, module: nn.ConvTranspose1d | nn.ConvTranspose2d | nn.ConvTranspose3d) -> Step:
    weight, bias = _float64(module.weight), _float64(module.bias)
    transpose = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[len(module.kernel_size)]

    def step(stacked: Tensor, batch: int) -> tuple[Tensor, None]:
        out = transpose(stacked, weight, None, module.stride, module.padding, module.output_padding, module.groups, module.dilation)
        if bias is not None:
            out = _add_offset(out, batch, bias.view(-1, *([1] * (out.dim() - 2))))
        return out, None

    return step


def _linear(path: str, module: nn.Linear) -> Step:
    weight, bias = _float64(module.weight), _float64(module.bias)

    def step(stacked: Tensor, batch: int) -> tuple[Tensor, None]:
        out = F.linear(stacked, weight)
        return (out if bias is None else _add_offset(out, batch, bias)), None

    return step


def _batch_norm(path: str, module: nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d) -> Step:
    scale, shift = _batch_norm_affine(path, module)

    def step(stacked: Tensor, batch: int) -> tuple[Tensor, None]:
        shape = (-1,) + (1,) * (stacked.dim() - 2)
        return _add_offset(stacked * scale.view(shape), batch, shift.view(shape)), None

    return step


def _batch_norm_affine(path: str, module: nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d) -> tuple[Tensor, Tensor]:
    """(scale, shift) per channel of an eval-mode batch norm."""
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
    return scale, shift


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
    nn.Conv1d: _conv,
    nn.Conv2d: _conv,
    nn.Conv3d: _conv,
    nn.ConvTranspose1d: _conv_transpose,
    nn.ConvTranspose2d: _conv_transpose,
    nn.ConvTranspose3d: _conv_transpose,
    nn.Linear: _linear,
    nn.BatchNorm1d: _batch_norm,
    nn.BatchNorm2d: _batch_norm,
    nn.BatchNorm3d: _batch_norm,
    nn.ReLU: _activation,
    nn.LeakyReLU: _activation,
    nn.MaxPool2d: _max_pool,
    nn.AvgPool1d: _linear_module,
    nn.AvgPool2d: _linear_module,
    nn.AvgPool3d: _linear_module,
    nn.AdaptiveAvgPool1d: _linear_module,
    nn.AdaptiveAvgPool2d: _linear_module,
    nn.AdaptiveAvgPool3d: _linear_module,
    nn.Upsample: _linear_module,
    nn.UpsamplingNearest2d: _linear_module,
    nn.UpsamplingBilinear2d: _linear_module,
    nn.Flatten: _linear_module,
    nn.Unflatten: _linear_module,
    nn.Identity: _linear_module,
    nn.Dropout: _linear_module,
    nn.Dropout1d: _linear_module,
    nn.Dropout2d: _linear_module,
    nn.Dropout3d: _linear_module,
}

_TRAINING_SENSITIVE = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


# -- interval bounds: (centres; radii) through the same graph ----------------------------------
_MONOTONE_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "trilinear", "area")
"""Interpolation modes whose weights are >= 0 (bicubic's are not)."""

_REARRANGING = (
    nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d, nn.Flatten, nn.Unflatten, nn.Identity,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
)  # fmt: skip
"""Linear modules without offset whose weights are >= 0: radii pass through them as slopes do."""


def _interval_step(module: nn.Module) -> Step | None:
    """The module on interval bounds, stacked (centres; radii) -> (centres; radii), or None.

    Affine maps act on centres (with their offset) and, with |weights|, on radii; monotone maps
    (ReLU, LeakyReLU with slope >= 0, max-pool) on the lower and upper ends. None for a module
    without it (a Grad-CAM core, bicubic upsampling); the path in messages comes from the caller.
    """
    kind = type(module)
    if kind in _REARRANGING or (kind is nn.Upsample and module.mode in _MONOTONE_MODES):
        return _linear_module("", module)
    if kind in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
        weight, bias = _float64(module.weight), _float64(module.bias)
        return _affine_bounds(lambda x, w, b: module._conv_forward(x, w, b), weight, bias)
    if kind in (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d):
        transpose = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[len(module.kernel_size)]
        m = module
        return _affine_bounds(
            lambda x, w, b: transpose(x, w, b, m.stride, m.padding, m.output_padding, m.groups, m.dilation),
            _float64(m.weight), _float64(m.bias),
        )  # fmt: skip
    if kind is nn.Linear:
        return _affine_bounds(F.linear, _float64(module.weight), _float64(module.bias))
    if kind in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
        return _scale_shift_bounds(*_batch_norm_affine("", module))
    if kind is nn.ReLU or (kind is nn.LeakyReLU and module.negative_slope >= 0):
        return _monotone_bounds(module)
    if kind is nn.MaxPool2d and not module.return_indices:
        return _monotone_bounds(module)
    return None


def _affine_bounds(apply: Callable[[Tensor, Tensor, Tensor | None], Tensor], weight: Tensor, bias: Tensor | None) -> Step:
    """Bounds through x -> apply(x, weight, bias): centres through it, radii through |weight| without bias."""
    magnitude = weight.abs()

    def step(stacked: Tensor, batch: int) -> tuple[Tensor, None]:
        return torch.cat([apply(stacked[:batch], weight, bias), apply(stacked[batch:], magnitude, None)]), None

    return step


def _scale_shift_bounds(scale: Tensor, shift: Tensor) -> Step:
    """Bounds through x -> scale·x + shift per channel (dim 1)."""

    def step(stacked: Tensor, batch: int) -> tuple[Tensor, None]:
        shape = (-1,) + (1,) * (stacked.dim() - 2)
        center = stacked[:batch] * scale.view(shape) + shift.view(shape)
        return torch.cat([center, stacked[batch:] * scale.abs().view(shape)]), None

    return step


def _monotone_bounds(module: nn.Module) -> Step:
    """Bounds through a non-decreasing map: it maps the lower and the upper ends."""

    def step(stacked: Tensor, batch: int) -> tuple[Tensor, None]:
        center, radius = stacked[:batch], stacked[batch:]
        low, high = module(center - radius), module(center + radius)
        return torch.cat([(low + high) / 2, (high - low) / 2]), None

    return step
