"""Speed-up of a grid run on a dask.distributed cluster with N worker processes over 1.

    python -m salbench.perf.grid_scaleout [--workers 2] [--samples 64] [--repeats 1]

Runs the same suite (synthetic 16×16 blocks, small CNN, two explainers × the top-k attack at
six budgets = 12 cells of similar cost) on a LocalCluster of 1 worker process and on one of N
worker processes (one thread each), each into a fresh store, with the model trained beforehand and the workers' imports done before
the clock starts. Both cluster runs really run on their workers (the runner submits to Dask's
client; joblib would run a one-core cluster's work in the calling process). Prints, measured
in this one run:

* the speed-up of N workers over 1 (wall-clock), beside the speed-up the machine itself allows
  at that moment (a fixed matrix-product loop in N processes at once against one), which bounds
  it on a busy machine; the load average is printed too;
* the per-cell overhead of a worker: each cell run alternately in this process and in a
  1-worker cluster, the worker's total over this process's, in wall-clock and in CPU seconds of
  the running thread (1.00 = none; CPU seconds hardly move with the load of a busy machine);
* each run's efficiency: seconds inside cells over workers × wall-clock seconds (1 = no
  scheduling overhead).

It checks that the two cluster runs stored identical records. ``--repeats`` repeats the
measurement, for a noisy machine.
"""

from __future__ import annotations

import argparse
import importlib
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import torch
from salbench.model_cache import cache_dir_path, trained_model
from salbench.runner import _run_cell, _Settings, run_suite
from salbench.store import comparable, read_records
from salbench.suite import Cell, Suite, parse_suite

SUITE = """
[suite]
name = "scaleout"
samples = {samples}
seeds = [0]

[[datasets]]
name = "synthetic_blocks"
size = 16
n_train = 1000
n_val = 200
n_test = 200
models = [{{ name = "small_cnn" }}]
shared = {{ k = 32 }}

[[recipes]]
name = "standard"
epochs = 10

[[explainers]]
name = "gradient"

[[explainers]]
name = "gradient_x_input"

[[attacks]]
name = "topk"
steps = 40
eps = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]

[[metrics]]
name = "topk_intersection"

[[metrics]]
name = "spearman"
"""


def _busy(_: int = 0) -> float:
    """Seconds of a fixed single-threaded CPU-bound loop."""
    torch.set_num_threads(1)
    a = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    for _ in range(1000):
        a @ a
    return time.perf_counter() - start


def machine_speedup(workers: int) -> float:
    """The speed-up this machine allows now: ``workers`` copies of :func:`_busy` at once against one."""
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_busy, range(workers)))  # start the processes
        one = _busy()
        many = max(pool.map(_busy, range(workers)))
    return workers * one / many


def timed_run(suite: Suite, out_dir: Path, workers: int) -> tuple[float, float]:
    """Wall-clock seconds to run ``suite`` into ``out_dir`` on a fresh LocalCluster of ``workers``
    processes, and the sum of the cells' own seconds (their ``elapsed_s``)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster.scheduler_address) as client:
            client.run(importlib.import_module, "salbench.runner")  # imports happen before the clock
        start = time.perf_counter()
        summary = run_suite(suite, out_dir, backend="dask", scheduler=cluster.scheduler_address, progress=False)
        elapsed = time.perf_counter() - start
    if summary.failed or summary.run != len(suite.cells):
        raise RuntimeError(f"the timed run did not complete: {summary.describe()}")
    return elapsed, read_records(out_dir).drop_duplicates("cell_id").elapsed_s.sum()


def _timed_cell(cell: Cell, settings: _Settings) -> tuple[float, float]:
    """Wall-clock and thread CPU seconds of one cell run here (the runner's own cell function)."""
    wall, cpu = time.perf_counter(), time.thread_time()
    outcome = _run_cell(cell, settings)
    if outcome.failure is not None:
        raise RuntimeError(f"cell {cell.describe()} failed: {outcome.failure['error']}")
    return time.perf_counter() - wall, time.thread_time() - cpu


def worker_overhead(suite: Suite) -> tuple[float, float]:
    """Each cell of ``suite`` run alternately in this process and in a 1-worker LocalCluster (after
    one untimed cell in each): the worker's total over this process's, in wall-clock and in CPU
    seconds."""
    from distributed import Client, LocalCluster

    settings = _Settings(suite.name, suite.config_hash, suite.batch_size, suite.threads, str(cache_dir_path()))
    totals = {"here": [0.0, 0.0], "worker": [0.0, 0.0]}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster.scheduler_address) as client:
            client.submit(_timed_cell, suite.cells[0], settings, pure=False).result()
            _timed_cell(suite.cells[0], settings)
            for cell in suite.cells:
                here = _timed_cell(cell, settings)
                there = client.submit(_timed_cell, cell, settings, pure=False).result()
                for where, seconds in (("here", here), ("worker", there)):
                    totals[where] = [a + b for a, b in zip(totals[where], seconds)]
    return totals["worker"][0] / totals["here"][0], totals["worker"][1] / totals["here"][1]


def measure(suite: Suite, workers: int, tmp: Path) -> dict[str, float]:
    """One measurement: the worker overhead, the runs on 1 and on ``workers`` workers, the machine bound."""
    wall_overhead, cpu_overhead = worker_overhead(suite)
    runs = {n: timed_run(suite, tmp / str(n), n) for n in (1, workers)}
    pd.testing.assert_frame_equal(comparable(read_records(tmp / "1")), comparable(read_records(tmp / str(workers))))
    bound = machine_speedup(workers)
    for n, (wall, cells) in runs.items():
        # efficiency: the share of the workers' wall time spent inside cells (1 = no scheduling overhead)
        print(f"  {n} worker(s): {wall:.1f} s wall, {cells:.1f} s in cells, efficiency {cells / (n * wall):.2f}")
    return {"speedup": runs[1][0] / runs[workers][0], "bound": bound, "wall": wall_overhead, "cpu": cpu_overhead}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="workers of the parallel run (default 2)")
    parser.add_argument("--samples", type=int, default=64, help="evaluation samples per cell (default 64)")
    parser.add_argument("--repeats", type=int, default=1, help="repeat the whole measurement (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    suite = parse_suite(SUITE.format(samples=args.samples), source="grid_scaleout")
    for inputs in {cell.model_key: cell.model_inputs for cell in suite.cells}.values():
        trained_model(*inputs)  # phase 1 out of the measurement
    print(f"{len(suite.cells)} cells, {args.samples} samples each, on {os.cpu_count()} cores")
    for repeat in range(args.repeats):
        print(f"measurement {repeat + 1} of {args.repeats} (load average before: {os.getloadavg()[0]:.1f})")
        with tempfile.TemporaryDirectory() as tmp:
            found = measure(suite, args.workers, Path(tmp))
        print(
            f"  speed-up of {args.workers} workers over 1: {found['speedup']:.2f}x (identical records; the machine's own "
            f"for {args.workers} CPU-bound processes now: {found['bound']:.2f}x)\n"
            f"  per-cell time inside a worker / in this process: {found['wall']:.2f} wall-clock, {found['cpu']:.2f} CPU"
        )


if __name__ == "__main__":
    main()
