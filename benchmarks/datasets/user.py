"""What every data set of the user's own files shares: where the data lie, the split rule, the classes.

A user data set reads ``path``: a file or folder name looked up in the data directory
(``data_dir``, ``$SALBENCH_DATA_DIR`` or ``../shared/data``, :mod:`salbench.datasets.data_dir`)
or a path. Its splits either come with the data (keys ``train_*``/``val_*``/``test_*``, split
folders, a split column: each loader says which) or, with ``val_fraction`` and
``test_fraction`` given, are drawn from one pool as for the built-in sets: stratified by label
(``sklearn.model_selection.train_test_split``, ``random_state=seed``), first
``test_fraction`` of all rows into test, then ``val_fraction`` of all rows into val.
``num_classes`` is declared, or None for the largest label + 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from salbench.core.validation import check_fraction, check_positive_int, check_seed
from salbench.datasets.base import Dataset
from salbench.datasets.data_dir import ENV_VAR, find_data_file
from sklearn.model_selection import train_test_split

__all__ = ["SPLITS", "UserDataset"]

SPLITS = ("train", "val", "test")

_HOW_TO_GET = f"Give path= an existing path, or put it in data_dir=DIR or ${ENV_VAR}=DIR."


class UserDataset(Dataset):
    """Base class of the data sets read from the user's files (see the module docstring).

    Args:
        path: a file or folder name looked up in the data directory, or a path.
        data_dir: the directory holding it; None searches ``$SALBENCH_DATA_DIR`` or ``../shared/data``.
        num_classes: the number of classes (every label below it); None: the largest label + 1.
        val_fraction, test_fraction: both None (the data say the splits) or both in (0, 1),
            summing below 1 (one pool, split stratified by label).
        seed: random_state of that split.
    """

    location_params = ("path", "data_dir")

    def __init__(
        self,
        path: str,
        data_dir: str | None = None,
        num_classes: int | None = None,
        val_fraction: float | None = None,
        test_fraction: float | None = None,
        seed: int = 0,
    ):
        if not isinstance(path, str) or not path:
            raise ValueError(f"path must be a non-empty file or folder name or path, got {path!r}")
        if num_classes is not None:
            check_positive_int(num_classes, "num_classes")
            if num_classes < 2:
                raise ValueError(f"num_classes must be >= 2 (or None for the largest label + 1), got {num_classes}")
        if (val_fraction is None) != (test_fraction is None):
            raise ValueError(
                "give both val_fraction and test_fraction (one pool, split stratified) or neither (the data hold "
                f"the splits), got val_fraction={val_fraction!r}, test_fraction={test_fraction!r}"
            )
        if val_fraction is not None:
            check_fraction(val_fraction, "val_fraction")
            check_fraction(test_fraction, "test_fraction")
            if val_fraction + test_fraction >= 1:
                raise ValueError(f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}")
        check_seed(seed)
        self.path, self.data_dir, self.num_classes = path, data_dir, num_classes
        self.val_fraction, self.test_fraction, self.seed = val_fraction, test_fraction, seed

    @property
    def pooled(self) -> bool:
        """Whether the splits are drawn here from one pool (the fractions are given)."""
        return self.val_fraction is not None

    def locate_file(self) -> Path:
        """The path of the data file (FileNotFoundError naming the places searched)."""
        return find_data_file(self.path, self.data_dir, how_to_get=_HOW_TO_GET)

    def locate_folder(self) -> Path:
        """The path of the data folder, searched like a file (FileNotFoundError naming the places searched)."""
        return find_data_file(self.path, self.data_dir, how_to_get=_HOW_TO_GET, folder=True)

    def split_pool(self, labels: np.ndarray, where: str) -> dict[str, np.ndarray]:
        """Row indices of train/val/test drawn from one pool of ``labels`` (see the module docstring)."""
        index = np.arange(len(labels))
        try:
            rest, test = train_test_split(index, test_size=self.test_fraction, stratify=labels, random_state=self.seed)
            train, val = train_test_split(
                rest, test_size=self.val_fraction / (1 - self.test_fraction), stratify=labels[rest],
                random_state=self.seed,
            )
        except ValueError as err:
            raise ValueError(
                f"{where}: cannot split {len(labels)} rows stratified by label into val_fraction={self.val_fraction}, "
                f"test_fraction={self.test_fraction} ({err}); every class needs enough rows for each split"
            ) from err
        return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}

    def split_by_names(self, values: np.ndarray, where: str) -> dict[str, np.ndarray]:
        """Row indices of each split from a column of split names ("train", "val", "test"; each non-empty)."""
        text = np.array([str(v) for v in values])
        bad = ~np.isin(text, SPLITS)
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(f"{where} holds {values[row]!r} at row {row}; a split name must be one of {SPLITS}")
        out = {name: np.flatnonzero(text == name) for name in SPLITS}
        empty = [name for name, rows in out.items() if len(rows) == 0]
        if empty:
            raise ValueError(f"{where} names no row of split(s) {', '.join(empty)}; every split needs at least one row")
        return out

    def no_pool(self, where: str) -> None:
        """The data hold their splits, so the fractions must not be given."""
        if self.pooled:
            raise ValueError(
                f"{where} holds its own train/val/test splits; val_fraction and test_fraction apply only to data "
                "without them (one pool): leave them out"
            )
