"""One timer for the speed benchmarks: seconds of a call, synchronised on CUDA."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

__all__ = ["timed"]


def timed(fn: Callable[[], object], device: torch.device, *, cpu_time: bool = False) -> float:
    """Seconds that ``fn()`` takes: wall-clock (CUDA synchronised before and after), or with
    ``cpu_time=True`` on a CPU device this process's CPU time (steadier on a shared machine)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    clock = time.process_time if cpu_time and device.type != "cuda" else time.perf_counter
    start = clock()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return clock() - start
