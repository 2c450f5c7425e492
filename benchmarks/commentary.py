"""Numbers in a suite's commentary, filled in from its records rather than typed by hand.

A commentary file (``benchmarks/suites/<name>.md``) that compares with a paper needs our
numbers beside the published ones. It writes a placeholder where each of ours goes::

    {{ dataset="synthetic_blocks(size=8, test_delta=0.0)" metric="selective_pvalue.naive(statistic=mean)" }}

and :func:`fill` replaces it by what the records say. Keys: the component labels exactly as the
leaderboard prints them (``dataset``, ``model``, ``recipe``, ``explainer``, ``attack``,
``metric``; a component left out may take any value; a value holding ``"`` is written in single
quotes, ``explainer='decoy(base_params={"steps":8})'``) and ``show``:

- ``mean`` (default): the leaderboard entry's mean (:func:`salbench.leaderboard.summarize`;
  the rejection rate of a p-value metric), to 3 decimals; ``interval``: the mean and its 95%
  interval; ``n``: the entry's number of finite values; ``seed_means``: the mean of each seed,
  in seed order, joined by " / " (not for p-value metrics); for an attacked entry, ``moved``:
  the samples the attack moved / the samples evaluated, ``moved_rate``: that share (the
  attack's success rate; a noise baseline has none), ``kept_rate``: the share that kept the
  label. These need a unique entry.
- ``verdict``, with the key ``published="0.735"`` (only there, and required there): the
  published value against the unique entry's 95% interval (the ``interval`` above: for a
  p-value metric the rejection rate and its exact Clopper–Pearson interval): ``reproduced
  (0.720 [0.690, 0.751] holds 0.735)`` if the interval holds it (bounds included), else ``not
  reproduced (0.467 [0.436, 0.498] excludes 0.735)``; ours to 3 decimals, the published value
  as written. An entry without an interval (a single value) is an error.
- ``better``, with one or more keys ``than_<component>="<label>"`` (only there), e.g.
  ``than_recipe="standard"``: whether the unique entry A named by the keys beats the entry B
  that differs from A only in those components (B = A's components with the ``than_*`` labels
  in place; it must exist; ``than_dataset`` is refused, since two data sets share no sample).
  They are paired on the (seed, sample) pairs both hold (a sample is a test-split index, so
  two models' entries share the samples both classify correctly, two attacks' entries the
  samples both moved): the values the leaderboard estimates them from
  (:func:`salbench.leaderboard.entry_values`: an attacked entry's moved samples, a p-value
  metric's rejection indicators); no shared pair is an error naming both entries. Renders
  ``yes (+0.052, paired Wilcoxon p = 0.003 on 160 pairs; better in 5/5 seeds)`` when the
  one-sided Wilcoxon signed-rank p-value in the metric's direction (``higher_is_better``;
  :func:`salbench.seedstats.paired_pvalue`) is below 0.05, else ``no (−0.010, paired Wilcoxon
  p = 0.710 on 160 pairs; better in 2/5 seeds)``: the mean difference A − B over the shared
  pairs (the mean over seeds of the per-seed mean differences), the p-value (``p < 0.001``
  below that), the number of shared pairs and the seeds whose mean is better for A. For a p-value metric the direction is the leaderboard's (its
  ``higher_is_better`` is false): "better" means rejecting less often, the validity reading on
  null data; on signal data (power) read the sign of the difference, or swap A and B.
- ``accuracy``: the clean test accuracy (mean over seeds) of the unique model matched by the
  ``dataset``, ``model`` and ``recipe`` keys (the only keys it takes); ``balanced_accuracy``:
  the same of the clean test balanced accuracy (the mean over the classes of the test split of
  their recall, :func:`salbench.recipes.base.balanced_accuracy`), an error where a seed's model
  did not record it (a model cached before it was).
- ``seeds``: the number of seeds of the matching records; ``samples``: the number of samples
  per cell, which must be the same in every matching cell; ``seconds_per_test``: each matching
  cell's wall-clock time over its samples × metric settings (e.g. the time per p-value of a
  cell that tests every image under several hypotheses), averaged over the cells, to 3
  significant digits.
- ``agreement``: Kendall's τ-b between the explainer rankings of the metric ``metric`` and the
  metric ``against`` (labels as in ``metric_agreement.csv``, :mod:`salbench.agreement`), the
  mean over the (dataset, model, recipe) groups the ``dataset``, ``model`` and ``recipe`` keys
  match that have a τ, to 2 decimals: ``{{ show="agreement" metric="deletion" against="insertion" }}``.
- ``<component>.<parameter>``, e.g. ``attack.k`` or ``metric.fraction``: the value of that
  parameter of the component, which must be the same in every matching record, so a setting
  the commentary states comes from the suite, not from the writer's memory.

A placeholder that matches nothing, or several entries where one is needed, is an error that
lists the candidates, so a commentary never shows a stale or ambiguous number.

**No typed numbers.** :func:`fill` first checks (:func:`typed_numbers`) that no digit stands
in the commentary's prose, and fails naming the file, the line and the text, so that every
measured number comes from a placeholder. A digit is allowed only in:

- a placeholder ``{{ ... }}``;
- a cited published value, marked ``[[published: 0.85]]`` (the text after the colon, which
  must start with a digit or a point). It is rendered ``0.85 (published)``; in a Markdown table
  row (a line starting with ``|``) as plain ``0.85``, since the table's header says which
  columns are published;
- an HTML comment ``<!-- ... -->`` (notes to the maintainers, e.g. ``<!-- check: ... -->`` on a
  claim still to be verified against a rerun), which is removed from the output;
- a code span or fenced code block: identifiers, paths, commands and formulas
  (`` `d_e = (1 − cos)/2` ``), never a bare number (a code span holding only a number is
  rejected);
- a word that mixes letters and digits (``word2vec``, ``R2ET``, ``r2et2024``, ``ℓ2``,
  ``3D``), or a dimension ``1-D``;
- a citation: an arXiv id (``arXiv 2002.00526``), a year after a capitalised word or
  ``et al.`` (``ACL 2023``, ``Kim 2014``), a section or equation reference (``§5``,
  ``Section 3.2``, ``Eq. 4``, ``Table 2``, ``Figure 1``, ``Appendix 3``);
- an enumeration: ``Claim 2``, a list item ``1. ``, ``(1) `` before a word.

Counts and settings of the run (seeds, samples, ``k``, ε, the image side) are not exempt:
they come from placeholders (``seeds``, ``samples``, ``<component>.<parameter>``).

Example::

    text = fill(Path("benchmarks/suites/decoy2021.md").read_text(), results, "decoy2021.md")
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
from salbench.agreement import GROUP, agreement_table
from salbench import seedstats
from salbench.leaderboard import COMPONENTS, LEVEL, SIGNIFICANCE, entry_values, label_components
from salbench.results import Results

__all__ = ["fill", "typed_numbers", "PLACEHOLDER", "PUBLISHED"]

PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
PUBLISHED = re.compile(r"\[\[published:\s*([0-9.][^\]\n]*?)\s*\]\]")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_PAIR = re.compile(r"""\s*(\w+)\s*=\s*(?:"([^"]*)"|'([^']*)')\s*""")
_ENTRY_SHOWS = ("mean", "interval", "n", "seed_means", "moved", "moved_rate", "kept_rate", "verdict")
_ACCURACY_SHOWS = {"accuracy": "accuracy", "balanced_accuracy": "balanced_accuracy"}  # show -> accuracy_table column
_SHOWS = (*_ENTRY_SHOWS, *_ACCURACY_SHOWS, "better", "seeds", "samples", "seconds_per_test", "agreement")
_THAN = tuple(f"than_{kind}" for kind in COMPONENTS)  # only with show="better"
_KEYS = (*COMPONENTS, "against", "published", *_THAN, "show")  # against, published: only with agreement, verdict
_PARAM_SHOW = re.compile(rf"({'|'.join(COMPONENTS)})\.(\w+)")

_EXEMPT = [  # spans whose digits are not typed measurements (see the module docstring)
    _COMMENT,
    re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE),
    PLACEHOLDER,
    PUBLISHED,
    re.compile(r"`(?![\d\s.,:;%±–+\-−×/]+`)[^`\n]+`"),
    re.compile(r"\barXiv:? ?\d{4}\.\d{4,5}(v\d+)?"),
    re.compile(r"(\b[A-Z][\w.&-]*|\bet al\.),? (19|20)\d\d\b"),
    re.compile(r"(§ ?|\b(Section|Sec\.|Eq\.|Equation|Table|Figure|Fig\.|Appendix|Algorithm|Claim) )\d+(\.\d+)*\b"),
    re.compile(r"^\s*\d\. |\(\d\)(?= )", re.MULTILINE),
    re.compile(r"\b\d-D\b"),
    re.compile(r"[^\W\d_]+\d\w*|\d+[^\W\d_]\w*", re.UNICODE),
]


def typed_numbers(text: str) -> list[tuple[int, str]]:
    """(line number, the line's text) of every line of ``text`` with a digit outside the
    allowed spans of the module docstring: the numbers a commentary typed by hand.

    >>> typed_numbers('ours {{ metric="m" }} vs [[published: 0.85]] (ACL 2023, `k = 5`)')
    []
    >>> typed_numbers("fine\\nthe top-k score drops to 0.117 here")
    [(2, 'the top-k score drops to 0.117 here')]
    """
    masked = text
    for pattern in _EXEMPT:
        masked = pattern.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), masked)
    lines = text.splitlines()
    return [(i + 1, lines[i].strip()) for i, line in enumerate(masked.splitlines()) if re.search(r"\d", line)]


def fill(text: str, results: Results, source: str) -> str:
    """``text`` (the commentary read from ``source``) with its typed numbers rejected, its
    comments removed, its published values rendered and every ``{{ key="value" ... }}``
    replaced by what ``results`` say (see the module docstring)."""
    offences = typed_numbers(text)
    if offences:
        listed = "\n".join(f"  {source}:{line}: {shown}" for line, shown in offences)
        raise ValueError(
            f"commentary {source} types numbers by hand ({len(offences)} line(s)); use a placeholder "
            f'{{{{ ... show="..." }}}} or mark a cited value [[published: ...]]:\n{listed}'
        )
    text = _COMMENT.sub("", text)
    text = "\n".join(PUBLISHED.sub(_published_text(line), line) for line in text.split("\n"))
    labelled = label_components(results.records)
    return PLACEHOLDER.sub(lambda match: _value(_parse(match.group(1)), results, labelled), text)


def _published_text(line: str):
    in_table = line.lstrip().startswith("|")
    return lambda match: match.group(1) if in_table else f"{match.group(1)} (published)"


def _parse(body: str) -> dict[str, str]:
    pairs, end = {}, 0
    for match in _PAIR.finditer(body):
        if match.start() != end:
            break
        pairs[match.group(1)] = match.group(2) if match.group(2) is not None else match.group(3)
        end = match.end()
    if end != len(body) or not pairs:
        raise ValueError(f'commentary placeholder {{{{{body}}}}} must be key="value" pairs')
    unknown = set(pairs) - set(_KEYS)
    if unknown:
        raise ValueError(f"commentary placeholder {{{{{body}}}}}: unknown key(s) {sorted(unknown)}; allowed: {list(_KEYS)}")
    show = pairs.get("show", "mean")
    if ("against" in pairs) != (show == "agreement") or (show == "agreement" and "metric" not in pairs):
        raise ValueError(
            f'commentary placeholder {{{{{body}}}}}: show="agreement" takes the keys metric and against (and '
            "optionally dataset, model, recipe); against goes only with it"
        )
    if ("published" in pairs) != (show == "verdict"):
        raise ValueError(f'commentary placeholder {{{{{body}}}}}: show="verdict" takes the key published, which goes only with it')
    if any(k in pairs for k in _THAN) != (show == "better"):
        raise ValueError(
            f'commentary placeholder {{{{{body}}}}}: show="better" takes one or more keys {list(_THAN)}, which go only with it'
        )
    if show not in _SHOWS and not _PARAM_SHOW.fullmatch(show):
        raise ValueError(
            f"commentary placeholder {{{{{body}}}}}: show must be one of {_SHOWS} or <component>.<parameter> "
            f"with a component of {COMPONENTS}, got {show!r}"
        )
    return pairs


def _value(pairs: dict[str, str], results: Results, labelled: pd.DataFrame) -> str:
    keys = {k: v for k, v in pairs.items() if k != "show"}
    show = pairs.get("show", "mean")
    if show in _ENTRY_SHOWS:
        return _entry(keys, show, results.summary, labelled)
    if show in _ACCURACY_SHOWS:
        return _accuracy(keys, show, results.accuracy)
    if show == "better":
        return _better(keys, results.summary, labelled)
    if show == "agreement":
        return _agreement(keys, results.summary)
    rows = _matching(keys, labelled, "records")
    if show == "seeds":
        return str(rows["seed"].nunique())
    if show == "samples":
        counts = rows.groupby("cell_id")["sample"].nunique().unique()
        if len(counts) != 1:
            raise ValueError(f"commentary placeholder {_shown(keys)}: cells have different sample counts {sorted(counts)}")
        return str(counts[0])
    if show == "seconds_per_test":
        return _seconds_per_test(rows)
    kind, name = show.split(".", 1)
    values = {json.dumps(json.loads(p or "{}").get(name, "<absent>")) for p in rows[f"{kind}_params"]}
    if len(values) != 1 or values == {'"<absent>"'}:
        raise ValueError(
            f"commentary placeholder {_shown(keys)} show={show!r}: parameter {name!r} of the {kind} takes "
            f"{len(values)} value(s) {sorted(values)[:6]} in the matching records, not one"
        )
    value = json.loads(values.pop())
    return f"{value:g}" if isinstance(value, float) else value if isinstance(value, str) else json.dumps(value)


def _seconds_per_test(rows: pd.DataFrame) -> str:
    """Wall-clock seconds per (sample, metric setting) of the matching cells: each cell's
    ``elapsed_s`` over its samples × distinct metric parameter sets, averaged over the cells."""
    cells = rows.groupby("cell_id").agg(
        elapsed=("elapsed_s", "first"), samples=("sample", "nunique"), settings=("metric_params", "nunique")
    )
    return f"{(cells['elapsed'] / (cells['samples'] * cells['settings'])).mean():.3g}"


def _shown(keys: dict[str, str]) -> str:
    return "{{ " + " ".join(f'{k}="{v}"' for k, v in keys.items()) + " }}"


def _matching(keys: dict[str, str], frame: pd.DataFrame, what: str) -> pd.DataFrame:
    rows = frame
    for key, value in keys.items():
        rows = rows[rows[key] == value]
    if rows.empty:
        options = {k: sorted(frame[k].astype(str).unique())[:12] for k in keys}
        raise ValueError(f"commentary placeholder {_shown(keys)} matches no {what}; values of its keys: {options}")
    return rows


def _unique(keys: dict[str, str], frame: pd.DataFrame, what: str) -> pd.Series:
    rows = frame
    for key, value in keys.items():
        rows = rows[rows[key] == value]
    if len(rows) != 1:
        options = {k: sorted(frame[k].astype(str).unique())[:12] for k in keys}
        raise ValueError(
            f"commentary placeholder {_shown(keys)} matches {len(rows)} {what}, not 1; "
            f"values of its keys in the leaderboard: {options}"
        )
    return rows.iloc[0]


def _entry(keys: dict[str, str], show: str, summary: pd.DataFrame, labelled: pd.DataFrame) -> str:
    if show == "verdict":
        published = keys.pop("published")
        return _verdict(keys, published, _unique(keys, summary, "leaderboard entries"))
    row = _unique(keys, summary, "leaderboard entries")
    if show == "n":
        return str(int(row["n"]))
    if show == "seed_means":
        if row["category"] == SIGNIFICANCE:
            raise ValueError(f"commentary placeholder {_shown(keys)}: seed_means is not defined for p-value metrics")
        entry = {k: row[k] for k in COMPONENTS}
        values = _matching(entry, labelled, "records")
        finite = values[np.isfinite(values["value"].astype(float))]
        return " / ".join(f"{m:.3f}" for m in finite.groupby("seed", sort=True)["value"].mean())
    if show in ("moved", "moved_rate", "kept_rate"):
        return _accounting(keys, row, show)
    mean = f"{row['mean']:.3f}"
    return mean if show == "mean" else f"{mean} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def _accounting(keys: dict[str, str], row: pd.Series, show: str) -> str:
    """An attacked entry's accounting: samples moved / evaluated, or the share moved or kept."""
    if pd.isna(row["n_evaluated"]):
        raise ValueError(f"commentary placeholder {_shown(keys)}: show={show!r} needs an attacked entry")
    if show != "kept_rate" and pd.isna(row["n_moved"]):
        raise ValueError(f"commentary placeholder {_shown(keys)}: a noise baseline has no success rate ({show!r})")
    if show == "moved":
        return f"{int(row['n_moved'])}/{int(row['n_evaluated'])}"
    count = row["n_moved"] if show == "moved_rate" else row["n_label_kept"]
    return f"{count / row['n_evaluated']:.3f}"


def _agreement(keys: dict[str, str], summary: pd.DataFrame) -> str:
    """The mean τ over the matching groups of the pair (metric, against), in either order."""
    extra = set(keys) - {*GROUP, "metric", "against"}
    if extra:
        raise ValueError(f'commentary placeholder {_shown(keys)}: show="agreement" takes no key {sorted(extra)}')
    table = agreement_table(summary)
    groups = _matching({k: v for k, v in keys.items() if k in GROUP}, table, "groups of the metric agreement")
    a, b = keys["metric"], keys["against"]
    pair = groups[((groups["metric_a"] == a) & (groups["metric_b"] == b)) | ((groups["metric_a"] == b) & (groups["metric_b"] == a))]
    tau = pair["tau"].dropna()
    if tau.empty:
        metrics = sorted({*table["metric_a"], *table["metric_b"]})
        raise ValueError(
            f"commentary placeholder {_shown(keys)}: no Kendall τ for the metrics {a!r} and {b!r} in the matching "
            f"groups ({len(pair)} pair row(s), none with three explainers and a ranking); metrics: {metrics}"
        )
    return f"{tau.mean():.2f}"


def _verdict(keys: dict[str, str], published: str, row: pd.Series) -> str:
    """Whether the entry's 95% interval holds the published value: 'reproduced (0.720 [0.690, 0.751]
    holds 0.735)' or 'not reproduced (0.467 [0.436, 0.498] excludes 0.735)'."""
    try:
        value = float(published)
    except ValueError:
        raise ValueError(f'commentary placeholder {_shown(keys)}: published="{published}" is not a number') from None
    if not np.isfinite(value) or not (np.isfinite(row["ci_low"]) and np.isfinite(row["ci_high"])):
        raise ValueError(
            f'commentary placeholder {_shown(keys)} published="{published}": a verdict needs a finite published value '
            f"and an entry with a 95% interval (this one has {int(row['n'])} value(s))"
        )
    ours = f"{row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
    if row["ci_low"] <= value <= row["ci_high"]:
        return f"reproduced ({ours} holds {published})"
    return f"not reproduced ({ours} excludes {published})"


def _better(keys: dict[str, str], summary: pd.DataFrame, labelled: pd.DataFrame) -> str:
    """Whether entry A (the keys) beats entry B (A's components with the ``than_*`` ones replaced)
    on the (seed, sample) pairs both hold: 'yes (+0.052, paired Wilcoxon p = 0.003 on 160 pairs; better in 5/5 seeds)'."""
    than = {k.removeprefix("than_"): keys.pop(k) for k in _THAN if k in keys}
    if "dataset" in than:
        raise ValueError(f"commentary placeholder {_shown(keys)}: show=\"better\" compares entries of one data set "
                         "(two data sets share no sample); than_dataset is not allowed")
    a = _unique(keys, summary, "leaderboard entries")
    entry_a = {k: a[k] for k in COMPONENTS}
    entry_b = {k: than.get(k, a[k]) for k in COMPONENTS}
    _unique(entry_b, summary, "leaderboard entries (the compared entry: the keys with than_* in place)")
    pairs = entry_values(labelled, entry_a).merge(
        entry_values(labelled, entry_b), on=["seed", "sample"], suffixes=("_a", "_b"), validate="one_to_one"
    )
    if pairs.empty:
        raise ValueError(
            f"commentary placeholder {_shown(keys)}: show=\"better\" pairs the entries on the (seed, sample) pairs "
            f"both hold, but {entry_a} and {entry_b} share none (no sample classified correctly, or moved, by both)"
        )
    higher = bool(a["higher_is_better"])
    p = seedstats.paired_pvalue(pairs["value_a"].to_numpy(), pairs["value_b"].to_numpy(), higher)
    seed_differences = (pairs["value_a"] - pairs["value_b"]).groupby(pairs["seed"]).mean()
    difference = seed_differences.mean()
    wins = int((seed_differences > 0).sum() if higher else (seed_differences < 0).sum())
    shown_p = "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
    sign = "+" if difference >= 0 else "−"
    return (
        f"{'yes' if p < LEVEL else 'no'} ({sign}{abs(difference):.3f}, paired Wilcoxon {shown_p} on {len(pairs)} pairs; "
        f"better in {wins}/{len(seed_differences)} seeds)"
    )


def _accuracy(keys: dict[str, str], show: str, accuracy: pd.DataFrame) -> str:
    extra = set(keys) - {"dataset", "model", "recipe"}
    if extra:
        raise ValueError(f'commentary placeholder {_shown(keys)}: show="{show}" takes only dataset, model, recipe keys')
    value = _unique(keys, accuracy, "models")[_ACCURACY_SHOWS[show]]
    if pd.isna(value):
        raise ValueError(
            f'commentary placeholder {_shown(keys)}: show="{show}" is not recorded for every seed of this model '
            "(models cached before balanced accuracy was recorded); rerun the suite from a fresh model cache"
        )
    return f"{value:.3f}"
