"""Leaderboards of a suite's records: mean ± 95% t interval, ranks and clean accuracy, in four formats.

The records are the long format of the store (one row per sample × metric, see
``salbench.store.read_records``). :func:`summarize` reduces them to one row per
(dataset, model, recipe, explainer, attack, metric), :func:`accuracy_table` gives the clean test
accuracy per (dataset, model, recipe), :func:`render` formats both as Markdown, CSV, LaTeX or
HTML, each a pure function of its inputs (``salbench.publish`` writes the files).

Example::

    records = read_records("results/quickstart")
    summary = summarize(records)
    print(render(summary, accuracy_table(records), "markdown", title=leaderboard_title(records)))
"""

from __future__ import annotations

import html
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from salbench.metrics.base import CATEGORIES
from scipy import stats

__all__ = [
    "COMPONENTS",
    "FORMATS",
    "label_components",
    "summarize",
    "clopper_pearson",
    "rejection_indicators",
    "accuracy_table",
    "render",
    "html_body",
    "html_page",
    "leaderboard_title",
]

COMPONENTS = ("dataset", "model", "recipe", "explainer", "attack", "metric")
FORMATS = {"markdown": "md", "csv": "csv", "latex": "tex", "html": "html"}
CONFIDENCE = 0.95
_BENCH = ("dataset", "model", "recipe")  # one leaderboard table per (dataset, model, recipe)
_RANK_WITHIN = ("dataset", "model", "recipe", "attack", "metric")
_NEEDED = (*COMPONENTS, *(f"{k}_params" for k in COMPONENTS), "seed", "value", "category", "higher_is_better")
_SUMMARY_COLUMNS = [
    *COMPONENTS, "category", "higher_is_better", "n", "n_nonfinite", "mean", "std", "ci_low", "ci_high", "rank", "note",
]
SIGNIFICANCE = "significance"
"""The category whose per-sample values are p-values: summarised as the rejection rate at the
metric's ``alpha`` parameter with the exact (Clopper–Pearson) binomial interval."""


# -- component labels ---------------------------------------------------------------------------
def label_components(records: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``records`` whose six component columns hold labels that tell settings apart.

    A component that appears with a single parameter setting keeps its name; one that appears
    with several gets the parameters that differ, e.g. ``smoothgrad(n_samples=16)``. A parameter
    counts as differing only if it takes several values within one seed and one context
    (the data set for a model; data set and model for a recipe; data set, model and recipe for
    an explainer, attack or metric), so a parameter that only follows the suite seed (an
    explainer's ``seed``) or the data set (a model's ``input_shape``, a ``shared`` ε) does not
    split the rows that are pooled over seeds or shown in separate tables anyway.
    """
    _check_columns(records)
    out = records.copy()
    for i, kind in enumerate(COMPONENTS):
        context = [c for k in COMPONENTS[: min(i, 3)] for c in (k, f"{k}_params")] + ["seed"]
        out[kind] = _labels(records, kind, context)
    return out


def _labels(records: pd.DataFrame, kind: str, context: list[str]) -> pd.Series:
    name_col, params_col = kind, f"{kind}_params"
    combos = records[[name_col, params_col, *context]].drop_duplicates().astype(str).drop_duplicates()
    parsed = {p: _parse_params(p) for p in combos[params_col].unique()}
    settings: dict[tuple, list[dict]] = defaultdict(list)  # (name, *context) -> its distinct parameter sets
    for name, params, *where in combos.itertuples(index=False, name=None):
        settings[(name, *where)].append(parsed[params])
    varying: dict[str, set[str]] = defaultdict(set)
    for (name, *_), sets in settings.items():
        keys = set().union(*sets)
        varying[name].update(k for k in keys if len({_compact(s.get(k, "<unset>")) for s in sets}) > 1)

    def label(name: str, params: str) -> str:
        shown = [f"{k}={_compact(parsed[params][k])}" for k in sorted(varying[name]) if k in parsed[params]]
        return f"{name}({', '.join(shown)})" if shown else name

    codes, pairs = pd.factorize(records[name_col].astype(str) + "\x00" + records[params_col].astype(str))
    labels = np.array([label(*pair.split("\x00", 1)) for pair in pairs], dtype=object)
    return pd.Series(labels[codes], index=records.index, dtype=object)


def _parse_params(text: str) -> dict:
    """Parameters from their canonical JSON; an attack-free cell's missing parameters are empty."""
    if text in ("", "None", "nan", "null"):
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"component parameters must be a JSON object, got {text!r}")
    return value


def _compact(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)


def _check_columns(records: pd.DataFrame) -> None:
    if not isinstance(records, pd.DataFrame):
        raise TypeError(
            f"records must be a pandas DataFrame (salbench.store.read_records), got {type(records).__name__}"
        )
    missing = [c for c in _NEEDED if c not in records.columns]
    if missing:
        raise ValueError(f"records lack column(s) {missing}; expected the long format of salbench.store.read_records")


# -- statistics ---------------------------------------------------------------------------------
SUCCESS_METRIC = "attack_success_rate"


def with_attack_success(records: pd.DataFrame) -> pd.DataFrame:
    """``records`` plus, for every attacked sample, a row of the pseudo-metric ``attack_success_rate``.

    Its value is 1.0 where the attack moved the sample (x′ ≠ x while keeping the label), else
    0.0, so its mean is the attack's success rate with the same t interval as every metric;
    category "attack", lower is better (from the explainer's side).
    """
    attacked = records[records["attack_success"].notna()].drop_duplicates(["cell_id", "sample"])
    if attacked.empty:
        return records
    rows = attacked.assign(
        metric=SUCCESS_METRIC, metric_params="{}", category="attack", higher_is_better=False,
        value=attacked["attack_success"].astype("float64"), curve=None, note=None,
    )
    return pd.concat([records, rows], ignore_index=True)


def summarize(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model, recipe, explainer, attack, metric) with mean, 95% CI and rank.

    Attacked cells also get the row ``attack_success_rate`` (see :func:`with_attack_success`).

    Columns: the six component labels (see :func:`label_components`), ``category``,
    ``higher_is_better``, ``n`` (finite per-sample values, pooled over seeds), ``n_nonfinite``
    (NaN/inf values, left out of the statistics and reported beside them), ``mean``, ``std``
    (ddof=1), ``ci_low``/``ci_high`` (the 95% Student-t interval mean ± t₀.₉₇₅,ₙ₋₁·std/√n; NaN when
    n < 2, where it is undefined, so read it with ``n``), ``rank`` (1 = best among the explainers
    within (dataset, model, recipe, attack, metric) by the metric's direction; equal means share
    the lowest rank; <NA> without finite values) and ``note`` (the most common note of the
    non-finite values, None if they have none). The interval treats the pooled per-sample
    values as independent; values of one sample under different seeds are not.

    Significance metrics (p-values) are summarised by their rejection rate: each finite
    p-value becomes the indicator p <= alpha (``alpha`` from the metric's parameters), so
    ``mean`` is the rejection rate (the false positive rate on null data, the power on signal
    data) and ``ci_low``/``ci_high`` is its exact 95% Clopper–Pearson interval.
    """
    frame = label_components(with_attack_success(records))
    values = frame["value"].astype("float64")
    frame["value"] = rejection_indicators(frame, values.where(np.isfinite(values)))
    frame["_note"] = frame["note"] if "note" in frame else None
    grouped = frame.groupby(list(COMPONENTS), sort=False)
    _check_constant(grouped, ("category", "higher_is_better"))
    table = grouped.agg(
        category=("category", "first"),
        higher_is_better=("higher_is_better", "first"),
        n=("value", "count"),
        size=("value", "size"),
        mean=("value", "mean"),
        std=("value", "std"),
        note=("_note", _most_common),
    ).reset_index()
    table["n_nonfinite"] = table.pop("size") - table["n"]
    table["higher_is_better"] = table["higher_is_better"].astype(bool)
    half = _half_width(table["std"].to_numpy(), table["n"].to_numpy())
    table["ci_low"], table["ci_high"] = table["mean"] - half, table["mean"] + half
    rates = table["category"] == SIGNIFICANCE
    low, high = clopper_pearson(table.loc[rates, "mean"] * table.loc[rates, "n"], table.loc[rates, "n"])
    table.loc[rates, "ci_low"], table.loc[rates, "ci_high"] = low, high
    score = table["mean"].where(table["higher_is_better"], -table["mean"])
    rank = score.groupby([table[k] for k in _RANK_WITHIN]).rank(method="min", ascending=False)
    table["rank"] = rank.astype("Int64")
    return _ordered(table)[_SUMMARY_COLUMNS].reset_index(drop=True)


def rejection_indicators(frame: pd.DataFrame, values: pd.Series | None = None) -> pd.Series:
    """``values`` (default: ``frame["value"]``, non-finite as NaN) with each significance metric's
    p-values replaced by 1.0 (p <= alpha, ``alpha`` from its metric_params) or 0.0; NaN stays."""
    if values is None:
        values = frame["value"].astype("float64")
        values = values.where(np.isfinite(values))
    significant = frame["category"] == SIGNIFICANCE
    if not significant.any():
        return values
    alphas = {p: _parse_params(p).get("alpha") for p in frame.loc[significant, "metric_params"].unique()}
    missing = [p for p, a in alphas.items() if not isinstance(a, (int, float)) or not 0 < a < 1]
    if missing:
        raise ValueError(
            f"significance metrics need a parameter alpha in (0, 1) for their rejection rate; metric_params {missing[0]!r}"
        )
    alpha = frame.loc[significant, "metric_params"].map(alphas).astype("float64")
    rejected = (values[significant] <= alpha).astype("float64").where(values[significant].notna())
    return values.where(~significant, rejected)


def clopper_pearson(successes, trials, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """The exact two-sided binomial interval (Clopper–Pearson) of k successes in n trials.

    Lower bound Beta(a/2; k, n − k + 1) (0 when k = 0), upper bound Beta(1 − a/2; k + 1, n − k)
    (1 when k = n), a = 1 − confidence; NaN where n = 0.
    """
    k = np.rint(np.asarray(successes, dtype="float64"))
    n = np.asarray(trials, dtype="float64")
    tail = (1 - confidence) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k > 0, stats.beta.ppf(tail, k, n - k + 1), 0.0)
        high = np.where(k < n, stats.beta.ppf(1 - tail, k + 1, n - k), 1.0)
    empty = n == 0
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)


def _most_common(notes: pd.Series) -> str | None:
    """The most frequent non-null note (ties: the first in sorted order), None if there is none."""
    present = notes.dropna()
    if present.empty:
        return None
    counts = present.value_counts()
    return str(min(counts.index[counts == counts.max()]))


def _half_width(std: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Half-width of the two-sided t interval; NaN where n < 2."""
    n = n.astype("float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        t = stats.t.ppf(0.5 + CONFIDENCE / 2, np.where(n >= 2, n - 1, np.nan))
        return np.where(n >= 2, t * std / np.sqrt(n), np.nan)


def _check_constant(grouped, columns: tuple[str, ...]) -> None:
    for column in columns:
        counts = grouped[column].nunique()
        if (counts > 1).any():
            where = counts[counts > 1].index[0]
            raise ValueError(f"records disagree on {column!r} within {dict(zip(COMPONENTS, where))}")


def _ordered(table: pd.DataFrame) -> pd.DataFrame:
    """Deterministic order: table, attack-free rows first, attack, explainer, category, metric."""
    order = table.assign(
        _attacked=table["attack"] != "none",
        _category=_category_order(table["category"]),
    )
    keys = [*_BENCH, "_attacked", "attack", "explainer", "_category", "metric"]
    return order.sort_values(keys, kind="stable")


def _category_order(category: pd.Series) -> pd.Series:
    return category.map({c: i for i, c in enumerate(CATEGORIES)}).fillna(len(CATEGORIES))


def accuracy_table(records: pd.DataFrame) -> pd.DataFrame:
    """Clean test accuracy per (dataset, model, recipe): ``n_seeds``, ``accuracy`` (mean over the
    seeds' trained models), ``accuracy_min`` and ``accuracy_max``."""
    frame = label_components(records)
    missing = [c for c in ("model_key", "clean_accuracy") if c not in frame.columns]
    if missing:
        raise ValueError(f"records lack column(s) {missing}; expected the long format of salbench.store.read_records")
    models = frame[[*_BENCH, "seed", "model_key", "clean_accuracy"]].drop_duplicates()
    clash = models.duplicated([*_BENCH, "seed"], keep=False)
    if clash.any():
        raise ValueError(
            "records give several models or accuracies for one (dataset, model, recipe, seed): "
            f"{models[clash].head(4).to_dict('records')}"
        )
    out = models.groupby(list(_BENCH), sort=True).agg(
        n_seeds=("seed", "count"),
        accuracy=("clean_accuracy", "mean"),
        accuracy_min=("clean_accuracy", "min"),
        accuracy_max=("clean_accuracy", "max"),
    )
    return out.reset_index()


# -- rendering ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Table:
    """One (dataset, model, recipe) leaderboard: rows explainer × attack, columns metrics."""

    title: str
    note: str
    metrics: list[tuple[str, bool]]  # (metric label, higher_is_better)
    rows: list[tuple[str, str, list[pd.Series | None]]]  # (explainer, attack, entry per metric)


def _tables(summary: pd.DataFrame, accuracy: pd.DataFrame) -> Iterator[_Table]:
    acc = accuracy.set_index(list(_BENCH)) if len(accuracy) else None
    ordered = summary.assign(_category=_category_order(summary["category"]))
    for bench, part in ordered.groupby(list(_BENCH), sort=False):
        by_category = part.sort_values(["_category", "metric"], kind="stable")
        metrics = list(dict.fromkeys(zip(by_category["metric"], by_category["higher_is_better"])))
        entries = {(r["explainer"], r["attack"], r["metric"]): r for _, r in part.iterrows()}
        rows = [
            (e, a, [entries.get((e, a, m)) for m, _ in metrics])
            for e, a in dict.fromkeys(zip(part["explainer"], part["attack"]))
        ]
        ns = sorted(set(part.loc[part["n"] > 0, "n"]))
        n_text = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}–{ns[-1]}" if ns else "n = 0"
        yield _Table(" / ".join(bench), f"{_accuracy_text(acc, bench)} {n_text} per entry.", metrics, rows)


def _accuracy_text(acc: pd.DataFrame | None, bench: tuple) -> str:
    if acc is None or bench not in acc.index:
        return "Clean test accuracy: not recorded."
    row = acc.loc[bench]
    seeds = int(row["n_seeds"])
    spread = f", range {row['accuracy_min']:.3f}–{row['accuracy_max']:.3f}" if seeds > 1 else ""
    return f"Clean test accuracy {row['accuracy']:.3f} (mean over {seeds} seed{'s' * (seeds > 1)}{spread})."


def _decimals(x: float) -> int | None:
    """Decimals giving three significant figures (at least two); None: scientific (tiny or huge)."""
    if x != 0 and (abs(x) < 1e-4 or abs(x) >= 1e6):
        return None
    return 2 if x == 0 else min(6, max(2, 2 - math.floor(math.log10(abs(x)))))


def _fixed(x: float, decimals: int | None) -> str:
    return f"{x:.2e}" if decimals is None else f"{x:.{decimals}f}"


def _entry_text(row: pd.Series | None) -> str:
    """'0.83 ± 0.04' (mean ± half-width, same decimals), '0.052 [0.040, 0.067]' (a significance
    metric's rejection rate and its exact interval), '0.83 (n=1)', '—' (no finite value), or ''
    (the metric does not apply to this row); then how many values are missing and why."""
    if row is None:
        return ""
    decimals = _decimals(row["mean"]) if row["n"] else None
    if row["n"] == 0:
        text = "—"
    elif row["category"] == SIGNIFICANCE:
        text = f"{row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
    elif row["n"] == 1:
        text = f"{_fixed(row['mean'], decimals)} (n=1)"
    else:
        text = f"{_fixed(row['mean'], decimals)} ± {_fixed(row['ci_high'] - row['mean'], decimals)}"
    if row["n_nonfinite"]:
        note = row.get("note")
        text += f" ({row['n_nonfinite']} non-finite" + (f": {note})" if isinstance(note, str) else ")")
    return text


def _is_best(row: pd.Series | None) -> bool:
    return row is not None and not pd.isna(row["rank"]) and row["rank"] == 1


def _arrow(higher: bool) -> str:
    return "↑" if higher else "↓"


_LEGEND = (
    "Entries: mean ± half-width of the 95% Student-t interval over per-sample values pooled over seeds "
    "('n=1': a single value, no interval); for p-values (significance metrics), the rejection rate at the "
    "metric's alpha [exact 95% Clopper–Pearson interval]: the false positive rate on null data, the power "
    "on signal data. Bold: best explainer under the same attack (rank 1). "
    "↑ higher is better, ↓ lower is better."
)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _markdown(summary: pd.DataFrame, accuracy: pd.DataFrame, failures: list[dict], title: str) -> str:
    lines = [f"# {title}", "", _LEGEND, ""]
    for table in _tables(summary, accuracy):
        header = ["explainer", "attack", *(f"{_md_escape(m)} {_arrow(h)}" for m, h in table.metrics)]
        lines += [f"## {_md_escape(table.title)}", "", table.note, ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * 2 + "---:|" * len(table.metrics))
        for explainer, attack, entries in table.rows:
            cells = [f"**{_entry_text(r)}**" if _is_best(r) else _entry_text(r) for r in entries]
            lines.append("| " + " | ".join([_md_escape(explainer), _md_escape(attack), *cells]) + " |")
        lines.append("")
    if summary.empty:
        lines += ["No stored results.", ""]
    if failures:
        lines += [f"## Failed cells ({len(failures)})", "", "| cell | components | error |", "|---|---|---|"]
        for failure in failures:
            cell, parts, error = _failure_fields(failure)
            lines.append(f"| `{cell}` | {_md_escape(parts)} | {_md_escape(error)} |")
        lines.append("")
    return "\n".join(lines)


def _failure_fields(failure: dict) -> tuple[str, str, str]:
    """Short cell id, what the cell was and the first line of the error of a failure record.

    What the cell was: the runner's ``description`` if given, else 'kind=name' of the
    components in ``cell`` (each a name or a {"name", "params"} dict).
    """
    what = failure.get("description")
    if not what:
        cell = failure.get("cell") or {}
        parts = []
        for kind in (*COMPONENTS[:-1], "seed"):
            value = cell.get(kind)
            value = value.get("name") if isinstance(value, dict) else value
            if value is not None:
                parts.append(f"{kind}={value}")
        what = ", ".join(parts)
    error = str(failure.get("error", "")).strip().splitlines()
    return str(failure.get("cell_id", "?"))[:12], what, error[0] if error else "(no message)"


def _csv(summary: pd.DataFrame, accuracy: pd.DataFrame, failures: list[dict], title: str) -> str:
    acc = accuracy.rename(columns={"accuracy": "clean_accuracy"})[[*_BENCH, "n_seeds", "clean_accuracy"]]
    return summary.merge(acc, on=list(_BENCH), how="left").to_csv(index=False, lineterminator="\n")


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}


_TEX_ARROW = {True: r"$\uparrow$", False: r"$\downarrow$"}


def _tex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex(summary: pd.DataFrame, accuracy: pd.DataFrame, failures: list[dict], title: str) -> str:
    lines = [f"% {title}", "% requires \\usepackage{booktabs}", f"% {_LEGEND}"]
    for table in _tables(summary, accuracy):
        header = ["explainer", "attack", *(f"{_tex_escape(m)} {_TEX_ARROW[h]}" for m, h in table.metrics)]
        lines += [
            r"\begin{table}[ht]", r"\centering",
            rf"\caption{{{_tex_escape(table.title)}. {_tex_escape(table.note)}}}",
            rf"\begin{{tabular}}{{ll{'r' * len(table.metrics)}}}", r"\toprule",
            " & ".join(header) + r" \\", r"\midrule",
        ]
        for explainer, attack, entries in table.rows:
            cells = [_tex_escape(_entry_text(r)).replace("±", r"$\pm$") for r in entries]
            cells = [rf"\textbf{{{c}}}" if _is_best(r) else c for c, r in zip(cells, entries)]
            lines.append(" & ".join([_tex_escape(explainer), _tex_escape(attack), *cells]) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 80em;
       padding: 0 1em; color: #222; line-height: 1.4; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.92em; display: block; max-width: 100%;
        overflow-x: auto; }
th, td { padding: 0.3em 0.7em; border-bottom: 1px solid #ddd; vertical-align: top; }
th { border-bottom: 2px solid #555; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; min-width: 8.5em; max-width: 16em;
         overflow-wrap: break-word; }
td.best { font-weight: bold; background: #eef6ee; }
td { max-width: 40em; overflow-wrap: anywhere; }
p.note { color: #555; }
figure { margin: 1em 0 2em; }
figcaption { color: #444; font-size: 0.92em; max-width: 60em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; margin: 0.5em 0; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def html_page(title: str, body: str) -> str:
    """A self-contained HTML page (inline CSS, no external assets) around ``body``."""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


def html_body(summary: pd.DataFrame, accuracy: pd.DataFrame, failures: Iterable[dict] = ()) -> str:
    """The leaderboard tables (and failed cells) as an HTML fragment, for pages and reports."""
    esc = html.escape
    parts = [f"<p class=\"note\">{esc(_LEGEND)}</p>"]
    for table in _tables(summary, accuracy):
        head = "".join(f"<th>{esc(m)} {_arrow(h)}</th>" for m, h in table.metrics)
        parts += [f"<h2>{esc(table.title)}</h2>", f"<p class=\"note\">{esc(table.note)}</p>",
                  f"<table>\n<tr><th>explainer</th><th>attack</th>{head}</tr>"]
        for explainer, attack, entries in table.rows:
            cells = "".join(
                f"<td class=\"num{' best' if _is_best(r) else ''}\">{esc(_entry_text(r))}</td>" for r in entries
            )
            parts.append(f"<tr><td>{esc(explainer)}</td><td>{esc(attack)}</td>{cells}</tr>")
        parts.append("</table>")
    if summary.empty:
        parts.append("<p>No stored results.</p>")
    failures = list(failures)
    if failures:
        parts += [f"<h2>Failed cells ({len(failures)})</h2>",
                  "<table>\n<tr><th>cell</th><th>components</th><th>error</th></tr>"]
        for failure in failures:
            cell, components, error = _failure_fields(failure)
            parts.append(f"<tr><td><code>{esc(cell)}</code></td><td>{esc(components)}</td><td>{esc(error)}</td></tr>")
        parts.append("</table>")
    return "\n".join(parts)


def _html(summary: pd.DataFrame, accuracy: pd.DataFrame, failures: list[dict], title: str) -> str:
    return html_page(title, html_body(summary, accuracy, failures))


_RENDERERS: dict[str, Callable[[pd.DataFrame, pd.DataFrame, list[dict], str], str]] = {
    "markdown": _markdown, "csv": _csv, "latex": _latex, "html": _html,
}


def render(
    summary: pd.DataFrame,
    accuracy: pd.DataFrame,
    fmt: str,
    *,
    failures: Iterable[dict] = (),
    title: str = "Leaderboard",
) -> str:
    """The leaderboard as text in ``fmt``: "markdown", "csv", "latex" or "html".

    ``summary`` comes from :func:`summarize`, ``accuracy`` from :func:`accuracy_table`. Markdown,
    LaTeX and HTML give one table per (dataset, model, recipe) with rows explainer × attack and
    one column per metric (↑/↓ in its header), entries "mean ± half-width" with rank 1 in bold,
    empty where a metric does not apply (attack-free metrics appear in the attack "none" rows).
    Markdown and HTML also list ``failures`` (dicts with cell_id, error, cell). CSV is the tidy
    summary, all numbers at full precision, with the clean accuracy joined on.
    LaTeX needs ``\\usepackage{booktabs}``.
    """
    if fmt not in _RENDERERS:
        raise ValueError(f"fmt must be one of {sorted(_RENDERERS)}, got {fmt!r}")
    return _RENDERERS[fmt](summary, accuracy, list(failures), title)


def leaderboard_title(records: pd.DataFrame) -> str:
    """'Leaderboard: <suites> (config <hash prefixes>)' of ``records``."""
    suites = sorted(records["suite"].astype(str).unique()) if "suite" in records else []
    hashes = sorted(records["config_hash"].astype(str).unique()) if "config_hash" in records else []
    title = f"Leaderboard: {', '.join(suites)}" if suites else "Leaderboard"
    return f"{title} (config {', '.join(h[:12] for h in hashes)})" if hashes else title
