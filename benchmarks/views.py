"""Leaderboard views: which components make the tables, the rows and the columns, and what is compared.

A leaderboard entry is one (dataset, model, recipe, explainer, attack, metric). A :class:`View`
splits these six components into ``tables`` (one table per combination), ``rows`` and
``columns``; ``compare`` (a subset of ``rows``) names the components whose entries compete: the
entries that agree on every other component form one ranking group, whose rank 1 is tested
against the others (:func:`salbench.leaderboard.summarize`). :data:`DEFAULT_VIEW` is the table
per (dataset, model, recipe) with rows explainer × attack, one column per metric, explainers
compared under each attack. A suite declares more views as ``[[views]]`` tables, e.g. a defence
comparison in the manner of RobustBench (rows = recipes, columns = robustness under each attack,
one table per data set, model and explainer; the clean accuracy of each row's model is a column
whenever ``dataset``, ``model`` or ``recipe`` is a row component)::

    [[views]]
    name = "defences"                         # the files leaderboard_defences.{md,csv,tex,html}
    tables = ["dataset", "model", "explainer"]
    rows = ["recipe"]
    columns = ["attack", "metric"]
    compare = ["recipe"]                      # optional; default: every row component
    metrics = ["topk_intersection"]           # optional; default: every metric

Every component must appear in exactly one of tables, rows and columns, ``metric`` among the
columns (its direction heads the column), and ``dataset``, ``model`` and ``recipe`` (whose model
gives the clean accuracy) in tables or rows.

Example:
    >>> parse_views([{"name": "defences", "tables": ["dataset", "model", "explainer"],
    ...               "rows": ["recipe"], "columns": ["attack", "metric"]}])[0].rank_within
    ('dataset', 'model', 'explainer', 'attack', 'metric')
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

__all__ = ["COMPONENTS", "View", "DEFAULT_VIEW", "parse_views"]

COMPONENTS = ("dataset", "model", "recipe", "explainer", "attack", "metric")
_KEYS = ("name", "tables", "rows", "columns", "compare", "metrics")
_MODEL_KEYS = ("dataset", "model", "recipe")
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


@dataclasses.dataclass(frozen=True)
class View:
    """How a leaderboard is laid out and ranked (see the module docstring).

    Attributes:
        name: the view's name (a file-name-safe word); "default" is :data:`DEFAULT_VIEW`.
        tables, rows, columns: a partition of :data:`COMPONENTS`.
        compare: the row components whose entries are ranked against each other.
        metrics: the metric names shown (registry names, as in the records); empty: all.
    """

    name: str
    tables: tuple[str, ...]
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    compare: tuple[str, ...]
    metrics: tuple[str, ...] = ()

    @property
    def rank_within(self) -> tuple[str, ...]:
        """The components shared by the entries of one ranking group: all but ``compare``."""
        return tuple(c for c in COMPONENTS if c not in self.compare)

    @property
    def accuracy_in_rows(self) -> bool:
        """Whether the clean accuracy varies between the rows of a table (then it is a column)."""
        return any(c in self.rows for c in _MODEL_KEYS)


DEFAULT_VIEW = View("default", ("dataset", "model", "recipe"), ("explainer", "attack"), ("metric",), ("explainer",))


def parse_views(value: Any) -> tuple[View, ...]:
    """The views of a suite's ``[[views]]`` array of tables; a ValueError names the field."""
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ValueError("views: must be an array of tables, written [[views]]")
    views = tuple(_view(table, f"views[{i}]") for i, table in enumerate(value))
    names = [v.name for v in views]
    repeated = sorted({n for n in names if names.count(n) > 1} | ({DEFAULT_VIEW.name} & set(names)))
    if repeated:
        raise ValueError(f"views name: {repeated[0]!r} names two views (or the default view); give each its own name")
    return views


def _view(table: dict[str, Any], where: str) -> View:
    unknown = [k for k in table if k not in _KEYS]
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(_KEYS)}")
    name = table.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"{where} name: give a lower-case word of letters, digits, '_' or '-', got {name!r}")
    parts = {key: _components(table, key, f"{where} {key}") for key in ("tables", "rows", "columns")}
    placed = [c for key in ("tables", "rows", "columns") for c in parts[key]]
    twice = sorted({c for c in placed if placed.count(c) > 1})
    missing = [c for c in COMPONENTS if c not in placed]
    if twice or missing:
        raise ValueError(
            f"{where}: tables, rows and columns must name each of {', '.join(COMPONENTS)} exactly once; "
            + (f"named twice: {', '.join(twice)}" if twice else f"missing: {', '.join(missing)}")
        )
    if "metric" not in parts["columns"]:
        raise ValueError(f"{where} columns: must include metric (its direction, ↑ or ↓, heads the column)")
    outside = [c for c in _MODEL_KEYS if c in parts["columns"]]
    if outside:
        raise ValueError(
            f"{where} columns: {', '.join(outside)} must be in tables or rows (a row's clean accuracy is that of "
            "one model of one data set and recipe)"
        )
    compare = _components(table, "compare", f"{where} compare") if "compare" in table else parts["rows"]
    if not set(compare) <= set(parts["rows"]):
        raise ValueError(f"{where} compare: must be among the rows {list(parts['rows'])}, got {list(compare)}")
    metrics = table.get("metrics", [])
    if not isinstance(metrics, list) or not all(isinstance(m, str) and m for m in metrics):
        raise ValueError(f"{where} metrics: must be a list of metric names, got {metrics!r}")
    return View(name, parts["tables"], parts["rows"], parts["columns"], compare, tuple(metrics))


def _components(table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key)
    if not isinstance(value, list) or not value or not all(v in COMPONENTS for v in value):
        allowed = ", ".join(COMPONENTS)
        raise ValueError(f"{where}: must be a non-empty list of components among {allowed}, got {value!r}")
    return tuple(value)
