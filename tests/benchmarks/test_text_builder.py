"""The shared text-data builder (benchmarks/datasets/text.py) and the text modality of DataBundle/Split."""

from __future__ import annotations

import pytest
import torch
from salbench.core.text import PAD, UNK, Vocabulary
from salbench.datasets.base import DataBundle, Split
from salbench.datasets.text import (
    build_text_bundle,
    check_text_params,
    stratified_holdout,
)

TRAIN = (["Heart is normal.", "heart enlarged", "lungs clear; heart normal", "Lungs: clear"], [0, 1, 0, 1])
VAL = (["heart effusion"], [1])
TEST = (["normal lungs", "clear"], [0, 0])


def bundle(**kwargs):
    splits = {"train": TRAIN, "val": VAL, "test": TEST, **kwargs.pop("splits", {})}
    return build_text_bundle(splits, **{"num_classes": 2, "max_len": 4, **kwargs})


def test_hand_worked_bundle_with_a_train_only_vocabulary():
    b = bundle()
    # train counts: heart 3, normal 2, lungs 2, clear 2; is 1, enlarged 1 (below min_freq=2)
    assert b.vocabulary.words == ("<pad>", "<unk>", "heart", "clear", "lungs", "normal")
    assert b.modality == "text" and b.bounds is None and b.input_shape == (2, 4) and b.num_classes == 2
    assert b.train.x[0].tolist() == [[2, UNK, 5, PAD], [0, 1, 2, -1]]
    assert b.train.x[2].tolist() == [[4, 3, 2, 5], [0, 1, 2, 3]]
    assert b.val.x.tolist() == [[[2, UNK, PAD, PAD], [0, 1, -1, -1]]]  # "effusion" is only in val: UNK
    assert b.test.x[:, 0].tolist() == [[5, 4, PAD, PAD], [3, PAD, PAD, PAD]]
    assert b.train.y.tolist() == [0, 1, 0, 1] and b.val.y.dtype == torch.long
    assert b.vocabulary.decode(b.test.x) == ["normal lungs", "clear"]


def test_words_of_val_and_test_never_enter_the_vocabulary():
    many = (["effusion"] * 5, [1] * 5)
    assert "effusion" not in bundle(splits={"val": many, "test": many}).vocabulary


def test_long_texts_are_truncated_to_max_len_and_min_freq_is_passed_on():
    b = bundle(max_len=2, min_freq=1)
    assert b.input_shape == (2, 2) and "enlarged" in b.vocabulary
    assert b.vocabulary.decode(b.train.x) == ["heart is", "heart enlarged", "lungs clear", "lungs clear"]


@pytest.mark.parametrize(
    "splits, match",
    [
        ({"val": (["heart"], [2])}, r"val split's label 0 is 2; labels must be ints in \[0, 2\)"),
        ({"test": (["heart", "lungs"], [0, -1])}, r"test split's label 1 is -1"),
        ({"val": (["heart"], [True])}, "label 0 is True"),
        ({"val": (["heart"], [1.0])}, "label 0 is 1.0"),
        ({"val": (["heart"], ["positive"])}, "label 0 is 'positive'"),
        ({"test": (["heart"], [0, 1])}, "test split has 1 texts but 2 labels"),
        ({"test": (["heart", "--"], [0, 1])}, r"the test split: texts\[1\] = '--' has no word"),
    ],
)
def test_bad_labels_and_empty_texts_are_named(splits, match):
    with pytest.raises(ValueError, match=match):
        bundle(splits=splits)


def test_split_names_and_text_types_are_checked():
    with pytest.raises(ValueError, match="must map exactly"):
        build_text_bundle({"train": TRAIN, "test": TEST}, num_classes=2, max_len=4)
    with pytest.raises(TypeError, match="train split's texts"):
        bundle(splits={"train": (["heart", 3], [0, 1])})
    with pytest.raises(TypeError, match=r"the val split: texts\[0\] must be a str"):
        bundle(splits={"val": ([None], [0])})


def test_stratified_holdout_keeps_class_proportions_and_depends_on_the_seed():
    labels = [0] * 30 + [1] * 60 + [2] * 10
    rest, held = stratified_holdout(labels, 0.2, seed=0)
    assert sorted(torch.cat([rest, held]).tolist()) == list(range(100))
    assert torch.bincount(torch.tensor(labels)[held]).tolist() == [6, 12, 2]
    again, _ = stratified_holdout(labels, 0.2, seed=0)
    other, _ = stratified_holdout(labels, 0.2, seed=1)
    assert torch.equal(rest, again) and not torch.equal(rest, other)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((0, 2, 0), {}, "max_len must be an integer >= 1"),
        ((8, 0, 0), {}, "min_freq must be an integer >= 1"),
        ((8, 2, -1), {}, "seed must be an integer >= 0"),
        ((8, 2, 0), {"val_fraction": 0.0}, r"val_fraction must lie in \(0, 1\]"),
        ((8, 2, 0), {"val_fraction": 0.5, "test_fraction": 0.5}, "val_fraction \\+ test_fraction must be < 1"),
    ],
)
def test_check_text_params(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_text_params(*args, **kwargs)


# -- the text modality of Split and DataBundle -------------------------------------------------
VOCAB = Vocabulary(("<pad>", "<unk>", "heart", "normal"))


def text_split(top_id: int = 3) -> Split:
    return Split(torch.tensor([[[2, top_id], [0, 1]], [[3, 0], [0, -1]]]), torch.tensor([0, 1]))


def test_text_bundle_input_shape_and_defaults():
    b = DataBundle(text_split(), text_split(), text_split(), num_classes=2, modality="text", vocabulary=VOCAB)
    assert b.input_shape == (2, 2) and b.train.is_text and len(b.train) == 2


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"vocabulary": None}, TypeError, "modality 'text' needs vocabulary"),
        ({"bounds": (torch.tensor(0), torch.tensor(5))}, ValueError, "bounds and feature_names must be None"),
        ({"train": text_split(top_id=4)}, ValueError, "train split holds token id 4, outside the vocabulary of 4"),
        ({"modality": "tabular"}, TypeError, "the train split's x is a torch.int64 tensor.*needs a float32"),
        ({"test": Split(torch.zeros(2, 2, 2), torch.tensor([0, 1]))}, TypeError, "test split's x .* needs a long"),
    ],
)
def test_text_bundle_consistency_errors(kwargs, error, match):
    params = {"train": text_split(), "val": text_split(), "test": text_split(), "num_classes": 2,
              "modality": "text", "vocabulary": VOCAB, **kwargs}
    with pytest.raises(error, match=match):
        DataBundle(**params)


def test_vocabulary_only_for_text():
    tab = Split(torch.zeros(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="vocabulary must be None for modality 'tabular'"):
        DataBundle(tab, tab, tab, num_classes=2, modality="tabular", vocabulary=VOCAB)


def test_text_split_checks_the_text_tensor():
    with pytest.raises(ValueError, match="Split.x: text 0 .* has a token after PAD"):
        Split(torch.tensor([[[2, 0, 3], [0, -1, 1]]]), torch.tensor([0]))
    with pytest.raises(TypeError, match="mask and Split.reference must be None for a text split"):
        Split(text_split().x, text_split().y, mask=torch.zeros(2, 2, 2, dtype=torch.bool))
    with pytest.raises(TypeError, match="float32 tensor of shape .* or a long \\(N, 2, L\\) text tensor"):
        Split(torch.zeros(2, 3, dtype=torch.int32), torch.tensor([0, 1]))
