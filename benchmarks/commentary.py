"""Numbers in a suite's commentary, filled in from its records rather than typed by hand.

A commentary file (``benchmarks/suites/<name>.md``) that compares with a paper needs our
numbers beside the published ones. It writes a placeholder where each goes::

    {{ dataset="synthetic_blocks(size=8, test_delta=0.0)" metric="selective_pvalue.naive(statistic=mean)" }}

and :func:`fill` replaces it by the leaderboard entry (:func:`salbench.leaderboard.summarize`)
that matches every given key. Keys: the component labels exactly as the leaderboard prints them
(``dataset``, ``model``, ``recipe``, ``explainer``, ``attack``, ``metric``; a component left out
may take any value, but the match must be unique) and ``show``, one of ``mean`` (default: the
mean, or the rejection rate of a p-value metric, to 3 decimals), ``interval`` (mean and its 95%
interval), ``n`` (the number of finite values). A placeholder that matches no entry or several
is an error that lists the candidates, so a commentary never shows a stale or ambiguous number.
"""

from __future__ import annotations

import re

import pandas as pd
from salbench.leaderboard import COMPONENTS

__all__ = ["fill", "PLACEHOLDER"]

PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_PAIR = re.compile(r'\s*(\w+)\s*=\s*"([^"]*)"\s*')
_SHOW = ("mean", "interval", "n")


def fill(text: str, summary: pd.DataFrame) -> str:
    """``text`` with every ``{{ key="value" ... }}`` replaced by the matching summary entry."""
    return PLACEHOLDER.sub(lambda match: _entry(_parse(match.group(1)), summary), text)


def _parse(body: str) -> dict[str, str]:
    pairs, end = {}, 0
    for match in _PAIR.finditer(body):
        if match.start() != end:
            break
        pairs[match.group(1)] = match.group(2)
        end = match.end()
    if end != len(body) or not pairs:
        raise ValueError(f'commentary placeholder {{{{{body}}}}} must be key="value" pairs')
    unknown = set(pairs) - {*COMPONENTS, "show"}
    if unknown:
        raise ValueError(
            f"commentary placeholder {{{{{body}}}}}: unknown key(s) {sorted(unknown)}; allowed: {[*COMPONENTS, 'show']}"
        )
    if pairs.get("show", "mean") not in _SHOW:
        raise ValueError(f"commentary placeholder {{{{{body}}}}}: show must be one of {_SHOW}, got {pairs['show']!r}")
    return pairs


def _entry(pairs: dict[str, str], summary: pd.DataFrame) -> str:
    keys = {k: v for k, v in pairs.items() if k != "show"}
    rows = summary
    for key, value in keys.items():
        rows = rows[rows[key] == value]
    if len(rows) != 1:
        shown = ", ".join(f'{k}="{v}"' for k, v in keys.items())
        options = {k: sorted(summary[k].unique())[:12] for k in keys}
        raise ValueError(
            f"commentary placeholder {{{{ {shown} }}}} matches {len(rows)} leaderboard entries, not 1; "
            f"values of its keys in the leaderboard: {options}"
        )
    row = rows.iloc[0]
    show = pairs.get("show", "mean")
    if show == "n":
        return str(int(row["n"]))
    mean = f"{row['mean']:.3f}"
    return mean if show == "mean" else f"{mean} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
