"""Wisconsin Diagnostic Breast Cancer (WDBC), as shipped with scikit-learn."""

from __future__ import annotations

import torch
from salbench.core.validation import check_fraction, check_seed
from salbench.datasets import register
from salbench.datasets.base import DataBundle, Dataset, Split
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from torch import Tensor

__all__ = ["WDBC", "standardised_table"]


@register("wdbc")
class WDBC(Dataset):
    """WDBC breast cancer: 569 tumours × 30 nucleus features, malignant (0) vs benign (1).

    Data: Street, Wolberg & Mangasarian (1993), UCI ML repository, loaded offline with
    ``sklearn.datasets.load_breast_cancer``; labels as sklearn gives them (0 = malignant,
    212 samples; 1 = benign, 357).

    Splits: stratified by label (``sklearn.model_selection.train_test_split`` with
    ``random_state=seed``): first ``test_fraction`` of all samples into test, then
    ``val_fraction`` of all samples (``val_fraction / (1 − test_fraction)`` of the rest) into
    val. Features are standardised with the TRAIN split's mean and standard deviation
    (population std), so nothing of val/test leaks into preprocessing.

    Bounds: the per-feature minimum and maximum over all 569 samples, in standardised units:
    the range of values the measurement is known to take, used by attacks as the valid input
    range. Taken over every split (not only train) so that every clean sample lies inside its
    own valid range; an attack must never have to move a clean sample to make it valid. The
    bounds are not used for training or preprocessing, so nothing is learned from val/test.

    Args:
        val_fraction: fraction of all samples in the validation split.
        test_fraction: fraction of all samples in the test split.
        seed: random_state of the stratified splits.

    Example:
        >>> bundle = WDBC().load()
        >>> bundle.input_shape, len(bundle.test), bundle.feature_names[0]
        ((30,), 114, 'mean radius')
    """

    modality = "tabular"

    def __init__(self, val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0):
        check_fraction(val_fraction, "val_fraction")
        check_fraction(test_fraction, "test_fraction")
        if val_fraction + test_fraction >= 1:
            raise ValueError(
                f"val_fraction + test_fraction must be < 1 to leave a train split, got {val_fraction} + {test_fraction}"
            )
        check_seed(seed)
        self.val_fraction, self.test_fraction, self.seed = float(val_fraction), float(test_fraction), seed

    def load(self) -> DataBundle:
        raw = load_breast_cancer()
        y = torch.from_numpy(raw.target).long()
        return standardised_table(torch.from_numpy(raw.data), y, self.split_indices(y), raw.feature_names)

    def split_indices(self, strata: Tensor) -> dict[str, Tensor]:
        """Indices of the train, val and test splits, stratified by ``strata`` (one label per sample)."""
        index = torch.arange(len(strata))
        rest, test = train_test_split(index, test_size=self.test_fraction, stratify=strata, random_state=self.seed)
        train, val = train_test_split(
            rest, test_size=self.val_fraction / (1 - self.test_fraction), stratify=strata[rest], random_state=self.seed
        )
        return {"train": train, "val": val, "test": test}


def standardised_table(x: Tensor, y: Tensor, indices: dict[str, Tensor], feature_names) -> DataBundle:
    """A two-class tabular bundle of ``x`` standardised with the train split's statistics, bounded by every split's range."""
    mean, std = x[indices["train"]].mean(0), x[indices["train"]].std(0, correction=0)
    z = ((x - mean) / std).float()
    split = {name: Split(x=z[i], y=y[i]) for name, i in indices.items()}
    return DataBundle(
        **split,
        num_classes=2,
        modality="tabular",
        bounds=(z.amin(0), z.amax(0)),
        feature_names=tuple(str(n) for n in feature_names),
    )
