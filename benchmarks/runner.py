"""The grid runner: train a suite's models, then run its cells in parallel and store each one.

``run_suite(suite, out_dir)`` works in two phases, both through joblib (on Dask, through its
client: see :func:`_map_unordered`):

1. train every distinct model that the cells to run need (data set, model, recipe, seed), in
   parallel, into the trained-model cache (:func:`salbench.model_cache.trained_model`);
2. run the cells. A cell loads its data set and its trained model, picks its evaluation samples
   (:func:`select_samples`, by the suite's ``select``), explains them in batches of the suite's ``batch_size``
   (a cell without an explainer, for the metrics that do not use one, skips that), attacks
   them (attacked cells) and explains the attacked inputs, and scores every metric of the cell
   on a :class:`salbench.metrics.base.Case` (with the samples' reference images where the test split
   has them). The data set's modality (:func:`salbench.modalities.modality`) says how an explainer
   is applied (text cells explain words) and which positions are features (``Case.valid``); each
   attack gets the inputs it declares (``Attack.inputs``) from the data set. Its records (one row per sample × metric, or × metric output for a metric with
   ``outputs``, stored as ``"<metric>.<output>"``; the columns of
   :data:`salbench.store.RECORD_SCHEMA`, with the metric's per-sample ``note`` saying why a
   value is missing) and examples go to the store as soon as it finishes.

Cells already in the store are skipped, so an interrupted run resumes where it stopped and
ends with the same records as an uninterrupted one; ``fresh=True`` deletes the store first.
A store that holds cells the suite's grid does not have (computed by other code, on another
device or dtype, or by another version of the suite) is refused with a
:class:`StaleStoreError` before any work, since its records would mix into the leaderboard:
rerun with ``fresh=True`` (``--fresh``) or into another directory. Failure records of such
cells are deleted, with a printed message (they are no result, and after a fix the failures
of the old code would otherwise be reported beside the new run).
Before any work, the cells to run are checked against their data
(:func:`salbench.suite.check_data`: data files, ``k`` against the feature count, each model's
output shape on one batch). A cell that raises (or whose model fails to train) is stored as a
failure with its traceback and the run goes on; failed cells are tried again by the next run,
and a success removes the failure. A metric that raises fails only itself: its rows hold NaN
with a note naming the error, the cell's other metrics are kept, and the cell is stored with a
failure record naming the metric (it is not tried again: its records are stored).
:meth:`RunSummary.describe` lists each distinct error once with the cells it hit, for the
failures of this run and those stored before that still stand.

Reproducibility: each cell runs on its device (the suite's ``device``, ``"cpu"`` by default, or
``--device``; with ``"cuda"`` and several GPUs each worker process takes one,
:func:`salbench.core.device.worker_device`) with ``torch.set_num_threads(suite.threads)`` and
``torch.manual_seed(cell.seed)`` set first, so on the CPU its records are bitwise identical
whatever the backend and the number of jobs (on a GPU, to the GPU's own determinism). The cell seed also reaches every explainer and attack that
declares ``seed`` (see :mod:`salbench.suite`); they draw their randomness per sample from (seed,
the sample's content) (:mod:`salbench.core.seeding`), so the records do not depend on the
suite's ``batch_size`` either (batch sizes 2 and 16 store identical records). Keys cannot go
stale: a cell's id (:attr:`salbench.suite.Cell.id`) holds its components' validated
parameters, seed, samples, device, dtype, its model's key and a fingerprint of the source
code of its components, and the model key (:func:`salbench.model_cache.model_key`) holds the
data set, architecture and recipe with their parameters, seed, device, dtype and code; so
after a code change a cell is computed again and its model trained again, never reused.

Plugins: the suite's ``plugins`` (files or modules that register components, see
:mod:`salbench.plugins`) travel with the cell settings and are imported in each worker, once
per process, before its first model or cell; the run prints which it imports.

Worker processes: besides the plugins, a process whose environment pins glibc's allocation
thresholds (Dask's workers: ``MALLOC_TRIM_THRESHOLD_``) gets the ``mmap`` threshold that glibc's
dynamic rule would reach (:func:`_unpin_malloc_thresholds`); with the pinned 128 KiB each cell
ran ~1.3× slower in a worker than in-process.

Backends: ``"loky"`` (local processes, the default), ``"sequential"`` (in this process),
``"dask"`` (an existing dask.distributed cluster at ``scheduler``; its workers set the
parallelism), ``"ray"`` (a Ray cluster at ``scheduler``, or a local one; needs ``ray``). Results
come back to this process, which writes the store, so workers need not share its file system;
they do read and write the trained-model cache, which should be shared for phase 1 to save work
on a multi-machine cluster (a worker without it retrains the same model, deterministically).

Example:
    >>> summary = run_suite("quickstart", "results/quickstart", jobs=2)   # doctest: +SKIP
    >>> print(summary.describe())                                          # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import os
import shutil
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from joblib import Parallel, delayed, parallel_config
from salbench import attacks, explainers, metrics
from salbench.core.device import worker_device
from salbench.core.hashing import canonical_json, versions
from salbench.core.text import Vocabulary
from salbench.datasets import Split, load_dataset
from salbench.metrics.base import Case, MetricOutput
from salbench.modalities import Modality, modality
from salbench.model_cache import cache_dir_path, trained_model
from salbench.plugins import Plugin, import_plugins
from salbench.recipes.base import model_device
from salbench.store import (
    RECORD_COLUMNS,
    delete_failures,
    failed_cell_ids,
    read_records,
    store_dir,
    stored_cell_ids,
    stored_failures,
    write_cell,
    write_failure,
)
from salbench.suite import Cell, Suite, check_data, load_suite
from torch import Tensor, nn
from tqdm.auto import tqdm

__all__ = ["run_suite", "RunSummary", "StaleStoreError", "select_samples", "BACKENDS", "EXAMPLES"]

BACKENDS = ("loky", "sequential", "dask", "ray")
EXAMPLES = 4
"""How many of a cell's evaluation samples are kept as examples for figures."""

_TEXT_EXAMPLES = {"x": "words", "x_adv": "words_adv"}  # text inputs are stored as their words by position
_RAY_ROUND = 4  # ray's joblib backend cannot stream results: it gets rounds of this many tasks per job


class StaleStoreError(ValueError):
    """The store holds cells that the suite's grid does not have (other code, device, dtype or suite)."""


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """What one call of :func:`run_suite` did.

    ``run + failed + skipped + remaining == total``: ``run`` cells computed and stored now (some
    perhaps with failed metrics), ``failed`` recorded as failures now, ``skipped`` found in the
    store, ``remaining`` left pending by ``limit``. ``failures``: the failure records
    (:func:`salbench.store.write_failure`) of the suite's cells after the run, this run's and
    those stored before, sorted by cell id: whole cells that failed and stored cells with failed
    metrics.
    """

    total: int
    run: int
    skipped: int
    failed: int
    remaining: int
    elapsed_s: float
    failures: tuple[dict[str, Any], ...] = ()

    def describe(self) -> str:
        """The counts, then each distinct error once with the number and the descriptions of the cells it hit.

        >>> failure = {"error": "ValueError: no", "description": "wdbc/mlp/standard seed 0: gradient × none"}
        >>> print(RunSummary(1, 0, 0, 1, 0, 0.5, (failure,)).describe())
        1 cells: 0 run, 0 reused from the store, 1 failed; 0.5 s
        1 cell of the suite failed (each error once, with the cells it hit):
          1 cell: ValueError: no
            wdbc/mlp/standard seed 0: gradient × none
        """
        text = (
            f"{self.total} cells: {self.run} run, {self.skipped} reused from the store, "
            f"{self.failed} failed"
        )
        if self.remaining:
            text += f", {self.remaining} left pending (limit)"
        lines = [f"{text}; {self.elapsed_s:.1f} s"]
        if self.failures:
            lines.append(f"{_cells(len(self.failures))} of the suite failed (each error once, with the cells it hit):")
        by_error: dict[str, list[str]] = {}
        for failure in self.failures:
            by_error.setdefault(failure["error"], []).append(failure["description"])
        for error, cells in by_error.items():
            lines.append(f"  {_cells(len(cells))}: " + error.strip().replace("\n", "\n    "))
            lines += [f"    {description}" for description in cells]
        return "\n".join(lines)


def _cells(n: int) -> str:
    return f"{n} cell" if n == 1 else f"{n} cells"


@dataclasses.dataclass(frozen=True)
class _Settings:
    """What a cell needs to know besides itself."""

    suite: str
    config_hash: str
    batch_size: int
    threads: int
    cache_dir: str
    plugins: tuple[Plugin, ...] = ()  # imported in each worker before its first task


@dataclasses.dataclass
class _Outcome:
    """A finished cell: records and examples, or a failure, or both (a cell with failed metrics)."""

    cell_id: str
    records: pd.DataFrame | None = None
    examples: dict[str, np.ndarray] | None = None
    failure: dict[str, Any] | None = None


# -- the entry point ----------------------------------------------------------------------------
def run_suite(
    suite: Suite | str | Path,
    out_dir: str | Path,
    *,
    jobs: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    fresh: bool = False,
    limit: int | None = None,
    progress: bool = True,
) -> RunSummary:
    """Run the cells of ``suite`` that are not stored under ``out_dir`` yet.

    Args:
        suite: a :class:`~salbench.suite.Suite`, or a suite name or TOML path for
            :func:`~salbench.suite.load_suite`.
        out_dir: results directory; the store goes to ``out_dir/store``.
        jobs: parallel workers of loky and ray; must be 1 with sequential, and with dask,
            whose cluster decides.
        backend: one of :data:`BACKENDS`.
        scheduler: the scheduler address: required with ``"dask"``, optional with ``"ray"``
            (default: a local Ray), not allowed with the local backends.
        fresh: delete the store first and recompute everything (needed when the store holds
            cells the grid does not have: :class:`StaleStoreError` otherwise).
        limit: run at most this many pending cells now (in grid order); the rest stay pending.
        progress: show tqdm progress bars.
    """
    start = time.perf_counter()
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    _check_arguments(jobs, backend, scheduler, limit)
    out_dir = Path(out_dir)
    stored = set() if fresh else stored_cell_ids(out_dir)
    if not fresh:  # a fresh run deletes the store, once its data are checked
        _refuse_stale(out_dir, suite, stored)
        _drop_stale_failures(out_dir, suite)
    pending = [cell for cell in suite.cells if cell.id not in stored]
    todo = pending if limit is None else pending[:limit]
    check_data(suite, todo)  # before any work: a SuiteError naming what the data rule out
    if fresh and store_dir(out_dir).exists():
        shutil.rmtree(store_dir(out_dir))
    settings = _Settings(
        suite.name, suite.config_hash, suite.batch_size, suite.threads, str(cache_dir_path()), suite.plugins
    )
    if suite.plugins:
        print(f"{suite.name}: plugins imported here and in every worker: {', '.join(p.describe() for p in suite.plugins)}")
    run = failed = 0
    if todo:
        with _backend(backend, scheduler):
            broken = _train_models(todo, settings, jobs, backend, progress)
            bar = tqdm(total=len(todo), desc=f"{suite.name}: cells", unit="cell", disable=not progress)
            for outcome in _run_cells(todo, broken, settings, jobs, backend):
                if outcome.records is not None:  # perhaps with failed metrics (outcome.failure)
                    write_cell(out_dir, outcome.cell_id, outcome.records, outcome.examples, outcome.failure)
                    run += 1
                else:
                    write_failure(out_dir, outcome.cell_id, outcome.failure)
                    failed += 1
                bar.update()
                bar.set_postfix(failed=failed)
            bar.close()
    ids = {cell.id for cell in suite.cells}
    return RunSummary(
        total=len(suite.cells), run=run, skipped=len(suite.cells) - len(pending), failed=failed,
        remaining=len(pending) - len(todo), elapsed_s=time.perf_counter() - start,
        failures=tuple(f for f in stored_failures(out_dir) if f["cell_id"] in ids),
    )


def _refuse_stale(out_dir: Path, suite: Suite, stored: set[str]) -> None:
    """Raise :class:`StaleStoreError` if the store holds cells that are not in the suite's grid,
    naming a few and saying whether the grid has the same components under another id (so
    their code, device, dtype or parameters changed) or not (another version of the suite)."""
    stale = stored - {cell.id for cell in suite.cells}
    if not stale:
        return
    records = read_records(out_dir)
    first = records[records.cell_id.isin(stale)].drop_duplicates("cell_id").head(3)
    in_grid = {cell.describe() for cell in suite.cells}
    examples = []
    for row in first.itertuples():
        label = f"{row.dataset}/{row.model}/{row.recipe} seed {row.seed}: {row.explainer} × {row.attack}"
        why = "in the grid under a new id: its code, device, dtype or parameters changed" if label in in_grid else "not in this suite"
        examples.append(f"{label} ({why})")
    raise StaleStoreError(
        f"the store {store_dir(out_dir)} holds {len(stale)} cell(s) that suite {suite.name!r} does not have "
        f"(computed by other code or another version of the suite), e.g. {'; '.join(examples)}. "
        "Their records would be mixed into the leaderboard: rerun with --fresh (fresh=True) to recompute "
        "everything, or write to another directory"
    )


def _drop_stale_failures(out_dir: Path, suite: Suite) -> None:
    """Delete the failure records of cells that are not in the suite's grid, saying so."""
    stale = failed_cell_ids(out_dir) - {cell.id for cell in suite.cells}
    if stale:
        delete_failures(out_dir, stale)
        print(
            f"{suite.name}: deleted {len(stale)} failure record(s) of cells that are not in the grid "
            "(computed by other code or another version of the suite)"
        )


def _check_arguments(jobs: int, backend: str, scheduler: str | None, limit: int | None) -> None:
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "dask" and not scheduler:
        raise ValueError("backend 'dask' needs scheduler, the address of a running dask scheduler (e.g. tcp://host:8786)")
    if backend == "dask" and jobs != 1:
        raise ValueError(f"with backend 'dask' the cluster's workers set the parallelism; leave jobs at 1, got {jobs}")
    if backend == "sequential" and jobs != 1:
        raise ValueError(f"backend 'sequential' runs one cell at a time; leave jobs at 1 or use 'loky', got jobs={jobs}")
    if backend in ("loky", "sequential") and scheduler is not None:
        raise ValueError(f"scheduler is only for the 'dask' and 'ray' backends, not {backend!r}; got {scheduler!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be None or a non-negative integer (the number of cells to run now), got {limit!r}")


@contextlib.contextmanager
def _backend(backend: str, scheduler: str | None) -> Iterator[None]:
    """joblib's configuration for ``backend`` (connecting to the cluster where there is one)."""
    if backend == "dask":
        try:
            from distributed import Client
        except ImportError as err:
            raise ImportError("backend 'dask' needs dask.distributed: pip install 'salbench[dask]'") from err
        with Client(scheduler):  # the default client of _map_unordered
            yield
    elif backend == "ray":
        try:
            import ray
            from ray.util.joblib import register_ray
        except ImportError as err:
            raise ImportError("backend 'ray' needs the ray package: pip install 'ray[default]'") from err
        register_ray()
        ray.init(address=scheduler)
        try:
            with parallel_config(backend="ray"):
                yield
        finally:
            ray.shutdown()
    else:
        with parallel_config(backend=backend):
            yield


def _map_unordered(function: Callable[..., Any], args: list[tuple], jobs: int, backend: str) -> Iterator[Any]:
    """``function(*a)`` for each ``a`` in ``args``, yielded as each finishes.

    Dask tasks go to the cluster through its client (``client.map``, ``as_completed``), not
    through joblib: joblib runs a call in the calling process when the backend reports one
    core, so a one-thread cluster would never see the work.
    """
    if backend == "dask":
        from distributed import as_completed, get_client

        futures = get_client().map(function, *zip(*args), pure=False) if args else []
        for future in as_completed(futures):
            yield future.result()
            future.release()
    elif backend == "ray":  # its joblib backend cannot stream results: run rounds of tasks
        size = _RAY_ROUND * jobs
        for i in range(0, len(args), size):
            yield from Parallel(n_jobs=jobs, batch_size=1)(delayed(function)(*a) for a in args[i : i + size])
    else:
        yield from Parallel(n_jobs=jobs, return_as="generator_unordered", batch_size=1)(
            delayed(function)(*a) for a in args
        )


# -- phase 1: models ------------------------------------------------------------------------------
def _train_models(cells: list[Cell], settings: _Settings, jobs: int, backend: str, progress: bool) -> dict[str, dict]:
    """Train (or find in the cache) each distinct model of ``cells``; the failures by model key."""
    distinct = {cell.model_key: (cell.model_inputs, cell.device) for cell in cells}
    args = [(key, inputs, device, settings) for key, (inputs, device) in distinct.items()]
    broken = {}
    bar = tqdm(total=len(args), desc=f"{settings.suite}: models", unit="model", disable=not progress)
    for key, failure in _map_unordered(_train, args, jobs, backend):
        if failure is not None:
            broken[key] = failure
        bar.update()
    bar.close()
    return broken


def _train(key: str, inputs: tuple, device: str, settings: _Settings) -> tuple[str, dict | None]:
    try:
        _prepare_process(settings)
        with _isolated(settings.threads):
            trained_model(*inputs, cache_dir=settings.cache_dir, device=device)
    except Exception as err:  # recorded for every cell of this model; the run goes on
        return key, _error(err)
    return key, None


# -- phase 2: cells -------------------------------------------------------------------------------
def _run_cells(
    cells: list[Cell], broken: dict[str, dict], settings: _Settings, jobs: int, backend: str
) -> Iterable[_Outcome]:
    runnable = []
    for cell in cells:
        failure = broken.get(cell.model_key)
        if failure is None:
            runnable.append((cell, settings))
        else:
            error = {**failure, "error": f"training its model failed: {failure['error']}"}
            yield _Outcome(cell.id, failure=_failure(cell, settings, error, 0.0))
    yield from _map_unordered(_run_cell, runnable, jobs, backend)


def _run_cell(cell: Cell, settings: _Settings) -> _Outcome:
    """Compute one cell; an exception becomes a recorded failure rather than propagating."""
    start = time.perf_counter()
    try:
        _prepare_process(settings)
        with _isolated(settings.threads):
            records, examples, metric_errors = _evaluate(cell, settings)
    except Exception as err:
        return _Outcome(cell.id, failure=_failure(cell, settings, _error(err), time.perf_counter() - start))
    elapsed = time.perf_counter() - start
    records["elapsed_s"] = elapsed
    failure = None
    if metric_errors:
        error = {
            "error": "\n".join(e["error"] for e in metric_errors.values()),
            "traceback": "\n".join(e["traceback"] for e in metric_errors.values()),
        }
        failure = {**_failure(cell, settings, error, elapsed), "metrics": sorted(metric_errors)}
    return _Outcome(cell.id, records=records, examples=examples, failure=failure)


def _prepare_process(settings: _Settings) -> None:
    """What a worker process needs before its first task (each step is done once per process):
    the suite's plugins, and glibc's allocation thresholds where the environment pinned them."""
    import_plugins(settings.plugins)
    _unpin_malloc_thresholds()


_MALLOC_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's ceiling for its dynamic threshold on 64-bit systems


@functools.cache
def _unpin_malloc_thresholds() -> bool:
    """Give glibc's ``mmap`` threshold the value its dynamic rule reaches, where an environment
    variable pinned it; whether it changed anything.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (to hand memory back to the
    OS), and setting any threshold turns off glibc's dynamic one, so the ``mmap`` threshold stays
    at 128 KiB: every tensor above it is mapped and unmapped again, page faults included, which
    made each cell ~1.3× slower inside a Dask worker than in-process (measured by
    ``python -m salbench.perf.grid_scaleout``). Memory held by the process grows by at most
    the trim threshold set here.
    """
    if not any(name in os.environ for name in _MALLOC_ENV):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (an AttributeError where the C library is not glibc)
    except (OSError, AttributeError):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) and libc.mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD))


@contextlib.contextmanager
def _isolated(threads: int) -> Iterator[None]:
    """Fix torch's intra-op thread count (results depend on it bitwise) and fork the global RNG;
    both are restored after, so a sequential run leaves the calling process as it was."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.set_num_threads(before)


def _error(err: BaseException) -> dict[str, str]:
    return {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}


def _failure(cell: Cell, settings: _Settings, error: dict[str, str], elapsed: float) -> dict[str, Any]:
    return {
        **error,
        "suite": settings.suite,
        "config_hash": settings.config_hash,
        "description": cell.describe(),
        "cell": cell.to_dict(),
        "elapsed_s": elapsed,
    }


def select_samples(
    model: nn.Module, split: Split, samples: int, seed: int, batch_size: int, select: str = "correct"
) -> Tensor:
    """Indices (ascending) of ``samples`` test samples: correctly classified ones, or any.

    ``select="correct"`` draws without replacement from the samples that ``model`` classifies
    correctly, ``select="all"`` from every test sample (the selective tests of Miwa et al.
    test every drawn image, whatever the prediction). The draw is coupled across models: the
    whole split is put in one random order by a ``torch.Generator`` seeded by ``seed`` alone,
    and the first ``samples`` candidates in that order are taken. So every cell with the same
    data set, model, recipe and seed evaluates the same samples, and two models of the same
    data set and seed (a standard and a fine-tuned one) share every drawn sample that both
    classify correctly, which is what makes their comparison paired (an independent draw from
    each model's own candidates would share only a few). Fewer candidates than ``samples`` is
    an error (the cell fails rather than run on fewer).
    """
    if select == "all":
        candidates = torch.arange(len(split))
    elif select == "correct":
        device = model_device(model)
        with torch.no_grad():
            predicted = torch.cat([model(x.to(device)).argmax(dim=1).cpu() for x in split.x.split(batch_size)])
        candidates = (predicted == split.y).nonzero().squeeze(1)
    else:
        raise ValueError(f"select must be 'correct' or 'all', got {select!r}")
    if len(candidates) < samples:
        what = "classifies only {} of {} test samples correctly" if select == "correct" else "has {1} test samples"
        raise ValueError(
            f"the {'model' if select == 'correct' else 'test split'} {what.format(len(candidates), len(split))}, "
            f"fewer than samples={samples}; lower [suite] samples"
            + (" or train a better model" if select == "correct" else " or raise the data set's n_test")
        )
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    is_candidate = torch.zeros(len(split), dtype=torch.bool)
    is_candidate[candidates] = True
    return order[is_candidate[order]][:samples].sort().values


@dataclasses.dataclass
class _Batch:
    """One batch of a cell: its inputs, explanations, attack result and metric scores."""

    x: Tensor
    attr: Tensor | None
    x_adv: Tensor | None
    attr_adv: Tensor | None
    attack: Any  # salbench.attacks.base.AttackResult | None
    mask: Tensor | None
    scores: list[MetricOutput | dict[str, str]]  # a metric's output, or its error (:func:`_score`)


def _evaluate(cell: Cell, settings: _Settings) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, dict]]:
    """The cell's records and examples, and the errors of its failed metrics by metric label
    (each ``{"error": "metric <label> failed: ...", "traceback": ...}``)."""
    torch.manual_seed(cell.seed)  # components take explicit seeds; this pins any use of the global RNG too (forked)
    data = load_dataset(cell.dataset.name, cell.dataset.params)
    model, meta = trained_model(*cell.model_inputs, cache_dir=settings.cache_dir, device=cell.device)
    model = model.to(worker_device(cell.device)).eval()
    chosen = select_samples(model, data.test, cell.samples, cell.seed, settings.batch_size, cell.select)
    handling = modality(data.modality)
    explainer = None
    if cell.explainer is not None:
        built = explainers.get(cell.explainer.name, **cell.explainer.params).with_training_data(data.train.x, cell.seed)
        explainer = handling.explain(built)
    attack = attacks.get(cell.attack.name, **cell.attack.params) if cell.attack is not None else None
    scorers = [metrics.get(m.name, **m.params) for m in cell.metrics]
    batches = [
        _evaluate_batch(model, explainer, attack, scorers, data, handling, indices)
        for indices in chosen.split(settings.batch_size)
    ]
    layer = _layer_used(explainer, model, batches)
    records = _records(cell, settings, meta, chosen, data.test.y[chosen], scorers, batches, layer)
    return records, _examples(chosen, batches, data.vocabulary), _metric_errors(cell, batches)


def _layer_used(explainer, model: nn.Module, batches: list[_Batch]) -> str | None:
    """The layer a layer-reading explainer (Grad-CAM, CAM: ``layer_used``) explained, "auto" resolved."""
    layer_used = getattr(explainer, "layer_used", None)
    return layer_used(model, batches[0].x) if layer_used is not None else None


def _evaluate_batch(model, explainer, attack, scorers, data, handling: Modality, indices: Tensor) -> _Batch:
    device = model_device(model)
    x = data.test.x[indices].to(device)
    target = data.test.y[indices].to(device)
    mask = data.test.mask[indices].to(device) if data.test.mask is not None else None
    reference = data.test.reference[indices].to(device) if data.test.reference is not None else None
    attr = explainer(model, x, target).detach() if explainer is not None else None
    result = x_adv = attr_adv = None
    if attack is not None:
        result = attack(model, explainer, x, target, **data.attack_inputs(attack.inputs))
        x_adv = result.x_adv.detach()
        attr_adv = explainer(model, x_adv, target).detach()
    case = Case(
        model=model, explainer=explainer, x=x, target=target, attr=attr, x_adv=x_adv, attr_adv=attr_adv, mask=mask,
        reference=reference, vocabulary=data.vocabulary, valid=handling.features(x),
    )
    return _Batch(x, attr, x_adv, attr_adv, result, mask, [_score(scorer, case, len(x)) for scorer in scorers])


def _score(scorer, case: Case, n: int) -> MetricOutput | dict[str, str]:
    """The metric's checked output on ``case``, or its error (:func:`_error`) if it raises."""
    try:
        return _checked(scorer, scorer.evaluate(case), n)
    except Exception as err:  # recorded for this metric; the cell's other metrics are kept
        return _error(err)


def _metric_error(batches: list[_Batch], i: int) -> dict[str, str] | None:
    """The first error of metric ``i`` in ``batches``, None if it never raised."""
    return next((b.scores[i] for b in batches if isinstance(b.scores[i], dict)), None)


def _metric_label(spec) -> str:
    return f"{spec.name} {spec.params_json}"


def _metric_errors(cell: Cell, batches: list[_Batch]) -> dict[str, dict[str, str]]:
    """The error text of each failed metric of the cell, by :func:`_metric_label`."""
    errors = {_metric_label(spec): _metric_error(batches, i) for i, spec in enumerate(cell.metrics)}
    return {label: {**e, "error": f"metric {label} failed: {e['error']}"} for label, e in errors.items() if e is not None}


def _checked(scorer, scores: tuple[Tensor, Tensor | None] | MetricOutput, n: int) -> MetricOutput:
    """The metric's output as a :class:`MetricOutput` with values (N, K), K = max(1, len(outputs))."""
    values, curves, notes = MetricOutput(*scores)
    shape = (n, len(scorer.outputs)) if scorer.outputs else (n,)
    if not isinstance(values, Tensor) or values.shape != shape:
        raise ValueError(f"metric {scorer!r} returned values of shape {getattr(values, 'shape', None)}, expected {shape}")
    if curves is not None and (not isinstance(curves, Tensor) or curves.dim() != 2 or curves.shape[0] != n):
        raise ValueError(f"metric {scorer!r} returned curves of shape {getattr(curves, 'shape', None)}, expected ({n}, M)")
    if notes is not None and (len(notes) != n or not all(v is None or isinstance(v, str) for v in notes)):
        raise ValueError(f"metric {scorer!r} returned notes that are not {n} strings or None: {notes!r}")
    return MetricOutput(
        values.detach().reshape(n, -1), None if curves is None else curves.detach(), list(notes or [None] * n)
    )


def _records(cell, settings, meta, chosen, labels, scorers, batches: list[_Batch], layer: str | None) -> pd.DataFrame:
    n = len(chosen)
    attacked = cell.attack is not None

    def cat(get: Callable[[_Batch], Tensor]) -> list:
        return torch.cat([get(b) for b in batches]).tolist()

    attack_columns = {
        "attack_iterations": cat(lambda b: b.attack.iterations) if attacked else [None] * n,
        "attack_success": cat(lambda b: b.attack.success) if attacked else [None] * n,
        "label_kept": cat(lambda b: b.attack.label_kept) if attacked else [None] * n,
    }
    parts = []
    for i, (spec, scorer) in enumerate(zip(cell.metrics, scorers)):
        names = [f"{spec.name}.{output}" for output in scorer.outputs] or [spec.name]
        error = _metric_error(batches, i)
        if error is None:
            values = torch.cat([b.scores[i].values for b in batches]).double()
            has_curve = batches[0].scores[i].curves is not None
            notes = [note for b in batches for note in b.scores[i].notes]
        else:  # the metric failed: NaN for every sample, the error as the note
            values = torch.full((n, len(names)), float("nan"), dtype=torch.float64)
            has_curve = False
            notes = [f"metric {_metric_label(spec)} failed: {error['error']}"] * n
        for column, name in enumerate(names):  # one row per sample and output
            parts.append(pd.DataFrame({
                "sample": chosen.tolist(),
                "label": labels.tolist(),
                "metric": name,
                "metric_params": spec.params_json,
                "category": scorer.category,
                "higher_is_better": bool(scorer.higher_is_better),
                "value": values[:, column].tolist(),
                "curve": cat(lambda b: b.scores[i].curves.double()) if has_curve else [None] * n,
                "note": notes,
                **attack_columns,
            }))
    frame = pd.concat(parts, ignore_index=True)
    constants = {
        "suite": settings.suite,
        "config_hash": settings.config_hash,
        "cell_id": cell.id,
        "dataset": cell.dataset.name,
        "dataset_params": cell.dataset.params_json,
        "model": cell.model.name,
        "model_params": cell.model.params_json,
        "recipe": cell.recipe.name,
        "recipe_params": cell.recipe.params_json,
        "explainer": cell.explainer_name,
        "explainer_params": cell.explainer.params_json if cell.explainer is not None else "{}",
        "explainer_layer": layer,
        "attack": cell.attack_name,
        "attack_params": cell.attack.params_json if attacked else "{}",
        "seed": cell.seed,
        "clean_accuracy": float(meta["test_accuracy"]),
        # a model cached before balanced accuracy was recorded has none: missing (null), never a stand-in
        "clean_balanced_accuracy": float(meta.get("test_balanced_accuracy", float("nan"))),
        "model_key": meta["key"],
        "elapsed_s": float("nan"),  # set by _run_cell once the cell is done
        "versions": _versions_json(),
    }
    for column, value in constants.items():
        frame[column] = value
    return frame[list(RECORD_COLUMNS)]


@functools.cache
def _versions_json() -> str:
    return canonical_json(versions())


def _examples(chosen: Tensor, batches: list[_Batch], vocabulary: Vocabulary | None) -> dict[str, np.ndarray]:
    """The first :data:`EXAMPLES` samples of the cell, as float32 arrays (mask as bool; text
    inputs as ``words``/``words_adv``: (n, L) strings by word position, see
    :meth:`salbench.core.text.Vocabulary.words_by_position`)."""
    out = {"sample": chosen[:EXAMPLES].cpu().numpy()}
    for name in ("x", "attr", "x_adv", "attr_adv", "mask"):
        parts = [getattr(b, name) for b in batches]
        if parts[0] is None:
            continue
        first = torch.cat(parts)[:EXAMPLES].cpu()
        if vocabulary is not None and name in _TEXT_EXAMPLES:
            out[_TEXT_EXAMPLES[name]] = np.array(vocabulary.words_by_position(first), dtype=str)
        else:
            out[name] = (first if name == "mask" else first.float()).numpy()
    return out
