"""Models the user brings: a factory with a checkpoint, a TorchScript or ``torch.export`` archive,
and the two-logit view of a binary classifier with one output.

Registered architectures (a suite names them like any other, see the README's "Benchmark your
own model"):

- ``factory``: ``factory = "pkg.module:build"`` or ``"path/to/file.py:build"``, called with
  ``kwargs``; then, with ``checkpoint``, the state dict loaded strictly (:func:`load_checkpoint`).
- ``torchscript``: ``path`` of a ``torch.jit.save`` archive (:func:`load_torchscript`).
- ``exported``: ``path`` of a ``torch.export.save`` archive (:func:`load_exported`).

Each is checked on a batch of zeros of the data set's input shape: its output must be logits
(N, C) with C the data set's classes, or one logit per sample for a binary data set, which
:class:`TwoLogits` turns into two. ``provides`` declares what the model has for the components
that require it (``conv``, ``gap_head``: :data:`salbench.core.applicability.MODEL_FEATURES`),
as a registered architecture's class attribute does. The files a model reads enter its cache key
by content (:func:`salbench.models.content_digest`), never by path; a factory file's own imports
do not, so keep a factory's code in that file or in an installed package.

Loading runs no code from a model file: a checkpoint is read with ``torch.load(weights_only=True)``
(tensors and plain containers only) and loaded with ``strict=True``; a TorchScript archive holds
TorchScript, which its interpreter runs, not Python; a ``torch.export`` archive holds an ATen
graph. The only Python that runs is the factory the suite names.

Example:
    >>> import pathlib, tempfile, torch
    >>> from torch import nn
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> torch.save(nn.Linear(3, 2).state_dict(), folder / "weights.pt")
    >>> net = load_checkpoint(nn.Linear(3, 2), folder / "weights.pt")
    >>> net.weight.shape
    torch.Size([2, 3])
    >>> load_checkpoint(nn.Linear(4, 2), folder / "weights.pt")
    Traceback (most recent call last):
    ...
    ValueError: checkpoint .../weights.pt does not fit the model: ... size mismatch for weight: ...[2, 3]...[2, 4]).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from salbench.core.files import content_digest
from salbench.models import register
from torch import Tensor, nn

__all__ = [
    "load_checkpoint", "load_torchscript", "load_exported", "TwoLogits", "PairedLinear", "two_class", "classifier", "resolve_factory",
    "factory_model", "torchscript_model", "exported_model",
]

_FACTORY_PREFIX = "salbench_factory_"  # of the module names under which factory files are imported


def load_checkpoint(model: nn.Module, path: str | Path, state_dict_key: str | None = None) -> nn.Module:
    """``model`` with the state dict of the checkpoint at ``path`` loaded strictly; returns ``model``.

    The file is read with ``torch.load(map_location="cpu", weights_only=True)``. It must hold a
    state dict (a mapping of parameter and buffer names to tensors), or a mapping with one under
    ``state_dict_key`` (e.g. ``"state_dict"`` for PyTorch Lightning, ``"model"`` for many training
    scripts). Missing, unexpected and mis-shaped entries are an error listing them; nothing is
    renamed or dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (resolved to {path.resolve()})")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"checkpoint {path} cannot be read as tensors with torch.load(weights_only=True) ({_reason(err)}); save "
            f"the model's state_dict() (torch.save(model.state_dict(), path)), not the pickled model"
        ) from err
    state = _state_dict(loaded, path, state_dict_key)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        raise ValueError(f"checkpoint {path} does not fit the model: {detail}") from None
    return model


def _reason(err: Exception) -> str:
    """The line of torch.load's (long, multi-line) error that says what it refused."""
    refused = re.search(r"Unsupported global: GLOBAL \S+", str(err))
    return refused.group(0) if refused else f"{type(err).__name__}: {str(err).strip().splitlines()[0]}"


def _state_dict(loaded: object, path: Path, key: str | None) -> Mapping[str, Tensor]:
    if key is not None:
        if not isinstance(loaded, Mapping) or key not in loaded:
            keys = sorted(map(str, loaded))[:12] if isinstance(loaded, Mapping) else type(loaded).__name__
            raise ValueError(f"checkpoint {path}: state_dict_key {key!r} is not in it; its top-level keys: {keys}")
        loaded = loaded[key]
    if not isinstance(loaded, Mapping) or not loaded or not all(isinstance(v, Tensor) for v in loaded.values()):
        found = type(loaded).__name__
        if isinstance(loaded, Mapping):
            wrapped = sorted(str(k) for k, v in loaded.items() if isinstance(v, Mapping))
            found = f"a mapping whose non-tensor entries include {wrapped[:6]}" if wrapped else "a mapping without tensors"
        raise ValueError(
            f"checkpoint {path} is not a state dict (names → tensors): found {found}; if the state dict is "
            f"one entry of it, name that entry with state_dict_key"
        )
    return loaded


def load_torchscript(path: str | Path) -> nn.Module:
    """The TorchScript module archived at ``path`` (``torch.jit.save``), on the CPU.

    TorchScript modules take no forward hooks, so explainers that read a layer (Grad-CAM, CAM)
    cannot explain them; gradient-based explainers, attacks and recipes can.
    """
    path = _existing(path, "TorchScript archive")
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as err:
        raise ValueError(f"TorchScript archive {path} cannot be loaded with torch.jit.load: {err}") from err


class _Exported(nn.Module):
    """A ``torch.export`` program as a module: its graph module does not support ``train()``/
    ``eval()`` (the mode was fixed at export), so switching modes here changes nothing below."""

    def __init__(self, program: nn.Module):
        super().__init__()
        self.program = program

    def train(self, mode: bool = True) -> _Exported:
        self.training = mode
        return self

    def forward(self, x: Tensor) -> Tensor:
        return self.program(x)


def load_exported(path: str | Path) -> nn.Module:
    """The module of the ``torch.export`` program archived at ``path`` (``torch.export.save``).

    Its layers keep the mode they were exported in (export it from ``model.eval()``); its batch
    dimension must have been exported as dynamic for batches other than the example's size.
    """
    path = _existing(path, "torch.export archive")
    try:
        program = torch.export.load(str(path))
    except Exception as err:
        raise ValueError(f"torch.export archive {path} cannot be loaded with torch.export.load: {err}") from err
    return _Exported(program.module())


def _existing(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist (resolved to {path.resolve()})")
    return path


class TwoLogits(nn.Module):
    """A binary classifier with one output z (the log-odds of class 1, as for a sigmoid) as a
    two-class one: logits (−z/2, z/2).

    Their softmax is (1 − σ(z), σ(z)), so probabilities, predictions (class 1 iff z > 0) and the
    cross-entropy of every recipe and attack are the sigmoid model's. The score an explainer
    explains for target c is ±z/2: half the log-odds of class c (target 1: z/2; target 0: −z/2),
    so the two classes' maps are each other's negatives, and a class's logit difference is ±z.
    An explainer linear in the explained score (gradient, gradient × input, integrated
    gradients, SmoothGrad, occlusion, CAM) thus gives for target 1 half the map of the raw
    logit z, and for target 0 its negative; a positively homogeneous one (Grad-CAM, absolute
    gradients) half the raw map for target 1; a scale-free one (decoy, random) the raw map.
    The wrapped model is ``self.model``: name its layers as ``"model.<name>"``.

    If the model's last ``nn.Linear`` has one output (the usual sigmoid head), ``self.head`` is
    its two-class view (:class:`PairedLinear`: weights (−w/2, w/2), bias (−b/2, b/2), sharing
    the wrapped layer's parameters), the last ``nn.Linear`` of this module, for explainers that
    read the classifier's weights (CAM, ``fc="auto"``). It is not called in the forward pass.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if linears and linears[-1].out_features == 1:
            self.head = PairedLinear(linears[-1])

    def forward(self, x: Tensor) -> Tensor:
        z = self.model(x)
        if z.dim() > 2 or (z.dim() == 2 and z.shape[1] != 1) or z.shape[0] != x.shape[0]:
            raise ValueError(f"TwoLogits expects one output per sample, (N,) or (N, 1), got shape {tuple(z.shape)}")
        z = z.reshape(-1, 1) / 2
        return torch.cat([-z, z], dim=1)


class PairedLinear(nn.Linear):
    """The two-class view of a linear layer with one output z = w·a + b: outputs (−z/2, z/2).

    Its ``weight`` (2, K) and ``bias`` (2,) are computed from the wrapped layer's, which stay
    its only parameters (not registered here again: the view adds nothing to a state dict and
    follows the wrapped layer's training, device and dtype).

    Example:
        >>> import torch
        >>> layer = torch.nn.Linear(3, 1)
        >>> view = PairedLinear(layer)
        >>> torch.equal(view.weight, torch.cat([-layer.weight / 2, layer.weight / 2])), list(view.state_dict())
        (True, [])
    """

    def __init__(self, layer: nn.Linear):
        nn.Module.__init__(self)
        if not isinstance(layer, nn.Linear) or layer.out_features != 1:
            raise ValueError(f"PairedLinear needs an nn.Linear with one output, got {layer!r}")
        self.in_features, self.out_features = layer.in_features, 2
        object.__setattr__(self, "layer", layer)  # not a submodule: its parameters belong to the wrapped model

    @property
    def weight(self) -> Tensor:
        return torch.cat([-self.layer.weight, self.layer.weight]) / 2

    @property
    def bias(self) -> Tensor:
        b = self.layer.bias if self.layer.bias is not None else self.layer.weight.new_zeros(1)
        return torch.cat([-b, b]) / 2

    def forward(self, a: Tensor) -> Tensor:
        return nn.functional.linear(a, self.weight, self.bias)


def two_class(model: nn.Module, example: Tensor) -> nn.Module:
    """``model``, or :class:`TwoLogits` around it when its output on ``example`` is one logit per
    sample ((N,) or (N, 1)); any other output shape that is not (N, C ≥ 2) is an error."""
    with torch.no_grad():
        out = model(example)
    n = example.shape[0]
    if isinstance(out, Tensor) and out.shape in ((n,), (n, 1)):
        return TwoLogits(model)
    if isinstance(out, Tensor) and out.dim() == 2 and out.shape[0] == n and out.shape[1] >= 2:
        return model
    shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
    raise ValueError(
        f"the model's output for a batch of {n} must be logits (N, C) with C >= 2 classes, or one logit per "
        f"sample, (N,) or (N, 1), for a binary classifier; got {shape}"
    )


# -- registered architectures -------------------------------------------------------------------
def resolve_factory(spec: str) -> Callable[..., Any]:
    """The callable named by ``"pkg.module:name"`` or ``"path/to/file.py:name"``.

    A file is imported under a module name derived from its content (so two versions of one
    file in one process do not mix), once per process and content.
    """
    path, module = _factory_source(spec)
    name = spec.rpartition(":")[2]
    if module is None:
        source = path.read_bytes()
        stem = re.sub(r"\W", "_", path.stem)
        module_name = f"{_FACTORY_PREFIX}{stem}_{hashlib.sha256(source).hexdigest()[:16]}"
        module = sys.modules.get(module_name) or _import_file(module_name, path, source)
    built = getattr(module, name, None)
    if not callable(built):
        found = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))[:12]
        raise ValueError(f"factory {spec!r}: {path or module.__name__} has no callable {name!r}; callables in it: {found}")
    return built


def _factory_source(spec: str) -> tuple[Path, Any]:
    """(the source file of the factory, the imported module or None for a file not imported yet)."""
    target, colon, name = spec.rpartition(":")
    if not colon or not target or not name.isidentifier():
        raise ValueError(f"factory must be 'pkg.module:name' or 'path/to/file.py:name', got {spec!r}")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise FileNotFoundError(f"factory {spec!r}: file {path} does not exist (resolved to {path.resolve()})")
        return path, None
    try:
        module = importlib.import_module(target)
    except ImportError as err:
        raise ValueError(f"factory {spec!r}: module {target!r} cannot be imported: {err}") from err
    if getattr(module, "__file__", None) is None:
        raise ValueError(f"factory {spec!r}: module {target!r} has no source file to fingerprint")
    return Path(module.__file__), module


def _import_file(module_name: str, path: Path, source: bytes):
    spec = importlib.util.spec_from_loader(module_name, loader=None, origin=str(path))
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    sys.modules[module_name] = module  # before running it, as an import does
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def classifier(model: nn.Module, input_shape: tuple[int, ...], num_classes: int, what: str) -> nn.Module:
    """``model`` as a classifier of ``num_classes`` classes (:func:`two_class`), checked on a batch of zeros of
    ``input_shape`` (in eval mode; its mode restored); errors name the model as ``what``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{what} gave a {type(model).__name__}, not a torch.nn.Module")
    was_training = model.training
    model.eval()
    example = torch.zeros(2, *input_shape)
    try:
        wrapped = two_class(model, example)
        with torch.no_grad():
            classes = wrapped(example).shape[1]
    except Exception as err:
        raise ValueError(f"{what} fails on a batch of zeros of the data set's shape {(2, *input_shape)}: {err}") from err
    model.train(was_training)
    if classes != num_classes:
        raise ValueError(
            f"{what} outputs {classes} logits per sample but the data set has {num_classes} classes"
            + (" (a model with one output is a binary classifier)" if isinstance(wrapped, TwoLogits) else "")
        )
    return wrapped


@register("factory")
def factory_model(
    input_shape: tuple[int, ...],
    num_classes: int,
    factory: str,
    kwargs: dict | None = None,
    checkpoint: str | None = None,
    state_dict_key: str | None = None,
    provides: tuple[str, ...] = (),
) -> nn.Module:
    """The model ``factory(**kwargs)`` returns, with the state dict of ``checkpoint`` if given.

    Without a checkpoint the weights are the factory's initialisation, drawn from torch's
    global random state, which the model cache seeds with the cell seed: train it with a recipe.
    With one, a fine-tuning recipe starts from those weights, and recipe ``none`` evaluates them.
    """
    model = resolve_factory(factory)(**(kwargs or {}))
    if checkpoint is not None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"factory {factory!r} gave a {type(model).__name__}, not a torch.nn.Module")
        load_checkpoint(model, checkpoint, state_dict_key)
    return classifier(model, input_shape, num_classes, f"the model of factory {factory!r}")


@register("torchscript")
def torchscript_model(
    input_shape: tuple[int, ...], num_classes: int, path: str, provides: tuple[str, ...] = ()
) -> nn.Module:
    """The TorchScript module archived at ``path`` (see :func:`load_torchscript`)."""
    return classifier(load_torchscript(path), input_shape, num_classes, f"TorchScript archive {path}")


@register("exported")
def exported_model(
    input_shape: tuple[int, ...], num_classes: int, path: str, provides: tuple[str, ...] = ()
) -> nn.Module:
    """The ``torch.export`` program archived at ``path`` (see :func:`load_exported`)."""
    return classifier(load_exported(path), input_shape, num_classes, f"torch.export archive {path}")


def _factory_files(params: Mapping[str, Any]) -> dict[str, Path]:
    files = {"factory": _factory_source(params["factory"])[0]}
    if params["checkpoint"] is not None:
        files["checkpoint"] = Path(params["checkpoint"])
    return files


# What salbench.models reads off these architectures: the content of their files (cache keys),
# whether they bring trained weights (fine-tuning starts from them), which parameters are paths.
factory_model.content_digest = lambda params: content_digest(_factory_files(params))
factory_model.given_weights = lambda params: params["checkpoint"] is not None
factory_model.path_params = ("factory", "checkpoint")
for _archive in (torchscript_model, exported_model):
    _archive.content_digest = lambda params: content_digest({"archive": Path(params["path"])})
    _archive.given_weights = lambda params: True
    _archive.path_params = ("path",)
