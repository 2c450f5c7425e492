"""Texts of the user's (CSV, TSV or JSONL) with a text column and an integer label column.

Each row is one text. The vocabulary is built from the train split and every split is
encoded as the built-in text sets are (:func:`salbench.datasets.text.build_text_bundle`:
:func:`~salbench.core.text.tokenize`, words seen fewer than ``min_freq`` times in train
become UNK, texts longer than ``max_len`` words are truncated). A missing text, or one
without a word, is an error naming the column and row.

Example:
    >>> import tempfile, pandas as pd
    >>> texts = ["clear lungs", "enlarged heart", "clear heart", "large effusion"] * 5
    >>> frame = pd.DataFrame({"report": texts, "label": [0, 1, 0, 1] * 5})
    >>> with tempfile.TemporaryDirectory() as d:
    ...     frame.to_csv(f"{d}/notes.csv", index=False)
    ...     bundle = TextFile(path=f"{d}/notes.csv", text_column="report", max_len=8,
    ...                       val_fraction=0.2, test_fraction=0.2).load()
    >>> bundle.input_shape, len(bundle.train), "clear" in bundle.vocabulary
    ((2, 8), 12, True)
"""

from __future__ import annotations

import numpy as np
from salbench.core.text import tokenize
from salbench.datasets import register
from salbench.datasets.base import DataBundle
from salbench.datasets.checks import check_num_classes, first_bad
from salbench.datasets.frames import FrameDataset
from salbench.datasets.text import build_text_bundle, check_text_params

__all__ = ["TextFile"]


@register("text_file")
class TextFile(FrameDataset):
    """Texts of the user's (CSV/TSV/JSONL): a text column and an integer label column.

    Args:
        text_column: the column of texts.
        max_len: token slots per text (L); longer texts are truncated.
        min_freq: minimum number of occurrences in the train split of a vocabulary word.
        label_column, split_column, path, data_dir, num_classes, val_fraction, test_fraction, seed:
            see :class:`~salbench.datasets.frames.FrameDataset`.
    """

    modality = "text"
    formats = (".csv", ".tsv", ".jsonl")

    def __init__(self, text_column: str = "text", max_len: int = 128, min_freq: int = 2, **common):
        super().__init__(**common)
        check_text_params(max_len, min_freq, self.seed)
        self.text_column, self.max_len, self.min_freq = text_column, max_len, min_freq

    def load(self) -> DataBundle:
        frame, where, y, rows = self.read([self.text_column])
        column = frame[self.text_column].to_numpy()
        bad = np.array([not isinstance(t, str) or not tokenize(t) for t in column])
        if bad.any():
            raise ValueError(
                f"{where}: column {self.text_column!r} holds {column[np.argmax(bad)]!r} at {first_bad(bad)}; "
                "every row needs a text with at least one word"
            )
        num_classes = check_num_classes([(y, f"{where}: column {self.label_column!r}")], self.num_classes)
        splits = {name: ([column[i] for i in index], [int(y[i]) for i in index]) for name, index in rows.items()}
        return build_text_bundle(splits, num_classes=num_classes, max_len=self.max_len, min_freq=self.min_freq)
