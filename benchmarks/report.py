"""The self-contained HTML report of a results directory: metadata, leaderboard and figures.

:func:`report` reads the store of ``out_dir``, (re)draws the figures into ``out_dir/figures``
and writes ``out_dir/report.html``: the suite's metadata (name, config hash, cells, seeds,
package versions), the leaderboard tables and every figure embedded as a base64 PNG data URI,
with inline CSS, so the one file can be mailed or archived without any external asset.

Example::

    report("results/quickstart")   # -> Path("results/quickstart/report.html")
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd
from salbench.figures import write_figures
from salbench.leaderboard import accuracy_table, html_body, html_page, summarize
from salbench.store import atomic_write_bytes, read_failures, read_records

__all__ = ["report"]

_FIGURE_SECTIONS = (
    ("heatmap_", "Robustness heatmaps"),
    ("curves_", "Insertion / deletion curves"),
    ("examples_", "Examples"),
)


def report(out_dir: str | Path) -> Path:
    """Write ``out_dir/report.html`` (and the figures in ``out_dir/figures``); returns its path."""
    out_dir = Path(out_dir)
    records = read_records(out_dir)
    if records.empty:
        raise ValueError(f"no stored records under {out_dir / 'store'}; run a suite first")
    failures = read_failures(out_dir)
    figures = write_figures(records, out_dir)
    body = "\n".join([
        _metadata_html(records, len(failures)),
        html_body(summarize(records), accuracy_table(records), failures),
        _figures_html(figures),
    ])
    suites = ", ".join(sorted(records["suite"].astype(str).unique()))
    path = out_dir / "report.html"
    atomic_write_bytes(path, html_page(f"salbench report: {suites}", body).encode("utf-8"))
    return path


def _metadata_html(records: pd.DataFrame, n_failed: int) -> str:
    """A table of what the records came from: suite, config hash, cells, seeds, versions."""
    per_cell = records.groupby("cell_id")["sample"].nunique()
    low, high = per_cell.min(), per_cell.max()
    rows = [
        ("suite", ", ".join(sorted(records["suite"].astype(str).unique()))),
        ("config hash", ", ".join(sorted(records["config_hash"].astype(str).unique()))),
        ("cells stored", str(records["cell_id"].nunique())),
        ("cells failed", str(n_failed)),
        ("seeds", ", ".join(str(s) for s in sorted(records["seed"].unique()))),
        ("samples per cell", f"{low}" if low == high else f"{low}–{high}"),
    ]
    cells_by_versions = records.groupby("versions")["cell_id"].nunique().sort_index()
    for text, n_cells in cells_by_versions.items():
        versions = ", ".join(f"{k} {v}" for k, v in sorted(json.loads(text).items()))
        label = "versions" if len(cells_by_versions) == 1 else f"versions ({n_cells} cells)"
        rows.append((label, versions))
    cells = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<h2>Run</h2>\n<table>\n{cells}\n</table>"


def _figures_html(paths: list[Path]) -> str:
    """Each figure as an <img> with a base64 PNG data URI, in sections by kind."""
    parts = ["<h2>Figures</h2>"] if paths else []
    for prefix, heading in _FIGURE_SECTIONS:
        chosen = [p for p in paths if p.name.startswith(prefix)]
        if chosen:
            parts.append(f"<h3>{html.escape(heading)}</h3>")
        for path in chosen:
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            name = html.escape(path.stem)
            image = f'<img src="data:image/png;base64,{data}" alt="{name}">'
            parts.append(f"<figure>{image}<figcaption>{name}</figcaption></figure>")
    return "\n".join(parts)
