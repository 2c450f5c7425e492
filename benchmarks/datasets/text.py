"""The shared builder of text data sets: raw texts and labels of three splits -> a text DataBundle.

The vocabulary is built from the TRAIN split only (so nothing of val/test leaks into it; their
words outside it become UNK), then every split is encoded into a long (N, 2, max_len) text
tensor (:mod:`salbench.core.text`). Texts longer than ``max_len`` words are truncated to
their first ``max_len`` words; each loader chooses a default ``max_len`` that covers nearly all
of its texts and says how many it cuts.

Example:
    >>> bundle = build_text_bundle(
    ...     {"train": (["clear lungs", "clear heart", "large heart"], [0, 0, 1]),
    ...      "val": (["large lungs"], [1]), "test": (["clear"], [0])},
    ...     num_classes=2, max_len=4, min_freq=2)
    >>> bundle.vocabulary.words, bundle.input_shape, bundle.val.x[0, 0].tolist()
    (('<pad>', '<unk>', 'clear', 'heart'), (2, 4), [1, 1, 0, 0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from salbench.core.text import Vocabulary, tokenize
from salbench.core.validation import check_fraction, check_positive_int, check_seed
from salbench.datasets.base import DataBundle, Split
from sklearn.model_selection import train_test_split
from torch import Tensor

__all__ = ["SPLITS", "build_text_bundle", "stratified_holdout", "check_text_params"]

SPLITS = ("train", "val", "test")


def build_text_bundle(
    splits: Mapping[str, tuple[Sequence[str], Sequence[int]]],
    *,
    num_classes: int,
    max_len: int,
    min_freq: int = 2,
    max_size: int | None = None,
) -> DataBundle:
    """A text :class:`DataBundle` from ``{"train": (texts, labels), "val": ..., "test": ...}``.

    Args:
        splits: for each of "train", "val", "test", the texts (str) and their int labels.
        num_classes: number of classes; every label must lie in [0, num_classes).
        max_len: L, the number of token slots per text; longer texts are truncated.
        min_freq, max_size: of :meth:`Vocabulary.build` on the tokenised train texts.

    Raises:
        ValueError: other split names, texts and labels of different lengths, a label that is
            not an int in [0, num_classes), a text without a word (split and index named).
    """
    if not isinstance(splits, Mapping) or set(splits) != set(SPLITS):
        got = sorted(splits) if isinstance(splits, Mapping) else type(splits).__name__
        raise ValueError(f"splits must map exactly {SPLITS} to (texts, labels), got {got}")
    train_texts = splits["train"][0]
    if isinstance(train_texts, str) or not all(isinstance(t, str) for t in train_texts):
        raise TypeError("the train split's texts must be a sequence of str")
    vocabulary = Vocabulary.build([tokenize(t) for t in train_texts], min_freq=min_freq, max_size=max_size)
    encoded = {name: _split(name, *splits[name], vocabulary, num_classes, max_len) for name in SPLITS}
    return DataBundle(**encoded, num_classes=num_classes, modality="text", vocabulary=vocabulary)


def _split(name: str, texts: Sequence[str], labels: Sequence[int], vocabulary: Vocabulary, num_classes: int,
           max_len: int) -> Split:
    if len(texts) != len(labels):
        raise ValueError(f"the {name} split has {len(texts)} texts but {len(labels)} labels")
    for i, label in enumerate(labels):
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < num_classes:
            raise ValueError(
                f"the {name} split's label {i} is {label!r}; labels must be ints in [0, {num_classes})"
            )
    try:
        x = vocabulary.encode(texts, max_len)
    except (TypeError, ValueError) as err:
        raise type(err)(f"the {name} split: {err}") from err
    return Split(x=x, y=torch.tensor(list(labels), dtype=torch.long))


def stratified_holdout(labels: Sequence[int], fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Indices (rest, held) of a stratified random split holding out ``fraction`` of ``labels``.

    ``sklearn.model_selection.train_test_split`` with ``stratify=labels`` and
    ``random_state=seed``: the class proportions of both parts match those of ``labels``.
    """
    index = torch.arange(len(labels))
    rest, held = train_test_split(index, test_size=fraction, stratify=list(labels), random_state=seed)
    return rest, held


def check_text_params(max_len: int, min_freq: int, seed: int, **fractions: float) -> None:
    """The shared parameters of the text loaders: max_len, min_freq >= 1, seed >= 0, fractions in (0, 1) summing below 1."""
    check_positive_int(max_len, "max_len")
    check_positive_int(min_freq, "min_freq")
    check_seed(seed)
    for name, value in fractions.items():
        check_fraction(value, name)
    if sum(fractions.values()) >= 1:
        names = " + ".join(fractions)
        raise ValueError(f"{names} must be < 1 to leave a train split, got {' + '.join(map(str, fractions.values()))}")
