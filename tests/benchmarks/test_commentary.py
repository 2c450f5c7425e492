"""Commentary placeholders are filled from the records, typed numbers are rejected, and every
committed commentary passes the check."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from salbench.commentary import fill, typed_numbers
from salbench.results import build_results
from salbench.suite import SUITES_DIR


def record(**values) -> dict:
    """One record of metric ``spearman`` (robustness, higher is better) under attack ``topk`` with k = 50,
    the given columns replaced."""
    seed = values.get("seed", 0)
    return {
        "suite": "s", "config_hash": "h", "cell_id": f"c8-{seed}",
        "dataset": "blocks", "dataset_params": '{"size":8}',
        "model": "cnn", "model_params": "{}", "recipe": "standard", "recipe_params": '{"epochs":10}',
        "explainer": "cam", "explainer_params": "{}", "explainer_layer": None, "attack": "topk", "attack_params": '{"k":50}',
        "seed": seed, "sample": 0, "label": 1, "metric": "spearman", "metric_params": "{}",
        "category": "robustness", "higher_is_better": True,
        "value": 0.5, "curve": None, "note": None,
        "attack_iterations": 1, "attack_success": True, "label_kept": True,
        "clean_accuracy": 0.9 if seed == 0 else 0.8, "model_key": f"m{seed}", "elapsed_s": 1.0, "versions": "{}",
        **values,
    }


def records() -> pd.DataFrame:
    """Two seeds × two samples of one metric on two data sets; attack ``topk`` with k = 50."""
    return pd.DataFrame([
        record(cell_id=f"c{size}-{seed}", dataset_params=f'{{"size":{size}}}', seed=seed, sample=sample,
               value=base + 0.1 * seed + 0.02 * sample)
        for size, base in (("8", 0.2), ("16", 0.6)) for seed in (0, 1) for sample in (0, 1)
    ])


@pytest.fixture(scope="module")
def results():
    return build_results(records())


def test_fills_entries_seeds_samples_params_and_accuracy(results):
    text = (
        'm {{ dataset="blocks(size=8)" metric="spearman" }}; '
        "s {{ dataset='blocks(size=8)' metric=\"spearman\" show=\"seed_means\" }}; "
        'n {{ dataset="blocks(size=16)" metric="spearman" show="n" }}; '
        'seeds {{ show="seeds" }}, samples {{ show="samples" }}, k {{ attack="topk" show="attack.k" }}, '
        'epochs {{ show="recipe.epochs" }}, acc {{ dataset="blocks(size=8)" show="accuracy" }}'
    )
    # seed means by hand: seed 0: (0.2 + 0.22)/2, seed 1: (0.3 + 0.32)/2; overall mean 0.26
    assert fill(text, results, "x.md") == (
        "m 0.260; s 0.210 / 0.310; n 4; seeds 2, samples 2, k 50, epochs 10, acc 0.850"
    )


def test_published_values_comments_and_tables(results):
    text = "ours vs [[published: .85]] <!-- check: 12 -->\n| a | [[published: 0.5]] |"
    assert fill(text, results, "x.md") == "ours vs .85 (published) \n| a | 0.5 |"


@pytest.mark.parametrize(
    ("placeholder", "message"),
    [
        ('{{ metric="spearman" }}', "matches 2 leaderboard entries"),
        ('{{ metric="missing" }}', "matches 0 leaderboard entries"),
        ('{{ metrik="spearman" }}', "unknown key"),
        ('{{ metric="spearman" show="median" }}', "show must be one of"),
        ("{{ metric=spearman }}", 'key="value" pairs'),
        ('{{ show="dataset.size" }}', "takes 2 value"),
        ('{{ show="attack.eps" }}', "parameter 'eps'"),
        ('{{ metric="spearman" show="accuracy" }}', "takes only dataset, model, recipe"),
    ],
)
def test_bad_placeholders_are_errors(results, placeholder, message):
    with pytest.raises(ValueError, match=message):
        fill(placeholder, results, "x.md")


@pytest.mark.parametrize(
    "text",
    [
        "the score drops to 0.117 here",
        "n = 16 images per entry",
        "top-50 pixels",
        "about 2,000× slower",
        "a `0.45` in code",
        "held at 95% of the runs",
    ],
)
def test_typed_numbers_are_found(text):
    assert typed_numbers("fine line\n" + text) == [(2, text)]


@pytest.mark.parametrize(
    "text",
    [
        '{{ metric="m" show="n" }} and [[published: 0.237]]',
        "Lu et al. (arXiv 2002.00526), ACL 2023, Kim 2014, et al. 2021",
        "METHODS.md §5, Section 3.2, Eq. 4, Table 2, Claim 1",
        "word2vec, R2ET, r2et2024, ℓ2 norm, a 1-D signal",
        "the formula `d_e = (1 − cos)/2` and `python -m salbench.perf.decoy`",
        "<!-- check: 8.36 vs 8.47 -->",
        "1. a list item with (2) enumerations",
    ],
)
def test_allowed_digits_pass(text):
    assert typed_numbers(text) == []


def test_fill_names_the_file_and_line_of_a_typed_number(results):
    with pytest.raises(ValueError, match=r"notes\.md:3: sensitivity 7\.89 vs 6\.68"):
        fill("ok\nstill ok\nsensitivity 7.89 vs 6.68", results, "notes.md")


@pytest.mark.parametrize("path", sorted(SUITES_DIR.glob("*.md")), ids=lambda p: p.name)
def test_committed_commentaries_type_no_numbers(path: Path):
    assert typed_numbers(path.read_text()) == []


def test_seed_means_average_finite_values_only():
    frame = records()
    frame.loc[0, "value"] = np.nan
    text = 'x {{ dataset="blocks(size=8)" metric="spearman" show="seed_means" }}'
    assert fill(text, build_results(frame), "x.md") == "x 0.220 / 0.310"


def test_seconds_per_test_divides_each_cells_time_by_its_samples_and_settings():
    """Cell a: 6 s over 2 samples × 3 settings = 1 s; cell b: 1 s over 2 samples × 1 setting = 0.5 s; mean 0.75."""
    frame = records()
    frame["elapsed_s"] = frame["cell_id"].map({"c8-0": 6.0, "c8-1": 1.0, "c16-0": 9.0, "c16-1": 9.0})
    third = frame[frame.cell_id == "c8-0"].assign(metric_params='{"x":1}')
    fourth = frame[frame.cell_id == "c8-0"].assign(metric_params='{"x":2}')
    frame = pd.concat([frame, third, fourth], ignore_index=True)
    text = '{{ dataset="blocks(size=8)" show="seconds_per_test" }}'
    assert fill(text, build_results(frame), "x.md") == "0.75"
