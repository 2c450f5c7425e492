"""The ``salbench`` command line, end to end on the tiny fixture suite."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from salbench import attacks, explainers, metrics, store
from salbench.cli import KINDS, main

TINY = Path(__file__).parent / "suites" / "tiny.toml"


def test_list_prints_every_component_with_parameters_and_metric_directions(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for kind in KINDS:
        assert f"{kind}:" in out
    for name in explainers.names() + attacks.names() + metrics.names():
        assert f"  {name}" in out
    assert "      steps: int = 50" in out  # integrated_gradients' parameter with its default
    for name in metrics.names():
        entry = metrics.registry.entry(name)
        arrow = "↑ higher is better" if entry.attrs["higher_is_better"] else "↓ lower is better"
        assert f"  {name} [{entry.attrs['category']}, {arrow}]:" in out


def test_list_shows_every_registry_with_its_declarations(capsys):
    from salbench.attacks import candidates

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "  gradcam: Grad-CAM" in out and "      (modalities: image, volume, signal; requires: conv)" in out
    assert "      (modalities: text; requires: -; inputs: vocabulary, corpus; baseline: no)" in out  # dare
    assert "      (modalities: text; requires: -; inputs: vocabulary, corpus; baseline: yes)" in out  # random_synonym
    assert (  # selective_pvalue: its requirement depends on its parameter region
        "      (modalities: image; requires: gap_head if region='cam', conv if region='gradcam'; uses_explainer: no; "
        "needs_attack: no)"
    ) in out
    assert "      (modality: tabular; masks: no)" in out and "      (modality: image; masks: if the files have them)" in out
    assert "      (modality: volume; masks: yes)" in out and "      (provides: conv, gap_head)" in out and "      (provides: -)" in out
    listing = out.split("candidate_sources:")[1]
    for name in candidates.names():  # every source, with its inherited parameters
        assert f"  {name}: " in listing
    assert listing.count("      max_candidates: int = 10") == len(candidates.names())
    topk = out.split("\n  topk: ")[1].split("\n\n")[0]  # the last attack listed
    assert "surrogate_beta: float | None = 10.0" in topk and "k: int = 50" in topk


def test_list_one_kind(capsys):
    assert main(["list", "attacks"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("attacks:") and "topk" in out and "explainers:" not in out


def test_run_writes_leaderboards_report_and_provenance(tmp_path, capsys, salbench_cache_dir):
    out_dir = tmp_path / "tiny"
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY.read_text())
    (tmp_path / "tiny.md").write_text("## What this shows\n\nfirst commentary\n")
    assert main(["run", str(suite), "--out", str(out_dir), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "# Leaderboard: tiny" in printed and "topk_intersection ↑" in printed
    assert printed.startswith(  # what the declarations drop, before any work
        "dropped wdbc/mlp/standard seed 0: gradcam × none: explainer 'gradcam' applies to image, volume, signal "
        "data, not tabular\n"
    )
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.tex", "leaderboard.html", "report.html", "README.md"):
        assert (out_dir / name).stat().st_size > 0, name
    provenance = json.loads((out_dir / "provenance.json").read_text())
    assert provenance["suite"] == "tiny" and provenance["cells"]["failed"] == 0
    assert provenance["versions"]["torch"] != "not installed"
    assert "--out" in provenance["command"]
    # a rerun reuses every stored cell and gives the same leaderboard
    before = (out_dir / "leaderboard.csv").read_text()
    assert "first commentary" in (out_dir / "README.md").read_text()
    assert main(["run", str(suite), "--out", str(out_dir), "--quiet"]) == 0
    assert json.loads((out_dir / "provenance.json").read_text())["cells"]["run"] == 0
    assert (out_dir / "leaderboard.csv").read_text() == before
    assert main(["leaderboard", str(out_dir), "--format", "csv"]) == 0
    # a commentary written after the run reaches the README through `salbench report`
    (tmp_path / "tiny.md").write_text("## What this shows\n\nsecond commentary\n")
    assert main(["report", str(out_dir)]) == 0
    readme = (out_dir / "README.md").read_text()
    assert "second commentary" in readme and "first commentary" not in readme and "topk_intersection" in readme


def test_run_reads_the_store_once_and_leaves_it_compact(tmp_path, monkeypatch, capsys, salbench_cache_dir):
    reads, full_file_reads = [], []
    read_store, read_table = store.read_store, pq.read_table

    def counted_read_store(out_dir):
        reads.append(out_dir)
        return read_store(out_dir)

    def counted_read_table(source, *args, **kwargs):
        if kwargs.get("columns") is None:  # the runner's listing of done cells reads only their ids
            full_file_reads.append(str(source))
        return read_table(source, *args, **kwargs)

    monkeypatch.setattr(store, "read_store", counted_read_store)
    monkeypatch.setattr(pq, "read_table", counted_read_table)
    out_dir = tmp_path / "tiny"
    for run in ("fresh", "resumed"):
        reads.clear(), full_file_reads.clear()
        assert main(["run", str(TINY), "--out", str(out_dir), "--quiet"]) == 0, run
        assert len(reads) == 1, run  # leaderboards, figures, report and README all come from one read
        assert len(full_file_reads) == len(set(full_file_reads)) > 0, run  # and no store file is read twice
        files = sorted(p.name for p in (out_dir / "store").rglob("*") if p.is_file())
        assert files == ["examples.npz", "records.parquet"], run  # the cells folded into two files
    assert full_file_reads == [str(out_dir / "store" / "records.parquet")]
    printed = capsys.readouterr().out
    assert printed.count("# Leaderboard: tiny") == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "no_such_suite"], "no_such_suite"),
        (["leaderboard", "/nonexistent/dir"], "no stored records under /nonexistent/dir"),
    ],
)
def test_user_errors_are_one_clear_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("salbench: error: ") and message in err and "Traceback" not in err
