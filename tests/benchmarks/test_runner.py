"""The grid runner: records, resumption, determinism across backends, failures, limits.

Every test runs the tiny fixture suite (tests/benchmarks/suites/tiny.toml: WDBC + MLP and 8×8
synthetic blocks + small CNN, the standard recipe, gradient/smoothgrad/gradcam, the topk and
random-noise attacks, topk_intersection/spearman/deletion) or a variant of it, against a
session-wide temporary model cache.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from salbench import attacks, explainers, metrics
from salbench.core import fingerprint
from salbench.datasets import Split, load_dataset
from salbench.leaderboard import accuracy_table, render, summarize
from salbench.model_cache import trained_model
from salbench.recipes.base import balanced_accuracy
from salbench.runner import RunSummary, StaleStoreError, run_suite, select_samples
from salbench.store import (
    comparable,
    compact_store,
    read_examples,
    read_failures,
    read_records,
    read_store,
    stored_cell_ids,
    write_failure,
)
from salbench.suite import SuiteError, load_suite, parse_suite
from torch import nn

TINY = Path(__file__).parent / "suites" / "tiny.toml"
pytestmark = pytest.mark.usefixtures("salbench_cache_dir")


@pytest.fixture(scope="module")
def tiny():
    return load_suite(TINY)


@pytest.fixture(scope="module")
def reference(tiny, tmp_path_factory, salbench_cache_dir):
    """One uninterrupted sequential run of the tiny suite: (out_dir, summary, records)."""
    out = tmp_path_factory.mktemp("reference")
    summary = run_suite(tiny, out, backend="sequential", progress=False)
    return out, summary, read_records(out)


def assert_same_records(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Equal records up to the volatile (timing) columns; curves compared elementwise."""
    assert len(a) == len(b) and len(a) > 0
    pd.testing.assert_frame_equal(comparable(a), comparable(b), check_exact=True)


def _tiny_text() -> str:
    return TINY.read_text()


# -- what a run stores ---------------------------------------------------------------------------
def test_run_stores_every_cell(tiny, reference):
    out, summary, records = reference
    assert isinstance(summary, RunSummary)
    assert (summary.total, summary.run, summary.skipped, summary.failed, summary.remaining) == (len(tiny.cells), len(tiny.cells), 0, 0, 0)
    assert stored_cell_ids(out) == {c.id for c in tiny.cells}
    assert read_failures(out) == []
    assert len(records) == sum(tiny.samples * len(c.metrics) for c in tiny.cells)
    assert set(records.suite) == {"tiny"} and set(records.config_hash) == {tiny.config_hash}
    assert "15 cells: 15 run, 0 reused from the store, 0 failed" in summary.describe()


def test_records_describe_their_cell(tiny, reference):
    _, _, records = reference
    for cell in tiny.cells:
        rows = records[records.cell_id == cell.id]
        assert set(rows.metric) == {m.name for m in cell.metrics}
        assert (rows.explainer_params == cell.explainer.params_json).all()
        assert (rows.dataset_params == cell.dataset.params_json).all()
        assert (rows.model_params == cell.model.params_json).all()
        attacked = cell.attack is not None
        assert (rows.attack == cell.attack_name).all()
        assert (rows.attack_params == (cell.attack.params_json if attacked else "{}")).all()
        assert rows.attack_iterations.notna().all() == attacked and rows.attack_iterations.isna().all() != attacked
        if attacked:
            assert rows.label_kept.all()  # attacks keep the label
            assert (rows.attack_iterations[rows.attack_success] > 0).all()  # a moved input took accepted steps
        for metric in cell.metrics:
            kind = metrics.registry.entry(metric.name).factory
            mrows = rows[rows.metric == metric.name]
            assert (mrows.category == kind.category).all() and (mrows.higher_is_better == kind.higher_is_better).all()
            assert mrows.curve.notna().all() == (metric.name == "deletion")
            assert mrows.value.notna().all()
    assert set(json.loads(records.versions.iloc[0])) >= {"python", "torch", "numpy", "salbench"}


def test_evaluation_samples_are_correctly_classified_and_shared(tiny, reference):
    _, _, records = reference
    for dataset in ("wdbc", "synthetic_blocks"):
        cell = next(c for c in tiny.cells if c.dataset.name == dataset)
        rows = records[records.dataset == dataset]
        per_cell = rows.groupby("cell_id")["sample"].apply(lambda s: tuple(sorted(set(s))))
        assert per_cell.nunique() == 1  # the same samples in every cell of one model and seed
        samples = torch.tensor(per_cell.iloc[0])
        assert len(samples) == tiny.samples
        model, meta = trained_model(*cell.model_inputs)
        test = load_dataset(cell.dataset.name, cell.dataset.params).test
        with torch.no_grad():
            assert (model(test.x[samples]).argmax(1) == test.y[samples]).all()
        by_sample = rows.drop_duplicates("sample").set_index("sample")
        assert by_sample.loc[samples.tolist(), "label"].tolist() == test.y[samples].tolist()
        assert (rows.clean_accuracy == meta["test_accuracy"]).all() and (rows.model_key == meta["key"]).all()
        assert (rows.clean_balanced_accuracy == balanced_accuracy(model, test)).all()
        assert meta["test_balanced_accuracy"] == balanced_accuracy(model, test)


def _by_hand(model, bundle, samples, batch_size, explainer, attack, deletion, intersection):
    """Deletion of the clean explanation and top-k intersection under attack, batch by batch."""
    want_deletion, want_intersection = [], []
    for batch in samples.split(batch_size):
        x, y = bundle.test.x[batch], bundle.test.y[batch]
        attr = explainer(model, x, y)
        want_deletion.append(deletion(model, x, attr, y))
        x_adv = attack(model, explainer, x, y, bounds=bundle.bounds).x_adv
        want_intersection.append(intersection(attr, explainer(model, x_adv, y)))
    return torch.cat(want_deletion).double().tolist(), torch.cat(want_intersection).double().tolist()


def test_values_equal_a_direct_computation(tiny, reference):
    """Redo one attacked and one attack-free cell by hand, in the suite's batches: same numbers."""
    _, _, records = reference
    for dataset, explainer_name in (("wdbc", "smoothgrad"), ("synthetic_blocks", "gradcam")):
        cells = [c for c in tiny.cells if c.dataset.name == dataset and c.explainer.name == explainer_name]
        free = next(c for c in cells if c.attack is None)
        topk = next(c for c in cells if c.attack_name == "topk")
        bundle = load_dataset(free.dataset.name, free.dataset.params)
        model, _ = trained_model(*free.model_inputs)
        samples = torch.tensor(sorted(set(records[records.cell_id == free.id]["sample"])))
        threads = torch.get_num_threads()
        torch.set_num_threads(tiny.threads)  # as the runner does: results depend on it bitwise
        try:
            want_deletion, want_intersection = _by_hand(
                model, bundle, samples, tiny.batch_size,
                explainers.get(free.explainer.name, **free.explainer.params),
                attacks.get("topk", **topk.attack.params),
                metrics.get("deletion", **free.metrics[0].params),
                metrics.get("topk_intersection", **topk.metrics[0].params),
            )
        finally:
            torch.set_num_threads(threads)
        assert records[records.cell_id == free.id].sort_values("sample").value.tolist() == want_deletion
        got = records[(records.cell_id == topk.id) & (records.metric == "topk_intersection")].sort_values("sample")
        assert got.value.tolist() == want_intersection


def test_examples_hold_the_first_samples(tiny, reference):
    out, _, records = reference
    cell = next(c for c in tiny.cells if c.dataset.name == "synthetic_blocks" and c.attack_name == "topk")
    examples = read_examples(out, cell.id)
    assert set(examples) == {"x", "attr", "x_adv", "attr_adv", "sample", "mask"}
    first = sorted(set(records[records.cell_id == cell.id]["sample"]))[:4]
    assert examples["sample"].tolist() == first
    test = load_dataset(cell.dataset.name, cell.dataset.params).test
    assert examples["x"].dtype == "float32" and examples["x"].shape == (4, 1, 8, 8)
    assert torch.equal(torch.from_numpy(examples["x"]), test.x[first])
    assert torch.equal(torch.from_numpy(examples["mask"]), test.mask[first])
    free = next(c for c in tiny.cells if c.dataset.name == "wdbc" and c.attack is None)
    assert set(read_examples(out, free.id)) == {"x", "attr", "sample"}


# -- reproducibility -------------------------------------------------------------------------------
def test_same_suite_twice_gives_identical_records(tiny, reference, tmp_path):
    threads, rng = torch.get_num_threads(), torch.random.get_rng_state()
    run_suite(tiny, tmp_path, backend="sequential", progress=False)
    # the cells' thread count and seeding do not leak into the calling process
    assert torch.get_num_threads() == threads and torch.equal(torch.random.get_rng_state(), rng)
    assert_same_records(read_records(tmp_path), reference[2])


def test_loky_with_two_jobs_gives_identical_records(tiny, reference, tmp_path):
    summary = run_suite(tiny, tmp_path, jobs=2, backend="loky", progress=False)
    assert summary.run == len(tiny.cells)
    assert_same_records(read_records(tmp_path), reference[2])


def test_dask_cluster_gives_identical_records(tiny, reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        summary = run_suite(tiny, tmp_path, backend="dask", scheduler=cluster.scheduler_address, progress=False)
    assert summary.run == len(tiny.cells) and summary.failed == 0
    assert_same_records(read_records(tmp_path), reference[2])


# -- resumption ------------------------------------------------------------------------------------
def test_limit_then_resume_gives_the_uninterrupted_records(tiny, reference, tmp_path):
    first = run_suite(tiny, tmp_path, limit=4, backend="sequential", progress=False)
    assert (first.run, first.skipped, first.remaining) == (4, 0, len(tiny.cells) - 4)
    assert stored_cell_ids(tmp_path) == {c.id for c in tiny.cells[:4]}
    second = run_suite(tiny, tmp_path, backend="sequential", progress=False)
    assert (second.run, second.skipped, second.remaining) == (len(tiny.cells) - 4, 4, 0)
    assert_same_records(read_records(tmp_path), reference[2])
    third = run_suite(tiny, tmp_path, backend="sequential", progress=False)
    assert (third.run, third.skipped) == (0, len(tiny.cells))


def test_resume_after_a_compaction_gives_the_uninterrupted_records(tiny, reference, tmp_path):
    run_suite(tiny, tmp_path, limit=4, backend="sequential", progress=False)
    assert compact_store(tmp_path, read_store(tmp_path))  # what `salbench run` does after its grid
    assert not any((tmp_path / "store" / "cells").glob("*.parquet"))
    assert stored_cell_ids(tmp_path) == {c.id for c in tiny.cells[:4]}
    second = run_suite(tiny, tmp_path, backend="sequential", progress=False)
    assert (second.run, second.skipped) == (len(tiny.cells) - 4, 4)
    assert_same_records(read_records(tmp_path), reference[2])
    assert compact_store(tmp_path, read_store(tmp_path))
    assert_same_records(read_records(tmp_path), reference[2])
    assert read_examples(tmp_path, tiny.cells[0].id).keys() == read_examples(reference[0], tiny.cells[0].id).keys()


def test_fresh_deletes_the_store(tiny, tmp_path):
    run_suite(tiny, tmp_path, limit=2, backend="sequential", progress=False)
    stray = tmp_path / "store" / "cells" / "0123abcd.parquet"
    stray.write_bytes(b"not a cell of this suite")
    summary = run_suite(tiny, tmp_path, limit=3, fresh=True, backend="sequential", progress=False)
    assert (summary.run, summary.skipped) == (3, 0)
    assert stored_cell_ids(tmp_path) == {c.id for c in tiny.cells[:3]}


def test_killed_run_resumes_without_lost_or_duplicated_rows(tiny, reference, tmp_path):
    code = (
        "from salbench.runner import run_suite; "
        f"run_suite({str(TINY)!r}, {str(tmp_path)!r}, jobs=1, progress=False)"
    )
    process = subprocess.Popen([sys.executable, "-c", code], env=os.environ.copy())
    cells = tmp_path / "store" / "cells"
    try:
        deadline = time.monotonic() + 300
        while not any(cells.glob("*.parquet")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    stored = stored_cell_ids(tmp_path)
    assert 1 <= len(stored) < len(tiny.cells), f"kill landed outside the run: {len(stored)} cells stored"
    summary = run_suite(tiny, tmp_path, backend="sequential", progress=False)
    assert (summary.skipped, summary.run) == (len(stored), len(tiny.cells) - len(stored))
    assert_same_records(read_records(tmp_path), reference[2])


# -- failures --------------------------------------------------------------------------------------
def test_a_crashing_cell_is_recorded_and_the_others_are_kept(tiny, reference, tmp_path):
    # an occlusion window larger than any sample raises in its cells (random_noise and attack-free on each
    # data set; topk differentiates the explanation, so its occlusion cells are dropped at load): four failures
    text = _tiny_text() + '\n[[explainers]]\nname = "occlusion"\nwindow = [50]\n'
    suite = parse_suite(text, source="crashing")
    assert {d for d, why in suite.dropped if "occlusion" in d} == {
        f"{name}/standard seed 0: occlusion × topk" for name in ("wdbc/mlp", "synthetic_blocks/small_cnn")
    }
    summary = run_suite(suite, tmp_path, backend="sequential", progress=False)
    assert (summary.run, summary.failed) == (len(tiny.cells), 4)
    failures = read_failures(tmp_path)
    assert {f["description"] for f in failures} == {
        f"{name}/standard seed 0: occlusion × {a}" for name in ("wdbc/mlp", "synthetic_blocks/small_cnn")
        for a in ("none", "random_noise")
    }
    for failure in failures:
        assert failure["error"].startswith("ValueError: window (50,) does not fit a sample")
        assert "Traceback" in failure["traceback"] and failure["cell"]["explainer"]["name"] == "occlusion"
        assert failure["cell_id"] not in stored_cell_ids(tmp_path)
    # the other cells are the same cells as in the reference run, with the same records
    others = read_records(tmp_path).drop(columns="config_hash")
    assert_same_records(others, reference[2].drop(columns="config_hash"))
    again = run_suite(suite, tmp_path, backend="sequential", progress=False)  # failures are retried
    assert (again.run, again.skipped, again.failed) == (0, len(tiny.cells), 4)


def test_a_model_that_cannot_run_on_its_data_fails_before_any_work(tmp_path):
    # a small CNN cannot be built for WDBC's flat feature vectors: found before any model is trained
    # (a model whose training fails: tests/benchmarks/test_runner_failures.py)
    text = _tiny_text().replace('models = [{ name = "mlp", hidden = [8] }]', 'models = [{ name = "mlp", hidden = [8] }, { name = "small_cnn" }]')
    start, end = text.index('[[datasets]]\nname = "synthetic_blocks"'), text.index("[[recipes]]")
    suite = parse_suite(text[:start] + text[end:], source="cnn-on-wdbc")
    with pytest.raises(SuiteError, match="model 'small_cnn' .* cannot run on data set 'wdbc' .*input_shape must be"):
        run_suite(suite, tmp_path, backend="sequential", progress=False)
    assert not (tmp_path / "store").exists()


def test_too_few_correct_samples_fail_the_cell_clearly(tmp_path):
    text = _tiny_text().replace("samples = 5", "samples = 1000")
    start, end = text.index('[[datasets]]\nname = "synthetic_blocks"'), text.index("[[recipes]]")
    suite = parse_suite(text[:start] + text[end:], source="many")  # WDBC only
    summary = run_suite(suite, tmp_path, backend="sequential", progress=False)
    assert summary.failed == len(suite.cells) and summary.run == 0
    for failure in read_failures(tmp_path):
        assert "test samples correctly, fewer than samples=1000" in failure["error"]
    assert read_records(tmp_path).empty


class _ConstantModel(nn.Module):
    """Predicts class 0 for every input."""

    def forward(self, x):
        return torch.stack([torch.ones(len(x)), torch.zeros(len(x))], dim=1)


def test_select_samples_draws_correct_samples_by_seed():
    y = torch.tensor([0, 1, 0, 0, 1, 0, 1, 0])  # class 0 (predicted) at 0, 2, 3, 5, 7
    split = Split(x=torch.zeros(8, 3), y=y)
    correct = {0, 2, 3, 5, 7}
    draws = {tuple(select_samples(_ConstantModel(), split, 3, seed, batch_size=3).tolist()) for seed in range(30)}
    assert all(set(d) <= correct and len(set(d)) == 3 and list(d) == sorted(d) for d in draws)
    assert len(draws) > 5  # the seed changes the draw (10 possible subsets)
    again = select_samples(_ConstantModel(), split, 3, 4, batch_size=5)
    assert again.tolist() == select_samples(_ConstantModel(), split, 3, 4, batch_size=2).tolist()
    assert select_samples(_ConstantModel(), split, 5, 0, batch_size=8).tolist() == sorted(correct)
    with pytest.raises(ValueError, match="only 5 of 8 test samples correctly, fewer than samples=6"):
        select_samples(_ConstantModel(), split, 6, 0, batch_size=8)


class _PredictsLabels(nn.Module):
    """Predicts the label stored in the input's first feature."""

    def forward(self, x):
        return torch.nn.functional.one_hot(x[:, 0].long(), 2).float()


def test_two_models_draws_share_every_sample_both_classify_correctly():
    # a coupled draw: one seeded order of the split, the first candidates in it. Model B is wrong
    # on ten samples model A gets right; B's draw is A's with those replaced, so the overlap is
    # |A ∩ B-candidates| among A's draw (independent draws from 40 and 30 candidates would share ~ 10 of 20)
    y = torch.arange(40) % 2
    right = torch.stack([y.float(), torch.zeros(40)], 1)
    wrong = right.clone()
    wrong[:10, 0] = 1 - wrong[:10, 0]
    for seed in range(5):
        a = set(select_samples(_PredictsLabels(), Split(x=right, y=y), 20, seed, batch_size=7).tolist())
        b = set(select_samples(_PredictsLabels(), Split(x=wrong, y=y), 20, seed, batch_size=7).tolist())
        order = torch.randperm(40, generator=torch.Generator().manual_seed(seed)).tolist()
        assert a == set(order[:20])
        assert b == set([i for i in order if i >= 10][:20])
        assert a - b <= set(range(10)) and len(a & b) == len([i for i in order[:20] if i >= 10])


# -- arguments ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"backend": "threading"}, "backend must be one of loky, sequential, dask, ray"),
        ({"backend": "dask"}, "needs scheduler"),
        ({"backend": "dask", "scheduler": "tcp://localhost:1", "jobs": 2}, "leave jobs at 1"),
        ({"scheduler": "tcp://localhost:1"}, "scheduler is only for"),
        ({"backend": "sequential", "jobs": 2}, "one cell at a time"),
        ({"jobs": 0}, "jobs must be a positive integer"),
        ({"limit": -1}, "limit must be None or a non-negative integer"),
    ],
)
def test_bad_arguments_fail_before_any_work(tiny, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        run_suite(tiny, tmp_path, progress=False, **kwargs)
    assert not (tmp_path / "store").exists()


def test_ray_backend_without_ray_says_how_to_install(tiny, tmp_path):
    try:
        import ray  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("ray is installed")
    with pytest.raises(ImportError, match="pip install 'ray"):
        run_suite(tiny, tmp_path, backend="ray", progress=False)
    assert not (tmp_path / "store").exists()


@pytest.mark.skipif(__import__("platform").libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_a_worker_whose_environment_pins_malloc_thresholds_gets_them_unpinned():
    """Dask's workers start with MALLOC_TRIM_THRESHOLD_ set, which pins glibc's mmap threshold at
    128 KiB (each cell ran ~1.3x slower there); the runner resets it once per such process."""
    script = "from salbench.runner import _unpin_malloc_thresholds as u; print(u(), u())"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    plain = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    pinned = subprocess.run(
        [sys.executable, "-c", script], env={**env, "MALLOC_TRIM_THRESHOLD_": "65536"}, capture_output=True, text=True,
        check=True,
    )
    assert plain.stdout.split() == ["False", "False"] and pinned.stdout.split() == ["True", "True"]


# -- keys that cannot go stale -----------------------------------------------------------------------
def test_batch_size_changes_no_record(tiny, reference, tmp_path):
    """The tiny suite (smoothgrad, gradcam, the iterative topk attack, random_noise; 5 samples)
    with batch size 2 (three batches, the last short) and 16 (one batch) stores identical
    records, exactly (CPU, one thread): every component is batch invariant and draws its
    randomness per sample from (seed, the sample's content), so ``batch_size`` is not part of
    the cell id. Only ``config_hash`` differs (it covers the suite options)."""
    stored = {}
    for size in (2, 16):
        suite = parse_suite(_tiny_text().replace("batch_size = 3", f"batch_size = {size}"))
        assert [c.id for c in suite.cells] == [c.id for c in tiny.cells]
        run_suite(suite, tmp_path / str(size), backend="sequential", progress=False)
        stored[size] = comparable(read_records(tmp_path / str(size))).drop(columns=["config_hash"])
    assert_same_records(stored[2], stored[16])
    assert_same_records(stored[2], comparable(reference[2]).drop(columns=["config_hash"]))  # batch size 3
    values = stored[2][stored[2].attack == "random_noise"]
    assert values.attack_success.all()  # the noise moved every sample: a real draw was compared


def test_a_store_of_other_code_is_refused_then_fresh_recomputes(reference, tmp_path, monkeypatch):
    """Editing a component's source gives its cells new ids; the store's old cells are not in the
    grid any more, and a run refuses to mix them into the leaderboard until --fresh."""
    out = tmp_path / "copy"
    shutil.copytree(reference[0], out)
    real = fingerprint._source_digest
    monkeypatch.setattr(
        fingerprint, "_source_digest",
        lambda name: "edited" if name == "salbench.attacks.random_noise" else real(name),
    )
    edited = load_suite(TINY)
    changed = [c for c in edited.cells if c.id not in stored_cell_ids(out)]
    assert changed and {c.attack_name for c in changed} == {"random_noise"}
    with pytest.raises(StaleStoreError, match=r"(?s)holds \d+ cell\(s\).*random_noise \(in the grid under a new id: its code.*--fresh"):
        run_suite(edited, out, backend="sequential", progress=False)
    assert stored_cell_ids(out) == stored_cell_ids(reference[0])  # refused before any work
    summary = run_suite(edited, out, backend="sequential", progress=False, fresh=True)
    assert summary.run == len(edited.cells) and stored_cell_ids(out) == {c.id for c in edited.cells}


def test_failures_of_cells_not_in_the_grid_are_deleted_with_a_message(tiny, reference, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(reference[0], out)
    old = "ab" * 32  # a cell of other code that failed
    write_failure(out, old, {"error": {"type": "RuntimeError", "message": "fixed since"}, "cell": {}})
    summary = run_suite(tiny, out, backend="sequential", progress=False)
    assert summary.skipped == len(tiny.cells) and read_failures(out) == []
    assert "deleted 1 failure record(s) of cells that are not in the grid" in capsys.readouterr().out


def test_the_layer_grad_cam_explained_is_recorded_and_shown(reference):
    """layer = "auto" is resolved by the run: small_cnn's feature map is its ``features`` block's
    output (after the last ReLU), and the leaderboard's table note names it."""
    _, _, records = reference
    layers = records.groupby("explainer")["explainer_layer"].unique()
    assert list(layers["gradcam"]) == ["features"] and records.loc[records.explainer == "gradient", "explainer_layer"].isna().all()
    accuracy = accuracy_table(records)
    assert accuracy.set_index("model").loc["small_cnn", "layers"] == "gradcam: features"
    assert accuracy.set_index("model").loc["mlp", "layers"] == ""
    board = render(summarize(records), accuracy, "markdown")
    assert "Layers explained ('auto' resolved): gradcam: features." in board
