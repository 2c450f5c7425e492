"""Leaderboards: seed-level means and hierarchical-bootstrap intervals, paired tests deciding bold
(hand-worked Wilcoxon and Holm values), attack accounting, views, labels, the four formats."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from salbench.leaderboard import (
    accuracy_table,
    entry_values,
    label_components,
    render,
    seed_table,
    summarize,
)
from salbench.publish import write_leaderboards
from salbench.results import build_results
from salbench.store import RECORD_COLUMNS, RECORD_SCHEMA, read_records, write_cell
from salbench.views import View
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
            "explainer": "gradient", "explainer_params": "{}", "explainer_layer": None, "attack": "topk", "attack_params": '{"eps":0.1}',
            "seed": seed, "sample": i, "label": 0, "metric": metric, "metric_params": "{}",
            "category": category, "higher_is_better": higher, "curve": None, "note": None, "attack_iterations": None,
            "attack_success": None, "label_kept": None, "clean_accuracy": 0.9, "clean_balanced_accuracy": None,
            "model_key": f"key{seed}",
            "elapsed_s": 1.0, "versions": '{"torch":"2.x"}',
        }
        if row.get("attack", "topk") != "none":  # attacked: moved and label kept unless the row says otherwise
            base.update(attack_success=True, label_kept=True)
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


def test_mean_is_over_seeds_of_per_seed_means_not_pooled():
    values = {0: [0.2, 0.4], 1: [0.5, 0.9, 0.7]}  # seed means 0.3 and 0.7; pooled mean 0.54
    frame = records([{"seed": s, "value": v, "sample": i} for s, vs in values.items() for i, v in enumerate(vs)])
    row = entry(summarize(frame), explainer="gradient")
    assert (row["n_seeds"], row["n"]) == (2, 5) and row["mean"] == pytest.approx(0.5, abs=1e-15)
    assert json.loads(row["seed_means"]) == pytest.approx({"0": 0.3, "1": 0.7})
    assert json.loads(row["seed_n"]) == {"0": 2, "1": 3}
    assert 0.2 <= row["ci_low"] < 0.5 < row["ci_high"] <= 0.9  # inside the range of the values


def test_seeds_with_different_means_widen_the_interval_beyond_pooling():
    # three seeds whose samples agree within the seed: the mean of 3 seeds drawn from {0.1, 0.5, 0.9}
    # is 0.1 (or 0.9) with probability 1/27 > 2.5%, so the 95% interval is [0.1, 0.9] by hand
    frame = records([{"seed": s, "sample": i, "value": m} for s, m in enumerate((0.1, 0.5, 0.9)) for i in range(4)])
    row = entry(summarize(frame), explainer="gradient")
    assert row["mean"] == pytest.approx(0.5) and (row["ci_low"], row["ci_high"]) == pytest.approx((0.1, 0.9))
    pooled = np.repeat([0.1, 0.5, 0.9], 4)
    low, high = stats.t.interval(0.95, df=11, loc=pooled.mean(), scale=stats.sem(pooled))
    assert row["ci_high"] - row["ci_low"] > 1.5 * (high - low)  # pooling treats 12 values as independent
    # noisier samples: still wider than the pooled sample bootstrap of the same values
    rng = np.random.default_rng(1)
    noisy = {s: m + 0.05 * rng.standard_normal(40) for s, m in enumerate((0.2, 0.14, 0.32))}
    frame = records([{"seed": s, "sample": i, "value": v} for s, vs in noisy.items() for i, v in enumerate(vs)])
    row = entry(summarize(frame), explainer="gradient")
    flat = np.concatenate(list(noisy.values()))
    boot = stats.bootstrap((flat,), np.mean, method="percentile", random_state=0).confidence_interval
    assert row["ci_high"] - row["ci_low"] > 2 * (boot.high - boot.low)


def test_one_seed_falls_back_to_the_sample_bootstrap_and_says_so():
    values = np.random.default_rng(2).normal(0.5, 0.2, 200)
    frame = records([{"sample": i, "value": v} for i, v in enumerate(values)])
    summary = summarize(frame)
    row = summary.iloc[0]
    boot = stats.bootstrap((values,), np.mean, method="percentile", random_state=0).confidence_interval
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((boot.low, boot.high), abs=0.006)  # independent bootstrap
    assert row["n_seeds"] == 1
    assert "within that seed only" in render(summary, accuracy_table(frame), "markdown")


def test_the_interval_is_deterministic():
    frame = records([{"seed": s, "sample": i, "value": float(i * s % 7)} for s in range(3) for i in range(30)])
    first, second = summarize(frame), summarize(frame)
    assert (first["ci_low"].iloc[0], first["ci_high"].iloc[0]) == (second["ci_low"].iloc[0], second["ci_high"].iloc[0])


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
        {"explainer": "a", "attack": "mse", "value": 0.1}, {"explainer": "b", "attack": "mse", "value": 0.9},
    ]
    summary = summarize(records(rows))
    assert entry(summary, explainer="a", attack="topk")["rank"] == 1
    assert entry(summary, explainer="b", attack="mse")["rank"] == 1


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
    # the two explainers hold different samples: compared by the bootstrap test, p = 1/2001 (no overlap)
    assert "**0.200 [0.190, 0.210]**" in rows[("smoothgrad", "none")]  # lower deletion is better
    assert header.index("sensitivity") < header.index("topk_intersection") < header.index("deletion")  # by category
    assert header.index("moved") < header.index("sensitivity")  # the accounting first
    assert rows[("gradient", "topk")].endswith("| 2/2 (kept 2) | 0.800 [0.790, 0.810] | **0.800 [0.790, 0.810]** |  |")
    assert rows[("smoothgrad", "topk")].endswith("| 2/2 (kept 2) | **0.600 [0.590, 0.610]** | 0.600 [0.590, 0.610] |  |")
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
    for column in ("n_seeds", "n", "n_nonfinite", "mean", "ci_low", "ci_high", "n_all", "mean_all", "n_evaluated",
                   "n_moved", "n_label_kept", "rank", "p_vs_best"):
        np.testing.assert_array_equal(back[column].to_numpy(dtype=float), summary[column].to_numpy(dtype=float))
    assert (back["higher_is_better"] == summary["higher_is_better"]).all()
    assert (back["seed_means"] == summary["seed_means"]).all() and (back["population"] == summary["population"]).all()
    assert (back["clean_accuracy"] == 0.9).all()


def test_latex_is_a_booktabs_tabular_of_the_right_shape(board):
    text = render(summarize(board), accuracy_table(board), "latex")
    assert text.count(r"\begin{tabular}{llrrrr}") == 1  # explainer, attack, moved and three metrics
    assert all(text.count(rule) == 1 for rule in (r"\toprule", r"\midrule", r"\bottomrule"))
    body = text.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert len(body) == 4  # 2 explainers × (none, topk)
    assert all(len(re.findall(r"(?<!\\)&", line)) == 5 and line.endswith(r"\\") for line in body)
    assert r"topk\_intersection $\uparrow$" in text and r"deletion $\downarrow$" in text
    assert r"\textbf{0.200 [0.190, 0.210]}" in text


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
    assert names == ["leaderboard.csv", "leaderboard.html", "leaderboard.md", "leaderboard.tex",
                     "leaderboard_seeds.csv", "leaderboard_seeds.md"]
    assert (tmp_path / "leaderboard.md").read_text() == markdown
    assert "RuntimeError: boom" in markdown and "wdbc/mlp/standard seed 0: x × y" in markdown
    assert markdown.startswith("# Leaderboard: tiny (config c0ffeec0ffee)")
    only_csv = tmp_path / "csv-only"
    returned = write_leaderboards(build_results(board), only_csv, formats=["csv"])
    assert "| explainer | attack |" in returned and "Failed" not in returned
    assert sorted(p.name for p in only_csv.iterdir()) == ["leaderboard.csv", "leaderboard_seeds.csv"]
    with pytest.raises(ValueError, match="unknown leaderboard format"):
        write_leaderboards(results, tmp_path, formats=["word"])


# -- paired comparisons decide bold -------------------------------------------------------------
def paired(differences: dict[str, list[float]], base: list[float], attack: str = "topk") -> pd.DataFrame:
    """Explainer "ref" holds ``base`` + 1 (the best); explainer e holds ref − its differences, on the same
    (seed, sample) pairs (seed = position // 3, sample = position)."""
    rows = [{"explainer": "ref", "attack": attack, "seed": i // 3, "sample": i, "value": b + 1.0}
            for i, b in enumerate(base)]
    for name, diffs in differences.items():
        rows += [{"explainer": name, "attack": attack, "seed": i // 3, "sample": i, "value": b + 1.0 - d}
                 for i, (b, d) in enumerate(zip(base, diffs))]
    return records(rows)


BASE = [0.0, 5.0, -3.0, 2.0, 9.0, -7.0]  # a spread far larger than the differences: only pairing sees them


def test_planted_paired_difference_is_bold_with_the_exact_wilcoxon_p():
    # 6 pairs, every difference positive: exact one-sided signed-rank p = 1/2^6
    summary = summarize(paired({"other": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}, BASE))
    other, ref = entry(summary, explainer="other"), entry(summary, explainer="ref")
    assert other["test"] == "wilcoxon" and other["p_vs_best"] == pytest.approx(1 / 64)
    assert (ref["mark"], other["mark"]) == ("best", "")
    assert f"**{ref['mean']:.2f}" in render(summary, accuracy_table(paired({}, BASE)), "markdown")


def test_null_paired_difference_is_a_tie_not_bold():
    # ref − other = diffs (mean > 0: ref ranks first); |d| ranks 1..6, positives at ranks 3, 5, 6: W+ = 14;
    # exact one-sided p = P(W+ >= 14) = P(W+ <= 7) = #{subsets of 1..6 with sum <= 7} / 64 = 18/64
    diffs = [0.6, -0.1, 0.5, -0.2, 0.3, -0.4]
    summary = summarize(paired({"other": diffs}, BASE))
    ref, other = entry(summary, explainer="ref"), entry(summary, explainer="other")
    assert (ref["rank"], other["rank"]) == (1, 2)
    assert other["p_vs_best"] == pytest.approx(18 / 64)
    assert (ref["mark"], other["mark"]) == ("tie", "tie")
    text = render(summary, accuracy_table(paired({}, BASE)), "markdown")
    table = text.split("| explainer")[1]
    assert "**" not in table and table.count(" ≈ |") == 2


def test_holm_corrects_within_the_table():
    # 5 positive pairs: p = 1/32 each; two comparisons: Holm 2/32 and max(2/32, 1/32) = 1/16 > 0.05 -> tie
    diffs = [0.1, 0.2, 0.3, 0.4, 0.5]
    one = summarize(paired({"b": diffs}, BASE[:5]))
    assert entry(one, explainer="b")["p_vs_best"] == pytest.approx(1 / 32) and entry(one, explainer="ref")["mark"] == "best"
    two = summarize(paired({"b": diffs, "c": diffs}, BASE[:5]))
    assert entry(two, explainer="b")["p_vs_best"] == pytest.approx(1 / 16)
    assert entry(two, explainer="c")["p_vs_best"] == pytest.approx(1 / 16)
    assert entry(two, explainer="ref")["mark"] == "tie"
    # the family is the table: a second attack's comparison in the same table counts too
    frame = pd.concat([paired({"b": diffs}, BASE[:5]), paired({"b": diffs}, BASE[:5], attack="mse")], ignore_index=True)
    both = summarize(frame)
    assert entry(both, explainer="b", attack="topk")["p_vs_best"] == pytest.approx(1 / 16)


def test_entries_on_different_samples_are_not_paired():
    frame = paired({"other": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}, BASE)
    frame.loc[frame["explainer"] == "other", "sample"] += 100  # other samples: no pairs
    other = entry(summarize(frame), explainer="other")
    assert other["test"] == "bootstrap"
    assert other["p_vs_best"] > 0.05  # unpaired, the spread of BASE hides a shift of 0.35
    frame = records([{"explainer": "a", "sample": 0, "value": 0.9}, {"explainer": "b", "sample": 1, "value": 0.1}])
    summary = summarize(frame)
    assert entry(summary, explainer="b")["test"] == "untested" and np.isnan(entry(summary, explainer="b")["p_vs_best"])
    assert entry(summary, explainer="a")["mark"] == "tie"  # one value each: no evidence for a best


# -- attack accounting ----------------------------------------------------------------------------
def accounting_records() -> pd.DataFrame:
    rows = []
    for explainer, moved, values in (
        ("a", [True, True, False, True], [0.5, 0.6, 1.0, 0.7]),  # moved 3: mean 0.6; all 4: 0.7
        ("b", [True, True, False, False], [0.4, 0.5, 1.0, 1.0]),  # attacked less: all 0.725 > 0.7, moved 0.45
    ):
        rows += [{"explainer": explainer, "sample": i, "value": v, "attack_success": m, "label_kept": True}
                 for i, (m, v) in enumerate(zip(moved, values))]
    rows += [{"explainer": "a", "attack": "random_noise", "sample": i, "value": 0.9} for i in range(4)]
    return records(rows)


def test_accounting_counts_and_two_populations():
    summary = summarize(accounting_records())
    a, b = entry(summary, explainer="a", attack="topk"), entry(summary, explainer="b", attack="topk")
    assert (a["n_evaluated"], a["n_moved"], a["n_label_kept"]) == (4, 3, 4)
    assert (b["n_evaluated"], b["n_moved"], b["n_label_kept"]) == (4, 2, 4)
    assert a["population"] == "moved" and (a["n"], a["mean"]) == (3, pytest.approx(0.6))
    assert (a["n_all"], a["mean_all"]) == (4, pytest.approx(0.7)) and b["mean_all"] == pytest.approx(0.725)
    # ranked on the moved samples: b cannot win by being attacked less
    assert (a["rank"], b["rank"]) == (1, 2) and b["mean"] == pytest.approx(0.45)
    text = render(summary, accuracy_table(accounting_records()), "markdown")
    line = next(row for row in text.splitlines() if row.startswith("| b | topk"))
    assert "| 2/4 (kept 4) |" in line and "0.450 [" in line and "(all: 0.725)" in line
    assert "over the samples the attack moved" in text


def test_a_noise_baseline_has_no_success_rate():
    summary = summarize(accounting_records())
    noise = entry(summary, attack="random_noise")
    assert noise["population"] == "all" and pd.isna(noise["n_moved"]) and noise["n_evaluated"] == 4
    assert (noise["n"], noise["mean"]) == (4, pytest.approx(0.9))
    text = render(summary, accuracy_table(accounting_records()), "markdown")
    line = next(row for row in text.splitlines() if row.startswith("| a | random_noise"))
    assert "| baseline/4 (kept 4) |" in line
    assert "attack_success_rate" not in set(summary["metric"])


def test_attacked_records_without_accounting_are_refused():
    frame = records([{"value": 0.5}])
    frame["attack_success"] = None
    with pytest.raises(ValueError, match="attack_success"):
        summarize(frame)


# -- per-seed table and views ---------------------------------------------------------------------
def test_seed_table_lists_each_seed_mean():
    frame = records([{"seed": s, "sample": i, "value": v} for s, vs in ((0, [0.2, 0.4]), (2, [0.9])) for i, v in enumerate(vs)])
    table = seed_table(summarize(frame))
    assert table[["seed", "n"]].values.tolist() == [[0, 2], [2, 1]]
    assert table["mean"].tolist() == pytest.approx([0.3, 0.9]) and set(table["population"]) == {"moved"}


DEFENCES = View("defences", ("dataset", "model", "explainer"), ("recipe",), ("attack", "metric"), ("recipe",))


def defence_records() -> pd.DataFrame:
    rows = []
    for recipe, accuracy, shift in (("standard", 0.95, 0.0), ("adversarial", 0.90, 0.3)):
        for attack in ("topk", "mse"):
            rows += [{"recipe": recipe, "attack": attack, "clean_accuracy": accuracy, "model_key": recipe,
                      "sample": i, "value": 0.5 + shift + 0.01 * i} for i in range(6)]
    return records(rows)


def test_a_view_renders_recipes_as_rows_and_ranks_them():
    frame = defence_records()
    summary = summarize(frame, DEFENCES)
    assert entry(summary, recipe="adversarial", attack="topk")["mark"] == "best"  # 6 positive pairs: p = 1/64 · 2
    assert entry(summary, recipe="adversarial", attack="topk")["rank"] == 1
    text = render(summary, accuracy_table(frame), "markdown", view=DEFENCES)
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| recipe"))
    assert header == ("| recipe | clean accuracy ↑ | mse: moved | mse: topk_intersection ↑ | topk: moved "
                      "| topk: topk_intersection ↑ |")  # attacks in alphabetical order, accounting first
    rows = [line for line in lines if line.startswith(("| standard", "| adversarial"))]
    assert len(rows) == 2 and "| 0.950 |" in rows[[r.startswith("| standard") for r in rows].index(True)]
    assert "## wdbc / mlp / gradient" in text
    for fmt, marker in (("latex", r"\begin{tabular}{lrrrrr}"), ("html", "<th>recipe</th><th>clean accuracy ↑</th>"),
                        ("csv", "population")):
        assert marker in render(summary, accuracy_table(frame), fmt, view=DEFENCES)


def test_a_view_keeps_only_its_metrics():
    frame = pd.concat([defence_records(), records([{"metric": "sensitivity", "value": 0.1}])], ignore_index=True)
    view = View("v", DEFENCES.tables, DEFENCES.rows, DEFENCES.columns, DEFENCES.compare, ("sensitivity",))
    assert set(summarize(frame, view)["metric"]) == {"sensitivity"}
    with pytest.raises(ValueError, match="deletion"):
        summarize(frame, View("w", DEFENCES.tables, DEFENCES.rows, DEFENCES.columns, DEFENCES.compare, ("deletion",)))


def test_write_leaderboards_writes_each_view_and_the_seed_table(tmp_path):
    results = build_results(defence_records(), views=(DEFENCES,))
    write_leaderboards(results, tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert [n for n in names if n.startswith("leaderboard_defences.")] == [
        "leaderboard_defences.csv", "leaderboard_defences.html", "leaderboard_defences.md", "leaderboard_defences.tex"]
    assert "| recipe | clean accuracy ↑ |" in (tmp_path / "leaderboard_defences.md").read_text()
    assert "| explainer | attack |" in (tmp_path / "leaderboard.md").read_text()  # the default view stays
    seeds = pd.read_csv(tmp_path / "leaderboard_seeds.csv")
    assert list(seeds.columns) == ["dataset", "model", "recipe", "explainer", "attack", "metric", "population", "seed",
                                   "n", "mean"]
    assert len(seeds) == 4 and (seeds["n"] == 6).all()  # 2 recipes × 2 attacks, one seed
    assert "| wdbc | mlp | standard | gradient | mse | topk_intersection | moved | 0 | 6 | 0.525 |" in (
        tmp_path / "leaderboard_seeds.md").read_text()


def test_entry_values_are_the_moved_samples_of_an_attacked_entry_in_seed_sample_order():
    rows = [{"seed": 1, "sample": 4, "value": 0.4}, {"seed": 0, "sample": 7, "value": 0.7},
            {"seed": 0, "sample": 2, "value": 0.2}, {"seed": 0, "sample": 3, "value": 0.9, "attack_success": False},
            {"seed": 1, "sample": 5, "value": np.nan}]
    frame = records(rows)
    values = entry_values(label_components(frame), entry(summarize(frame), explainer="gradient"))
    assert values.values.tolist() == [[0, 2, 0.2], [0, 7, 0.7], [1, 4, 0.4]]  # not moved and NaN left out
    assert entry(summarize(frame), explainer="gradient")["n"] == len(values)  # what the leaderboard estimates from


def test_entry_values_of_p_values_are_rejection_indicators():
    frame = records([{"attack": "none", "sample": i, "value": p, "metric_params": '{"alpha":0.05}'}
                     for i, p in enumerate((0.01, 0.05, 0.2))])
    frame["category"] = "significance"
    values = entry_values(label_components(frame), entry(summarize(frame), explainer="gradient"))
    assert values["value"].tolist() == [1.0, 1.0, 0.0]  # p <= alpha


def balanced_records(balanced: dict[int, float | None]) -> pd.DataFrame:
    """One attack-free deletion value per seed, clean accuracy 0.9 / 0.8 and the given balanced accuracies."""
    rows = [{"seed": s, "attack": "none", "metric": "deletion", "value": 0.5, "clean_accuracy": 0.9 - 0.1 * s,
             "clean_balanced_accuracy": b} for s, b in balanced.items()]
    return records(rows)


def test_balanced_accuracy_is_shown_beside_the_accuracy_where_every_seed_has_it():
    frame = balanced_records({0: 0.7, 1: 0.6})
    accuracy = accuracy_table(frame).iloc[0]
    assert accuracy["balanced_accuracy"] == pytest.approx(0.65)
    assert (accuracy["balanced_accuracy_min"], accuracy["balanced_accuracy_max"]) == (0.6, 0.7)
    text = render(summarize(frame), accuracy_table(frame), "markdown")
    assert ("Clean test accuracy 0.850 (mean over 2 seeds, range 0.800–0.900); bal. acc. 0.650 "
            "(range 0.600–0.700).") in text
    csv = pd.read_csv(io.StringIO(render(summarize(frame), accuracy_table(frame), "csv")))
    assert csv[["clean_accuracy", "clean_balanced_accuracy"]].values.tolist() == [pytest.approx([0.85, 0.65])]
    rows = records([{"recipe": recipe, "attack": "none", "metric": "deletion", "model_key": recipe, "value": 0.5,
                     "clean_balanced_accuracy": 0.75} for recipe in ("standard", "adversarial")])
    in_rows = render(summarize(rows, DEFENCES), accuracy_table(rows), "markdown", view=DEFENCES)
    assert "| standard | 0.900, bal. acc. 0.750 |" in in_rows
    one_missing = accuracy_table(balanced_records({0: 0.7, 1: None})).iloc[0]
    assert np.isnan(one_missing["balanced_accuracy"])  # not a mean over the seeds that happen to have it


def test_an_old_store_without_balanced_accuracy_renders_its_tables_unchanged(tmp_path):
    frame = balanced_records({0: None, 1: None})
    old = pa.schema([f for f in RECORD_SCHEMA if f.name != "clean_balanced_accuracy"])
    for cell_id, cell in frame.assign(cell_id=["a0", "a1"]).groupby("cell_id"):
        table = pa.Table.from_pandas(cell[old.names], schema=old, preserve_index=False)
        (tmp_path / "store" / "cells").mkdir(parents=True, exist_ok=True)
        pq.write_table(table, tmp_path / "store" / "cells" / f"{cell_id}.parquet")
    stored = read_records(tmp_path)
    assert stored["clean_balanced_accuracy"].isna().all()
    accuracy = accuracy_table(stored)
    text = render(summarize(stored), accuracy, "markdown")
    assert "Clean test accuracy 0.850 (mean over 2 seeds, range 0.800–0.900). n = " in text and "bal. acc." not in text
    assert "clean_balanced_accuracy" not in render(summarize(stored), accuracy, "csv").splitlines()[0]
    write_cell(tmp_path, "b0", frame.iloc[[0]].assign(cell_id="b0", seed=2, model_key="key2", clean_balanced_accuracy=0.5))
    assert "bal. acc." not in render(summarize(read_records(tmp_path)), accuracy_table(read_records(tmp_path)),
                                     "markdown")  # one seed recorded it, two did not: not shown
