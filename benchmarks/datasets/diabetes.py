"""Diabetes progression (Efron et al. 2004), as shipped with scikit-learn, binarised at the train median."""

from __future__ import annotations

import torch
from salbench.datasets import register
from salbench.datasets.base import DataBundle
from salbench.datasets.wdbc import WDBC, standardised_table
from sklearn.datasets import load_diabetes

__all__ = ["Diabetes"]


@register("diabetes")
class Diabetes(WDBC):
    """Diabetes: 442 patients × 10 baseline variables; disease progression after one year above (1) or at/below (0) the train median.

    Data: Efron, Hastie, Johnstone & Tibshirani, "Least Angle Regression", Annals of Statistics
    2004; loaded offline with ``sklearn.datasets.load_diabetes(scaled=False)`` (age, sex, body
    mass index, mean blood pressure and six blood serum measurements s1–s6, in their original
    units). The target, a quantitative measure of progression (25–346), becomes a class:
    1 where it exceeds the median of the TRAIN split (``torch.median``: the lower of the two
    middle values, the split having an even size by default), else 0, so the threshold is
    learned from train alone and the classes are (nearly) balanced there.

    Splits: as :class:`~salbench.datasets.wdbc.WDBC`'s (``random_state=seed``), stratified by
    whether the target exceeds the median of all 442 patients: a split design, not a label
    (every split then holds about half of each class; the labels use the train median). Features
    standardised with the train split's mean and population std; bounds the per-feature range
    over all splits (see WDBC). ``sex`` is a two-valued variable, standardised like the rest.

    Args:
        val_fraction, test_fraction, seed: see :class:`~salbench.datasets.wdbc.WDBC`.

    Example:
        >>> bundle = Diabetes().load()
        >>> bundle.input_shape, len(bundle.train), len(bundle.test), bundle.feature_names[2]
        ((10,), 264, 89, 'bmi')
    """

    masks = False

    def load(self) -> DataBundle:
        raw = load_diabetes(scaled=False)
        x, target = torch.from_numpy(raw.data), torch.from_numpy(raw.target)
        indices = self.split_indices((target > target.median()).long())
        y = (target > target[indices["train"]].median()).long()
        return standardised_table(x, y, indices, raw.feature_names)
