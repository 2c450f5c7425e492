"""Everything a results directory shows, drawn from one :class:`~salbench.results.Results`.

:func:`publish` is the one path of ``salbench run`` (after the grid) and ``salbench report``:
it reads the store once (:func:`~salbench.results.load_results`, compacting the cells stored
since the last time), then writes, each file atomically, the leaderboards
(``leaderboard.{md,csv,tex,html}``, one ``leaderboard_<view>.{md,csv,tex,html}`` per view the
suite declares, and the per-seed means ``leaderboard_seeds.{csv,md}``), the agreement between
the metrics' rankings of the explainers (``metric_agreement.{csv,md}``, :mod:`salbench.agreement`,
where the suite has enough explainers and metrics), the figures
(``figures/``), ``report.html`` and, where the run's provenance is known, ``provenance.json``
(for a run just finished) and ``README.md``.
``salbench leaderboard`` writes only the leaderboards (:func:`write_leaderboards`).

Example::

    published = publish("results/quickstart")     # redraw everything from the stored records
    print(published.markdown)
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from salbench.agreement import agreement_markdown, agreement_table, applies
from salbench.figures import figure_caption, write_figures
from salbench.leaderboard import FORMATS, render, seed_table
from salbench.provenance import provenance_info, readme_text
from salbench.report import report_html
from salbench.results import Results, load_results
from salbench.runner import RunSummary
from salbench.store import atomic_write_bytes
from salbench.suite import Suite
from salbench.views import DEFAULT_VIEW

__all__ = ["Run", "Published", "publish", "write_leaderboards", "write_agreement"]


@dataclasses.dataclass(frozen=True)
class Run:
    """The run whose results are published: its suite, its grid's summary, the command line and
    when the command started (``time.perf_counter()``), for ``provenance.json``."""

    suite: Suite
    summary: RunSummary
    argv: list[str]
    started: float


@dataclasses.dataclass(frozen=True)
class Published:
    """What :func:`publish` drew and wrote: the results it drew from, the Markdown leaderboard's
    text, the report's path and the README's path (None without provenance)."""

    results: Results
    markdown: str
    report: Path
    readme: Path | None


def write_leaderboards(results: Results, out_dir: str | Path, formats: Iterable[str] = tuple(FORMATS)) -> str:
    """Write ``leaderboard.<ext>`` (the default view) and ``leaderboard_<view>.<ext>`` (each declared
    view) into ``out_dir`` for each of ``formats`` (markdown, csv, latex, html), and the per-seed
    means of the default view's entries as ``leaderboard_seeds.csv`` (with "csv") and
    ``leaderboard_seeds.md`` (with "markdown"), atomically. Returns the default view's Markdown
    leaderboard (also when "markdown" is not among them)."""
    formats = list(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown leaderboard format(s) {unknown}; allowed: {list(FORMATS)}")
    out_dir = Path(out_dir)
    boards = [("leaderboard", results.summary, DEFAULT_VIEW)]
    boards += [(f"leaderboard_{view.name}", summary, view) for view, summary in results.views]
    markdown = render(results.summary, results.accuracy, "markdown", failures=results.failures, title=results.title)
    for stem, summary, view in boards:
        title = results.title if view is DEFAULT_VIEW else f"{results.title}, view {view.name}"
        for fmt in formats:
            text = render(summary, results.accuracy, fmt, failures=results.failures, title=title, view=view)
            atomic_write_bytes(out_dir / f"{stem}.{FORMATS[fmt]}", text.encode("utf-8"))
    seeds = seed_table(results.summary)
    if "csv" in formats:
        atomic_write_bytes(out_dir / "leaderboard_seeds.csv", seeds.to_csv(index=False, lineterminator="\n").encode())
    if "markdown" in formats:
        atomic_write_bytes(out_dir / "leaderboard_seeds.md", _seeds_markdown(results.title, seeds).encode("utf-8"))
    return markdown


def write_agreement(results: Results, out_dir: str | Path) -> list[Path]:
    """Write ``metric_agreement.csv`` (τ per group and pair of metrics) and ``metric_agreement.md``
    (their mean, and per group) when :func:`salbench.agreement.applies` to the default view's
    summary; otherwise remove such files left by an earlier run, so none outlives its records.
    Returns the paths written."""
    out_dir = Path(out_dir)
    paths = [out_dir / "metric_agreement.csv", out_dir / "metric_agreement.md"]
    if not applies(results.summary):
        for path in paths:
            path.unlink(missing_ok=True)
        return []
    table = agreement_table(results.summary)
    atomic_write_bytes(paths[0], table.to_csv(index=False, lineterminator="\n").encode())
    atomic_write_bytes(paths[1], agreement_markdown(table, results.title).encode("utf-8"))
    return paths


def _seeds_markdown(title: str, seeds: pd.DataFrame) -> str:
    """The per-seed table as Markdown: one row per entry, seed and population."""
    lines = [
        f"# Per-seed means: {title}", "",
        (
            "One row per leaderboard entry and seed: n finite values and their mean, over the population the "
            "leaderboard ranks (moved: the samples the attack moved; all: every evaluated sample)."
        ),
        "",
        "| " + " | ".join(seeds.columns) + " |", "|" + "---|" * (len(seeds.columns) - 2) + "---:|---:|",
    ]
    for row in seeds.itertuples(index=False):
        *labels, n, mean = row
        lines.append("| " + " | ".join([*(str(v).replace("|", "\\|") for v in labels), str(n), f"{mean:.4g}"]) + " |")
    return "\n".join(lines) + "\n"


def publish(out_dir: str | Path, run: Run | None = None) -> Published:
    """Draw every output of the results directory ``out_dir`` from its store, read once.

    With ``run`` (``salbench run``), ``provenance.json`` is written for it, after the figures so
    that its wall time covers them; without (``salbench report``), the folder's existing
    ``provenance.json`` is kept as it is. ``README.md`` is written whenever there is provenance.
    """
    out_dir = Path(out_dir)
    results = load_results(out_dir, compact=True, views=None if run is None else run.suite.views)
    markdown = write_leaderboards(results, out_dir)
    write_agreement(results, out_dir)
    drawn = write_figures(results, out_dir)
    figures = [p.relative_to(out_dir).as_posix() for p in drawn]
    report = out_dir / "report.html"
    captioned = list(zip(figures, map(figure_caption, drawn)))
    atomic_write_bytes(report, report_html(results, captioned).encode("utf-8"))
    if run is not None:
        info = provenance_info(run.suite, run.summary, run.argv, wall_s=time.perf_counter() - run.started)
        atomic_write_bytes(out_dir / "provenance.json", json.dumps(info, indent=2).encode())
        results = results.with_provenance(info)
    readme = None
    if results.provenance is not None:
        readme = out_dir / "README.md"
        atomic_write_bytes(readme, readme_text(results, figures).encode())
    return Published(results, markdown, report, readme)
