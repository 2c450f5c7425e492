"""The diabetes data set: splits, train-median labels, train standardisation, bounds, feature names."""

from __future__ import annotations

import pytest
import torch
from salbench import datasets
from salbench.datasets import load_dataset
from sklearn.datasets import load_diabetes


def everything(bundle):
    return torch.cat([bundle.train.x, bundle.val.x, bundle.test.x]), torch.cat([bundle.train.y, bundle.val.y, bundle.test.y])


def raw_rows(bundle):
    """sklearn's row index of every sample, train then val then test.

    Every patient appears once and standardisation is an increasing affine map per feature, so the sorted
    values of a feature over the bundle are those over sklearn's rows under that map: fitting it undoes
    the scaling, and each restored row is matched to its nearest raw row.
    """
    raw = torch.from_numpy(load_diabetes(scaled=False).data)
    x = everything(bundle)[0].double()
    zs, raws = x.sort(0).values, raw.sort(0).values
    scale = ((raws - raws.mean(0)) * (zs - zs.mean(0))).sum(0) / (zs - zs.mean(0)).pow(2).sum(0)
    restored = (x - zs.mean(0)) * scale + raws.mean(0)
    return torch.cdist(restored, raw).argmin(1)


def test_splits_are_disjoint_sized_and_standardised_on_train():
    bundle = load_dataset("diabetes", {})
    assert [len(bundle.train), len(bundle.val), len(bundle.test)] == [264, 89, 89]
    x, _ = everything(bundle)
    assert torch.unique(x, dim=0).shape[0] == 442
    train = bundle.train.x.double()
    assert train.mean(0).abs().max() < 1e-5 and (train.std(0, correction=0) - 1).abs().max() < 1e-5
    assert (bundle.test.x.double().mean(0).abs() > 1e-3).any()  # test statistics were not used
    lo, hi = bundle.bounds
    assert torch.equal(lo, x.amin(0)) and torch.equal(hi, x.amax(0))
    assert bundle.modality == "tabular" and bundle.input_shape == (10,) and bundle.num_classes == 2
    assert datasets.registry.entry("diabetes").attrs["masks"] is False


def test_labels_are_progression_above_the_train_median():
    """Each sample's label is recomputed from sklearn's target and the median of the train rows' targets."""
    for seed in (0, 3):
        bundle = load_dataset("diabetes", {"seed": seed})
        target = torch.from_numpy(load_diabetes().target)
        rows = raw_rows(bundle)
        n_train = len(bundle.train)
        median = target[rows[:n_train]].median()
        _, y = everything(bundle)
        assert torch.equal(y, (target[rows] > median).long())
        assert torch.unique(rows).numel() == 442  # every patient once
        assert bundle.train.y.sum().item() == (target[rows[:n_train]] > median).sum().item() <= n_train // 2
        for split in (bundle.val, bundle.test):  # stratified: about half above in every split
            assert abs(split.y.float().mean().item() - 0.5) < 0.06


def test_feature_names_follow_sklearn_and_the_seed_changes_the_split():
    bundle = load_dataset("diabetes", {"seed": 1})
    assert bundle.feature_names == tuple(load_diabetes().feature_names) == (
        "age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
    assert not torch.equal(load_dataset("diabetes", {"seed": 0}).test.x, bundle.test.x)


@pytest.mark.parametrize(
    "params, name",
    [({"val_fraction": 0.0}, "val_fraction"), ({"test_fraction": 1.5}, "test_fraction"),
     ({"val_fraction": 0.5, "test_fraction": 0.5}, "val_fraction \\+ test_fraction"), ({"seed": -2}, "seed")],
)
def test_bad_parameters_are_named(params, name):
    with pytest.raises(ValueError, match=name):
        load_dataset("diabetes", params)
