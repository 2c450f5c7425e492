"""Agreement between the explainer rankings that two metrics give: Kendall's τ-b, as LATEC reports it.

Klein et al., "Navigating the Maze of Explainable AI: A Systematic Approach to Evaluating
Methods and Metrics" (LATEC), NeurIPS 2024 Datasets and Benchmarks, compare evaluation metrics
by how similarly they rank the explanation methods. Here, from a suite's leaderboard summary
(:func:`salbench.leaderboard.summarize`, one entry per dataset, model, recipe, explainer,
attack and metric with its ``mean`` over seeds), each metric scores every explainer of a
(dataset, model, recipe) group by its entry's mean, oriented by the metric's direction (−mean
where lower is better), and two metrics agree by

    τ_b = Kendall's tau-b (``scipy.stats.kendalltau``) between the two metrics' oriented scores

over the explainers with a finite mean under both: 1 when they rank the explainers alike, −1
when one reverses the other, ties handled by τ-b. A "metric" here is a leaderboard metric
label, under an attack where the entry has one (``"topk_intersection under topk"``), since an
attacked robustness entry ranks explainers under that attack. Cells without an explainer (the
metrics that do not use one) rank nothing and are left out. τ is NaN (shown "–") with fewer
than :data:`MIN_EXPLAINERS` common explainers or a metric that scores them all alike.

``salbench report`` writes the per-group values (``metric_agreement.csv``) and the mean over the
groups (``metric_agreement.md``) when the suite has :data:`MIN_EXPLAINERS` explainers and
:data:`MIN_METRICS` metrics (:func:`applies`); a commentary quotes a mean τ with
``{{ show="agreement" metric="..." against="..." }}`` (:mod:`salbench.commentary`).

Example:
    >>> import pandas as pd
    >>> summary = pd.DataFrame({
    ...     "dataset": "d", "model": "m", "recipe": "r", "attack": "none",
    ...     "explainer": ["e1", "e2", "e3"] * 2, "metric": ["a"] * 3 + ["b"] * 3,
    ...     "higher_is_better": [True] * 3 + [False] * 3, "mean": [1.0, 2.0, 3.0, 0.3, 0.2, 0.1]})
    >>> agreement_table(summary)[["metric_a", "metric_b", "n_explainers", "tau"]]
      metric_a metric_b  n_explainers  tau
    0        a        b             3  1.0
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["GROUP", "MIN_EXPLAINERS", "MIN_METRICS", "applies", "agreement_table", "mean_agreement", "agreement_markdown"]

GROUP = ("dataset", "model", "recipe")
"""The components that share one ranking of the explainers."""
MIN_EXPLAINERS = 3
"""Fewest explainers (common to both metrics) for which a τ is computed."""
MIN_METRICS = 2
"""Fewest metrics for which the agreement is written."""
_NO_EXPLAINER = "none"
_COLUMNS = [*GROUP, "metric_a", "metric_b", "n_explainers", "tau", "p_value"]


def _scores(summary: pd.DataFrame) -> pd.DataFrame:
    """The entries that rank explainers: group, explainer, metric label (with its attack) and oriented score."""
    frame = summary[summary["explainer"].astype(str) != _NO_EXPLAINER]
    attack = frame["attack"].astype(str)
    metric = frame["metric"].astype(str).where(attack == "none", frame["metric"].astype(str) + " under " + attack)
    mean = frame["mean"].astype(float)
    return pd.DataFrame({
        **{k: frame[k].astype(str) for k in GROUP},
        "explainer": frame["explainer"].astype(str),
        "metric": metric,
        "score": mean.where(frame["higher_is_better"].astype(bool), -mean),
    })  # fmt: skip


def applies(summary: pd.DataFrame) -> bool:
    """Whether the suite has at least :data:`MIN_EXPLAINERS` explainers and :data:`MIN_METRICS` metrics to compare."""
    scores = _scores(summary)
    return scores["explainer"].nunique() >= MIN_EXPLAINERS and scores["metric"].nunique() >= MIN_METRICS


def agreement_table(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model, recipe) group and pair of its metrics (in leaderboard order):
    the group, ``metric_a``, ``metric_b``, ``n_explainers`` (with a finite mean under both),
    ``tau`` (Kendall's τ-b of their oriented scores; NaN with fewer than :data:`MIN_EXPLAINERS`
    explainers or a constant side) and its two-sided ``p_value`` (scipy's)."""
    scores = _scores(summary)
    rows = []
    for group, part in scores.groupby(list(GROUP), sort=False):
        wide = part.pivot_table(index="explainer", columns="metric", values="score", aggfunc="first", dropna=False)
        for a, b in itertools.combinations(list(dict.fromkeys(part["metric"])), 2):
            both = wide[[a, b]].replace([np.inf, -np.inf], np.nan).dropna()
            tau = p_value = float("nan")
            if len(both) >= MIN_EXPLAINERS and both[a].nunique() > 1 and both[b].nunique() > 1:
                result = stats.kendalltau(both[a], both[b], variant="b")
                tau, p_value = float(result.statistic), float(result.pvalue)
            rows.append([*group, a, b, len(both), tau, p_value])
    return pd.DataFrame(rows, columns=_COLUMNS)


def mean_agreement(table: pd.DataFrame) -> pd.DataFrame:
    """Per pair of metrics: ``groups`` (with a finite τ) and ``tau_mean``, their mean τ (NaN without one)."""
    pairs = table.groupby(["metric_a", "metric_b"], sort=False)["tau"]
    return pd.DataFrame({"groups": pairs.count(), "tau_mean": pairs.mean()}).reset_index()


def agreement_markdown(table: pd.DataFrame, title: str) -> str:
    """The Markdown page: the matrix of mean τ over the groups, then one table of pairs per group."""
    mean = mean_agreement(table)
    metrics = list(dict.fromkeys([*table["metric_a"], *table["metric_b"]]))
    matrix = pd.DataFrame(np.nan, index=metrics, columns=metrics)
    for row in mean.itertuples(index=False):
        matrix.loc[row.metric_a, row.metric_b] = matrix.loc[row.metric_b, row.metric_a] = row.tau_mean
    n_groups = len(table[list(GROUP)].drop_duplicates())
    lines = [
        f"# Agreement between metric rankings: {title}", "",
        "Kendall's τ-b between the rankings of the explainers that two metrics give, each metric's direction "
        "respected (1: the same ranking, −1: reversed; – : fewer than three common explainers or a constant "
        f"metric), averaged over the {n_groups} (dataset, model, recipe) group(s) that have it.", "",
        "| metric | " + " | ".join(_md(m) for m in metrics) + " |",
        "|---|" + "---:|" * len(metrics),
    ]  # fmt: skip
    for metric in metrics:
        cells = ["1" if other == metric else _tau(matrix.loc[metric, other]) for other in metrics]
        lines.append(f"| {_md(metric)} | " + " | ".join(cells) + " |")
    for group, part in table.groupby(list(GROUP), sort=False):
        lines += ["", f"## {' / '.join(group)}", "", "| metric a | metric b | explainers | τ |", "|---|---|---:|---:|"]
        lines += [f"| {_md(r.metric_a)} | {_md(r.metric_b)} | {r.n_explainers} | {_tau(r.tau)} |" for r in part.itertuples()]
    return "\n".join(lines) + "\n"


def _tau(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.2f}"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")
