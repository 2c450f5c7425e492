"""The HTML report: one page with metadata, leaderboard, failures and every figure by relative path."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from salbench.publish import publish
from salbench.store import RECORD_COLUMNS, write_cell, write_failure

BASE = {
    "suite": "mini", "config_hash": "9" * 64, "dataset": "synthetic_blocks", "dataset_params": "{}",
    "model": "small_cnn", "model_params": "{}", "recipe": "standard", "recipe_params": "{}",
    "explainer": "gradient", "explainer_params": "{}", "explainer_layer": None, "attack_params": "{}", "seed": 0, "label": 1,
    "metric_params": "{}", "note": None, "attack_iterations": None, "attack_success": None, "label_kept": None,
    "clean_accuracy": 0.875, "clean_balanced_accuracy": None, "model_key": "m0", "elapsed_s": 0.1, "versions": '{"numpy":"2.x","torch":"2.y"}',
}


def store_cell(out_dir, cell_id: str, attack: str, metric: str, category: str, examples: dict | None) -> None:
    curve = np.array([0.2, 0.6, 0.9]) if metric == "insertion" else None
    moved = None if attack == "none" else True
    rows = [{**BASE, "cell_id": cell_id, "attack": attack, "sample": s, "metric": metric, "category": category,
             "higher_is_better": True, "value": 0.5 + 0.1 * s, "curve": curve, "attack_success": moved,
             "label_kept": moved} for s in range(3)]
    write_cell(out_dir, cell_id, pd.DataFrame(rows)[list(RECORD_COLUMNS)], examples)


def test_report_shows_leaderboard_figures_and_metadata(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((2, 1, 5, 5), dtype=np.float32)
    examples = {"x": x, "attr": x - 0.5, "x_adv": x, "attr_adv": 0.5 - x}
    store_cell(tmp_path, "a1" * 32, "topk", "topk_intersection", "robustness", examples)
    store_cell(tmp_path, "b2" * 32, "none", "insertion", "faithfulness", {"x": x, "attr": x})
    write_failure(tmp_path, "c3" * 32, {"error": "RuntimeError: out of memory\ndetails", "traceback": "Traceback ..."})

    path = publish(tmp_path).report

    assert path == tmp_path / "report.html"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<style>" in text
    assert not re.search(r"https?://", text) and "<link" not in text and "<script" not in text
    figures = sorted((tmp_path / "figures").glob("*.png"))
    assert [f.name.split("_")[0] for f in figures] == ["curves", "examples", "heatmap"]
    shown = re.findall(r'<img src="([^"]+)"', text)  # each figure once, by its path relative to the page
    assert sorted(shown) == [f"figures/{f.name}" for f in figures] and "data:" not in text
    assert len(text) < 20_000  # the figures stay in their files
    assert "9" * 64 in text and "numpy 2.x, torch 2.y" in text  # config hash, versions
    assert "<tr><th>cells stored</th><td>2</td></tr>" in text and "<tr><th>cells failed</th><td>1</td></tr>" in text
    assert "<tr><th>seeds</th><td>1 (seed 0)</td></tr>" in text  # a count, then the seeds
    captions = re.findall(r"<figcaption>([^<]+)</figcaption>", text)  # the figures' titles, not file names
    assert len(captions) == len(figures) and not any(f.stem in c or ".png" in c for f in figures for c in captions)
    assert "insertion curves (↑ higher is better; mean and 95% band over samples and seeds)" in captions
    assert "topk_intersection ↑" in text and "0.600 [" in text  # the leaderboard
    assert "Clean test accuracy 0.875" in text
    assert "RuntimeError: out of memory" in text and "details" not in text  # first line of the failure


def test_report_of_an_empty_store_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no stored records"):
        publish(tmp_path)
