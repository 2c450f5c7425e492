"""Agreement between metric rankings (Kendall τ-b between the explainer rankings of two metrics):
the table, its files beside the leaderboard and the commentary placeholder."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from salbench.agreement import agreement_markdown, agreement_table, applies, mean_agreement
from salbench.commentary import fill
from salbench.publish import write_agreement
from salbench.results import build_results

BASE = {"e1": 1.0, "e2": 2.0, "e3": 3.0, "e4": 4.0}
# per data set, metric -> (higher_is_better, value of each explainer)
METRICS = {
    "blocks": {
        "up": (True, BASE),
        "same": (True, {e: 10 * s for e, s in BASE.items()}),  # the same ranking: τ = 1
        "reversed": (True, {e: -s for e, s in BASE.items()}),  # the reverse: τ = −1
        "flipped": (False, BASE),  # the same values, lower is better: τ = −1
    },
    "wdbc": {
        "up": (True, BASE),
        "same": (True, {"e1": 1.0, "e2": 3.0, "e3": 2.0, "e4": 4.0}),  # one swapped pair: τ = (5 − 1) / 6
        "reversed": (True, {e: -s for e, s in BASE.items()}),
        "flipped": (False, BASE),
    },
}


def records() -> pd.DataFrame:
    """One seed, two samples (values s and s + 0.01), four explainers, four metrics, two data sets."""
    rows = []
    for dataset, metrics in METRICS.items():
        for explainer in BASE:
            for metric, (higher, values) in metrics.items():
                for sample in (0, 1):
                    rows.append({
                        "suite": "s", "config_hash": "h", "cell_id": f"{dataset}-{explainer}",
                        "dataset": dataset, "dataset_params": "{}", "model": "cnn", "model_params": "{}",
                        "recipe": "standard", "recipe_params": "{}", "explainer": explainer, "explainer_params": "{}",
                        "explainer_layer": None, "attack": "none", "attack_params": "{}", "seed": 0, "sample": sample,
                        "label": 1, "metric": metric, "metric_params": "{}", "category": "faithfulness",
                        "higher_is_better": higher, "value": values[explainer] + 0.01 * sample, "curve": None,
                        "note": None, "attack_iterations": None, "attack_success": None, "label_kept": None,
                        "clean_accuracy": 0.9, "model_key": "m", "elapsed_s": 1.0, "versions": "{}",
                    })  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def results():
    return build_results(records())


def pair(table: pd.DataFrame, a: str, b: str) -> pd.Series:
    """Rows of the pair (a, b) in either order (the table follows the leaderboard's metric order)."""
    return ((table["metric_a"] == a) & (table["metric_b"] == b)) | ((table["metric_a"] == b) & (table["metric_b"] == a))


def tau(table: pd.DataFrame, dataset: str, a: str, b: str) -> float:
    row = table[(table["dataset"] == dataset) & pair(table, a, b)]
    assert len(row) == 1
    return float(row["tau"].iloc[0])


def test_identical_reversed_and_flipped_rankings(results):
    table = agreement_table(results.summary)
    assert tau(table, "blocks", "up", "same") == pytest.approx(1.0)
    assert tau(table, "blocks", "up", "reversed") == pytest.approx(-1.0)
    assert tau(table, "blocks", "up", "flipped") == pytest.approx(-1.0)  # direction respected
    assert tau(table, "blocks", "reversed", "flipped") == pytest.approx(1.0)
    assert tau(table, "wdbc", "up", "same") == pytest.approx(4 / 6)
    assert set(table["n_explainers"]) == {4}
    assert len(table) == 2 * 6  # every pair of the four metrics in each data set


def test_mean_over_groups(results):
    mean = mean_agreement(agreement_table(results.summary))
    row = mean[pair(mean, "up", "same")]
    assert row["tau_mean"].item() == pytest.approx((1 + 4 / 6) / 2) and row["groups"].item() == 2


def summary(explainers: list[str], a: list[float], b: list[float], attack: str = "none") -> pd.DataFrame:
    n = len(explainers)
    return pd.DataFrame({
        "dataset": "d", "model": "m", "recipe": "r", "attack": attack, "explainer": explainers * 2,
        "metric": ["a"] * n + ["b"] * n, "higher_is_better": True, "mean": a + b,
    })  # fmt: skip


def test_too_few_explainers_or_a_constant_metric_give_nan():
    two = agreement_table(summary(["e1", "e2"], [1.0, 2.0], [1.0, 2.0]))
    assert two["n_explainers"].tolist() == [2] and math.isnan(two["tau"].iloc[0])
    constant = agreement_table(summary(["e1", "e2", "e3"], [1.0, 2.0, 3.0], [5.0, 5.0, 5.0]))
    assert math.isnan(constant["tau"].iloc[0])
    missing = agreement_table(summary(["e1", "e2", "e3", "e4"], [1.0, 2.0, 3.0, 4.0], [1.0, float("nan"), 3.0, 4.0]))
    assert missing["n_explainers"].tolist() == [3] and missing["tau"].iloc[0] == pytest.approx(1.0)


def test_cells_without_explainer_are_left_out_and_attacked_entries_named_by_their_attack():
    frame = summary(["none", "e1", "e2", "e3"], [9.0, 1.0, 2.0, 3.0], [0.0, 3.0, 2.0, 1.0], attack="topk")
    table = agreement_table(frame)
    assert table[["metric_a", "metric_b", "n_explainers"]].values.tolist() == [["a under topk", "b under topk", 3]]
    assert table["tau"].iloc[0] == pytest.approx(-1.0)
    assert applies(frame) and not applies(summary(["e1", "e2"], [1.0, 2.0], [2.0, 1.0]))


def test_files_beside_the_leaderboard_and_removed_when_they_no_longer_apply(results, tmp_path):
    written = write_agreement(results, tmp_path)
    assert [p.name for p in written] == ["metric_agreement.csv", "metric_agreement.md"]
    csv = pd.read_csv(tmp_path / "metric_agreement.csv")
    assert len(csv) == 12 and tau(csv, "blocks", "up", "same") == 1
    markdown = (tmp_path / "metric_agreement.md").read_text()
    up_row = next(line for line in markdown.splitlines() if line.startswith("| up |"))
    assert sorted(up_row.strip("| ").split(" | ")[1:]) == ["-1.00", "-1.00", "0.83", "1"]
    assert "## wdbc / cnn / standard" in markdown
    few = build_results(records().query("explainer in ['e1', 'e2']"))
    assert write_agreement(few, tmp_path) == [] and not (tmp_path / "metric_agreement.csv").exists()


def test_markdown_shows_missing_tau_as_a_dash():
    text = agreement_markdown(agreement_table(summary(["e1", "e2"], [1.0, 2.0], [1.0, 2.0])), "t")
    assert "| a | 1 | – |" in text


def test_commentary_placeholder(results):
    assert fill('{{ show="agreement" metric="up" against="same" }}', results, "x.md") == "0.83"
    assert fill('{{ show="agreement" metric="same" against="up" dataset="wdbc" }}', results, "x.md") == "0.67"


@pytest.mark.parametrize(
    ("placeholder", "message"),
    [
        ('{{ show="agreement" metric="up" }}', "takes the keys metric and against"),
        ('{{ metric="up" against="same" }}', "against goes only with it"),
        ('{{ show="agreement" metric="up" against="nope" }}', "no Kendall τ for the metrics"),
        ('{{ show="agreement" metric="up" against="same" explainer="e1" }}', "takes no key"),
        ('{{ show="agreement" metric="up" against="same" dataset="mnist" }}', "matches no groups"),
    ],
)
def test_bad_agreement_placeholders_are_errors(results, placeholder, message):
    with pytest.raises(ValueError, match=message):
        fill(placeholder, results, "x.md")
