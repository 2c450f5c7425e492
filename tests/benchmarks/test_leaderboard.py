"""Leaderboards: hand-computed means and t intervals, ranks by direction, labels, the four formats."""

from __future__ import annotations

import io
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from salbench.leaderboard import (
    accuracy_table,
    label_components,
    render,
    summarize,
)
from salbench.publish import write_leaderboards
from salbench.results import build_results
from salbench.store import RECORD_COLUMNS
from scipy import stats

METRICS = {  # name -> (category, higher_is_better)
    "topk_intersection": ("robustness", True),
    "sensitivity": ("robustness", False),
    "deletion": ("faithfulness", False),
}


def records(rows: list[dict]) -> pd.DataFrame:
    """Records in the store's long format; each row dict sets explainer, attack, metric, seed, value
    (and optionally any other column), the rest takes fixed defaults."""
    out = []
    for i, row in enumerate(rows):
        metric = row.get("metric", "topk_intersection")
        category, higher = METRICS[metric]
        seed = row.get("seed", 0)
        base = {
            "suite": "tiny", "config_hash": "c0ffee" * 4, "dataset": "wdbc", "dataset_params": "{}",
            "model": "mlp", "model_params": '{"hidden":[8]}', "recipe": "standard", "recipe_params": "{}",
            "explainer": "gradient", "explainer_params": "{}", "attack": "topk", "attack_params": '{"eps":0.1}',
            "seed": seed, "sample": i, "label": 0, "metric": metric, "metric_params": "{}",
            "category": category, "higher_is_better": higher, "curve": None, "note": None, "attack_iterations": None,
            "attack_success": None, "label_kept": None, "clean_accuracy": 0.9, "model_key": f"key{seed}",
            "elapsed_s": 1.0, "versions": '{"torch":"2.x"}',
        }
        base.update(row)
        base["cell_id"] = row.get("cell_id", f"{base['explainer']}|{base['attack']}|{seed}")
        out.append(base)
    return pd.DataFrame(out)[list(RECORD_COLUMNS)]


def entry(summary: pd.DataFrame, **keys) -> pd.Series:
    mask = np.ones(len(summary), dtype=bool)
    for k, v in keys.items():
        mask &= summary[k] == v
    assert mask.sum() == 1, keys
    return summary[mask].iloc[0]


def test_mean_and_t_interval_pool_samples_over_seeds():
    values = {0: [0.2, 0.4], 1: [0.5, 0.9]}  # seed -> per-sample values
    frame = records([{"seed": s, "value": v} for s, vs in values.items() for v in vs])
    row = entry(summarize(frame), explainer="gradient")
    pooled = np.array([0.2, 0.4, 0.5, 0.9])
    # by hand: mean 0.5, sd = sqrt(0.26/3), t_{0.975, 3} = 3.182446305
    assert row["n"] == 4 and row["mean"] == pytest.approx(0.5, abs=1e-15)
    assert row["std"] == pytest.approx(math.sqrt(0.26 / 3), rel=1e-12)
    half = 3.182446305284263 * math.sqrt(0.26 / 3) / 2
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.5 - half, 0.5 + half), rel=1e-12)
    low, high = stats.t.interval(0.95, df=3, loc=pooled.mean(), scale=stats.sem(pooled))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), rel=1e-12)


def test_rank_follows_direction_and_ties_share_the_lowest_rank():
    rows = []
    for explainer, value in (("a", 0.1), ("b", 0.3), ("c", 0.3), ("d", 0.7)):
        rows += [{"explainer": explainer, "metric": m, "value": value} for m in ("topk_intersection", "sensitivity")]
    summary = summarize(records(rows))
    up = summary[summary["metric"] == "topk_intersection"].set_index("explainer")["rank"]
    down = summary[summary["metric"] == "sensitivity"].set_index("explainer")["rank"]
    assert up.to_dict() == {"d": 1, "b": 2, "c": 2, "a": 4}
    assert down.to_dict() == {"a": 1, "b": 2, "c": 2, "d": 4}


def test_ranks_are_within_each_attack():
    rows = [
        {"explainer": "a", "attack": "topk", "value": 0.9}, {"explainer": "b", "attack": "topk", "value": 0.1},
        {"explainer": "a", "attack": "mass", "value": 0.1}, {"explainer": "b", "attack": "mass", "value": 0.9},
    ]
    summary = summarize(records(rows))
    assert entry(summary, explainer="a", attack="topk")["rank"] == 1
    assert entry(summary, explainer="b", attack="mass")["rank"] == 1


def test_labels_show_only_parameters_that_vary_within_a_seed():
    rows = []
    for seed in (0, 1):
        for n_samples in (16, 32):
            params = json.dumps({"n_samples": n_samples, "noise": 0.15, "seed": seed})  # seed follows the suite seed
            rows += [{"explainer": "smoothgrad", "explainer_params": params, "seed": seed, "value": float(n_samples)}]
        rows += [{"explainer": "gradient", "seed": seed, "value": 1.0}]
    summary = summarize(records(rows))
    assert sorted(summary["explainer"]) == ["gradient", "smoothgrad(n_samples=16)", "smoothgrad(n_samples=32)"]
    assert entry(summary, explainer="smoothgrad(n_samples=32)")["n"] == 2  # pooled over both seeds
    assert entry(summary, explainer="smoothgrad(n_samples=32)")["mean"] == 32.0


def test_model_parameter_that_only_follows_the_dataset_is_not_shown():
    rows = [
        {"dataset": "wdbc", "model_params": '{"input_shape":[30]}', "value": 1.0},
        {"dataset": "synthetic_blocks", "model_params": '{"input_shape":[1,8,8]}', "value": 1.0},
        *({"dataset": "wdbc", "model_params": '{"input_shape":[30]}', "explainer": "x", "metric_params": f'{{"k":{k}}}',
           "value": 1.0} for k in (3, 5)),
    ]
    labelled = label_components(records(rows))
    assert set(labelled["model"]) == {"mlp"}
    assert set(labelled["metric"]) == {"topk_intersection", "topk_intersection(k=3)", "topk_intersection(k=5)"}


def test_single_value_has_no_interval_and_is_marked():
    summary = summarize(records([{"value": 0.25}]))
    row = summary.iloc[0]
    assert row["n"] == 1 and row["mean"] == 0.25 and np.isnan(row["ci_low"]) and np.isnan(row["ci_high"])
    text = render(summary, accuracy_table(records([{"value": 0.25}])), "markdown")
    assert "0.250 (n=1)" in text and "nan" not in text.lower()


def test_nonfinite_values_are_counted_and_shown_not_averaged():
    frame = records([{"value": v} for v in (0.2, 0.4, float("nan"), float("inf"))])
    summary = summarize(frame)
    row = summary.iloc[0]
    assert (row["n"], row["n_nonfinite"], row["mean"]) == (2, 2, pytest.approx(0.3))
    assert "(2 non-finite)" in render(summary, accuracy_table(frame), "markdown")


def test_inconsistent_direction_is_an_error():
    frame = records([{"value": 0.1}, {"value": 0.2}])
    frame.loc[1, "higher_is_better"] = False
    with pytest.raises(ValueError, match="higher_is_better"):
        summarize(frame)


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="metric_params"):
        summarize(records([{"value": 0.1}]).drop(columns="metric_params"))


def test_accuracy_is_the_mean_over_seeds_of_each_model():
    rows = [{"seed": s, "clean_accuracy": acc, "value": 0.5} for s, acc in ((0, 0.9), (1, 0.8)) for _ in range(3)]
    rows += [{"recipe": "robust", "clean_accuracy": 0.7, "model_key": "key-robust", "value": 0.5}]
    accuracy = accuracy_table(records(rows)).set_index("recipe")
    assert accuracy.loc["standard", "n_seeds"] == 2
    assert accuracy.loc["standard", "accuracy"] == pytest.approx(0.85)
    assert (accuracy.loc["standard", "accuracy_min"], accuracy.loc["standard", "accuracy_max"]) == (0.8, 0.9)
    assert accuracy.loc["robust", "accuracy"] == 0.7 and accuracy.loc["robust", "n_seeds"] == 1


def test_two_accuracies_for_one_model_is_an_error():
    frame = records([{"value": 0.1, "clean_accuracy": 0.9}, {"value": 0.2, "clean_accuracy": 0.8}])
    with pytest.raises(ValueError, match="several models or accuracies"):
        accuracy_table(frame)


@pytest.fixture
def board() -> pd.DataFrame:
    """Two explainers × (attack-free deletion, topk robustness), two samples each."""
    rows = []
    for explainer, (dele, topk) in {"gradient": (0.30, 0.80), "smoothgrad": (0.20, 0.60)}.items():
        for offset in (-0.01, 0.01):
            rows.append({"explainer": explainer, "attack": "none", "attack_params": "{}",
                         "metric": "deletion", "value": dele + offset})
            rows.append({"explainer": explainer, "metric": "topk_intersection", "value": topk + offset})
            rows.append({"explainer": explainer, "metric": "sensitivity", "value": topk + offset})
    return records(rows)


def test_markdown_marks_directions_and_bolds_the_best(board):
    summary = summarize(board)
    text = render(summary, accuracy_table(board), "markdown")
    header = next(line for line in text.splitlines() if line.startswith("| explainer"))
    assert "deletion ↓" in header and "topk_intersection ↑" in header and "sensitivity ↓" in header
    rows = {tuple(c.strip() for c in line.strip("|").split("|"))[:2]: line for line in text.splitlines()
            if line.startswith("| gradient") or line.startswith("| smoothgrad")}
    half = stats.t.ppf(0.975, 1) * stats.tstd([0.19, 0.21]) / math.sqrt(2)
    assert f"**0.200 ± {half:.3f}**" in rows[("smoothgrad", "none")]  # lower deletion is better
    assert header.index("sensitivity") < header.index("topk_intersection") < header.index("deletion")  # by category
    assert rows[("gradient", "topk")].endswith("| 0.800 ± 0.127 | **0.800 ± 0.127** |  |")  # higher topk is better
    assert rows[("smoothgrad", "topk")].endswith("| **0.600 ± 0.127** | 0.600 ± 0.127 |  |")  # lower sensitivity is
    assert text.count("**") == 2 * 3  # one best per metric
    assert "Clean test accuracy 0.900" in text


def test_markdown_lists_failures_with_first_error_line(board):
    failure = {"cell_id": "ab" * 32, "error": "ValueError: bad | input\nsecond line", "traceback": "...",
               "cell": {"dataset": {"name": "wdbc", "params": {}}, "explainer": {"name": "gradcam"}, "seed": 0}}
    text = render(summarize(board), accuracy_table(board), "markdown", failures=[failure])
    assert "## Failed cells (1)" in text
    line = next(line for line in text.splitlines() if "abababababab" in line)
    assert "dataset=wdbc" in line and "explainer=gradcam" in line and "bad \\| input" in line
    assert "second line" not in text


def test_csv_round_trips_the_numbers(board):
    summary = summarize(board)
    back = pd.read_csv(io.StringIO(render(summary, accuracy_table(board), "csv")))
    for column in ("n", "n_nonfinite", "mean", "std", "ci_low", "ci_high", "rank"):
        np.testing.assert_array_equal(back[column].to_numpy(dtype=float), summary[column].to_numpy(dtype=float))
    assert (back["higher_is_better"] == summary["higher_is_better"]).all()
    assert (back["clean_accuracy"] == 0.9).all()


def test_latex_is_a_booktabs_tabular_of_the_right_shape(board):
    text = render(summarize(board), accuracy_table(board), "latex")
    assert text.count(r"\begin{tabular}{llrrr}") == 1  # explainer, attack and three metrics
    assert all(text.count(rule) == 1 for rule in (r"\toprule", r"\midrule", r"\bottomrule"))
    body = text.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert len(body) == 4  # 2 explainers × (none, topk)
    assert all(len(re.findall(r"(?<!\\)&", line)) == 4 and line.endswith(r"\\") for line in body)
    assert r"topk\_intersection $\uparrow$" in text and r"deletion $\downarrow$" in text
    assert r"\textbf{0.200 $\pm$" in text


def test_html_is_self_contained_and_escaped(board):
    board = board.assign(explainer=board["explainer"].replace({"gradient": "grad<ient>"}))
    text = render(summarize(board), accuracy_table(board), "html", title="A & B")
    assert text.startswith("<!DOCTYPE html>") and "<style>" in text
    assert not re.search(r"https?://", text) and "<link" not in text and "<script" not in text
    assert "grad&lt;ient&gt;" in text and "<title>A &amp; B</title>" in text
    assert text.count("<table>") == 1 and text.count('class="num best"') == 3


def test_render_rejects_unknown_format(board):
    with pytest.raises(ValueError, match="markdown"):
        render(summarize(board), accuracy_table(board), "pdf")


def test_write_leaderboards_writes_every_format_and_returns_markdown(board, tmp_path):
    failure = {"cell_id": "cd" * 32, "error": "RuntimeError: boom", "description": "wdbc/mlp/standard seed 0: x × y"}
    results = build_results(board, failures=(failure,))
    markdown = write_leaderboards(results, tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert names == ["leaderboard.csv", "leaderboard.html", "leaderboard.md", "leaderboard.tex"]
    assert (tmp_path / "leaderboard.md").read_text() == markdown
    assert "RuntimeError: boom" in markdown and "wdbc/mlp/standard seed 0: x × y" in markdown
    assert markdown.startswith("# Leaderboard: tiny (config c0ffeec0ffee)")
    only_csv = tmp_path / "csv-only"
    returned = write_leaderboards(build_results(board), only_csv, formats=["csv"])
    assert "| explainer | attack |" in returned and "Failed" not in returned
    assert sorted(p.name for p in only_csv.iterdir()) == ["leaderboard.csv"]
    with pytest.raises(ValueError, match="unknown leaderboard format"):
        write_leaderboards(results, tmp_path, formats=["word"])
