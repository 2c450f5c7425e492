"""Model architectures: ``nn.Module`` classes built from a data set's input shape and class count.

Every architecture's first two ``__init__`` parameters are ``input_shape: tuple[int, ...]``
and ``num_classes: int``; the harness fills them in from the :class:`DataBundle`, so a suite
or a cache key names only the architecture's own parameters. Architectures use ``nn.ReLU``
modules (never ``F.relu``) so that attacks can swap them for ``nn.Softplus``.

Example:
    >>> from benchmarks import models
    >>> net = models.build("mlp", {"hidden": (8,)}, input_shape=(30,), num_classes=2)
    >>> models.validate_params("small_cnn", {"channels": [4, 8]})
    {'channels': (4, 8), 'kernel_size': 3, 'pool': True}
"""

from __future__ import annotations

from typing import Any

from torch import nn

from benchmarks.registry import ParameterError, Registry, RegistryError
from explainers.validation import check_positive_int

__all__ = [
    "registry", "register", "get", "names", "HARNESS_PARAMS", "validate_params", "build", "check_shape_and_classes",
]

registry = Registry("model", group="salbench.models")
register = registry.register
get = registry.get
names = registry.names

HARNESS_PARAMS = ("input_shape", "num_classes")
"""The leading ``__init__`` parameters of every architecture, filled in from the data set."""


def validate_params(name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The architecture's own parameters, validated and with defaults, without :data:`HARNESS_PARAMS`."""
    given = dict(params or {})
    clash = [p for p in HARNESS_PARAMS if p in given]
    if clash:
        raise ParameterError(
            f"model {name!r}: parameter(s) {clash} come from the data set; remove them from the model's parameters"
        )
    leading = tuple(p.name for p in registry.entry(name).params[: len(HARNESS_PARAMS)])
    if leading != HARNESS_PARAMS:
        raise RegistryError(
            f"model {name!r} must take {HARNESS_PARAMS} as its first __init__ parameters, got {leading}"
        )
    full = registry.validate(name, {**given, "input_shape": (1,), "num_classes": 2})
    return {k: v for k, v in full.items() if k not in HARNESS_PARAMS}


def build(name: str, params: dict[str, Any] | None, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Architecture ``name`` with its own ``params`` for inputs of ``input_shape`` and ``num_classes`` classes."""
    return registry.get(name, input_shape=tuple(input_shape), num_classes=num_classes, **validate_params(name, params))


def check_shape_and_classes(input_shape: tuple[int, ...], num_classes: int, rank: int | None = None) -> None:
    """``input_shape`` is a tuple of positive ints (of length ``rank`` if given); ``num_classes`` >= 2."""
    if not isinstance(input_shape, tuple) or not input_shape or (rank is not None and len(input_shape) != rank):
        what = f"of {rank} positive ints" if rank is not None else "of positive ints"
        raise ValueError(f"input_shape must be a non-empty tuple {what}, got {input_shape!r}")
    for i, size in enumerate(input_shape):
        check_positive_int(size, f"input_shape[{i}]")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")


from benchmarks.models import miwa_cnn, mlp, small_cnn  # noqa: E402,F401  (registers the built-ins)
