"""Failures surface: a failing metric keeps the cell's other metrics, the run summary names each
distinct error once with the cells it hit (this run's and earlier ones), ``salbench run`` exits
non-zero and prints the causes when every cell fails, and the model's output shape is checked
before any work.

The failing components are plug-ins (files named by the suite, see :mod:`salbench.plugins`),
each registered under a name of its own, so the tests run in any order in one process.
"""

from __future__ import annotations

import math

import pytest
from salbench.cli import main
from salbench.runner import run_suite
from salbench.store import read_failures, read_records, stored_cell_ids
from salbench.suite import SuiteError, parse_suite

pytestmark = pytest.mark.usefixtures("salbench_cache_dir")

_FAILING_METRIC = '''
"""A robustness metric that raises on every batch."""
from salbench import metrics
from salbench.metrics.base import PairMetric


@metrics.register("{name}")
class Failing(PairMetric):
    """Raises."""

    higher_is_better = True

    def compare(self, attr, attr_adv):
        raise RuntimeError("planted metric failure")
'''

_FAILING_RECIPE = '''
"""A recipe whose training raises."""
from salbench import recipes
from salbench.recipes.standard import Standard


@recipes.register("{name}")
class Failing(Standard):
    """Raises in fit."""

    def fit(self, model, data, *, seed):
        raise RuntimeError("planted training failure")
'''

_FLAT_MODEL = '''
"""A classifier returning one number per sample (1-D logits)."""
import torch
from salbench import models


@models.register("{name}")
class Flat(torch.nn.Module):
    """Sum of the inputs."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.scale * x.flatten(1).sum(1)
'''


def _suite(tmp_path, plugin: str, name: str, *, metric: str = "spearman", recipe: str = "standard",
           model: str = "mlp") -> str:
    """A WDBC suite (gradient and smoothgrad under the topk attack) with ``plugin`` as a plug-in file."""
    (tmp_path / f"{name}.py").write_text(plugin.format(name=name))
    return f"""
plugins = ["{name}.py"]

[suite]
name = "{name}"
samples = 4
seeds = [0]

[[datasets]]
name = "wdbc"
models = [{{ name = "{model}" }}]
shared = {{ k = 5, eps = 0.2 }}

[[recipes]]
name = "{recipe}"
epochs = 3

[[explainers]]
name = "gradient"

[[explainers]]
name = "smoothgrad"
n_samples = 2

[[attacks]]
name = "topk"
steps = 2

[[metrics]]
name = "topk_intersection"

[[metrics]]
name = "{metric}"
"""


def test_a_metric_that_raises_leaves_the_other_metrics_of_its_cell_stored(tmp_path):
    text = _suite(tmp_path, _FAILING_METRIC, "failing_metric_a", metric="failing_metric_a")
    suite = parse_suite(text, source="failing-metric", base_dir=tmp_path)
    out = tmp_path / "out"
    summary = run_suite(suite, out, backend="sequential", progress=False)
    assert (summary.run, summary.failed) == (2, 0)  # both cells stored
    assert stored_cell_ids(out) == {c.id for c in suite.cells}
    records = read_records(out)
    kept = records[records.metric == "topk_intersection"]
    assert len(kept) == 2 * 4 and kept.value.between(0, 1).all() and kept.note.isna().all()
    failed = records[records.metric == "failing_metric_a"]
    assert len(failed) == 2 * 4 and failed.value.isna().all()
    assert failed.note.str.contains("metric failing_metric_a {} failed: RuntimeError: planted metric failure",
                                    regex=False).all()
    # the failure file names the metric, the summary shows the error once with both cells
    failures = read_failures(out)
    assert {f["cell_id"] for f in failures} == {c.id for c in suite.cells}
    assert all(f["metrics"] == ["failing_metric_a {}"] and "planted metric failure" in f["traceback"] for f in failures)
    text = summary.describe()
    assert text.count("RuntimeError: planted metric failure") == 1
    assert "2 cells: metric failing_metric_a {} failed: RuntimeError: planted metric failure" in text
    for cell in suite.cells:
        assert f"    {cell.describe()}" in text
    # the cell is stored: a rerun skips it and still reports the stored failure
    again = run_suite(suite, out, backend="sequential", progress=False)
    assert (again.run, again.skipped) == (0, 2) and len(again.failures) == 2
    assert again.describe().count("planted metric failure") == 1


def test_a_model_that_fails_to_train_fails_its_cells_and_the_summary_says_why(tmp_path):
    text = _suite(tmp_path, _FAILING_RECIPE, "failing_recipe_a", recipe="failing_recipe_a")
    suite = parse_suite(text, source="failing-recipe", base_dir=tmp_path)
    summary = run_suite(suite, tmp_path / "out", backend="sequential", progress=False)
    assert (summary.run, summary.failed) == (0, 2) and stored_cell_ids(tmp_path / "out") == set()
    assert all(f["error"].startswith("training its model failed: RuntimeError: planted training failure")
               for f in summary.failures)
    assert "2 cells: training its model failed: RuntimeError: planted training failure" in summary.describe()


def test_every_cell_failing_prints_the_causes_and_exits_non_zero(tmp_path, capsys):
    text = _suite(tmp_path, _FAILING_RECIPE, "failing_recipe_b", recipe="failing_recipe_b")
    (tmp_path / "suite.toml").write_text(text)
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "suite.toml"), "--out", str(out), "--quiet", "--backend", "sequential"]) == 1
    printed = capsys.readouterr().out
    assert "2 cells: 0 run, 0 reused from the store, 2 failed" in printed
    assert printed.count("training its model failed: RuntimeError: planted training failure") == 1
    assert "wdbc/mlp/failing_recipe_b seed 0: gradient × topk" in printed
    assert "nothing to publish" in printed and "run a suite first" not in printed
    # a rerun with --limit 0 runs nothing, yet the stored failures still stand: reported, non-zero
    assert main(["run", str(tmp_path / "suite.toml"), "--out", str(out), "--quiet", "--limit", "0"]) == 1
    assert "training its model failed" in capsys.readouterr().out


def test_a_failed_metric_makes_the_run_exit_non_zero_after_publishing(tmp_path, capsys):
    text = _suite(tmp_path, _FAILING_METRIC, "failing_metric_b", metric="failing_metric_b")
    (tmp_path / "suite.toml").write_text(text)
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "suite.toml"), "--out", str(out), "--quiet", "--backend", "sequential"]) == 1
    printed = capsys.readouterr().out
    assert (out / "leaderboard.md").is_file()
    assert printed.index("| topk_intersection") < printed.index("2 cells: metric failing_metric_b {} failed")


def test_a_model_with_1d_logits_fails_before_any_work_naming_the_model(tmp_path):
    text = _suite(tmp_path, _FLAT_MODEL, "flat_model_a", model="flat_model_a")
    suite = parse_suite(text, source="flat", base_dir=tmp_path)
    with pytest.raises(SuiteError) as info:
        run_suite(suite, tmp_path / "out", backend="sequential", progress=False)
    message = str(info.value)
    assert "model 'flat_model_a' {} returned shape (2,)" in message
    assert "float logits (N, C) = (2, 2), C = the data set's 2 classes" in message
    assert not (tmp_path / "out").exists()


def test_the_run_summary_groups_failures_by_error():
    from salbench.runner import RunSummary

    failures = tuple({"error": e, "description": d} for e, d in [("A: x", "c1"), ("B: y\nmore", "c2"), ("A: x", "c3")])
    text = RunSummary(3, 0, 0, 3, 0, math.pi, failures).describe()
    assert text.splitlines() == [
        "3 cells: 0 run, 0 reused from the store, 3 failed; 3.1 s",
        "3 cells of the suite failed (each error once, with the cells it hit):",
        "  2 cells: A: x",
        "    c1",
        "    c3",
        "  1 cell: B: y",
        "    more",
        "    c2",
    ]
