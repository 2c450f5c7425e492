"""Where work runs: a device named in a suite or on the command line, resolved once.

Names: ``"cpu"``; ``"cuda"`` (the GPUs; with several, each worker process takes one, see
:func:`worker_device`); ``"cuda:<index>"`` (that GPU); ``"auto"`` (``"cuda"`` where torch sees
a GPU, else ``"cpu"``). The resolved name is part of every cell id and model key: numbers
computed on a GPU are not bitwise those of the CPU, so neither is reused for the other.

Example:
    >>> resolve_device("cpu"), resolve_device("auto") in ("cpu", "cuda")
    ('cpu', True)
    >>> resolve_device("gpu")
    Traceback (most recent call last):
    ...
    ValueError: device must be 'auto', 'cpu', 'cuda' or 'cuda:<index>', got 'gpu'
"""

from __future__ import annotations

import os
import re

import torch

__all__ = ["resolve_device", "worker_device"]

_CUDA = re.compile(r"cuda(?::(\d+))?")


def resolve_device(spec: str, where: str = "device") -> str:
    """``spec`` checked against this machine, with ``"auto"`` resolved; ``where`` names the field in errors."""
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return spec
    match = _CUDA.fullmatch(spec) if isinstance(spec, str) else None
    if match is None:
        raise ValueError(f"{where} must be 'auto', 'cpu', 'cuda' or 'cuda:<index>', got {spec!r}")
    if not torch.cuda.is_available():
        raise ValueError(
            f"{where} = {spec!r}, but torch sees no CUDA device here (torch {torch.__version__}, "
            f"torch.cuda.is_available() is False); use 'cpu', or 'auto' to take a GPU only where there is one"
        )
    if match.group(1) is not None and int(match.group(1)) >= torch.cuda.device_count():
        raise ValueError(f"{where} = {spec!r}, but torch sees {torch.cuda.device_count()} CUDA device(s)")
    return spec


def worker_device(device: str) -> torch.device:
    """The torch device this process works on for the resolved name ``device``: ``"cuda"`` with
    several GPUs gives each worker process one of them (by process id, so concurrent workers of a
    local pool spread over the GPUs); any other name is that device."""
    if device == "cuda" and torch.cuda.device_count() > 1:
        return torch.device("cuda", os.getpid() % torch.cuda.device_count())
    return torch.device(device)
