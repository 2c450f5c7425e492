"""The results store: atomic writes, the record schema, reading back in a deterministic order."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from salbench import store
from salbench.store import (
    RECORD_COLUMNS,
    VOLATILE_COLUMNS,
    atomic_write_bytes,
    comparable,
    read_examples,
    read_failures,
    read_records,
    stored_cell_ids,
    write_cell,
    write_failure,
)


def _records(cell_id: str, attacked: bool, samples=(3, 1), metrics=("spearman", "deletion")) -> pd.DataFrame:
    """Records of a fake cell, one row per sample × metric, with every column of the schema."""
    rows = []
    for metric in metrics:
        for sample in samples:
            rows.append({
                "suite": "s", "config_hash": "c" * 64, "cell_id": cell_id,
                "dataset": "wdbc", "dataset_params": "{}", "model": "mlp", "model_params": "{}",
                "recipe": "standard", "recipe_params": "{}",
                "explainer": "gradient", "explainer_params": '{"absolute":false}', "explainer_layer": None,
                "attack": "topk" if attacked else "none", "attack_params": '{"k":8}' if attacked else "{}",
                "seed": 0, "sample": sample, "label": sample % 2, "metric": metric, "metric_params": "{}",
                "category": "robustness", "higher_is_better": metric == "spearman",
                "value": 0.5 + sample, "curve": [1.0, 0.5, float(sample)] if metric == "deletion" else None,
                "note": "no value" if metric == "spearman" and sample == 3 else None,
                "attack_iterations": 7 if attacked else None, "attack_success": True if attacked else None,
                "label_kept": True if attacked else None, "clean_accuracy": 0.95,
                "clean_balanced_accuracy": 0.75 if attacked else None, "model_key": "k" * 64,
                "elapsed_s": 1.25, "versions": "{}",
            })
    return pd.DataFrame(rows)


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(path, b"first")
    atomic_write_bytes(path, b"second, longer")
    assert path.read_bytes() == b"second, longer"
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.bin"]


def test_atomic_write_failure_keeps_old_content_and_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_cells_round_trip_with_nullable_columns_and_curves(tmp_path):
    write_cell(tmp_path, "bb", _records("bb", attacked=True))
    write_cell(tmp_path, "aa", _records("aa", attacked=False))
    assert stored_cell_ids(tmp_path) == {"aa", "bb"}
    records = read_records(tmp_path)
    assert list(records.columns) == list(RECORD_COLUMNS)
    assert len(records) == 8
    # attack-free rows keep nulls in the integer/boolean attack columns, attacked rows keep their values
    free = records[records.attack == "none"]
    attacked = records[records.attack == "topk"]
    assert free.attack_iterations.isna().all() and free.label_kept.isna().all()
    assert attacked.attack_iterations.tolist() == [7] * 4 and attacked.attack_success.all()
    assert str(records.attack_iterations.dtype) == "Int64" and str(records.label_kept.dtype) == "boolean"
    assert records.value.dtype == np.float64 and records.higher_is_better.dtype == bool
    deletion = records[records.metric == "deletion"]
    assert [list(c) for c in deletion.curve] == [[1.0, 0.5, 1.0], [1.0, 0.5, 3.0]] * 2
    assert records[records.metric == "spearman"].curve.isna().all()
    assert free.clean_balanced_accuracy.isna().all() and (attacked.clean_balanced_accuracy == 0.75).all()


def test_read_records_order_is_deterministic(tmp_path):
    write_cell(tmp_path, "bb", _records("bb", attacked=True))
    write_cell(tmp_path, "aa", _records("aa", attacked=False))
    records = read_records(tmp_path)
    # sorted by attack ("none" < "topk"), then metric, then sample
    assert records.attack.tolist() == ["none"] * 4 + ["topk"] * 4
    assert records.metric.tolist()[:4] == ["deletion", "deletion", "spearman", "spearman"]
    assert records["sample"].tolist()[:4] == [1, 3, 1, 3]
    other = tmp_path / "other"
    write_cell(other, "aa", _records("aa", attacked=False))
    write_cell(other, "bb", _records("bb", attacked=True))
    pd.testing.assert_frame_equal(read_records(other), records)


def test_empty_store_reads_as_empty_frame(tmp_path):
    records = read_records(tmp_path)
    assert records.empty and list(records.columns) == list(RECORD_COLUMNS)
    assert stored_cell_ids(tmp_path) == set() and read_failures(tmp_path) == []


def test_records_must_match_schema(tmp_path):
    with pytest.raises(ValueError, match=r"missing \['elapsed_s'\]"):
        write_cell(tmp_path, "aa", _records("aa", False).drop(columns="elapsed_s"))
    with pytest.raises(ValueError, match=r"unexpected \['extra'\]"):
        write_cell(tmp_path, "aa", _records("aa", False).assign(extra=1))
    with pytest.raises(ValueError, match="label.*non-nullable"):
        write_cell(tmp_path, "aa", _records("aa", False).assign(label=None))
    with pytest.raises(ValueError, match="cell_id"):
        write_cell(tmp_path, "../escape", _records("aa", False))
    assert stored_cell_ids(tmp_path) == set()


def test_failure_is_recorded_and_cleared_by_success(tmp_path):
    write_failure(tmp_path, "aa", {"error": "ValueError: boom", "traceback": "..."})
    assert read_failures(tmp_path) == [{"cell_id": "aa", "error": "ValueError: boom", "traceback": "..."}]
    assert stored_cell_ids(tmp_path) == set()  # a failed cell is not done
    write_cell(tmp_path, "aa", _records("aa", False))
    assert read_failures(tmp_path) == []
    assert stored_cell_ids(tmp_path) == {"aa"}


def test_examples_round_trip(tmp_path):
    examples = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "sample": np.array([4, 9])}
    write_cell(tmp_path, "aa", _records("aa", False), examples)
    back = read_examples(tmp_path, "aa")
    assert set(back) == {"x", "sample"}
    np.testing.assert_array_equal(back["x"], examples["x"])
    with pytest.raises(FileNotFoundError, match="no examples stored for cell 'bb'"):
        read_examples(tmp_path, "bb")


def test_leftover_temp_files_are_ignored(tmp_path):
    write_cell(tmp_path, "aa", _records("aa", False))
    cells = store.store_dir(tmp_path) / "cells"
    (cells / ".bb.parquet.x1y2.tmp").write_bytes(b"half a parq")  # what a killed writer leaves behind
    assert stored_cell_ids(tmp_path) == {"aa"}
    assert len(read_records(tmp_path)) == 4


def test_comparable_drops_only_volatile_columns(tmp_path):
    a = _records("aa", False)
    b = a.assign(elapsed_s=99.0)
    assert VOLATILE_COLUMNS == ("elapsed_s",)
    pd.testing.assert_frame_equal(comparable(a), comparable(b))
    assert list(comparable(a).columns) == [c for c in RECORD_COLUMNS if c != "elapsed_s"]
    with pytest.raises(AssertionError):
        pd.testing.assert_frame_equal(comparable(a), comparable(a.assign(value=0.0)))


def test_failure_file_is_plain_json(tmp_path):
    write_failure(tmp_path, "ab12", {"error": "x", "cell": {"seed": 1}})
    text = (store.store_dir(tmp_path) / "failures" / "ab12.json").read_text()
    assert json.loads(text)["cell"] == {"seed": 1}


def _loose_files(out_dir) -> list[str]:
    root = store.store_dir(out_dir)
    return sorted(p.name for d in ("cells", "examples") if (root / d).exists() for p in (root / d).iterdir())


def test_compaction_folds_cells_into_two_files_that_read_the_same(tmp_path):
    examples = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "words": np.array([["a", "b"], ["c", ""]])}
    write_cell(tmp_path, "bb", _records("bb", attacked=True), examples)
    write_cell(tmp_path, "aa", _records("aa", attacked=False))
    before = store.read_store(tmp_path)
    assert before.loose == {"aa", "bb"}
    assert store.compact_store(tmp_path, before)
    assert _loose_files(tmp_path) == []
    files = sorted(p.name for p in store.store_dir(tmp_path).iterdir() if p.is_file())
    assert files == ["examples.npz", "records.parquet"]
    after = store.read_store(tmp_path)
    pd.testing.assert_frame_equal(after.records, before.records)
    assert after.loose == frozenset() and stored_cell_ids(tmp_path) == {"aa", "bb"}
    assert set(after.examples) == {"bb"} and set(after.examples["bb"]) == {"x", "words"}
    np.testing.assert_array_equal(after.examples["bb"]["words"], examples["words"])
    assert not store.compact_store(tmp_path, after)  # nothing new: nothing rewritten


def test_cells_after_a_compaction_add_to_it_and_compact_again_byte_identically(tmp_path):
    write_cell(tmp_path, "aa", _records("aa", attacked=False), {"x": np.ones((1, 2))})
    store.compact_store(tmp_path, store.read_store(tmp_path))
    write_cell(tmp_path, "bb", _records("bb", attacked=True), {"x": np.zeros((1, 2))})
    stored = store.read_store(tmp_path)
    assert stored.loose == {"bb"} and stored_cell_ids(tmp_path) == {"aa", "bb"}
    assert len(stored.records) == 8 and set(stored.examples) == {"aa", "bb"}
    store.compact_store(tmp_path, stored)
    files = {name: (store.store_dir(tmp_path) / name).read_bytes() for name in ("records.parquet", "examples.npz")}
    other = tmp_path / "other"  # the same cells stored in another order and compacted once
    write_cell(other, "bb", _records("bb", attacked=True), {"x": np.zeros((1, 2))})
    write_cell(other, "aa", _records("aa", attacked=False), {"x": np.ones((1, 2))})
    store.compact_store(other, store.read_store(other))
    assert {name: (store.store_dir(other) / name).read_bytes() for name in files} == files


def test_a_compaction_killed_before_removing_the_cell_files_reads_the_same(tmp_path):
    write_cell(tmp_path, "aa", _records("aa", attacked=False), {"x": np.ones((1, 2))})
    write_cell(tmp_path, "bb", _records("bb", attacked=True))
    before = store.read_store(tmp_path)
    kept = {p: p.read_bytes() for p in store.store_dir(tmp_path).rglob("*") if p.is_file()}
    store.compact_store(tmp_path, before)
    for path, data in kept.items():  # the per-cell files are back, as if the kill came before their removal
        path.write_bytes(data)
    again = store.read_store(tmp_path)
    pd.testing.assert_frame_equal(again.records, before.records)  # no cell counted twice
    assert again.loose == {"aa", "bb"} and set(again.examples) == {"aa"}
    store.compact_store(tmp_path, again)
    pd.testing.assert_frame_equal(store.read_store(tmp_path).records, before.records)


def test_compact_examples_store_an_array_shared_by_cells_once(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 1, 8, 8)).astype(np.float32)  # the same inputs in two cells (one model and seed)
    write_cell(tmp_path, "aa", _records("aa", False), {"x": x, "attr": rng.normal(size=x.shape)})
    write_cell(tmp_path, "bb", _records("bb", True), {"x": x.copy(), "attr": rng.normal(size=x.shape)})
    write_cell(tmp_path, "cc", _records("cc", True), {"x": x.astype(np.float64)})  # equal values, other dtype
    before = store.read_store(tmp_path)
    store.compact_store(tmp_path, before)
    with np.load(store.store_dir(tmp_path) / "examples.npz") as data:
        assert sorted(data.files) == ["_same_as", "aa/attr", "aa/x", "bb/attr", "cc/x"]
        assert data["_same_as"].tolist() == [["bb/x", "aa/x"]]
    after = store.read_store(tmp_path).examples
    for cell_id, arrays in before.examples.items():
        assert after[cell_id].keys() == arrays.keys()
        for name, array in arrays.items():
            assert after[cell_id][name].dtype == array.dtype
            np.testing.assert_array_equal(after[cell_id][name], array)
