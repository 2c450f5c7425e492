"""Reading the user's tables (CSV, TSV, JSONL, parquet) and checking their columns, row by row.

:class:`FrameDataset` is the base of the data sets read from one table (a label column, and a
split column or one pool). Rows are numbered from 0 in file order (for CSV/TSV the header is not a row), as in every
error of :mod:`salbench.datasets.checks`.

Example:
    >>> import io, pandas as pd
    >>> frame = pd.read_csv(io.StringIO("age,label\\n50,0\\nold,1\\n"))
    >>> numeric_column(frame, "age", "t.csv")
    Traceback (most recent call last):
    ...
    ValueError: t.csv: column 'age' holds 'old' at row 1; it must hold numbers
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from salbench.datasets.checks import check_finite, labels, require
from salbench.datasets.user import UserDataset

__all__ = ["READERS", "read_frame", "numeric_column", "FrameDataset"]

READERS = {
    ".csv": lambda p: pd.read_csv(p),
    ".tsv": lambda p: pd.read_csv(p, sep="\t"),
    ".jsonl": lambda p: pd.read_json(p, lines=True),
    ".parquet": lambda p: pd.read_parquet(p),
}
"""File suffix → reader; the suffix says the format."""


def read_frame(path: Path, formats: tuple[str, ...]) -> pd.DataFrame:
    """The table at ``path``, read by its suffix among ``formats`` (keys of :data:`READERS`)."""
    suffix = path.suffix.lower()
    if suffix not in formats:
        raise ValueError(f"{path}: the file's suffix {suffix!r} is not one of the formats read here: {', '.join(formats)}")
    try:
        frame = READERS[suffix](path)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise ValueError(f"{path} is not a readable {suffix} table: {err}") from err
    if len(frame) == 0:
        raise ValueError(f"{path} holds no rows")
    return frame


def numeric_column(frame: pd.DataFrame, column: str, where: str) -> np.ndarray:
    """The finite numbers of ``column`` as float64 (a text cell, a missing value, NaN or inf: error naming the row)."""
    values = frame[column]
    label = f"{where}: column {column!r}"
    if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
        parsed = pd.to_numeric(values, errors="coerce")
        bad = (parsed.isna() & values.notna()).to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(f"{label} holds {values.iloc[row]!r} at row {row}; it must hold numbers")
        values = parsed
    out = values.to_numpy(dtype=np.float64, na_value=np.nan)
    check_finite(out, label)
    return out


class FrameDataset(UserDataset):
    """Base of the data sets read from one table file: its label column and how its rows split.

    Args:
        label_column: the column of integer class labels (>= 0; floats only if whole numbers).
        split_column: a column naming each row's split ("train", "val", "test"); None: the
            fractions split one pool. Exactly one of the two is given.
        path, data_dir, num_classes, val_fraction, test_fraction, seed: see
            :class:`~salbench.datasets.user.UserDataset`.
    """

    formats: tuple[str, ...] = tuple(READERS)

    def __init__(self, label_column: str = "label", split_column: str | None = None, **common):
        super().__init__(**common)
        if (split_column is None) != self.pooled:
            raise ValueError(
                "give split_column (the table names each row's split) or val_fraction and test_fraction (one pool), "
                f"exactly one of them; got split_column={split_column!r}, val_fraction={self.val_fraction!r}"
            )
        self.label_column, self.split_column = label_column, split_column

    def data_files(self) -> dict[str, Path]:
        return {"data": self.locate_file()}

    def read(self, columns: list[str]) -> tuple[pd.DataFrame, str, np.ndarray, dict[str, np.ndarray]]:
        """The table (with ``columns``, the label and split columns checked present), its name, the labels and
        the row indices of each split."""
        path = self.locate_file()
        frame, where = read_frame(path, self.formats), str(path)
        special = [c for c in (self.label_column, self.split_column) if c is not None]
        require([*special, *columns], frame.columns, where, "column")
        y = labels(numeric_column(frame, self.label_column, where), f"{where}: column {self.label_column!r}")
        if self.split_column is None:
            rows = self.split_pool(y, f"{where}: column {self.label_column!r}")
        else:
            rows = self.split_by_names(frame[self.split_column].to_numpy(), f"{where}: column {self.split_column!r}")
        return frame, where, y, rows
