"""A text suite end to end through the grid: word attributions, DARE attacks, text metrics, figures."""

from __future__ import annotations

import csv
import io
import random
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from salbench import datasets
from salbench.datasets import load_dataset
from salbench.figures import write_figures
from salbench.model_cache import trained_model
from salbench.results import load_results
from salbench.runner import run_suite
from salbench.store import read_examples, read_records
from salbench.suite import parse_suite

GOOD = ["great", "excellent", "wonderful", "helpful", "effective"]
BAD = ["terrible", "awful", "useless", "painful", "horrible"]
FILLER = ["this", "drug", "medication", "pill", "dose", "week", "doctor", "taking", "felt", "really", "my", "headache"]


def reviews(n: int, seed: int) -> str:
    """A drugsCom-layout TSV of n template reviews whose sentiment words decide the rating."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(["", "drugName", "condition", "review", "rating", "date", "usefulCount"])
    for i in range(n):
        positive = i % 2 == 0
        words = rng.sample(FILLER, 6) + rng.sample(GOOD if positive else BAD, 2) + rng.sample(FILLER, 4)
        rng.shuffle(words)
        writer.writerow([i, "Drug", "Pain", f'"{" ".join(words)}"', "positive" if positive else "negative", "May 1, 2020", 1])
    return out.getvalue()


@pytest.fixture
def archive(tmp_path) -> Path:
    path = tmp_path / "drugsCom.zip"
    with zipfile.ZipFile(path, "w") as zipped:
        zipped.writestr("drugsComTrain.tsv", reviews(160, seed=0))
        zipped.writestr("drugsComTest.tsv", reviews(40, seed=1))
    datasets._cache.clear()
    yield path
    datasets._cache.clear()


SUITE = """
[suite]
name = "text_grid_test"
description = "text end to end"
samples = 6
seeds = [0]
batch_size = 4

[[datasets]]
name = "drug_reviews"
file = "{file}"
min_freq = 1
models = [{{ name = "text_cnn", filters = 8, embedding_dim = 16 }}]
recipes = [{{ name = "standard", epochs = 15 }}]

[[explainers]]
name = "gradient"

[[attacks]]
name = "dare"
source = "domain_embedding"

[[attacks]]
name = "random_synonym"
source = "domain_embedding"

[[metrics]]
name = "attribution_distance"

[[metrics]]
name = "topk_intersection"
k = 3

[[metrics]]
name = "kendall_tau"
"""


def test_text_suite_runs_end_to_end(archive, tmp_path, monkeypatch):
    monkeypatch.setenv("SALBENCH_CACHE_DIR", str(tmp_path / "models"))
    suite = parse_suite(SUITE.format(file=archive.as_posix()))
    out = tmp_path / "results"
    summary = run_suite(suite, out, backend="sequential", progress=False)
    assert (summary.run, summary.failed) == (2, 0)
    records = read_records(out)
    assert set(records["metric"]) == {"attribution_distance", "topk_intersection", "kendall_tau"}
    assert records["label_kept"].all() and records["value"].notna().all()
    assert records["clean_accuracy"].iloc[0] > 0.7  # the sentiment words are learnable (chance: 0.5)
    # every attacked text changed at most 15% of its 12 words (one word) and kept its label
    assert set(records["attack_iterations"].unique()) <= {0, 1}
    dare = records[(records["attack"] == "dare") & (records["metric"] == "attribution_distance")]
    assert dare["attack_success"].mean() > 0.5 and (dare["value"] >= 0).all()
    # examples hold the words by position; the attacked text differs where the attack substituted
    cell = dare["cell_id"].iloc[0]
    examples = read_examples(out, cell)
    assert examples["words"].dtype.kind == "U" and examples["attr"].shape == examples["words"].shape
    changed = (examples["words"] != examples["words_adv"]).sum(1)
    kept = dare.drop_duplicates("sample").set_index("sample")["attack_iterations"]
    assert changed.tolist() == [int(kept[s]) for s in examples["sample"]]
    figures = {p.name for p in write_figures(load_results(out), out)}
    assert any(name.startswith("examples_drug-reviews_gradient_dare") for name in figures)


def test_text_examples_match_the_model_inputs(archive, tmp_path):
    data = load_dataset("drug_reviews", {"file": archive.as_posix(), "min_freq": 1})
    model, _ = trained_model(
        "drug_reviews", {"file": archive.as_posix(), "min_freq": 1}, "text_cnn", {}, "standard", {"epochs": 1},
        seed=0, cache_dir=tmp_path / "models",
    )
    words = data.vocabulary.words_by_position(data.test.x[:3])
    assert [" ".join(w for w in row if w) for row in words] == data.vocabulary.decode(data.test.x[:3])
    assert model(data.test.x[:3]).shape == (3, data.num_classes)
    assert np.array(words, dtype=str).shape == (3, data.test.x.shape[2])
    assert torch.equal(model(data.test.x[:3]), model(data.test.x[:3]))
