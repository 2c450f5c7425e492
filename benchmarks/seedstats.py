"""Statistics with the seed as the unit of replication: the hierarchical bootstrap, paired and
unpaired comparisons of two entries, and Holm's correction.

A leaderboard entry holds per-sample values under several seeds (a seed trains the model, draws
the samples and seeds the explainer and attack). Its estimate is the mean over seeds of the
per-seed means; :func:`hierarchical_bootstrap` resamples the seeds, then the samples within each
resampled seed, so its percentile interval (:func:`percentile_interval`) carries seed-to-seed as
well as sample-to-sample variation (with one seed it is the ordinary sample bootstrap).
:func:`paired_pvalue` compares two entries on the same (seed, sample) pairs with the one-sided
Wilcoxon signed-rank test; :func:`unpaired_pvalue` compares entries on different samples by
their independent bootstrap replicates. :func:`holm` adjusts a family of p-values.

Example:
    >>> reps = hierarchical_bootstrap([np.array([0.1, 0.2, 0.3]), np.array([0.5, 0.6])])
    >>> low, high = percentile_interval(reps)
    >>> bool(low < (0.2 + 0.55) / 2 < high)
    True
    >>> holm(np.array([0.01, 0.04, 0.03])).round(2).tolist()
    [0.03, 0.06, 0.06]
"""

from __future__ import annotations

import zlib

import numpy as np
from scipy import stats

__all__ = ["RESAMPLES", "BOOTSTRAP_SEED", "hierarchical_bootstrap", "percentile_interval", "paired_pvalue",
           "unpaired_pvalue", "holm"]

RESAMPLES = 2000
"""Bootstrap replicates per entry."""
BOOTSTRAP_SEED = 20240614
"""The fixed seed of every bootstrap (with the entry's stream), so output is deterministic."""


def hierarchical_bootstrap(
    seed_values: list[np.ndarray], resamples: int = RESAMPLES, stream: str = ""
) -> np.ndarray:
    """``resamples`` bootstrap replicates of the mean over seeds of the per-seed means.

    The draws come from :data:`BOOTSTRAP_SEED` and ``stream`` (e.g. the entry's name): the same
    entry always gets the same replicates, two entries get independent ones.

    ``seed_values`` holds one non-empty 1-D array of finite values per seed. Each replicate
    draws as many seeds as there are, with replacement, then within each drawn seed as many of
    its values as it has, with replacement, and averages the drawn seeds' means. Vectorised:
    one (resamples, seeds, largest seed) draw of positions into the concatenated values.
    """
    if not seed_values or any(len(v) == 0 for v in seed_values):
        raise ValueError("hierarchical_bootstrap needs at least one seed and a value in every seed")
    rng = np.random.default_rng([BOOTSTRAP_SEED, zlib.crc32(stream.encode("utf-8"))])
    sizes = np.array([len(v) for v in seed_values])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    flat = np.concatenate(seed_values).astype("float64")
    picks = rng.integers(0, len(seed_values), size=(resamples, len(seed_values)))
    picked_sizes = sizes[picks][..., None]
    uniform = rng.random((resamples, len(seed_values), sizes.max()), dtype=np.float32)
    positions = np.minimum((uniform * picked_sizes).astype(np.int64), picked_sizes - 1)  # float32 rounding
    drawn = flat[starts[picks][..., None] + positions]
    if (sizes != sizes[0]).any():  # a smaller drawn seed uses only its first picked_sizes draws
        drawn = np.where(np.arange(sizes.max()) < picked_sizes, drawn, 0.0)
    return (drawn.sum(axis=-1) / picked_sizes[..., 0]).mean(axis=-1)


def percentile_interval(replicates: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The two-sided percentile interval of bootstrap ``replicates``."""
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return float(low), float(high)


def paired_pvalue(better: np.ndarray, other: np.ndarray, higher_is_better: bool) -> float:
    """One-sided Wilcoxon signed-rank p-value that ``better`` beats ``other`` on the same pairs.

    Zero differences are left out (Wilcoxon's convention); no non-zero difference gives 1.0.
    """
    difference = np.asarray(better, dtype="float64") - np.asarray(other, dtype="float64")
    if not higher_is_better:
        difference = -difference
    if not np.any(difference != 0):
        return 1.0
    return float(stats.wilcoxon(difference, alternative="greater", zero_method="wilcox").pvalue)


def unpaired_pvalue(better: np.ndarray, other: np.ndarray, higher_is_better: bool) -> float:
    """One-sided bootstrap p-value that ``better`` beats ``other``, from their independent replicates:
    (1 + #replicate pairs where it does not) / (1 + #replicates)."""
    difference = np.asarray(better) - np.asarray(other)
    if not higher_is_better:
        difference = -difference
    return float((1 + np.count_nonzero(difference <= 0)) / (1 + len(difference)))


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), in the input order; NaN stays NaN."""
    p = np.asarray(pvalues, dtype="float64")
    adjusted = np.full_like(p, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    order = present[np.argsort(p[present], kind="stable")]
    m = len(order)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return adjusted
