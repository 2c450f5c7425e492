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


# -- verdict -------------------------------------------------------------------------------------
def pvalue_records(pvalues: list[float], **values) -> pd.DataFrame:
    """One seed of attack-free p-values of a significance metric at alpha = 0.05."""
    return pd.DataFrame([
        record(sample=i, value=p, attack="none", attack_params="{}", attack_iterations=None, attack_success=None,
               label_kept=None, metric="selective_pvalue.naive", metric_params='{"alpha":0.05}',
               category="significance", higher_is_better=False, **values)
        for i, p in enumerate(pvalues)
    ])


@pytest.mark.parametrize(
    ("published", "expected"),
    [  # 0 rejections in 4 tests: Clopper–Pearson [0, 1 − 0.025^(1/4)] = [0, 0.6024]
        ("0.6", "reproduced (0.000 [0.000, 0.602] holds 0.6)"),
        ("0", "reproduced (0.000 [0.000, 0.602] holds 0)"),  # the bound is in the interval
        (".61", "not reproduced (0.000 [0.000, 0.602] excludes .61)"),
    ],
)
def test_verdict_of_a_rejection_rate_uses_its_clopper_pearson_interval(published, expected):
    results = build_results(pvalue_records([0.5, 0.2, 0.9, 0.06]))
    assert fill(f'{{{{ show="verdict" published="{published}" }}}}', results, "x.md") == expected


@pytest.mark.parametrize(
    ("published", "expected"),
    [  # every value 0.5: every bootstrap replicate is 0.5, the interval [0.5, 0.5]
        ("0.5", "reproduced (0.500 [0.500, 0.500] holds 0.5)"),
        ("0.5004", "not reproduced (0.500 [0.500, 0.500] excludes 0.5004)"),  # decided before rounding
    ],
)
def test_verdict_holds_a_value_in_the_bootstrap_interval_and_excludes_one_outside(published, expected):
    frame = pd.DataFrame([record(seed=s, sample=i, cell_id=f"c{s}") for s in (0, 1) for i in (0, 1)])
    text = f'{{{{ metric="spearman" show="verdict" published="{published}" }}}}'
    assert fill(text, build_results(frame), "x.md") == expected


def test_verdict_agrees_with_the_shown_interval(results):
    keys = 'dataset="blocks(size=8)" metric="spearman"'
    interval = fill(f'{{{{ {keys} show="interval" }}}}', results, "x.md")
    low, high = (float(v) for v in interval.split("[")[1].rstrip("]").split(", "))
    inside, outside = f"{(low + high) / 2:.4f}", f"{high + 0.01:.4f}"
    assert fill(f'{{{{ {keys} show="verdict" published="{inside}" }}}}', results, "x.md") == (
        f"reproduced ({interval} holds {inside})")
    assert fill(f'{{{{ {keys} show="verdict" published="{outside}" }}}}', results, "x.md") == (
        f"not reproduced ({interval} excludes {outside})")


@pytest.mark.parametrize(
    ("placeholder", "message"),
    [
        ('{{ metric="spearman" published="0.7" }}', 'show="verdict" takes the key published'),
        ('{{ dataset="blocks(size=8)" show="verdict" }}', 'show="verdict" takes the key published'),
        ('{{ dataset="blocks(size=8)" show="verdict" published="high" }}', "is not a number"),
        ('{{ dataset="blocks(size=8)" show="verdict" published="nan" }}', "finite published value"),
        ('{{ metric="spearman" show="verdict" published="0.7" }}', "matches 2 leaderboard entries"),
        ('{{ dataset="blocks(size=8)" than_explainer="x" }}', 'show="better" takes one or more keys'),
        ('{{ dataset="blocks(size=8)" show="better" }}', 'show="better" takes one or more keys'),
        ('{{ dataset="blocks(size=8)" show="better" than_method="x" }}', "unknown key"),
    ],
)
def test_bad_verdict_and_better_placeholders_are_errors(results, placeholder, message):
    with pytest.raises(ValueError, match=message):
        fill(placeholder, results, "x.md")


def test_numbers_inside_new_placeholders_are_not_typed_numbers():
    text = '{{ show="verdict" published="0.735" }} and {{ show="better" than_explainer="smoothgrad(n_samples=16)" }}'
    assert typed_numbers(text) == []


# -- better --------------------------------------------------------------------------------------
def paired_records(differences: list[float], metric: str = "spearman", higher: bool = True) -> pd.DataFrame:
    """Five seeds × one sample, attack-free: explainer gradient = smoothgrad + the seed's difference
    under recipe standard and under recipe robust; smoothgrad under robust is one higher (a decoy
    the comparison must not pick); lime holds sample 1 instead of 0."""
    rows = []
    for seed, difference in enumerate(differences):
        for explainer, recipe, value, sample in (
            ("gradient", "standard", 0.3 + difference, 0), ("smoothgrad", "standard", 0.3, 0),
            ("gradient", "robust", 0.3 + difference, 0), ("smoothgrad", "robust", 1.3, 0),
            ("lime", "standard", 0.3, 1),
        ):
            rows.append(record(
                seed=seed, sample=sample, explainer=explainer, recipe=recipe, value=value, metric=metric,
                higher_is_better=higher, attack="none", attack_params="{}", attack_iterations=None,
                attack_success=None, label_kept=None, cell_id=f"{explainer}-{recipe}-{seed}",
                model_key=f"{recipe}{seed}",
            ))
    return pd.DataFrame(rows)


def test_better_is_a_paired_one_sided_wilcoxon_test():
    # differences 0.01…0.05, all positive: exact p = P(W+ = 15) = 1/32 = 0.031; mean 0.03; 5 of 5 seeds
    results = build_results(paired_records([0.01, 0.02, 0.03, 0.04, 0.05]))
    text = '{{ explainer="gradient" recipe="standard" show="better" than_explainer="smoothgrad" }}'
    assert fill(text, results, "x.md") == "yes (+0.030, paired Wilcoxon p = 0.031 on 5 pairs; better in 5/5 seeds)"


def test_better_replaces_only_the_than_components():
    results = build_results(paired_records([0.01, 0.02, 0.03, 0.04, 0.05]))
    both = '{{ explainer="gradient" recipe="robust" show="better" than_explainer="smoothgrad" than_recipe="standard" }}'
    assert fill(both, results, "x.md") == "yes (+0.030, paired Wilcoxon p = 0.031 on 5 pairs; better in 5/5 seeds)"
    # smoothgrad under robust is 1 higher: differences 0.01 − 1 … 0.05 − 1, all negative: p = 1
    one = '{{ explainer="gradient" recipe="robust" show="better" than_explainer="smoothgrad" }}'
    assert fill(one, results, "x.md") == "no (−0.970, paired Wilcoxon p = 1.000 on 5 pairs; better in 0/5 seeds)"


def test_better_follows_the_metrics_direction_and_says_no():
    # lower is better: the signed-rank test of B − A = 0.01, −0.02, 0.03, −0.04, 0.05: W+ = 1 + 3 + 5 = 9,
    # P(W+ >= 9) = 13/32 = 0.406 (13 of the 32 sign patterns of ranks 1…5 sum to >= 9); A − B averages −0.006,
    # lower than B in 3 of 5 seeds
    results = build_results(paired_records([-0.01, 0.02, -0.03, 0.04, -0.05], metric="sensitivity", higher=False))
    text = '{{ explainer="gradient" recipe="standard" show="better" than_explainer="smoothgrad" }}'
    assert fill(text, results, "x.md") == "no (−0.006, paired Wilcoxon p = 0.406 on 5 pairs; better in 3/5 seeds)"


def test_better_pairs_only_the_shared_samples_and_names_both_entries_when_none_is_shared():
    results = build_results(paired_records([0.01, 0.02, 0.03, 0.04, 0.05]))
    text = '{{ explainer="gradient" recipe="standard" show="better" than_explainer="lime" }}'
    with pytest.raises(ValueError, match=r"'explainer': 'gradient'.*'explainer': 'lime'.*share none"):
        fill(text, results, "x.md")
    # seeds 0-2 of smoothgrad also hold sample 1 (value 0.2), which gradient lacks: only the five
    # shared sample-0 pairs count, so the answer equals the fully paired case
    frame = paired_records([0.01, 0.02, 0.03, 0.04, 0.05])
    extra = frame[(frame["explainer"] == "smoothgrad") & (frame["recipe"] == "standard") & (frame["seed"] < 3)]
    results = build_results(pd.concat([frame, extra.assign(sample=1, value=0.2)], ignore_index=True))
    text = '{{ explainer="gradient" recipe="standard" show="better" than_explainer="smoothgrad" }}'
    assert fill(text, results, "x.md") == "yes (+0.030, paired Wilcoxon p = 0.031 on 5 pairs; better in 5/5 seeds)"
    with pytest.raises(ValueError, match="than_dataset is not allowed"):
        fill('{{ explainer="gradient" recipe="standard" show="better" than_dataset="x" }}', results, "x.md")


def test_better_of_p_values_pairs_rejection_indicators_in_the_leaderboards_direction():
    # A rejects in every seed (p = 0.01 <= 0.05), B never (p = 0.5): indicator differences A − B = +1.
    # p-value metrics rank a lower rejection rate first (higher_is_better false): B is the better one.
    frame = pd.concat([
        pvalue_records([p], seed=seed, explainer=explainer, cell_id=f"{explainer}{seed}", model_key=f"m{seed}")
        for seed in range(5) for explainer, p in (("a", 0.01), ("b", 0.5))
    ], ignore_index=True)
    results = build_results(frame)
    assert fill('{{ explainer="a" show="better" than_explainer="b" }}', results, "x.md") == (
        "no (+1.000, paired Wilcoxon p = 1.000 on 5 pairs; better in 0/5 seeds)")
    assert fill('{{ explainer="b" show="better" than_explainer="a" }}', results, "x.md") == (
        "yes (−1.000, paired Wilcoxon p = 0.031 on 5 pairs; better in 5/5 seeds)")


# -- balanced accuracy ---------------------------------------------------------------------------
def test_balanced_accuracy_is_the_mean_over_seeds_and_an_error_where_missing(results):
    frame = records()
    frame["clean_balanced_accuracy"] = frame["seed"].map({0: 0.7, 1: 0.6})
    text = '{{ dataset="blocks(size=8)" show="balanced_accuracy" }}'
    assert fill(text, build_results(frame), "x.md") == "0.650"
    with pytest.raises(ValueError, match="not recorded for every seed"):
        fill(text, results, "x.md")  # records without the column: models cached before it was recorded
    frame.loc[frame["seed"] == 1, "clean_balanced_accuracy"] = np.nan
    with pytest.raises(ValueError, match="not recorded for every seed"):
        fill(text, build_results(frame), "x.md")
    with pytest.raises(ValueError, match='show="balanced_accuracy" takes only dataset, model, recipe'):
        fill('{{ metric="spearman" show="balanced_accuracy" }}', results, "x.md")
