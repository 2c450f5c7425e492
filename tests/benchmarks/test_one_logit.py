"""Binary classifiers with one logit (sigmoid models) in every explainer, attack, metric and recipe.

A model with one output z is seen as :class:`~salbench.models.external.TwoLogits`, logits
(−z/2, z/2): target 1 explains z/2, target 0 explains −z/2. Checked here:

- every registered explainer that applies to an image CNN or a tabular MLP, on the wrapped
  model against the raw logit (the model with its one output, explained at "class" 0): the
  map of target 1 is half the raw map (the scale-free ``decoy`` and the target-blind
  ``random``: the raw map), and for explainers linear in the explained score the map of
  target 0 is its negative;
- the suite/runner path on one-logit factory models of a synthetic image set and of WDBC:
  every registered explainer, attack and metric that applies to them (the test fails when a
  new one is registered and not added here), and every fine-tuning recipe that applies to
  them, starting from a checkpoint; every cell runs without failure and every stored value is
  finite.
"""

from __future__ import annotations

import math

import pytest
import torch
from salbench import attacks, explainers, metrics, recipes
from salbench.models.external import PairedLinear, TwoLogits
from salbench.results import load_results
from salbench.runner import run_suite
from salbench.suite import parse_suite
from torch import nn

NETS = '''
from torch import nn

def image():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 1))

def table():
    return nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, 1), nn.Flatten(0))
'''


def raw_model(modality: str) -> nn.Module:
    torch.manual_seed(0)
    namespace: dict = {}
    exec(NETS, namespace)
    if modality == "image":
        return namespace["image"]().double().eval()
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 1)).double().eval()


def inputs(modality: str) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    shape = (4, 1, 8, 8) if modality == "image" else (4, 6)
    return torch.rand(shape, generator=gen, dtype=torch.float64)


SPATIAL_ONLY = {"cam", "gradcam", "decoy"}  # read a conv layer or the GAP head: the image model only
LINEAR = {"cam", "gradient", "gradient_x_input", "integrated_gradients", "smoothgrad", "occlusion"}
SCALE_FREE = {"decoy", "random", "eigencam"}  # decoy normalises the map; random and Eigen-CAM ignore the target
# scores that are not homogeneous in the logit (Grad-CAM++'s α, LIME's penalised fit) or that are
# softmax probabilities (RISE, Score-CAM, the loss gradient; a one-output model's own softmax is 1):
# compared with the same method on the explicit two-logit network (−z/2, z/2), the meaning of the target
NONLINEAR = {"gradcam_plusplus", "lime", "rise", "scorecam", "loss_gradient"}
CHEAP = {"captum": {"method": "Saliency"}, "zennit": {"composite": "EpsilonPlus"}, "integrated_gradients": {"steps": 16}, "smoothgrad": {"n_samples": 4},
         "decoy": {"steps": 3}, "gradcam": {"relu": True}}


def explainer_cases():
    for name in explainers.names():
        modalities = explainers.registry.entry(name).attrs["modalities"]
        for modality in ("image", "tabular"):
            if modality in modalities and (modality == "image" or name not in SPATIAL_ONLY):
                yield name, modality


@pytest.mark.parametrize("name,modality", list(explainer_cases()))
def test_maps_of_the_two_targets_against_the_raw_logit(name, modality):
    raw = raw_model(modality)
    wrapped, x = TwoLogits(raw), inputs(modality)
    ones, zeros = torch.ones(len(x), dtype=torch.long), torch.zeros(len(x), dtype=torch.long)
    try:
        explain = explainers.get(name, **CHEAP.get(name, {}))
    except ImportError as err:  # an adapter to a package that does not import here (zennit)
        pytest.skip(str(err))
    if name in NONLINEAR:
        explicit = nn.Sequential(raw, nn.Linear(1, 2, bias=False).double())
        with torch.no_grad():
            explicit[1].weight.copy_(torch.tensor([[-0.5], [0.5]]))
        for t in (ones, zeros):
            torch.testing.assert_close(explain(wrapped, x, t), explain(explicit, x, t), rtol=1e-7, atol=1e-10)
        return
    one, zero, of_raw = explain(wrapped, x, ones), explain(wrapped, x, zeros), explain(raw, x, zeros)
    assert torch.isfinite(one).all() and torch.isfinite(zero).all() and of_raw.abs().sum() > 0
    torch.testing.assert_close(one, of_raw if name in SCALE_FREE else of_raw / 2, rtol=1e-7, atol=1e-10)
    if name in LINEAR:
        torch.testing.assert_close(zero, -one, rtol=1e-7, atol=1e-10)


def test_the_paired_head_is_a_view_of_the_wrapped_layer():
    raw = raw_model("image")
    wrapped = TwoLogits(raw)
    assert isinstance(wrapped.head, PairedLinear)
    assert list(wrapped.state_dict()) == [f"model.{k}" for k in raw.state_dict()]  # the view adds no entry
    pooled = torch.randn(3, 5, dtype=torch.float64)
    z = raw[-1](pooled)
    torch.testing.assert_close(wrapped.head(pooled), torch.cat([-z, z], 1) / 2)
    with torch.no_grad():
        raw[-1].weight.mul_(3)  # training the wrapped layer moves the view
    torch.testing.assert_close(wrapped.head.weight[1], raw[-1].weight[0] / 2)
    assert not hasattr(TwoLogits(nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1), nn.Flatten(0), nn.Unflatten(0, (-1, 1)))).head.layer, "head") 


# -- the suite/runner path ----------------------------------------------------------------------
DATASETS = '''
[[datasets]]
name = "synthetic_blocks"
size = 8
n_train = 96
n_val = 32
n_test = 32
references = 2
models = [{ name = "factory", factory = "nets.py:image", checkpoint = "image.pt", provides = ["conv", "gap_head"] }]
recipes = RECIPES

[[datasets]]
name = "wdbc"
models = [{ name = "factory", factory = "nets.py:table", checkpoint = "table.pt" }]
recipes = TABLE_RECIPES
'''

COMPONENTS = '''
[suite]
name = "one_logit"
samples = 3
seeds = [0]
DATASETS
[[explainers]]
name = "gradient"

[[explainers]]
name = "gradient_x_input"

[[explainers]]
name = "random"

[[explainers]]
name = "cam"

[[explainers]]
name = "gradcam"

[[explainers]]
name = "integrated_gradients"
steps = 8

[[explainers]]
name = "smoothgrad"
n_samples = 3

[[explainers]]
name = "occlusion"

[[explainers]]
name = "captum"
method = "Saliency"

[[explainers]]
name = "decoy"
steps = 2

[[explainers]]
name = "expected_gradients"
background = "train"
background_size = 8
n_samples = 3

[[explainers]]
name = "gradient_shap"
n_samples = 3

[[explainers]]
name = "guided_backprop"

[[explainers]]
name = "deeplift"

[[explainers]]
name = "lrp"

[[explainers]]
name = "rise"
n_masks = 20

[[explainers]]
name = "kernel_shap"
n_samples = 12

[[explainers]]
name = "lime"
n_samples = 12

[[explainers]]
name = "gradcam_plusplus"

[[explainers]]
name = "hirescam"

[[explainers]]
name = "layercam"

[[explainers]]
name = "xgradcam"

[[explainers]]
name = "scorecam"

[[explainers]]
name = "eigencam"

[[explainers]]
name = "loss_gradient"

[[attacks]]
name = "topk"
k = 8
steps = 3

[[attacks]]
name = "er_attack"
k = 8
steps = 3

[[attacks]]
name = "acquisition"
k = 8
steps = 3

[[attacks]]
name = "clinical"
k = 8
steps = 3

[[attacks]]
name = "mass_center"
steps = 3

[[attacks]]
name = "mse"
steps = 3

[[attacks]]
name = "target_region"
region = [0, 0, 4, 4]
steps = 3

[[attacks]]
name = "random_noise"
n_tries = 2

[[metrics]]
name = "attribution_distance"

[[metrics]]
name = "center_of_mass_shift"

[[metrics]]
name = "kendall_tau"

[[metrics]]
name = "spearman"

[[metrics]]
name = "sensitivity"

[[metrics]]
name = "topk_intersection"
k = 8

[[metrics]]
name = "deletion"
fraction = 0.5

[[metrics]]
name = "insertion"
fraction = 0.5

[[metrics]]
name = "selective_pvalue"

[[metrics]]
name = "permutation_pvalue"
permutations = 9

[[metrics]]
name = "max_sensitivity"
n_samples = 2

[[metrics]]
name = "avg_sensitivity"
n_samples = 2

[[metrics]]
name = "local_lipschitz"
n_samples = 2

[[metrics]]
name = "relative_stability"
n_samples = 2

[[metrics]]
name = "continuity"

[[metrics]]
name = "faithfulness_correlation"
n_samples = 4
subset_size = 4

[[metrics]]
name = "monotonicity_correlation"
baseline = 0.0
n_samples = 1

[[metrics]]
name = "road_morf"

[[metrics]]
name = "road_lerf"

[[metrics]]
name = "irof"
segmentation = "patches"
patch = 2

[[metrics]]
name = "infidelity"
n_samples = 3
patch = 2

[[metrics]]
name = "region_perturbation"
region = 2
n_regions = 4

[[metrics]]
name = "comprehensiveness"

[[metrics]]
name = "sufficiency"

[[metrics]]
name = "pointing_game"

[[metrics]]
name = "relevance_mass_accuracy"

[[metrics]]
name = "relevance_rank_accuracy"

[[metrics]]
name = "localisation_auc"

[[metrics]]
name = "sparseness"

[[metrics]]
name = "complexity"

[[metrics]]
name = "parameter_randomisation"

[[metrics]]
name = "random_logit"
'''

RECIPES_EVERY = '''[
    { name = "none" },
    { name = "standard", epochs = 1 },
    { name = "softplus", epochs = 1 },
    { name = "weight_decay", weight_decay = 0.001, epochs = 1 },
    { name = "adversarial", epochs = 1, steps = 2 },
    { name = "adversarial", target = "explanation", k = 8, eps = 1.0, steps = 1, epochs = 1 },
    { name = "finetune", softplus = 0.5, epochs = 1 },
    { name = "est_hessian", epochs = 1 },
    { name = "exact_hessian", epochs = 1 },
    { name = "ssr", epochs = 1 },
    { name = "r2et", k = 8, epochs = 1 },
    { name = "idexpo", epochs = 1, steps = 4 },
]'''

RECIPES_SUITE = '''
[suite]
name = "one_logit_recipes"
samples = 3
seeds = [0]
DATASETS
[[explainers]]
name = "gradient"

[[attacks]]
name = "random_noise"
n_tries = 2

[[metrics]]
name = "topk_intersection"
k = 8

[[metrics]]
name = "deletion"'''


def text_only(registry) -> set[str]:
    return {n for n in registry.names() if set(registry.registry.entry(n).attrs["modalities"]) == {"text"}}


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """The factory file and a checkpoint of each model (random weights: trained or not, one logit)."""
    monkeypatch.setenv("SALBENCH_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "nets.py").write_text(NETS)
    namespace: dict = {}
    exec(NETS, namespace)
    torch.manual_seed(0)
    for name in ("image", "table"):
        torch.save(namespace[name]().state_dict(), tmp_path / f"{name}.pt")
    return tmp_path


def run(folder, text: str, recipes_list: str):
    table_recipes = recipes_list.replace('"idexpo",', '"idexpo", explainer = "gradient",')  # Grad-CAM needs images
    text = text.replace("DATASETS", DATASETS).replace("TABLE_RECIPES", table_recipes).replace("RECIPES", recipes_list)
    suite = parse_suite(text, base_dir=folder)
    summary = run_suite(suite, folder / "out", jobs=1, backend="sequential", progress=False)
    records = load_results(folder / "out").records
    return suite, summary, records


def finite(value) -> bool:
    return all(math.isfinite(v) for v in value) if isinstance(value, list) else math.isfinite(value)


def unexplained(records):
    """Rows whose value is not finite and that carry no note saying why (the harness's contract)."""
    return records[~records["value"].map(finite) & records["note"].isna()]



@pytest.mark.slow
def test_every_explainer_attack_and_metric_through_the_runner(folder):
    suite, summary, records = run(folder, COMPONENTS, '[{ name = "none" }]')
    used = {kind: {getattr(c, kind).name for c in suite.cells if getattr(c, kind) is not None}
            for kind in ("explainer", "attack")}
    assert used["explainer"] == set(explainers.names()) - text_only(explainers) - {"zennit"}  # Zennit does not import here
    assert used["attack"] == set(attacks.names()) - text_only(attacks)
    assert {m for c in suite.cells for m in (x.name for x in c.metrics)} == set(metrics.names()) - text_only(metrics)
    assert summary.failed == 0 and summary.run == len(suite.cells)
    assert unexplained(records).empty, unexplained(records)[["explainer", "metric"]]
    assert set(records["metric"].str.split(r"[(.]").str[0]) == set(metrics.names()) - text_only(metrics)


@pytest.mark.slow
def test_every_fine_tuning_recipe_through_the_runner(folder):
    suite, summary, records = run(folder, RECIPES_SUITE, RECIPES_EVERY)
    applicable = {n for n in recipes.names() if n not in ("text_adversarial", "far")}  # those two substitute words
    assert {c.recipe.name for c in suite.cells} == applicable
    assert summary.failed == 0 and summary.run == len(suite.cells)
    assert records["value"].map(finite).all(), records.loc[~records["value"].map(finite), ["metric", "note"]]
    assert set(records["recipe"].str.split("(").str[0]) == applicable
