"""The HTML report of a results directory: metadata, leaderboard and figures on one page.

:func:`report_html` renders a :class:`~salbench.results.Results` and the figures drawn from it
as one HTML page (inline CSS, no script, nothing fetched from elsewhere): the suite's metadata
(name, config hash, cells, seeds, package versions), the leaderboard tables and every figure,
referenced by its path relative to the page (``figures/<name>.png``), so the page stays small
and shows its figures wherever the results folder is copied, each with its caption (the
figure's title, :func:`salbench.figures.figure_caption`). ``salbench.publish`` writes it as
``report.html``.

Example::

    html = report_html(load_results("results/quickstart"),
                       [("figures/heatmap_spearman.png", "spearman (↑ higher is better; ...)")])
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import PurePosixPath

from salbench.leaderboard import html_body, html_page
from salbench.results import Results

__all__ = ["report_html"]

_FIGURE_SECTIONS = (
    ("heatmap_", "Robustness heatmaps"),
    ("curves_", "Insertion / deletion curves"),
    ("rejection_", "Rejection rates of p-values"),
    ("qq_", "p-values against the uniform distribution"),
    ("compare_", "Explainers side by side"),
    ("examples_", "Examples"),
)


def report_html(results: Results, figures: Sequence[tuple[str, str]]) -> str:
    """The report page of ``results``; ``figures`` are (path relative to the page, caption) of
    each figure file (e.g. ``("figures/heatmap_spearman.png", "spearman ...")``), shown in
    sections by kind."""
    records = results.records
    body = "\n".join([
        _metadata_html(results),
        html_body(results.summary, results.accuracy, results.failures),
        _figures_html(figures),
    ])
    suites = ", ".join(sorted(records["suite"].astype(str).unique()))
    return html_page(f"salbench report: {suites}", body)


def _metadata_html(results: Results) -> str:
    """A table of what the records came from: suite, config hash, cells, seeds, versions."""
    records = results.records
    per_cell = records.groupby("cell_id")["sample"].nunique()
    low, high = per_cell.min(), per_cell.max()
    rows = [
        ("suite", ", ".join(sorted(records["suite"].astype(str).unique()))),
        ("config hash", ", ".join(sorted(records["config_hash"].astype(str).unique()))),
        ("cells stored", str(records["cell_id"].nunique())),
        ("cells failed", str(len(results.failures))),
        ("seeds", _seeds_text(records["seed"].unique())),
        ("samples per cell", f"{low}" if low == high else f"{low}–{high}"),
    ]
    cells_by_versions = records.groupby("versions")["cell_id"].nunique().sort_index()
    for text, n_cells in cells_by_versions.items():
        versions = ", ".join(f"{k} {v}" for k, v in sorted(json.loads(text).items()))
        label = "versions" if len(cells_by_versions) == 1 else f"versions ({n_cells} cells)"
        rows.append((label, versions))
    cells = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<h2>Run</h2>\n<table>\n{cells}\n</table>"


def _seeds_text(seeds) -> str:
    """How many seeds and which: ``1 (seed 0)``, ``3 (seeds 0, 1, 2)``.

    >>> _seeds_text([2, 0, 1])
    '3 (seeds 0, 1, 2)'
    >>> _seeds_text([0])
    '1 (seed 0)'
    """
    listed = ", ".join(str(s) for s in sorted(seeds))
    return f"{len(seeds)} (seed{'s' if len(seeds) > 1 else ''} {listed})"


def _figures_html(figures: Sequence[tuple[str, str]]) -> str:
    """Each figure as an <img> referring to its file, with its caption, in sections by kind."""
    parts = ["<h2>Figures</h2>"] if figures else []
    for prefix, heading in _FIGURE_SECTIONS:
        chosen = [(f, c) for f, c in figures if PurePosixPath(f).name.startswith(prefix)]
        if chosen:
            parts.append(f"<h3>{html.escape(heading)}</h3>")
        for figure, caption in chosen:
            image = f'<img src="{html.escape(figure)}" alt="{html.escape(caption)}" loading="lazy">'
            parts.append(f"<figure>{image}<figcaption>{html.escape(caption)}</figcaption></figure>")
    return "\n".join(parts)
