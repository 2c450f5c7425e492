"""Selective p-values in the grid: multi-output records with notes, references, select="all",
rejection-rate leaderboards and figures, and the miwa2023 suite."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from salbench import metrics
from salbench.datasets import Split, load_dataset
from salbench.datasets.synthetic_blocks import SyntheticBlocks
from salbench.figures import write_figures
from salbench.leaderboard import accuracy_table, clopper_pearson, render, summarize
from salbench.metrics.base import Case
from salbench.metrics.selective import cam_saliency, salient_region_test
from salbench.model_cache import trained_model
from salbench.results import load_results
from salbench.runner import run_suite, select_samples
from salbench.store import read_records
from salbench.suite import SUITES_DIR, load_suite, parse_suite
from scipy import stats
from torch import nn

pytestmark = pytest.mark.usefixtures("salbench_cache_dir")

SUITE = """
[suite]
name = "sig"
samples = 6
seeds = [0]
batch_size = 4
select = "all"

[[datasets]]
name = "synthetic_blocks"
size = 8
delta = 3.0
n_train = 40
n_val = 8
n_test = 10
references = 1
test_delta = [0.0, 2.0]
test_labels = "positive"
models = [{ name = "miwa_cnn", channels = 2 }]
recipes = [{ name = "standard", epochs = 1 }]

[[metrics]]
name = "selective_pvalue"
statistic = "mean"
mode = "oc"
threshold = [-1e9, 1e9]  # every pixel selected (valid whatever the briefly trained net), or none
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory, salbench_cache_dir):
    out = tmp_path_factory.mktemp("sig")
    suite = parse_suite(SUITE)
    summary = run_suite(suite, out, backend="sequential", progress=False)
    assert summary.failed == 0
    return suite, out, read_records(out)


def test_multi_output_rows_and_notes_round_trip(run):
    suite, _, records = run
    outputs = metrics.registry.entry("selective_pvalue").factory.outputs
    assert set(records["metric"]) == {f"selective_pvalue.{o}" for o in outputs}
    assert len(records) == len(suite.cells) * 2 * len(outputs) * 6  # cells × thresholds × outputs × samples
    impossible = records["metric_params"].map(lambda p: json.loads(p)["threshold"] > 1)
    # threshold 1e9: every region is empty -> NaN with the engine's reason, never a silent NaN
    assert records.loc[impossible, "value"].isna().all()
    assert records.loc[impossible, "note"].str.contains("region is empty").all()
    valid = records[~impossible]
    assert valid["value"].notna().all() and valid["note"].isna().all()
    assert set(records["category"]) == {"significance"} and not records["higher_is_better"].any()


def test_grid_values_equal_direct_test(run):
    suite, _, records = run
    cell = suite.cells[0]
    data = load_dataset(cell.dataset.name, cell.dataset.params)
    model, _ = trained_model(*cell.model_inputs)
    params = json.loads(records["metric_params"].iloc[0])
    rows = records[(records["cell_id"] == cell.id) & (records["metric_params"] == records["metric_params"].iloc[0])]
    samples = torch.tensor(sorted(set(rows["sample"])))
    results = salient_region_test(
        cam_saliency(model.eval(), 1, (1, 8, 8)), data.test.x[samples], x_ref=data.test.reference[samples],
        threshold=params["threshold"], statistic="mean", mode="oc", on_invalid="record",
    )
    got = rows[rows["metric"] == "selective_pvalue.naive"].sort_values("sample")["value"].to_numpy()
    np.testing.assert_allclose(got, [r.naive_p_value for r in results], rtol=1e-12)
    got = rows[rows["metric"] == "selective_pvalue.selective"].sort_values("sample")["value"].to_numpy()
    np.testing.assert_allclose(got, [r.p_value for r in results], rtol=1e-12)


def test_metric_matches_salient_region_test_and_records_invalid_images():
    gen = torch.Generator().manual_seed(3)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
    net = net.double().eval()
    x = torch.randn(5, 1, 6, 6, generator=gen, dtype=torch.float64)
    ref = torch.randn(5, 2, 1, 6, 6, generator=gen, dtype=torch.float64)
    target = torch.tensor([0, 1, 1, 0, 1])
    case = Case(model=net, explainer=None, x=x, target=target, attr=x, reference=ref)
    out = metrics.get("selective_pvalue", statistic="abs", threshold=0.0).evaluate(case)
    for c in (0, 1):
        rows = (target == c).nonzero().squeeze(1)
        direct = salient_region_test(cam_saliency(net, c, (1, 6, 6)), x[rows], x_ref=ref[rows], threshold=0.0,
                                     statistic="abs", on_invalid="record")
        expected = [[r.p_value, r.oc_p_value, r.naive_p_value, r.bonferroni_p_value] for r in direct]
        torch.testing.assert_close(out.values[rows], torch.tensor(expected, dtype=torch.float64), equal_nan=True)
    empty = metrics.get("selective_pvalue", statistic="back", threshold=1e9).evaluate(case)
    assert torch.isnan(empty.values).all() and all("empty" in note for note in empty.notes)
    with pytest.raises(ValueError, match="reference"):
        metrics.get("selective_pvalue", statistic="mean").evaluate(Case(model=net, explainer=None, x=x, target=target, attr=x))
    with pytest.raises(ValueError, match="alpha"):
        metrics.get("selective_pvalue", alpha=1.5)


@pytest.mark.parametrize("statistic,alternative", [("neighbor", "two-sided"), ("back", "greater"), ("mean", "less")])
def test_metric_passes_the_hypothesis_and_the_convention_through(statistic, alternative):
    gen = torch.Generator().manual_seed(4)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
    net = net.double().eval()
    x = torch.randn(4, 1, 6, 6, generator=gen, dtype=torch.float64)
    ref = torch.randn(4, 1, 1, 6, 6, generator=gen, dtype=torch.float64) if statistic == "mean" else None
    case = Case(model=net, explainer=None, x=x, target=torch.ones(4, dtype=torch.long), attr=x, reference=ref)
    out = metrics.get("selective_pvalue", statistic=statistic, alternative=alternative, threshold=0.5,
                      normalize=True, neighborhood=2).evaluate(case)  # fmt: skip
    direct = salient_region_test(cam_saliency(net, 1, (1, 6, 6)), x, x_ref=None if ref is None else ref[:, 0], threshold=0.5,
                                 normalize=True, statistic=statistic, alternative=alternative, neighborhood=2,
                                 on_invalid="record")  # fmt: skip
    expected = [[r.p_value, r.oc_p_value, r.naive_p_value, r.bonferroni_p_value] for r in direct]
    torch.testing.assert_close(out.values, torch.tensor(expected, dtype=torch.float64), equal_nan=True)
    with pytest.raises(ValueError, match=r"parameter 'alternative' of metric 'selective_pvalue': got 'both'"):
        metrics.get("selective_pvalue", alternative="both")


def test_metric_tests_gradcam_regions_of_a_network_without_a_pooled_head():
    """region="gradcam": the Grad-CAM map at the last feature map ("auto", as the gradcam explainer
    picks it) or at a named layer, equal to salient_region_test on gradcam_saliency; the metric's
    requirement follows the parameter (conv for Grad-CAM, gap_head for CAM)."""
    from salbench.core.applicability import Offer
    from salbench.metrics.selective import gradcam_saliency

    gen = torch.Generator().manual_seed(5)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 3, 3, padding=1), nn.ReLU(),
                        nn.Flatten(), nn.Linear(3 * 36, 2)).double().eval()  # fmt: skip
    x = torch.randn(4, 1, 6, 6, generator=gen, dtype=torch.float64)
    case = Case(model=net, explainer=None, x=x, target=torch.tensor([1, 1, 0, 1]), attr=x)
    for layer, resolved in (("auto", "3"), ("1", "1")):
        out = metrics.get("selective_pvalue", statistic="back", region="gradcam", layer=layer, threshold=0.5,
                          normalize=True).evaluate(case)  # fmt: skip
        for c in (0, 1):
            rows = (case.target == c).nonzero().squeeze(1)
            direct = salient_region_test(gradcam_saliency(net, c, (1, 6, 6), resolved), x[rows], threshold=0.5,
                                         normalize=True, statistic="back", on_invalid="record")  # fmt: skip
            expected = [[r.p_value, r.oc_p_value, r.naive_p_value, r.bonferroni_p_value] for r in direct]
            torch.testing.assert_close(out.values[rows], torch.tensor(expected, dtype=torch.float64), equal_nan=True)
    with pytest.raises(ValueError, match="region='gradcam' only"):
        metrics.get("selective_pvalue", layer="1")
    with pytest.raises(ValueError, match="region"):
        metrics.get("selective_pvalue", region="lime")
    declared = metrics.registry.entry("selective_pvalue").attrs
    conv_only = Offer("image", "vgg_like", frozenset({"conv"}), None)
    assert conv_only.unmet("metric", "selective_pvalue", declared, {"region": "gradcam"}) is None
    assert "'gap_head'" in conv_only.unmet("metric", "selective_pvalue", declared, {"region": "cam"})


def test_synthetic_blocks_references_and_test_delta_are_seeded_and_leave_the_rest_unchanged():
    base = SyntheticBlocks(size=8, delta=2.0, n_train=6, n_val=4, n_test=8, seed=1).load()
    new = SyntheticBlocks(size=8, delta=2.0, n_train=6, n_val=4, n_test=8, seed=1, references=3, test_delta=0.0,
                          test_labels="positive").load()
    again = SyntheticBlocks(size=8, delta=2.0, n_train=6, n_val=4, n_test=8, seed=1, references=3).load()
    for name in ("train", "val"):
        assert torch.equal(getattr(base, name).x, getattr(new, name).x)
    assert new.test.reference.shape == (8, 3, 1, 8, 8) and base.test.reference is None
    assert torch.equal(new.test.reference, again.test.reference)
    assert torch.equal(base.test.x, again.test.x) and torch.equal(base.test.y, again.test.y)
    # null test split: the same noise with the block's shift removed, every label 1, no relevant pixel
    torch.testing.assert_close(new.test.x, base.test.x - 2.0 * base.test.mask.float(), rtol=0, atol=1e-6)
    assert (new.test.y == 1).all() and not new.test.mask.any()
    other = SyntheticBlocks(size=8, n_train=6, n_val=4, n_test=8, seed=2, references=3).load()
    assert not torch.equal(other.test.reference, again.test.reference)
    with pytest.raises(TypeError, match="reference"):
        Split(base.test.x, base.test.y, reference=torch.zeros(8, 1, 8, 8))


class _AlwaysZero(nn.Module):
    def forward(self, x):
        return torch.stack([torch.ones(len(x)), torch.zeros(len(x))], 1)


def test_select_all_draws_misclassified_samples_too():
    y = torch.tensor([0, 1, 1, 1, 0, 1, 1, 1])
    split = Split(x=torch.zeros(8, 3), y=y)
    drawn = select_samples(_AlwaysZero(), split, 8, 0, batch_size=4, select="all")
    assert drawn.tolist() == list(range(8))  # including the six the model gets wrong
    assert select_samples(_AlwaysZero(), split, 2, 0, batch_size=4).tolist() == [0, 4]
    draws = {tuple(select_samples(_AlwaysZero(), split, 3, s, batch_size=4, select="all").tolist()) for s in range(20)}
    assert len(draws) > 1 and any(y[list(d)].sum() > 0 for d in draws)
    with pytest.raises(ValueError, match="n_test"):
        select_samples(_AlwaysZero(), split, 9, 0, batch_size=4, select="all")


def test_select_enters_the_cell_id():
    text = SUITE.replace('select = "all"\n', "")
    default = parse_suite(text).cells[0]
    assert default.to_dict()["select"] == default.select == "correct"
    assert parse_suite(SUITE).cells[0].to_dict()["select"] == "all"
    assert parse_suite(SUITE).cells[0].id != default.id


def test_clopper_pearson_matches_scipy_exact_interval():
    k, n = np.array([0, 3, 50, 100]), np.array([100, 100, 1000, 100])
    low, high = clopper_pearson(k, n)
    for i in range(len(k)):
        ci = stats.binomtest(int(k[i]), int(n[i])).proportion_ci(0.95, method="exact")
        assert low[i] == pytest.approx(ci.low, abs=1e-12) and high[i] == pytest.approx(ci.high, abs=1e-12)


def test_leaderboard_shows_rejection_rate_interval_and_note(run):
    _, _, records = run
    summary = summarize(records)
    rows = summary[summary["metric"].str.startswith("selective_pvalue.naive")]
    assert (rows["category"] == "significance").all()
    # each rate is the mean of p <= alpha over the finite p-values of its group
    naive = records[records["metric"] == "selective_pvalue.naive"].dropna(subset=["value"])
    expected = sorted((naive["value"] <= 0.05).groupby([naive["dataset_params"], naive["metric_params"]]).mean())
    assert sorted(rows["mean"].dropna()) == pytest.approx(expected)
    valid = rows[rows["n"] > 0].iloc[0]
    low, high = clopper_pearson([valid["mean"] * valid["n"]], [valid["n"]])
    assert (valid["ci_low"], valid["ci_high"]) == (pytest.approx(low[0]), pytest.approx(high[0]))
    empty = rows[rows["n"] == 0].iloc[0]
    assert empty["n_nonfinite"] == 6 and "region is empty" in empty["note"]
    text = render(summary, accuracy_table(records), "markdown")
    assert "non-finite: the salient region is empty" in text and "Clopper" in text


def test_significance_figures_are_drawn(run):
    _, out, _ = run
    names = {p.name for p in write_figures(load_results(out), out)}
    assert {"rejection_test-delta.png", "qq_pvalues.png"} <= names


def _shrunk(name: str) -> str:
    """The suite's text with 3 images per cell, 40 training images and 1 epoch."""
    text = re.sub(r"(?m)^samples = \d+", "samples = 3", (SUITES_DIR / f"{name}.toml").read_text())
    text = re.sub(r"n_train = \d+", "n_train = 40", text)
    return re.sub(r"epochs = \d+", "epochs = 1", text)


def test_miwa2023_suite_loads_and_one_small_cell_runs(tmp_path):
    suite = load_suite("miwa2023")
    assert suite.select == "all" and len(suite.cells) == 20
    settings = {
        (c.dataset.params["size"], c.dataset.params["test_delta"], c.dataset.params["references"], c.model.params["output"]): c
        for c in suite.cells
    }
    assert len(settings) == 20
    assert settings[(64, 0.0, 1, "softmax")].samples == 1600 and settings[(16, 3.0, 1, "softmax")].samples == 1000
    assert {r for (_, _, r, _) in settings} == {1, 2}  # one reference and the authors' m = 2
    authors = [c for (*_, output), c in settings.items() if output == "sigmoid"]
    assert len(authors) == 5 and all(c.dataset.params["train_block"] == 4 and c.recipe.params["epochs"] == 100 for c in authors)
    # {CAM > 0} everywhere: with our trained network (CAM weights all positive) {CAM >= 0} selects every pixel
    assert {m.params["comparison"] for c in suite.cells for m in c.metrics} == {">"}
    assert all(c.dataset.params["n_test"] >= c.samples for c in suite.cells)
    small = parse_suite(_shrunk("miwa2023"))
    summary = run_suite(small, tmp_path, backend="sequential", limit=1, progress=False)
    assert (summary.run, summary.failed) == (1, 0)
    records = read_records(tmp_path)
    assert len(records) == 2 * 4 * 3 and records["value"].notna().any()


def test_miwa2023_permutation_suite_runs_the_four_permutation_tests_small(tmp_path):
    suite = load_suite("miwa2023_permutation")
    assert len(suite.cells) == 6 and {len(c.metrics) for c in suite.cells} == {4}
    assert {m.params["permutations"] for c in suite.cells for m in c.metrics} == {1000}
    small = parse_suite(_shrunk("miwa2023_permutation").replace("permutations = 1000", "permutations = 19"))
    summary = run_suite(small, tmp_path, backend="sequential", limit=1, progress=False)
    assert (summary.run, summary.failed) == (1, 0)
    records = read_records(tmp_path)
    assert len(records) == 4 * 3 and set(records["metric"]) == {"permutation_pvalue"}
    tested = records.dropna(subset=["value"])["value"]
    assert (((tested * 20) % 1) < 1e-9).all() and tested.between(0.05, 1).all()


def test_selective_architectures_suite_runs_small_and_fills_its_commentary(tmp_path):
    """The suite expands to (null, signal) × (miwa_cnn, resnet) cells of 8 region × hypothesis
    settings; shrunk to 3 images and 1 epoch it runs, and every placeholder of its commentary
    resolves to exactly one leaderboard entry."""
    from salbench.commentary import fill

    suite = load_suite("selective_architectures")
    assert len(suite.cells) == 4 and {len(c.metrics) for c in suite.cells} == {8}
    assert {(c.dataset.params["test_delta"], c.model.name) for c in suite.cells} == {
        (0.0, "miwa_cnn"), (0.0, "resnet"), (2.0, "miwa_cnn"), (2.0, "resnet")
    }
    assert {(m.params["region"], m.params["statistic"]) for m in suite.cells[0].metrics} == {
        (r, s) for r in ("cam", "gradcam") for s in ("back", "neighbor", "mean", "abs")
    }
    text = (SUITES_DIR / "selective_architectures.toml").read_text()
    for old, new in (("samples = 200", "samples = 3"), ("n_train = 1000", "n_train = 40"), ("epochs = 10", "epochs = 1")):
        assert old in text
        text = text.replace(old, new)
    summary = run_suite(parse_suite(text), tmp_path, backend="sequential", progress=False)
    assert (summary.run, summary.failed) == (4, 0)
    commentary = SUITES_DIR / "selective_architectures.md"
    filled = fill(commentary.read_text(), load_results(tmp_path), str(commentary))
    assert "{{" not in filled and "| ResNet (`resnet`) | Grad-CAM | parametric |" in filled
