"""The results object: built once from the store, with the summary, provenance and commentary."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from salbench import store
from salbench.leaderboard import summarize
from salbench.results import build_results, load_results
from salbench.suite import SUITES_DIR

from .test_store import _records


def test_load_results_reads_the_store_once_and_compacts_only_when_asked(tmp_path, monkeypatch):
    store.write_cell(tmp_path, "aa", _records("aa", attacked=False), {"x": np.ones((2, 3))})
    store.write_failure(tmp_path, "bb", {"error": "ValueError: boom"})
    reads = []
    read_store = store.read_store
    monkeypatch.setattr(store, "read_store", lambda out_dir: reads.append(out_dir) or read_store(out_dir))
    results = load_results(tmp_path)
    assert len(reads) == 1 and (store.store_dir(tmp_path) / "cells" / "aa.parquet").exists()
    pd.testing.assert_frame_equal(results.summary, summarize(results.records))
    assert [f["cell_id"] for f in results.failures] == ["bb"] and set(results.examples) == {"aa"}
    assert results.title == "Leaderboard: s (config cccccccccccc)" and results.provenance is None
    compacted = load_results(tmp_path, compact=True)
    assert not (store.store_dir(tmp_path) / "cells" / "aa.parquet").exists()
    pd.testing.assert_frame_equal(compacted.records, results.records)


def test_provenance_brings_the_suites_commentary(tmp_path):
    info = {"suite": "plausible", "source": str(tmp_path / "elsewhere" / "plausible.toml")}
    (tmp_path / "provenance.json").write_text(json.dumps(info))
    store.write_cell(tmp_path, "aa", _records("aa", attacked=False))
    results = load_results(tmp_path)
    assert results.provenance == info  # as recorded, never re-dated
    assert results.commentary == (SUITES_DIR / "plausible.md").read_text()  # found by name from another checkout
    mine = tmp_path / "mine.toml"
    mine.with_suffix(".md").write_text("my notes")
    assert results.with_provenance({"suite": "mine", "source": str(mine)}).commentary == "my notes"
    elsewhere = {"suite": "no_such_suite", "source": str(mine.with_name("x.toml"))}
    assert results.with_provenance(elsewhere).commentary is None


def test_no_records_is_an_error_that_names_the_store(tmp_path):
    with pytest.raises(ValueError, match=f"no stored records under {tmp_path}/store"):
        load_results(tmp_path)
    with pytest.raises(ValueError, match="records are empty"):
        build_results(_records("aa", attacked=False).iloc[:0])
