"""Leaderboards of a suite's records: seed-level estimates, tested "best", attack accounting, views.

The records are the long format of the store (one row per sample × metric, see
``salbench.store.read_records``). :func:`summarize` reduces them to one row per entry
(dataset, model, recipe, explainer, attack, metric), :func:`seed_table` lists its per-seed means,
:func:`accuracy_table` gives the clean test accuracy per (dataset, model, recipe) and
:func:`render` formats a :class:`~salbench.views.View` of them as Markdown, CSV, LaTeX or HTML,
each a pure function of its inputs (``salbench.publish`` writes the files).

Method (details in :func:`summarize`):

* The seed is the unit of replication (it trains the model, draws the samples, seeds the
  explainer and the attack). An entry's estimate is the mean over seeds of the per-seed means;
  its 95% interval is the percentile interval of a hierarchical bootstrap (seeds resampled, then
  samples within each drawn seed; 2000 replicates with a fixed seed, so the output is
  deterministic: :mod:`salbench.seedstats`). With one seed it is the sample bootstrap: an interval
  within that seed only, as the table's note says. p-values (significance metrics) become the
  rejection rate pooled over seeds with its exact Clopper–Pearson interval.
* Rank 1 of a ranking group (the entries that differ only in the view's ``compare``
  components: by default the explainers under one attack) is compared with every other entry:
  one-sided Wilcoxon signed-rank test where both hold the same (seed, sample) pairs, otherwise
  (different samples: never paired) a bootstrap test of the difference from their independent
  hierarchical-bootstrap replicates; p-values Holm-corrected within the view's table. Bold only
  when rank 1 is significantly better than every other entry; otherwise it and the entries not
  significantly worse than it are marked '≈'.
* Attack accounting: per attacked entry the samples the attack moved (x′ ≠ x), those that kept
  the label, and robustness over the moved samples (ranked) and over all evaluated samples; a
  noise baseline (an attack declaring ``baseline = True``) moves every sample by construction,
  gets no success rate and is estimated over all samples.

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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from salbench import attacks, seedstats
from salbench.metrics.base import CATEGORIES
from salbench.views import COMPONENTS, DEFAULT_VIEW, View
from scipy import stats

__all__ = [
    "COMPONENTS",
    "FORMATS",
    "MOVED",
    "label_components",
    "is_baseline",
    "summarize",
    "seed_table",
    "clopper_pearson",
    "rejection_indicators",
    "entry_values",
    "accuracy_table",
    "render",
    "html_body",
    "html_page",
    "leaderboard_title",
]

FORMATS = {"markdown": "md", "csv": "csv", "latex": "tex", "html": "html"}
CONFIDENCE = 0.95
_BENCH = ("dataset", "model", "recipe")  # one leaderboard table per (dataset, model, recipe)
_NEEDED = (
    *COMPONENTS, *(f"{k}_params" for k in COMPONENTS), "seed", "sample", "value", "category", "higher_is_better",
    "attack_success", "label_kept",
)
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
def is_baseline(attack: str) -> bool:
    """Whether the registered attack ``attack`` declares itself a noise baseline (``baseline = True``)."""
    if attack == "none":
        return False
    if attack not in attacks.registry:
        raise ValueError(
            f"attack {attack!r} of the records is not registered in this process, so whether it is a noise "
            "baseline is unknown; import the plugin that registers it (the suite's plugins) first"
        )
    return bool(attacks.registry.entry(attack).attrs["baseline"])


def summarize(records: pd.DataFrame, view: View = DEFAULT_VIEW) -> pd.DataFrame:
    """One row per (dataset, model, recipe, explainer, attack, metric): seed-level estimate,
    hierarchical bootstrap interval, attack accounting, rank and the paired comparison with rank 1.

    ``view`` (default :data:`~salbench.views.DEFAULT_VIEW`) decides which entries are ranked
    against each other (its ``rank_within`` components are shared by a ranking group), the table
    a Holm family spans (its ``tables``) and which metrics are kept (its ``metrics``).

    Populations: an attacked entry whose attack is not a noise baseline (:func:`is_baseline`) is
    estimated and ranked over the samples the attack moved (x′ ≠ x, ``population`` "moved"), so
    that an entry cannot rank as robust by being attacked less; every other entry over all its
    samples ("all"). The "all" statistics of every entry are given too (``*_all``).

    Columns, in order:

    * the six component labels (:func:`label_components`), ``category``, ``higher_is_better``;
    * ``population``: "moved" or "all", the samples of ``n_seeds`` … ``seed_n``;
    * ``n_seeds`` (seeds with a finite value), ``n`` (finite values, all seeds together),
      ``n_nonfinite`` (NaN/inf values of the entry, left out of every statistic);
    * ``mean``: the mean over seeds of the per-seed means; ``ci_low``/``ci_high``: the 95%
      percentile interval of the hierarchical bootstrap (:mod:`salbench.seedstats`: seeds
      resampled, then samples within each drawn seed; with one seed this is the sample bootstrap,
      an interval within that seed only; NaN for a single value);
    * ``seed_means``/``seed_n``: JSON objects seed -> per-seed mean / number of values;
    * ``n_all``, ``mean_all``, ``ci_low_all``, ``ci_high_all``: the same over all samples;
    * ``n_evaluated``, ``n_moved``, ``n_label_kept``: attack accounting over the (seed, sample)
      units of an attacked entry (<NA> without attack; ``n_moved`` <NA> for a noise baseline,
      which moves every sample by construction and has no success rate);
    * ``rank``: 1 = best by ``mean`` in the metric's direction within the ranking group (ties
      share the lowest rank; <NA> without finite values);
    * ``test``: how the entry was compared with its group's rank-1 entry: "wilcoxon" (one-sided
      signed-rank test on the same (seed, sample) pairs: the two entries hold exactly the same
      pairs) or "bootstrap" (the entries hold different samples, e.g. different models' correctly
      classified samples or different moved samples: never paired; the one-sided p-value of the
      difference of their independent hierarchical-bootstrap replicates) or "untested" (different
      samples and a single value on either side: no p-value, counts as not significantly worse);
      "" for the reference and in groups of one;
    * ``p_vs_best``: that p-value, Holm-corrected over every comparison in the view's table;
    * ``mark``: "best" for a rank-1 entry significantly better (``p_vs_best`` < 0.05) than every
      other entry of its group, else "tie" for that rank-1 entry and for each entry not
      significantly worse than it; "" otherwise and in groups of one;
    * ``note``: the most common note of the non-finite values (None if they have none).

    Significance metrics (p-values) are summarised by their rejection rate: each finite p-value
    becomes the indicator p <= alpha (``alpha`` from the metric's parameters), ``mean`` (and
    ``mean_all``) is the rejection rate pooled over seeds (the binomial count of all tests) and
    ``ci_low``/``ci_high`` its exact 95% Clopper–Pearson interval.
    """
    _check_columns(records)
    frame = label_components(records)
    if view.metrics:
        unknown = sorted(set(view.metrics) - set(records["metric"].astype(str)))
        if unknown:
            raise ValueError(
                f"view {view.name!r} metrics: {unknown} are not in the records; their metrics: "
                f"{sorted(records['metric'].astype(str).unique())}"
            )
        frame = frame[records["metric"].astype(str).isin(view.metrics).to_numpy()]
    unaccounted = (records["attack"].astype(str) != "none") & records["attack_success"].isna()
    if unaccounted.any():
        raise ValueError(
            "records of attacked cells need attack_success (x′ ≠ x) for the attack accounting; missing in "
            f"{records.loc[unaccounted, ['attack', 'seed', 'sample']].head(3).to_dict('records')}"
        )
    baselines = {a: is_baseline(a) for a in records["attack"].astype(str).unique()}
    frame["_baseline"] = records.loc[frame.index, "attack"].astype(str).map(baselines)
    values = frame["value"].astype("float64")
    frame["value"] = rejection_indicators(frame, values.where(np.isfinite(values)))
    frame["_note"] = frame["note"] if "note" in frame else None
    grouped = frame.groupby(list(COMPONENTS), sort=False)
    _check_constant(grouped, ("category", "higher_is_better"))
    columns = {c: frame[c].to_numpy() for c in ("value", "seed", "sample", "category", "higher_is_better", "_baseline")}
    columns["moved"] = frame["attack_success"].fillna(False).to_numpy(dtype=bool)
    columns["kept"] = frame["label_kept"].fillna(False).to_numpy(dtype=bool)
    entries = [_entry(key, rows, columns, frame["_note"].iloc[rows]) for key, rows in grouped.indices.items()]
    table = pd.DataFrame([e for e, _ in entries], columns=[*COMPONENTS, *_ENTRY_COLUMNS])
    samples = [s for _, s in entries]
    table["higher_is_better"] = table["higher_is_better"].astype(bool)
    for column in ("n_evaluated", "n_moved", "n_label_kept"):
        table[column] = table[column].astype("Int64")
    score = table["mean"].where(table["higher_is_better"], -table["mean"])
    table["rank"] = score.groupby([table[k] for k in view.rank_within]).rank(method="min", ascending=False).astype(
        "Int64"
    )
    table = _ordered(table)
    _compare_with_best(table, [samples[i] for i in table.index], view)
    return table[_SUMMARY_COLUMNS].reset_index(drop=True)


_ENTRY_COLUMNS = [
    "category", "higher_is_better", "population", "n_seeds", "n", "n_nonfinite", "mean", "ci_low", "ci_high",
    "seed_means", "seed_n", "n_all", "mean_all", "ci_low_all", "ci_high_all", "n_evaluated", "n_moved",
    "n_label_kept", "note",
]
_SUMMARY_COLUMNS = [*COMPONENTS, *_ENTRY_COLUMNS[:-1], "rank", "test", "p_vs_best", "mark", "note"]
LEVEL = 0.05
"""The family-wise level of the comparisons that decide bold."""


@dataclass(frozen=True)
class _Sample:
    """An entry's finite values of its ranked population sorted by (seed, sample), their keys
    ((n, 2) array of seed and sample) and their bootstrap replicates (None without values)."""

    keys: np.ndarray
    values: np.ndarray
    replicates: np.ndarray | None


def _entry(key: tuple, rows: np.ndarray, columns: dict[str, np.ndarray], notes: pd.Series) -> tuple[dict, _Sample]:
    """The statistics of one entry (its ``rows`` of ``columns``, every seed) and its ranked population."""
    value, seed, sample = (columns[c][rows] for c in ("value", "seed", "sample"))
    units = pd.MultiIndex.from_arrays([seed, sample], names=["seed", "sample"])
    if units.has_duplicates:
        raise ValueError(
            f"records hold several values for one (seed, sample) of {dict(zip(COMPONENTS, key))}: "
            f"{list(units[units.duplicated()][:3])}"
        )
    significance = columns["category"][rows[0]] == SIGNIFICANCE
    attacked = key[COMPONENTS.index("attack")] != "none"
    population = "moved" if attacked and not columns["_baseline"][rows[0]] else "all"
    moved = columns["moved"][rows]
    stream = "\x00".join(map(str, key))  # the bootstrap's draws: the same for this entry, independent of others'
    everything = _population(value.astype("float64"), seed, sample, significance, stream)
    main = (
        _population(value[moved].astype("float64"), seed[moved], sample[moved], significance, stream + "\x00moved")
        if population == "moved" else everything
    )
    row = {
        **dict(zip(COMPONENTS, key)),
        "category": columns["category"][rows[0]],
        "higher_is_better": columns["higher_is_better"][rows[0]],
        "population": population,
        **{k: main[k] for k in ("n_seeds", "n", "mean", "ci_low", "ci_high", "seed_means", "seed_n")},
        "n_nonfinite": int(np.isnan(value.astype("float64")).sum()),
        **{f"{k}_all": everything[k] for k in ("n", "mean", "ci_low", "ci_high")},
        "n_evaluated": len(rows) if attacked else pd.NA,
        "n_moved": int(moved.sum()) if population == "moved" else pd.NA,
        "n_label_kept": int(columns["kept"][rows].sum()) if attacked else pd.NA,
        "note": _most_common(notes),
    }
    return row, main["sample"]


def _population(value: np.ndarray, seed: np.ndarray, sample: np.ndarray, significance: bool, stream: str) -> dict:
    """Seed-level statistics of the finite ``value`` s (see :func:`summarize`)."""
    finite = ~np.isnan(value)
    order = np.lexsort((sample[finite], seed[finite]))
    value, seed, sample = value[finite][order], seed[finite][order], sample[finite][order]
    seeds, starts, counts = np.unique(seed, return_index=True, return_counts=True)
    means = np.add.reduceat(value, starts) / counts if len(value) else np.zeros(0)
    out = {
        "n_seeds": len(seeds),
        "n": len(value),
        "seed_means": json.dumps({str(s): float(m) for s, m in zip(seeds, means)}),
        "seed_n": json.dumps({str(s): int(c) for s, c in zip(seeds, counts)}),
    }
    keys = np.stack([seed, sample], axis=1)
    if not len(value):
        return {**out, "mean": np.nan, "ci_low": np.nan, "ci_high": np.nan, "sample": _Sample(keys, value, None)}
    replicates = seedstats.hierarchical_bootstrap(np.split(value, starts[1:]), stream=stream)
    out["sample"] = _Sample(keys, value, replicates)
    if significance:  # the rejection rate pooled over seeds: the binomial count of every test
        low, high = clopper_pearson(value.sum(), len(value))
        return {**out, "mean": float(value.mean()), "ci_low": float(low), "ci_high": float(high)}
    low, high = seedstats.percentile_interval(replicates, CONFIDENCE) if len(value) > 1 else (np.nan, np.nan)
    return {**out, "mean": float(means.mean()), "ci_low": low, "ci_high": high}


def entry_values(labelled: pd.DataFrame, entry: Mapping[str, str]) -> pd.DataFrame:
    """The values the leaderboard estimates one entry from, as columns ``seed``, ``sample`` and
    ``value`` sorted by (seed, sample): the finite values of the entry's ranked population (see
    :func:`summarize`: for an attacked entry whose attack is not a noise baseline, the samples
    the attack moved; else all), a significance metric's p-values as rejection indicators
    (:func:`rejection_indicators`).

    ``labelled``: records with component labels (:func:`label_components`); ``entry``: the six
    component labels of a :func:`summarize` row.
    """
    rows = labelled
    for kind in COMPONENTS:
        rows = rows[rows[kind] == entry[kind]]
    if rows.empty:
        raise ValueError(f"no records of the entry {dict(entry)}")
    attack = str(entry["attack"]).split("(", 1)[0]  # the label's registered name
    if attack != "none" and not is_baseline(attack):
        rows = rows[rows["attack_success"].fillna(False).to_numpy(dtype=bool)]
    values = rejection_indicators(rows)
    out = pd.DataFrame({"seed": rows["seed"].astype("int64"), "sample": rows["sample"].astype("int64"), "value": values})
    return out[out["value"].notna()].sort_values(["seed", "sample"], kind="stable").reset_index(drop=True)


def _compare_with_best(table: pd.DataFrame, samples: list[_Sample], view: View) -> None:
    """Fill ``test``, ``p_vs_best`` (Holm within the view's tables) and ``mark`` of ``table`` (in place)."""
    position = {index: i for i, index in enumerate(table.index)}
    raw = pd.Series(np.nan, index=table.index)
    table["test"] = ""
    groups = [g for _, g in table[table["rank"].notna()].groupby(list(view.rank_within), sort=False) if len(g) > 1]
    for group in groups:
        best = group.index[group["rank"].to_numpy() == 1][0]
        for other in group.index.drop(best):
            higher = bool(group.loc[best, "higher_is_better"])
            test, p = _compare(samples[position[best]], samples[position[other]], higher)
            table.loc[other, "test"], raw[other] = test, p
    table["p_vs_best"] = raw.groupby([table[k] for k in view.tables]).transform(
        lambda p: pd.Series(seedstats.holm(p.to_numpy()), index=p.index)
    )
    table["mark"] = ""
    for group in groups:
        best = group.index[group["rank"].to_numpy() == 1][0]
        adjusted = table.loc[group.index.drop(best), "p_vs_best"]
        if (adjusted < LEVEL).all():
            table.loc[best, "mark"] = "best"
        else:
            table.loc[[best, *adjusted.index[~(adjusted < LEVEL)]], "mark"] = "tie"


def _compare(best: _Sample, other: _Sample, higher_is_better: bool) -> tuple[str, float]:
    """("wilcoxon", p) on the same (seed, sample) pairs, else ("bootstrap", p) of independent replicates,
    or ("untested", NaN) when either entry holds a single value (it then counts as not worse)."""
    if np.array_equal(best.keys, other.keys):
        return "wilcoxon", seedstats.paired_pvalue(best.values, other.values, higher_is_better)
    if min(len(best.values), len(other.values)) < 2:  # a bootstrap of one value has no spread to test with
        return "untested", np.nan
    return "bootstrap", seedstats.unpaired_pvalue(best.replicates, other.replicates, higher_is_better)


def seed_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The per-seed means of ``summary`` (:func:`summarize`) in long format: the six components,
    ``population``, ``seed``, ``n`` and ``mean`` (of that seed's finite values of the population)."""
    rows = []
    for entry in summary[[*COMPONENTS, "population", "seed_means", "seed_n"]].itertuples(index=False):
        means, counts = json.loads(entry.seed_means), json.loads(entry.seed_n)
        rows += [(*entry[: len(COMPONENTS) + 1], int(seed), counts[seed], mean) for seed, mean in means.items()]
    return pd.DataFrame(rows, columns=[*COMPONENTS, "population", "seed", "n", "mean"])


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
    seeds' trained models), ``accuracy_min`` and ``accuracy_max``; the same of the clean test
    balanced accuracy (``clean_balanced_accuracy`` of the records: the mean per-class recall),
    ``balanced_accuracy``, ``balanced_accuracy_min`` and ``balanced_accuracy_max``, NaN unless
    every seed's model recorded it (models cached before it was recorded, records without the
    column); and ``layers``, the layers that layer-reading explainers (Grad-CAM, CAM) explained,
    as "explainer: layer" pairs joined by "; " (empty when none; ``layer="auto"`` resolved by the run)."""
    frame = label_components(records)
    missing = [c for c in ("model_key", "clean_accuracy") if c not in frame.columns]
    if missing:
        raise ValueError(f"records lack column(s) {missing}; expected the long format of salbench.store.read_records")
    # records without the column (from before it was recorded) have none; null is missing (NaN)
    balanced = frame["clean_balanced_accuracy"] if "clean_balanced_accuracy" in frame.columns else np.nan
    frame["clean_balanced_accuracy"] = pd.Series(balanced, index=frame.index, dtype="float64")
    models = frame[[*_BENCH, "seed", "model_key", "clean_accuracy", "clean_balanced_accuracy"]].drop_duplicates()
    clash = models.duplicated([*_BENCH, "seed"], keep=False)
    if clash.any():
        raise ValueError(
            "records give several models or accuracies for one (dataset, model, recipe, seed): "
            f"{models[clash].head(4).to_dict('records')}"
        )
    grouped = models.groupby(list(_BENCH), sort=True)
    out = grouped.agg(n_seeds=("seed", "count"))
    for name, column in (("accuracy", "clean_accuracy"), ("balanced_accuracy", "clean_balanced_accuracy")):
        values = grouped[column]
        out[name], out[f"{name}_min"], out[f"{name}_max"] = values.mean(), values.min(), values.max()
    incomplete = grouped["clean_balanced_accuracy"].count() < out["n_seeds"]
    out.loc[incomplete, ["balanced_accuracy", "balanced_accuracy_min", "balanced_accuracy_max"]] = np.nan
    out["layers"] = _layers(frame).reindex(out.index).fillna("")
    return out.reset_index()


def _layers(frame: pd.DataFrame) -> pd.Series:
    """Per (dataset, model, recipe): the distinct "explainer: layer" pairs of the records that name a layer."""
    if "explainer_layer" not in frame.columns:
        return pd.Series(dtype=object)
    named = frame[frame["explainer_layer"].notna()][[*_BENCH, "explainer", "explainer_layer"]].drop_duplicates()
    pairs = named["explainer"] + ": " + named["explainer_layer"].astype(str)
    return pairs.groupby([named[k] for k in _BENCH], sort=True).agg(lambda p: "; ".join(sorted(set(p))))


# -- rendering ----------------------------------------------------------------------------------
MOVED = "moved"
"""The column label of the attack accounting (samples moved / evaluated, labels kept)."""
_ACCOUNTING = "accounting"


@dataclass(frozen=True)
class _Column:
    """A table column: its label, the metric's direction (None: accounting, no direction)."""

    label: str
    higher: bool | None


@dataclass(frozen=True)
class _Table:
    """One leaderboard table of a view: row headers, an optional clean-accuracy cell per row,
    columns and an entry (a summary row, or None) per row and column."""

    title: str
    note: str
    headers: list[str]
    accuracy: bool
    columns: list[_Column]
    rows: list[tuple[list[str], str, list[pd.Series | None]]]  # (row labels, accuracy text, entries)


def _accounting_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """One pseudo-entry per attacked (dataset, model, recipe, explainer, attack): the accounting."""
    attacked = summary[summary["attack"] != "none"].drop_duplicates(list(COMPONENTS[:-1]))
    return attacked.assign(metric=MOVED, category=_ACCOUNTING, higher_is_better=False, mark="")


def _tables(summary: pd.DataFrame, accuracy: pd.DataFrame, view: View) -> Iterator[_Table]:
    acc = accuracy.set_index(list(_BENCH)) if len(accuracy) else None
    entries = pd.concat([summary, _accounting_rows(summary)], ignore_index=True)
    entries["_attacked"] = entries["attack"] != "none"
    entries["_category"] = _category_order(entries["category"]).where(entries["category"] != _ACCOUNTING, -1)
    column_order = [*(["_attacked", "attack"] if "attack" in view.columns else []), "_category", "metric"]
    for key, part in entries.groupby(list(view.tables), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        in_order = part.sort_values(column_order, kind="stable")
        columns = list(dict.fromkeys(map(tuple, in_order[list(view.columns)].to_numpy())))
        row_keys = list(dict.fromkeys(map(tuple, part[list(view.rows)].to_numpy())))
        cells = {(tuple(r[list(view.rows)]), tuple(r[list(view.columns)])): r for _, r in part.iterrows()}
        direction = dict(zip(part["metric"], part["higher_is_better"].where(part["category"] != _ACCOUNTING, None)))
        where = dict(zip(view.tables, key))
        rows = [
            (list(row), _row_accuracy(acc, {**where, **dict(zip(view.rows, row))}) if view.accuracy_in_rows else "",
             [cells.get((row, column)) for column in columns])
            for row in row_keys
        ]
        ranked = part[part["category"] != _ACCOUNTING]
        note = "" if view.accuracy_in_rows else _accuracy_text(acc, tuple(where[k] for k in _BENCH)) + " "
        yield _Table(
            " / ".join(key), note + _size_text(ranked), list(view.rows), view.accuracy_in_rows,
            [_Column(_column_label(view, c), direction[c[view.columns.index("metric")]]) for c in columns],
            rows,
        )


def _column_label(view: View, column: tuple) -> str:
    """The column's components, the attack left out where there is none: 'mse: topk_intersection'."""
    return ": ".join(v for c, v in zip(view.columns, column) if not (c == "attack" and v == "none"))


def _size_text(part: pd.DataFrame) -> str:
    """'n = 64 samples over 3 seeds per entry.' (ranges where entries differ)."""
    def span(values: pd.Series) -> str:
        values = sorted(set(values[part["n"] > 0].astype(int)))
        return "0" if not values else str(values[0]) if len(values) == 1 else f"{values[0]}–{values[-1]}"

    seeds = span(part["n_seeds"])
    text = f"n = {span(part['n'])} samples over {seeds} seed{'s' * (seeds != '1')} per entry."
    if seeds == "1" or (part["n_seeds"] == 1).any():
        text += " With one seed an interval is within that seed only (the sample bootstrap)."
    return text


def _row_accuracy(acc: pd.DataFrame | None, where: dict) -> str:
    """'0.850 (0.800–0.900)': the row's clean accuracy (the range over seeds), then
    ', bal. acc. 0.700 (0.650–0.750)' where the balanced accuracy was recorded; '—' without a model."""
    bench = tuple(where[k] for k in _BENCH)
    if acc is None or bench not in acc.index:
        return "—"
    row = acc.loc[bench]
    text = _spread_text(row, "accuracy", " ({low}–{high})")
    if pd.notna(row["balanced_accuracy"]):
        text += ", bal. acc. " + _spread_text(row, "balanced_accuracy", " ({low}–{high})")
    return text


def _accuracy_text(acc: pd.DataFrame | None, bench: tuple) -> str:
    if acc is None or bench not in acc.index:
        return "Clean test accuracy: not recorded."
    row = acc.loc[bench]
    seeds = int(row["n_seeds"])
    spread = f", range {row['accuracy_min']:.3f}–{row['accuracy_max']:.3f}" if seeds > 1 else ""
    balanced = (
        "; bal. acc. " + _spread_text(row, "balanced_accuracy", " (range {low}–{high})")
        if pd.notna(row["balanced_accuracy"]) else ""
    )
    layers = f" Layers explained ('auto' resolved): {row['layers']}." if row.get("layers") else ""
    return (
        f"Clean test accuracy {row['accuracy']:.3f} (mean over {seeds} seed{'s' * (seeds > 1)}{spread}){balanced}."
        f"{layers}"
    )


def _spread_text(row: pd.Series, name: str, spread: str) -> str:
    """``row[name]`` to 3 decimals, followed by ``spread`` filled with its min and max over seeds
    when there are several seeds."""
    text = f"{row[name]:.3f}"
    if row["n_seeds"] > 1:
        text += spread.format(low=f"{row[f'{name}_min']:.3f}", high=f"{row[f'{name}_max']:.3f}")
    return text


def _decimals(x: float) -> int | None:
    """Decimals giving three significant figures (at least two); None: scientific (tiny or huge)."""
    if x != 0 and (abs(x) < 1e-4 or abs(x) >= 1e6):
        return None
    return 2 if x == 0 else min(6, max(2, 2 - math.floor(math.log10(abs(x)))))


def _fixed(x: float, decimals: int | None) -> str:
    return f"{x:.2e}" if decimals is None else f"{x:.{decimals}f}"


def _estimate(n: int, mean: float, low: float, high: float) -> str:
    """'0.830 [0.790, 0.870]' (same decimals), '0.830 (n=1)' or '—' (no finite value)."""
    if n == 0:
        return "—"
    decimals = _decimals(mean)
    if n == 1:
        return f"{_fixed(mean, decimals)} (n=1)"
    return f"{_fixed(mean, decimals)} [{_fixed(low, decimals)}, {_fixed(high, decimals)}]"


def _entry_text(row: pd.Series | None) -> str:
    """An entry's estimate and interval (:func:`_estimate`), for the moved population followed by
    the mean over all samples '(all: 0.91)' where the two populations differ, '≈' for a tie with
    the best, then how many values are missing and why; the accounting pseudo-entry:
    'moved/evaluated (kept k)' ('baseline/evaluated' for a noise baseline: no success rate); ''
    where the column does not apply to the row."""
    if row is None:
        return ""
    if row["category"] == _ACCOUNTING:
        moved = "baseline" if pd.isna(row["n_moved"]) else str(row["n_moved"])
        return f"{moved}/{row['n_evaluated']} (kept {row['n_label_kept']})"
    if row["category"] == SIGNIFICANCE and row["n"]:
        text = f"{row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
    else:
        text = _estimate(row["n"], row["mean"], row["ci_low"], row["ci_high"])
    if row["population"] == MOVED and row["n_all"] != row["n"]:
        text += f" (all: {_fixed(row['mean_all'], _decimals(row['mean_all']))})"
    if row["mark"] == "tie":
        text += " ≈"
    if row["n_nonfinite"]:
        note = row.get("note")
        text += f" ({row['n_nonfinite']} non-finite" + (f": {note})" if isinstance(note, str) else ")")
    return text


def _is_best(row: pd.Series | None) -> bool:
    return row is not None and row["mark"] == "best"


def _arrow(higher: bool | None) -> str:
    return "" if higher is None else " ↑" if higher else " ↓"


_LEGEND = (
    "Entries: mean over seeds of the per-seed means [95% hierarchical bootstrap interval: seeds resampled, "
    "then samples within each seed; with one seed the interval is within that seed only] ('n=1': a single "
    "value, no interval). Attacked entries are over the samples the attack moved (x′ ≠ x) and ranked on them; "
    "'(all: m)' is the mean over every evaluated sample, unmoved ones included (shown where some were not "
    "moved). Column 'moved': samples the attack moved / samples evaluated (kept: how many kept their label); a"
    " noise baseline (random_noise, random_synonym) moves every sample by construction: no success rate, its "
    "entries are over all samples. For p-values (significance metrics), the rejection rate at the metric's "
    "alpha pooled over seeds [exact 95% Clopper–Pearson interval]: the false positive rate on null data, the "
    "power on signal data. Bold: rank 1 and significantly better than every other entry ranked with it (one-"
    "sided Wilcoxon signed-rank test on the same (seed, sample) pairs; where the entries hold different "
    "samples, never paired: a bootstrap test of the difference, or untested when one side has a single value; "
    "Holm-corrected within the table, family-wise level 0.05). ≈: rank 1 without such a lead, and each entry "
    'not significantly worse than it. ↑ higher is better, ↓ lower is better.'
)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _header(table: _Table) -> list[str]:
    """Row headers, 'clean accuracy ↑' (when it varies by row) and the column labels with their arrows."""
    return [*table.headers, *(["clean accuracy ↑"] if table.accuracy else []),
            *(f"{c.label}{_arrow(c.higher)}" for c in table.columns)]


def _row_cells(table: _Table, labels: list[str], accuracy: str) -> list[str]:
    return [*labels, *([accuracy] if table.accuracy else [])]


def _markdown(summary: pd.DataFrame, accuracy: pd.DataFrame, failures: list[dict], title: str, view: View) -> str:
    lines = [f"# {title}", "", _LEGEND, ""]
    for table in _tables(summary, accuracy, view):
        lines += [f"## {_md_escape(table.title)}", "", table.note, ""]
        lines.append("| " + " | ".join(map(_md_escape, _header(table))) + " |")
        lines.append("|" + "---|" * len(table.headers) + "---:|" * (len(table.columns) + table.accuracy))
        for labels, acc, entries in table.rows:
            cells = [f"**{_entry_text(r)}**" if _is_best(r) else _entry_text(r) for r in entries]
            lines.append("| " + " | ".join([*map(_md_escape, _row_cells(table, labels, acc)), *cells]) + " |")
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


def _csv(summary: pd.DataFrame, accuracy: pd.DataFrame, failures: list[dict], title: str, view: View) -> str:
    acc = accuracy.rename(columns={
        "accuracy": "clean_accuracy", "n_seeds": "clean_accuracy_seeds", "balanced_accuracy": "clean_balanced_accuracy",
    })
    balanced = ["clean_balanced_accuracy"] if acc["clean_balanced_accuracy"].notna().any() else []  # old stores: none
    acc = acc[[*_BENCH, "clean_accuracy_seeds", "clean_accuracy", *balanced]]
    return summary.merge(acc, on=list(_BENCH), how="left").to_csv(index=False, lineterminator="\n")


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}


_TEX_ARROW = {True: r"$\uparrow$", False: r"$\downarrow$"}


def _tex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex(summary: pd.DataFrame, accuracy: pd.DataFrame, failures: list[dict], title: str, view: View) -> str:
    lines = [f"% {title}", "% requires \\usepackage{booktabs}", f"% {_LEGEND}"]
    for table in _tables(summary, accuracy, view):
        header = [
            *map(_tex_escape, table.headers), *([rf"clean accuracy {_TEX_ARROW[True]}"] if table.accuracy else []),
            *(_tex_escape(c.label) + ("" if c.higher is None else " " + _TEX_ARROW[c.higher]) for c in table.columns),
        ]
        lead = len(table.headers)
        lines += [
            r"\begin{table}[ht]", r"\centering",
            rf"\caption{{{_tex_escape(table.title)}. {_tex_escape(table.note)}}}",
            rf"\begin{{tabular}}{{{'l' * lead}{'r' * (len(header) - lead)}}}", r"\toprule",
            " & ".join(header) + r" \\", r"\midrule",
        ]
        for labels, acc, entries in table.rows:
            cells = [_tex_escape(_entry_text(r)).replace("≈", r"$\approx$") for r in entries]
            cells = [rf"\textbf{{{c}}}" if _is_best(r) else c for c, r in zip(cells, entries)]
            lines.append(" & ".join([*map(_tex_escape, _row_cells(table, labels, acc)), *cells]) + r" \\")
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


def html_body(
    summary: pd.DataFrame, accuracy: pd.DataFrame, failures: Iterable[dict] = (), view: View = DEFAULT_VIEW
) -> str:
    """The leaderboard tables of ``view`` (and failed cells) as an HTML fragment, for pages and reports."""
    esc = html.escape
    parts = [f"<p class=\"note\">{esc(_LEGEND)}</p>"]
    for table in _tables(summary, accuracy, view):
        head = "".join(f"<th>{esc(h)}</th>" for h in _header(table))
        parts += [f"<h2>{esc(table.title)}</h2>", f"<p class=\"note\">{esc(table.note)}</p>"]
        parts.append(f"<table>\n<tr>{head}</tr>")
        for labels, acc, entries in table.rows:
            lead = "".join(f"<td>{esc(c)}</td>" for c in _row_cells(table, labels, acc))
            cells = "".join(
                f"<td class=\"num{' best' if _is_best(r) else ''}\">{esc(_entry_text(r))}</td>" for r in entries
            )
            parts.append(f"<tr>{lead}{cells}</tr>")
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


def _html(summary: pd.DataFrame, accuracy: pd.DataFrame, failures: list[dict], title: str, view: View) -> str:
    return html_page(title, html_body(summary, accuracy, failures, view))


_RENDERERS: dict[str, Callable[[pd.DataFrame, pd.DataFrame, list[dict], str, View], str]] = {
    "markdown": _markdown, "csv": _csv, "latex": _latex, "html": _html,
}


def render(
    summary: pd.DataFrame,
    accuracy: pd.DataFrame,
    fmt: str,
    *,
    failures: Iterable[dict] = (),
    title: str = "Leaderboard",
    view: View = DEFAULT_VIEW,
) -> str:
    """The leaderboard as text in ``fmt``: "markdown", "csv", "latex" or "html".

    ``summary`` comes from :func:`summarize` (with the same ``view``), ``accuracy`` from
    :func:`accuracy_table`. Markdown, LaTeX and HTML give one table per combination of the view's
    ``tables`` components, one row per combination of its ``rows`` (with the clean accuracy of
    the row's model when the rows tell models apart) and one column per combination of its
    ``columns`` (↑/↓ in the header; a 'moved' column of attack accounting per attack), entries
    "mean [interval]" in bold when significantly best, '≈' on ties (see the legend they carry),
    empty where a column does not apply. Markdown and HTML also list ``failures`` (dicts with
    cell_id, error, cell). CSV is the tidy summary, all numbers at full precision, with the clean
    accuracy joined on. LaTeX needs ``\\usepackage{booktabs}``.
    """
    if fmt not in _RENDERERS:
        raise ValueError(f"fmt must be one of {sorted(_RENDERERS)}, got {fmt!r}")
    return _RENDERERS[fmt](summary, accuracy, list(failures), title, view)


def leaderboard_title(records: pd.DataFrame) -> str:
    """'Leaderboard: <suites> (config <hash prefixes>)' of ``records``."""
    suites = sorted(records["suite"].astype(str).unique()) if "suite" in records else []
    hashes = sorted(records["config_hash"].astype(str).unique()) if "config_hash" in records else []
    title = f"Leaderboard: {', '.join(suites)}" if suites else "Leaderboard"
    return f"{title} (config {', '.join(h[:12] for h in hashes)})" if hashes else title
