"""A table of the user's (CSV, TSV, JSONL or parquet) with a label column, for tabular models and the ``clinical`` attack.

Features: ``feature_columns`` (default: every column but the label and split columns), in that
order, each holding finite numbers (a text cell or a missing value is an error naming the
column and row). They are standardised with the TRAIN split's mean and population standard
deviation (a column constant on train is an error). Bounds: the per-feature minimum and
maximum over all rows, standardised (as :class:`~salbench.datasets.wdbc.WDBC`: every clean
row lies inside the valid range, nothing is learned from val/test).

For the ``clinical`` attack the table declares, by column name: ``integer_features``
(integer-valued: every value is checked to be a whole number; the attack keeps them on their
grid, origin −mean/std and spacing 1/std in standardised units), ``immutable_features``
(never moved: age, sex, a diagnosis code) and ``error_budgets``, each mutable feature's
measurement error in the column's own units (e.g. ``{ systolic_bp = 4.0 }`` mmHg), which
becomes a fraction budget/std of the train std. With ``error_budgets`` given, every feature
is either immutable or has a budget; the bundle then carries the
:class:`~salbench.attacks.profiles.TableProfile` (``DataBundle.table_profile``) that the
attack uses with ``profile = "data"``.

Example:
    >>> import tempfile, numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> frame = pd.DataFrame({"age": rng.integers(20, 90, 40), "bp": rng.normal(120, 15, 40),
    ...                       "label": np.arange(40) % 2})
    >>> with tempfile.TemporaryDirectory() as d:
    ...     frame.to_csv(f"{d}/t.csv", index=False)
    ...     bundle = Table(path=f"{d}/t.csv", integer_features=("age",), immutable_features=("age",),
    ...                    error_budgets={"bp": 4.0}, val_fraction=0.25, test_fraction=0.25).load()
    >>> bundle.feature_names, [rule.fraction for _, rule in bundle.table_profile.features][0]
    (('age', 'bp'), 0.0)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from salbench.attacks.profiles import FeatureRule, TableProfile, check_table_profile
from salbench.datasets import register
from salbench.datasets.base import DataBundle, Split
from salbench.datasets.checks import check_num_classes, first_bad, require
from salbench.datasets.frames import FrameDataset, numeric_column

__all__ = ["Table"]

@register("table")
class Table(FrameDataset):
    """A table of the user's (CSV/TSV/JSONL/parquet): numeric feature columns and an integer label column.

    See :mod:`salbench.datasets.table` for the features, standardisation, bounds and the
    declarations of the ``clinical`` attack.

    Args:
        feature_columns: the feature columns in order; None: every column but the label and split columns.
        integer_features, immutable_features: feature column names.
        error_budgets: feature name → measurement error in the column's units (>= 0).
        label_column, split_column, path, data_dir, num_classes, val_fraction, test_fraction, seed:
            see :class:`~salbench.datasets.frames.FrameDataset`.
    """

    modality = "tabular"

    def __init__(
        self,
        feature_columns: tuple[str, ...] | None = None,
        integer_features: tuple[str, ...] = (),
        immutable_features: tuple[str, ...] = (),
        error_budgets: dict | None = None,
        **common,
    ):
        super().__init__(**common)
        for name, value in (error_budgets or {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"error_budgets[{name!r}] must be a finite number >= 0 (column units), got {value!r}")
        frozen_with_budget = sorted(set(immutable_features) & set(error_budgets or {}))
        if frozen_with_budget:
            raise ValueError(f"feature(s) {frozen_with_budget} are immutable and also have an error budget; choose one")
        self.feature_columns = tuple(feature_columns) if feature_columns is not None else None
        self.integer_features, self.immutable_features = tuple(integer_features), tuple(immutable_features)
        self.error_budgets = dict(error_budgets) if error_budgets is not None else None

    def load(self) -> DataBundle:
        frame, where, y, rows = self.read(list(self.feature_columns or ()))
        special = {self.label_column, self.split_column}
        features = list(self.feature_columns or (str(c) for c in frame.columns if c not in special))
        if special & set(features):
            raise ValueError(f"{where}: feature_columns include the label or split column {sorted(special & set(features))}")
        declared = (*self.integer_features, *self.immutable_features, *(self.error_budgets or {}))
        require(declared, features, f"{where} (declared features)", "feature column")
        raw = np.stack([numeric_column(frame, c, where) for c in features], axis=1)
        for name in self.integer_features:
            column = raw[:, features.index(name)]
            bad = column != np.round(column)
            if bad.any():
                raise ValueError(
                    f"{where}: column {name!r} holds {column[np.argmax(bad)].item()!r} at {first_bad(bad)}; "
                    "it is declared an integer feature"
                )
        num_classes = check_num_classes([(y, f"{where}: column {self.label_column!r}")], self.num_classes)
        mean, std = raw[rows["train"]].mean(0), raw[rows["train"]].std(0)
        constant = np.flatnonzero(std == 0)
        if len(constant):
            raise ValueError(
                f"{where}: column(s) {[features[i] for i in constant]} are constant on the train split (std 0), so "
                "they cannot be standardised and tell the model nothing; leave them out of feature_columns"
            )
        z = torch.from_numpy(((raw - mean) / std).astype(np.float32))
        target = torch.from_numpy(y)
        splits = {name: Split(x=z[i], y=target[i]) for name, i in rows.items()}
        return DataBundle(
            **splits,
            num_classes=num_classes,
            modality="tabular",
            bounds=(z.amin(0), z.amax(0)),
            feature_names=tuple(features),
            table_profile=self._profile(where, features, mean, std),
        )

    def _profile(self, where: str, features: list[str], mean: np.ndarray, std: np.ndarray) -> TableProfile | None:
        if self.error_budgets is None:
            return None
        missing = [f for f in features if f not in self.error_budgets and f not in self.immutable_features]
        if missing:
            raise ValueError(
                f"{where}: error_budgets is given, so every feature needs a budget or must be immutable; "
                f"missing: {missing}"
            )
        rules = []
        for i, name in enumerate(features):
            grid = (float(-mean[i] / std[i]), float(1 / std[i])) if name in self.integer_features else None
            if name in self.immutable_features:
                rules.append((name, FeatureRule(0.0, "declared immutable", grid=grid)))
                continue
            budget = float(self.error_budgets[name])
            why = f"declared measurement error {budget} (column units) / train std {std[i]:.6g}"
            rules.append((name, FeatureRule(budget / float(std[i]), why, grid=grid)))
        profile = TableProfile(name=Path(where).name, description=f"declared by the table data set {where}",
                               features=tuple(rules))
        check_table_profile(profile)
        return profile
