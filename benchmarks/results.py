"""The results of a suite run as one object, built once from the store and handed to every renderer.

:func:`load_results` reads a results directory's store once (:func:`salbench.store.read_store`)
and its ``provenance.json`` if there is one, and builds a :class:`Results`: the records, their
leaderboard summary (default view), the summaries of the suite's declared views
(``[[views]]``, :mod:`salbench.views`) and clean accuracy (computed here, once), the failed
cells, the examples for figures, the provenance and the suite's commentary. The leaderboards, figures, ``report.html``
and the results README are drawn from it by :mod:`salbench.publish` without reading the store
again.

Example::

    results = load_results("results/quickstart")
    results.summary.groupby("metric")["mean"].max()
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from salbench import store
from salbench.leaderboard import accuracy_table, leaderboard_title, summarize
from salbench.suite import SUITES_DIR
from salbench.views import View, parse_views

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["Results", "build_results", "load_results", "commentary_path", "suite_views"]


@dataclasses.dataclass(frozen=True)
class Results:
    """Everything the renderers need, computed once.

    Attributes:
        records: the store's records (long format, see :func:`salbench.store.read_records`).
        summary: one row per leaderboard entry (:func:`salbench.leaderboard.summarize`, default view).
        accuracy: clean test accuracy per model (:func:`salbench.leaderboard.accuracy_table`).
        failures: the failed cells' records (error, traceback, cell), sorted by cell id.
        examples: cell id -> the cell's stored example arrays, for the figures.
        title: the leaderboards' title (suites and config hashes of the records).
        provenance: the run's ``provenance.json`` (command, versions, time, ...), None without one.
        commentary: the suite's commentary (``benchmarks/suites/<name>.md``) with its
            placeholders unfilled, None without provenance or commentary file.
        views: (view, its summary) for each view the suite declares, in declaration order.
    """

    records: pd.DataFrame
    summary: pd.DataFrame
    accuracy: pd.DataFrame
    failures: tuple[dict[str, Any], ...]
    examples: Mapping[str, Mapping[str, np.ndarray]]
    title: str
    provenance: Mapping[str, Any] | None = None
    commentary: str | None = None
    views: tuple[tuple[View, pd.DataFrame], ...] = ()

    def with_provenance(self, info: Mapping[str, Any]) -> Results:
        """These results with ``info`` as their provenance and the commentary it points to."""
        path = commentary_path(info)
        return dataclasses.replace(self, provenance=info, commentary=path.read_text() if path else None)


def build_results(
    records: pd.DataFrame,
    failures: tuple[dict[str, Any], ...] = (),
    examples: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    provenance: Mapping[str, Any] | None = None,
    views: tuple[View, ...] = (),
) -> Results:
    """:class:`Results` of ``records`` (the store's long format): summarised here, once, in the
    default view and in each of ``views``.

    ``records`` must hold at least one row; ``provenance`` (if given) also brings in the
    suite's commentary.
    """
    if records.empty:
        raise ValueError("records are empty: there is nothing to summarise; run a suite first")
    results = Results(
        records=records,
        summary=summarize(records),
        accuracy=accuracy_table(records),
        failures=tuple(failures),
        examples=dict(examples or {}),
        title=leaderboard_title(records),
        views=tuple((view, summarize(records, view)) for view in views),
    )
    return results if provenance is None else results.with_provenance(provenance)


def load_results(out_dir: str | Path, *, compact: bool = False, views: tuple[View, ...] | None = None) -> Results:
    """The :class:`Results` of a results directory: its store, read once, and its provenance.

    With ``compact=True`` the cells stored since the last compaction are folded into the store's
    compact files from what was just read (:func:`salbench.store.compact_store`). ``views``
    (default: those of the suite named in ``provenance.json``, :func:`suite_views`; none without
    provenance) are the leaderboard views summarised besides the default one.
    """
    out_dir = Path(out_dir)
    stored = store.read_store(out_dir)
    if stored.records.empty:
        raise ValueError(f"no stored records under {store.store_dir(out_dir)}; run a suite first")
    if compact:
        store.compact_store(out_dir, stored)
    provenance_file = out_dir / "provenance.json"
    provenance = json.loads(provenance_file.read_text()) if provenance_file.exists() else None
    if views is None:
        views = suite_views(provenance) if provenance is not None else ()
    return build_results(stored.records, stored.failures, stored.examples, provenance, views)


def commentary_path(info: Mapping[str, Any]) -> Path | None:
    """``benchmarks/suites/<name>.md`` beside the suite's TOML named in provenance ``info`` (looked
    up by suite name if the recorded source path is from another checkout); None if there is none."""
    return _suite_file(info, ".md")


def suite_views(info: Mapping[str, Any]) -> tuple[View, ...]:
    """The ``[[views]]`` of the suite TOML named in provenance ``info`` (found as
    :func:`commentary_path` finds the commentary); none if the file is not found."""
    path = _suite_file(info, ".toml")
    if path is None:
        return ()
    try:
        return parse_views(tomllib.loads(path.read_text(encoding="utf-8")).get("views", []))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def _suite_file(info: Mapping[str, Any], suffix: str) -> Path | None:
    for candidate in (Path(info.get("source", "")).with_suffix(suffix), SUITES_DIR / f"{info['suite']}{suffix}"):
        if candidate.is_file():
            return candidate
    return None
