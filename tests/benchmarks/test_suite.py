"""Suite files: validation before any work, grid expansion, shared values, seeds, ids and hashes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch
from salbench.core.hashing import canonical_json, digest
from salbench.model_cache import model_key
from salbench.suite import Cell, SuiteError, load_suite, parse_suite, suite_names

TINY = Path(__file__).parent / "suites" / "tiny.toml"

# A minimal valid suite; the malformed cases below each change one thing in it.
BASE = """
[suite]
name = "base"
samples = 4
seeds = [0, 1]

[[datasets]]
name = "wdbc"
models = [{ name = "mlp", hidden = [8] }]
shared = { k = 5 }

[[recipes]]
name = "standard"
epochs = 2

[[explainers]]
name = "gradient"

[[explainers]]
name = "smoothgrad"
n_samples = [2, 4]

[[attacks]]
name = "topk"
steps = 2

[[metrics]]
name = "topk_intersection"

[[metrics]]
name = "deletion"
"""


def _variant(old: str, new: str) -> str:
    assert old in BASE, f"test bug: {old!r} not in BASE"
    return BASE.replace(old, new, 1)


def _table_of(suite, kind):
    return [getattr(c, kind) for c in suite.cells]


# -- expansion -----------------------------------------------------------------------------------
def test_base_grid_expands_explainers_attacks_and_seeds():
    suite = parse_suite(BASE)
    # 2 seeds × 3 explainers (gradient, smoothgrad n_samples 2 and 4) × (attack-free cell + topk cell)
    assert len(suite.cells) == 12
    assert {(c.explainer.name, c.explainer.params.get("n_samples")) for c in suite.cells} == {
        ("gradient", None), ("smoothgrad", 2), ("smoothgrad", 4)
    }
    free = [c for c in suite.cells if c.attack is None]
    attacked = [c for c in suite.cells if c.attack is not None]
    assert len(free) == len(attacked) == 6
    # attack-free metrics in attack-free cells, metrics comparing attacked explanations in attacked cells
    assert all([m.name for m in c.metrics] == ["deletion"] for c in free)
    assert all([m.name for m in c.metrics] == ["topk_intersection"] for c in attacked)
    assert suite.samples == 4 and suite.seeds == (0, 1) and suite.batch_size == 64 and suite.threads == 1


def test_parameters_are_validated_with_defaults_and_model_shape_left_to_the_harness():
    cell = parse_suite(BASE).cells[0]
    assert cell.model.params == {"hidden": (8,)}  # input_shape/num_classes come from the data set
    assert cell.recipe.params == {"epochs": 2, "lr": 1e-3, "batch_size": 64, "weight_decay": 0.0, "patience": 10}
    assert cell.dataset.params == {"val_fraction": 0.2, "test_fraction": 0.2, "seed": 0}
    assert cell.model_inputs[2:4] == ("mlp", {"hidden": (8,)})


def test_sequence_parameter_expands_only_from_a_list_of_lists():
    one = parse_suite(_variant('hidden = [8]', 'hidden = [8, 4]'))
    assert {c.model.params["hidden"] for c in one.cells} == {(8, 4)}
    two = parse_suite(_variant('hidden = [8]', 'hidden = [[8], [4, 4]]'))
    assert {c.model.params["hidden"] for c in two.cells} == {(8,), (4, 4)}
    assert len(two.cells) == 2 * len(one.cells)


def test_shared_values_reach_every_declaring_component_of_their_data_set():
    suite = parse_suite(BASE)
    for cell in suite.cells:
        if cell.attack is not None:
            assert cell.attack.params["k"] == 5
            assert cell.metrics[0].params["k"] == 5
        assert "k" not in cell.explainer.params


def test_cell_seed_reaches_explainers_and_attacks_that_declare_seed():
    suite = parse_suite(BASE)
    for cell in suite.cells:
        if cell.explainer.name == "smoothgrad":
            assert cell.explainer.params["seed"] == cell.seed
        if cell.attack is not None:
            assert cell.attack.params["seed"] == cell.seed
        assert cell.dataset.params["seed"] == 0  # data sets keep their own seed: every seed sees the same data


def test_explicit_seed_is_kept():
    suite = parse_suite(_variant("n_samples = [2, 4]", "n_samples = 2\nseed = 7"))
    assert {c.explainer.params["seed"] for c in suite.cells if c.explainer.name == "smoothgrad"} == {7}


def test_exclude_drops_matching_cells_only():
    suite = parse_suite(BASE + '\n[[exclude]]\nexplainer = "smoothgrad"\nattack = "topk"\n')
    names = [(c.explainer.name, c.attack_name) for c in suite.cells]
    assert ("smoothgrad", "topk") not in names
    assert names.count(("smoothgrad", "none")) == 4 and names.count(("gradient", "topk")) == 2
    only_free = parse_suite(BASE + '\n[[exclude]]\nattack = "none"\n')
    assert all(c.attack is not None for c in only_free.cells) and len(only_free.cells) == 6


# -- declarations: what applies --------------------------------------------------------------------
BLOCKS = '\n[[datasets]]\nname = "synthetic_blocks"\nsize = 8\nmodels = [{ name = "small_cnn", channels = [4] }]\n'


def test_declarations_drop_gradcam_on_a_table_and_say_why():
    suite = parse_suite(BASE.replace("[[recipes]]", BLOCKS + "\n[[recipes]]") + '\n[[explainers]]\nname = "gradcam"\n')
    gradcam = [c for c in suite.cells if c.explainer.name == "gradcam"]
    assert {c.dataset.name for c in gradcam} == {"synthetic_blocks"} and len(gradcam) == 4  # 2 seeds × (none, topk)
    dropped = dict(suite.dropped)
    for seed in (0, 1):
        for attack in ("none", "topk"):
            reason = dropped[f"wdbc/mlp/standard seed {seed}: gradcam × {attack}"]
            assert reason == "explainer 'gradcam' applies to image, volume, signal data, not tabular"
    assert len(suite.dropped) == 4
    # declarations leave the other cells as they were: same ids as without gradcam
    without = parse_suite(BASE.replace("[[recipes]]", BLOCKS + "\n[[recipes]]"))
    assert {c.id for c in suite.cells} - {c.id for c in gradcam} == {c.id for c in without.cells}


def test_an_attack_that_differentiates_drops_a_non_differentiable_explainer():
    suite = parse_suite(BASE + '\n[[explainers]]\nname = "occlusion"\n')
    occlusion = {(c.attack_name, c.seed) for c in suite.cells if c.explainer.name == "occlusion"}
    assert occlusion == {("none", 0), ("none", 1)}
    assert dict(suite.dropped)["wdbc/mlp/standard seed 0: occlusion × topk"] == (
        "attack 'topk' differentiates the explanation, but explainer 'occlusion' is not differentiable"
    )


def test_a_metric_that_does_not_apply_leaves_the_cell_with_the_others():
    text = BASE.replace("[[recipes]]", BLOCKS + "\n[[recipes]]")
    suite = parse_suite(text + '\n[[metrics]]\nname = "selective_pvalue"\nstatistic = "back"\n'
                               '\n[[metrics]]\nname = "center_of_mass_shift"\n')
    by_data = {}
    for cell in suite.cells:
        by_data.setdefault((cell.dataset.name, cell.explainer_name, cell.attack_name), set()).update(m.name for m in cell.metrics)
    assert by_data[("wdbc", "gradient", "topk")] == {"topk_intersection", "center_of_mass_shift"}
    assert by_data[("wdbc", "gradient", "none")] == {"deletion"}
    assert by_data[("synthetic_blocks", "none", "none")] == {"selective_pvalue"}  # small_cnn has a GAP head
    assert ("wdbc", "none", "none") not in by_data
    assert dict(suite.dropped)["wdbc/mlp/standard seed 0: none × none"] == (
        "metric 'selective_pvalue' applies to image data, not tabular"
    )


def test_an_explainer_independent_metric_runs_once_per_model_and_seed():
    suite = parse_suite(
        BASE.split("[[explainers]]")[0].replace('shared = { k = 5 }', '').replace('"wdbc"', '"synthetic_blocks"\nsize = 8')
        .replace('{ name = "mlp", hidden = [8] }', '{ name = "small_cnn", channels = [4] }, { name = "miwa_cnn", channels = 2 }')
        + '\n[[metrics]]\nname = "selective_pvalue"\nstatistic = ["back", "mean"]\n'
    )
    assert len(suite.cells) == 4  # 2 models × 2 seeds, not × explainers
    assert {(c.model.name, c.seed) for c in suite.cells} == {(m, s) for m in ("small_cnn", "miwa_cnn") for s in (0, 1)}
    for cell in suite.cells:
        assert cell.explainer is None and cell.attack is None and cell.describe().endswith(": none × none")
        assert [m.params["statistic"] for m in cell.metrics] == ["back", "mean"]
        assert cell.to_dict()["explainer"] is None
    with pytest.raises(SuiteError, match=r"no metric of the suite uses an explainer.*selective_pvalue"):
        parse_suite(BASE.split("[[attacks]]")[0].replace('shared = { k = 5 }', '').replace('"wdbc"', '"synthetic_blocks"')
                    + '\n[[metrics]]\nname = "selective_pvalue"\n')


def test_a_grid_that_declarations_empty_fails_naming_why():
    text = BASE.replace('[[attacks]]\nname = "topk"\nsteps = 2\n', "").replace(
        '[[metrics]]\nname = "topk_intersection"\n', ""
    ).replace('name = "gradient"', 'name = "gradcam"').replace('[[explainers]]\nname = "smoothgrad"\nn_samples = [2, 4]\n', "")
    text = text.replace("shared = { k = 5 }", "")
    with pytest.raises(SuiteError, match=r"grid: no cell applies.*explainer 'gradcam' applies to image, volume, signal data, not tabular"):
        parse_suite(text)


def test_exclude_names_are_checked_against_the_whole_grid():
    # an exclusion of cells the declarations drop anyway is still a valid rule (tiny.toml keeps one)
    suite = load_suite(TINY)
    assert "wdbc/mlp/standard seed 0: gradcam × none" in dict(suite.dropped)
    assert not any(c.dataset.name == "wdbc" and c.explainer.name == "gradcam" for c in suite.cells)


def test_per_dataset_recipes_override_the_suite_recipes():
    suite = parse_suite(_variant('shared = { k = 5 }', 'shared = { k = 5 }\nrecipes = [{ name = "standard", epochs = [3, 4] }]'))
    assert {c.recipe.params["epochs"] for c in suite.cells} == {3, 4}


def test_family_member_name_is_the_family_with_its_first_parameter():
    short = parse_suite(_variant('name = "gradient"', 'name = "captum:Saliency"'))
    long = parse_suite(_variant('name = "gradient"', 'name = "captum"\nmethod = "Saliency"'))
    assert short.cells[0].explainer.name == "captum" and short.cells[0].explainer.params["method"] == "Saliency"
    assert [c.id for c in short.cells] == [c.id for c in long.cells]


# -- ids and hashes --------------------------------------------------------------------------------
def test_cell_id_is_sha256_of_canonical_json_of_the_full_parameters_model_key_and_code():
    cell = parse_suite(BASE).cells[0]
    content = {**cell.to_dict(), "model_key": cell.model_key, "code": cell.code}
    expected = hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert cell.id == expected
    fields = json.loads(canonical_json(cell.to_dict()))
    assert (fields["samples"], fields["device"], fields["dtype"]) == (4, "cpu", "float32")
    assert cell.model_key == model_key(*cell.model_inputs, device="cpu")
    assert len(cell.code) == 64 and cell.code != cell.model_key


def test_ids_ignore_spelling_but_not_content():
    base = parse_suite(BASE)
    # defaults written out, keys reordered, description added: the same cells and config
    same = parse_suite(
        _variant('[[explainers]]\nname = "gradient"', '[[explainers]]\nabsolute = false\nname = "gradient"')
        .replace('samples = 4', 'samples = 4\ndescription = "words"\nbatch_size = 64')
    )
    assert [c.id for c in same.cells] == [c.id for c in base.cells]
    assert same.config_hash == base.config_hash
    changed = parse_suite(_variant("samples = 4", "samples = 5"))
    assert not {c.id for c in changed.cells} & {c.id for c in base.cells}
    assert changed.config_hash != base.config_hash
    threads = parse_suite(_variant("samples = 4", "samples = 4\nthreads = 2"))
    assert [c.id for c in threads.cells] == [c.id for c in base.cells]  # an execution setting, not the cell
    assert threads.config_hash != base.config_hash


def test_ids_are_unique_and_stable_across_loads():
    a, b = parse_suite(BASE), parse_suite(BASE)
    assert len({c.id for c in a.cells}) == len(a.cells)
    assert [c.id for c in a.cells] == [c.id for c in b.cells]
    assert isinstance(a.cells[0], Cell) and len(a.cells[0].id) == 64


def test_load_suite_by_path_and_by_name():
    tiny = load_suite(TINY)
    assert tiny.name == "tiny" and tiny.source == str(TINY)
    assert "quickstart" in suite_names()
    assert load_suite("quickstart").name == "quickstart"
    with pytest.raises(SuiteError, match=r"no suite named 'quickstrat'.*quickstart"):
        load_suite("quickstrat")
    with pytest.raises(SuiteError, match="does not exist"):
        load_suite(TINY.parent / "missing.toml")


def test_quickstart_matches_its_description():
    suite = load_suite("quickstart")
    assert {c.dataset.name for c in suite.cells} == {"wdbc", "synthetic_blocks"}
    assert {c.explainer.name for c in suite.cells if c.dataset.name == "wdbc"} == {"gradient", "smoothgrad", "integrated_gradients"}
    assert "gradcam" in {c.explainer.name for c in suite.cells if c.dataset.name == "synthetic_blocks"}
    assert {c.attack_name for c in suite.cells} == {"none", "random_noise", "topk"}
    assert {m.name for c in suite.cells for m in c.metrics} == {"topk_intersection", "spearman", "insertion", "deletion"}
    k = {"wdbc": 8, "synthetic_blocks": 32}
    for cell in suite.cells:
        for component in (cell.attack, *cell.metrics):
            if component is not None and "k" in component.params:
                assert component.params["k"] == k[cell.dataset.name]
    # random noise and the top-k attack get the same budget on each data set
    budgets = {(c.dataset.name, c.attack.params["eps"], c.attack.params["norm"]) for c in suite.cells if c.attack is not None}
    assert len(budgets) == 2


# -- malformed suites ------------------------------------------------------------------------------
MALFORMED = {
    "unknown explainer": (_variant('name = "gradient"', 'name = "gradiant"'), ["explainers[0]", "gradiant", "gradient"]),
    "unknown metric": (_variant('name = "deletion"', 'name = "delete"'), ["metrics[1]", "delete", "Available"]),
    "unknown dataset": (_variant('name = "wdbc"', 'name = "wdcb"'), ["datasets[0]", "wdcb", "wdbc"]),
    "unknown model": (_variant('name = "mlp"', 'name = "mpl"'), ["datasets[0] (wdbc).models[0]", "mpl", "mlp"]),
    "unknown parameter": (_variant("n_samples = [2, 4]", "n_sample = 2"), ["explainers[1]", "n_sample", "n_samples"]),
    "wrong parameter type": (_variant("n_samples = [2, 4]", 'n_samples = "many"'), ["explainers[1]", "n_samples", "int"]),
    "wrong type in a list": (_variant("n_samples = [2, 4]", "n_samples = [2, 4.5]"), ["n_samples", "4.5", "int"]),
    "wrong recipe type": (_variant("epochs = 2", "epochs = 2.5"), ["recipes[0]", "epochs", "int"]),
    "literal value": (_variant('name = "deletion"', 'name = "deletion"\nunit = "pixels"'), ["unit", "pixels"]),
    "no explainers": (_variant('[[explainers]]\nname = "smoothgrad"\nn_samples = [2, 4]', "").replace(
        '[[explainers]]\nname = "gradient"', ""), ["explainers", "missing"]),
    "no metrics": (BASE.split("[[metrics]]")[0], ["metrics", "missing"]),
    "everything excluded": (BASE + '\n[[exclude]]\ndataset = "wdbc"\n', ["every cell", "excluded"]),
    "empty list": (_variant("n_samples = [2, 4]", "n_samples = []"), ["explainers[1] (smoothgrad).n_samples", "empty list"]),
    "no suite name": (_variant('name = "base"\n', ""), ["[suite] name", "missing"]),
    "no suite table": (BASE.replace('[suite]\nname = "base"\nsamples = 4\nseeds = [0, 1]\n', ""), ["[suite]", "missing"]),
    "no samples": (_variant("samples = 4\n", ""), ["[suite] samples", "missing"]),
    "zero samples": (_variant("samples = 4", "samples = 0"), ["[suite] samples", "positive integer"]),
    "bad seeds": (_variant("seeds = [0, 1]", "seeds = [0, -1]"), ["[suite] seeds", "non-negative"]),
    "repeated seed": (_variant("seeds = [0, 1]", "seeds = [1, 1]"), ["[suite] seeds", "twice"]),
    "unknown suite key": (_variant("samples = 4", "samples = 4\nsample_count = 3"), ["[suite]", "sample_count", "allowed: name, description, samples"]),
    "unknown top-level table": (BASE + '\n[[explainer]]\nname = "gradient"\n', ["top level", "explainer", "allowed"]),
    "no datasets": (BASE.replace('[[datasets]]\nname = "wdbc"\nmodels = [{ name = "mlp", hidden = [8] }]\nshared = { k = 5 }\n', ""), ["datasets", "missing"]),
    "dataset as one table": (BASE.replace("[[datasets]]", "[datasets]"), ["datasets", "array of tables"]),
    "dataset without models": (_variant('models = [{ name = "mlp", hidden = [8] }]\n', ""), ["datasets[0] (wdbc)", "models"]),
    "empty models": (_variant('models = [{ name = "mlp", hidden = [8] }]', "models = []"), ["models", "non-empty list"]),
    "model sets the data shape": (_variant("hidden = [8]", "hidden = [8], num_classes = 3"), ["num_classes", "data set"]),
    "no recipes": (_variant('[[recipes]]\nname = "standard"\nepochs = 2\n', ""), ["datasets[0] (wdbc)", "recipes"]),
    "component without name": (_variant('name = "gradient"', 'absolute = true'), ["explainers[0]", "name", "gradient"]),
    "bad toml": (_variant("samples = 4", "samples = = 4"), ["not valid TOML", "line 4"]),
    "bad value, caught by building": (_variant("n_samples = [2, 4]", "n_samples = [2, -4]"),
                                      ["explainers[1]", "invalid explainer 'smoothgrad'", "n_samples", "-4"]),
    "metric needs an attack": (BASE.replace('[[attacks]]\nname = "topk"\nsteps = 2\n', "").replace("shared = { k = 5 }\n", ""),
                               ["metrics", "topk_intersection", "no [[attacks]]", "random_noise"]),
    "attacks without a metric using them": (_variant('[[metrics]]\nname = "topk_intersection"\n', ""),
                                            ["attacks", "no metric of the suite uses an attack", "spearman"]),
    "shared conflicts": (_variant("steps = 2", "steps = 2\nk = 3"), ["attacks[0] (topk)", "k", "datasets[0] (wdbc).shared", "one place"]),
    "shared key unused": (_variant("shared = { k = 5 }", "shared = { k = 5, kk = 1 }"), ["shared", "kk", "not a parameter", "steps"]),
    "shared wrong type": (_variant("shared = { k = 5 }", 'shared = { k = "five" }'), ["with datasets[0] (wdbc).shared", "'k'", "int"]),
    "exclude unknown key": (BASE + '\n[[exclude]]\nexplainr = "gradient"\n', ["exclude[0]", "explainr", "allowed: dataset, model, recipe, explainer, attack"]),
    "exclude unknown name": (BASE + '\n[[exclude]]\nexplainer = "gradcam"\n', ["exclude[0].explainer", "gradcam", "gradient, smoothgrad"]),
    "exclude matches nothing": (BASE + '\n[[datasets]]\nname = "synthetic_blocks"\nmodels = [{ name = "small_cnn" }]\n'
                                 '\n[[exclude]]\ndataset = "wdbc"\nmodel = "small_cnn"\n', ["exclude[0]", "matches no cell"]),
    "empty exclude": (BASE + "\n[[exclude]]\n", ["exclude[0]", "empty"]),
    "duplicate explainer": (BASE + '\n[[explainers]]\nname = "gradient"\n', ["same cell", "gradient"]),
    "duplicate metric": (BASE + '\n[[metrics]]\nname = "deletion"\n', ["metric", "twice"]),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_suite_fails_naming_the_field(case, tmp_path):
    text, fragments = MALFORMED[case]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"


def test_suite_error_is_a_value_error():
    with pytest.raises(ValueError):
        parse_suite("[suite]\nname = 1\n")


# -- device ---------------------------------------------------------------------------------------
def test_the_device_is_a_suite_option_that_the_command_line_overrides():
    text = TINY.read_text()
    assert {c.device for c in parse_suite(text).cells} == {"cpu"}  # the default
    assert {c.device for c in parse_suite(text, device="auto").cells} == {"cuda" if torch.cuda.is_available() else "cpu"}
    with_option = text.replace('name = "tiny"', 'name = "tiny"\ndevice = "cpu"')
    assert parse_suite(with_option).device == "cpu"
    with pytest.raises(SuiteError, match=r"\[suite\] device: .*must be 'auto', 'cpu', 'cuda' or 'cuda:<index>', got 'gpu'"):
        parse_suite(text.replace('name = "tiny"', 'name = "tiny"\ndevice = "gpu"'))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_fails_at_load_naming_the_field():
    with pytest.raises(SuiteError, match=r"\[suite\] device: .*'cuda', but torch sees no CUDA device here"):
        parse_suite(TINY.read_text(), device="cuda")


def test_cells_on_another_device_have_other_ids():
    """A cell's id holds its device: results computed on one device are never reused on another."""
    cpu = parse_suite(TINY.read_text()).cells[0]
    elsewhere = dataclasses.replace(cpu, device="cuda")
    assert cpu.to_dict()["device"] == "cpu" and digest(cpu.to_dict()) != digest(elsewhere.to_dict())
    if torch.cuda.is_available():
        assert cpu.id != elsewhere.id and cpu.model_key != elsewhere.model_key
