"""Checks at the boundary of every explainer, metric and attack.

Each check raises a ``ValueError`` (or ``TypeError`` for a wrong type) whose message names the
argument, says what was wrong and what is allowed. Nothing is clipped or defaulted silently.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "check_input",
    "check_target",
    "check_same_shape",
    "check_positive",
    "check_fraction",
    "check_k",
    "check_positive_int",
    "check_seed",
    "check_logits_target",
]


def check_input(x: Tensor, name: str = "x", min_dim: int = 2) -> None:
    """``x`` is a floating tensor of rank >= ``min_dim`` (batch first) with only finite values."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < min_dim:
        raise ValueError(
            f"{name} must have at least {min_dim} dimensions (batch first), got shape {tuple(x.shape)}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(x.shape)})")
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).sum().item()
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); inputs must be finite")


def check_target(target: Tensor | int, x: Tensor, name: str = "target") -> Tensor:
    """Return ``target`` as a long tensor of shape (N,) matching the batch of ``x``.

    An int is broadcast to the batch. The class range is checked against the model's output by
    :func:`check_logits_target`, where the number of classes is known.
    """
    if isinstance(target, bool):
        raise TypeError(f"{name} must be a class index (int or integer tensor), got bool")
    if isinstance(target, int):
        target = torch.full((x.shape[0],), target, dtype=torch.long, device=x.device)
    if not isinstance(target, Tensor):
        raise TypeError(f"{name} must be an int or an integer torch.Tensor of shape (N,), got {type(target).__name__}")
    if target.is_floating_point() or target.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices, got dtype {target.dtype}")
    if target.dim() != 1 or target.shape[0] != x.shape[0]:
        raise ValueError(
            f"{name} must have shape ({x.shape[0]},) to match the batch of the input, got {tuple(target.shape)}"
        )
    return target.to(device=x.device, dtype=torch.long)


def check_logits_target(logits: Tensor, target: Tensor, name: str = "target") -> None:
    """The model returned (N, C) logits and every target lies in [0, C)."""
    if logits.dim() != 2:
        raise ValueError(f"the model must return logits of shape (N, num_classes), got {tuple(logits.shape)}")
    n_classes = logits.shape[1]
    if target.numel() and (target.min() < 0 or target.max() >= n_classes):
        raise ValueError(
            f"{name} holds class indices outside [0, {n_classes}) for a model with {n_classes} outputs: "
            f"min {target.min().item()}, max {target.max().item()}"
        )


def check_same_shape(a: Tensor, b: Tensor, names: tuple[str, str]) -> None:
    """Two tensors (e.g. an attribution and its input) have the same shape."""
    for t, n in zip((a, b), names):
        if not isinstance(t, Tensor):
            raise TypeError(f"{n} must be a torch.Tensor, got {type(t).__name__}")
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def check_positive(value: float, name: str, allow_zero: bool = False) -> None:
    """A finite number > 0 (or >= 0 with ``allow_zero``)."""
    ok = isinstance(value, (int, float)) and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


def check_fraction(value: float, name: str, allow_zero: bool = False) -> None:
    """A number in (0, 1] (or [0, 1] with ``allow_zero``)."""
    lo_ok = value >= 0 if allow_zero else value > 0
    if not (isinstance(value, (int, float)) and lo_ok and value <= 1):
        interval = "[0, 1]" if allow_zero else "(0, 1]"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")


def check_k(k: int, n_features: int, name: str = "k") -> None:
    """``k`` is an int in [1, n_features]."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_features:
        raise ValueError(f"{name} must be an integer in [1, {n_features}] (the number of features), got {k!r}")


def check_positive_int(value: int, name: str) -> None:
    """An int >= 1 (not a bool), e.g. a step size, a number of steps or a batch size."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def check_seed(seed: int) -> None:
    """``seed`` is an int >= 0 (what ``torch.Generator.manual_seed`` takes)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
