"""Validation of the user's data at load: every error names the file, key or column and the first bad row.

Each check takes ``where``, what the values are ("x.npz: key 'train_images'", "t.csv: column
'age'"), and raises ValueError naming it with the first offending row (the index along the
first axis; for a multi-dimensional array also the full index). Row numbers count from 0 in
the order of the file (for a CSV: data rows, the header excluded). Nothing is clipped,
dropped or repaired.

Example:
    >>> import numpy as np
    >>> check_finite(np.array([[0.0, 1.0], [2.0, np.nan]]), "x.npz: key 'images'")
    Traceback (most recent call last):
    ...
    ValueError: x.npz: key 'images' holds NaN at row 1 (index (1, 1)); every value must be finite
    >>> labels(np.array([[1], [0], [2]]), "x.npz: key 'labels'").tolist()
    [1, 0, 2]
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import numpy as np

__all__ = [
    "first_bad",
    "require",
    "check_numeric",
    "check_finite",
    "check_in_range",
    "labels",
    "check_num_classes",
    "check_count",
]


def first_bad(bad: np.ndarray) -> str:
    """"row r" (and the full index for more than one axis) of the first True of ``bad``, in C order."""
    index = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape))
    return f"row {index[0]}" + (f" (index {index})" if len(index) > 1 else "")


def require(names: Iterable[str], available: Collection[str], where: str, kind: str) -> None:
    """Every name of ``names`` is among ``available`` (``kind``: "key", "column", ...), else the missing ones are named."""
    missing = [n for n in names if n not in available]
    if missing:
        raise ValueError(
            f"{where}: missing {kind}(s) {', '.join(map(repr, missing))}; found {', '.join(map(repr, sorted(available)))}"
        )


def check_numeric(values: np.ndarray, where: str) -> None:
    """A bool, integer or real floating array (not strings, objects or complex numbers)."""
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_) or np.iscomplexobj(values):
        raise ValueError(f"{where} must hold real numbers (any int or float dtype), got dtype {values.dtype}")


def check_finite(values: np.ndarray, where: str) -> None:
    """No NaN or ±inf (integer arrays always pass)."""
    check_numeric(values, where)
    if not np.issubdtype(values.dtype, np.floating):
        return
    bad = ~np.isfinite(values)
    if bad.any():
        kind = "NaN" if np.isnan(values[np.unravel_index(int(np.argmax(bad)), bad.shape)]) else "an infinite value"
        raise ValueError(f"{where} holds {kind} at {first_bad(bad)}; every value must be finite")


def check_in_range(values: np.ndarray, low: float, high: float, where: str) -> None:
    """Every value in [low, high] (the declared value range; values outside are an error, never clipped)."""
    bad = (values < low) | (values > high)
    if bad.any():
        value = values[np.unravel_index(int(np.argmax(bad)), bad.shape)]
        raise ValueError(
            f"{where} holds {value.item()!r} at {first_bad(bad)}, outside the declared value_range [{low}, {high}] "
            "(values are never clipped: fix the data or the declared range)"
        )


def labels(values: np.ndarray, where: str) -> np.ndarray:
    """Class labels as int64 (N,): shape (N,) or (N, 1), integers >= 0 (floats only if integral).

    Raises ValueError for another shape (a multi-label (N, k) array included), a non-numeric
    dtype, NaN/inf, a non-integral value or a negative label, naming the first bad row.
    """
    if values.ndim == 2 and values.shape[1] > 1:
        raise ValueError(
            f"{where} has shape {values.shape}: {values.shape[1]} labels per row (multi-label); one class label per "
            "row is supported"
        )
    if values.ndim not in (1, 2) or values.shape[0] == 0:
        raise ValueError(f"{where} must have shape (N,) or (N, 1) with N >= 1, got {values.shape}")
    flat = values.reshape(-1)
    check_finite(flat, where)
    if flat.dtype == np.bool_:
        raise ValueError(f"{where} must hold integer class labels, got dtype bool")
    not_integral = flat != np.round(flat)
    if not_integral.any():
        raise ValueError(
            f"{where} holds {flat[np.argmax(not_integral)].item()!r} at {first_bad(not_integral)}; "
            "class labels must be integers"
        )
    negative = flat < 0
    if negative.any():
        raise ValueError(
            f"{where} holds {flat[np.argmax(negative)].item()!r} at {first_bad(negative)}; class labels must be >= 0"
        )
    return flat.astype(np.int64)


def check_num_classes(parts: Iterable[tuple[np.ndarray, str]], num_classes: int | None) -> int:
    """The number of classes: ``num_classes`` if declared (every label below it), else the largest label + 1 (>= 2).

    ``parts`` are (labels, where) pairs of already checked int64 labels.
    """
    parts = list(parts)
    if num_classes is None:
        num_classes = max(int(y.max()) for y, _ in parts) + 1
        if num_classes < 2:
            where = ", ".join(w for _, w in parts)
            raise ValueError(f"{where}: every label is 0 (a single class); a classifier needs at least 2")
        return num_classes
    for y, where in parts:
        bad = y >= num_classes
        if bad.any():
            raise ValueError(
                f"{where} holds label {int(y[np.argmax(bad)])} at {first_bad(bad)}, outside [0, {num_classes}) "
                f"for the declared num_classes={num_classes}"
            )
    return num_classes


def check_count(n: int, expected: int, where: str, of: str) -> None:
    """``where`` has ``expected`` rows (as many as ``of``)."""
    if n != expected:
        raise ValueError(f"{where} has {n} rows but {of} has {expected}; they must match row for row")
