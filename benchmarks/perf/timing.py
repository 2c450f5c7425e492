"""One timer for the speed benchmarks: seconds of a call, synchronised on CUDA."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

__all__ = ["timed", "interleaved_medians"]


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


def interleaved_medians(
    jobs: dict[str, dict[str, Callable[[], object]]], repeats: int, device: torch.device
) -> dict[tuple[str, str], float]:
    """Median seconds of every call of ``jobs`` (workload → side → call), keyed (workload, side).

    One workload at a time (so that one workload's memory traffic does not land on another's
    timings): each side once as a warm-up, then ``repeats`` rounds that call the sides in turn,
    so that drifts in machine load hit them alike.
    """
    times: dict[tuple[str, str], list[float]] = {(name, side): [] for name, sides in jobs.items() for side in sides}
    for name, sides in jobs.items():
        for fn in sides.values():
            fn()
        for _ in range(repeats):
            for side, fn in sides.items():
                times[name, side].append(timed(fn, device))
    return {key: statistics.median(values) for key, values in times.items()}
