"""Malformed suites fail before any work, naming the field (issue 14's acceptance: 30 of them).

Each case edits one valid suite (:data:`BASE`, checked to load and to pass the data checks) and
runs it with :func:`salbench.runner.run_suite`: the run must raise a :class:`SuiteError` whose
message holds every expected substring (the table or field, and what is allowed), and leave
nothing behind (no results directory, no trained model). The errors that only the data can
tell (a missing data file, ``k`` above the feature count, a model that cannot run on the data)
come from :func:`salbench.suite.check_data`, which ``run_suite`` calls before it trains.
"""

from __future__ import annotations

import pytest
from salbench.runner import run_suite
from salbench.suite import SuiteError, check_data, parse_suite

BASE = """
[suite]
name = "malformed"
samples = 4
seeds = [0]

[[datasets]]
name = "wdbc"
models = [{ name = "mlp", hidden = [8] }]
shared = { eps = 0.2 }

[[recipes]]
name = "standard"
epochs = 2

[[explainers]]
name = "gradient"

[[explainers]]
name = "smoothgrad"
n_samples = 2

[[attacks]]
name = "topk"
k = 5
steps = 2

[[metrics]]
name = "topk_intersection"
k = 5

[[metrics]]
name = "spearman"
"""


def _edit(old: str, new: str) -> str:
    assert BASE.count(old) == 1, old
    return BASE.replace(old, new)


# (case id, suite text, substrings the error must contain)
CASES = [
    # TOML and top level
    ("bad-toml", _edit("samples = 4", "samples = = 4"), ["not valid TOML", "line 4"]),
    ("unknown-top-level-key", "colour = 'red'\n" + BASE, ["top level", "unknown key(s) 'colour'", "allowed: suite, plugins"]),
    ("datasets-not-array", "datasets = 3\n" + _edit('[[datasets]]\nname = "wdbc"\nmodels = [{ name = "mlp", hidden = [8] }]\nshared = { eps = 0.2 }\n', ""),
     ["datasets", "must be an array of tables, written [[datasets]]"]),
    # [suite] options
    ("suite-missing", _edit('[suite]\nname = "malformed"\nsamples = 4\nseeds = [0]\n', ""), ["[suite]", "missing table"]),
    ("suite-unknown-key", _edit("samples = 4", "samples = 4\nsample_size = 3"), ["[suite]", "'sample_size'", "allowed: name, description, samples"]),
    ("name-empty", _edit('name = "malformed"', 'name = ""'), ["[suite] name", "non-empty string"]),
    ("samples-zero", _edit("samples = 4", "samples = 0"), ["[suite] samples", "positive integer", "got 0"]),
    ("samples-string", _edit("samples = 4", 'samples = "four"'), ["[suite] samples", "positive integer", "'four'"]),
    ("seeds-empty", _edit("seeds = [0]", "seeds = []"), ["[suite] seeds", "non-empty list of non-negative integers"]),
    ("seeds-negative", _edit("seeds = [0]", "seeds = [0, -1]"), ["[suite] seeds", "non-negative integers", "[0, -1]"]),
    ("seeds-duplicate", _edit("seeds = [0]", "seeds = [1, 1]"), ["[suite] seeds", "lists a seed twice"]),
    ("batch-size-float", _edit("samples = 4", "samples = 4\nbatch_size = 2.5"), ["[suite] batch_size", "positive integer", "2.5"]),
    ("threads-bool", _edit("samples = 4", "samples = 4\nthreads = true"), ["[suite] threads", "positive integer", "True"]),
    ("select-unknown", _edit("samples = 4", 'samples = 4\nselect = "best"'), ["[suite] select", "'correct', 'all'", "'best'"]),
    # data sets, models, recipes
    ("dataset-unknown", _edit('name = "wdbc"', 'name = "wdbcc"'), ["datasets[0] (wdbcc)", "wdbcc", "wdbc"]),
    ("dataset-unknown-param", _edit('shared = { eps = 0.2 }', 'shared = { eps = 0.2 }\nsize = 8'), ["datasets[0] (wdbc)", "size"]),
    ("dataset-samples-zero", _edit('shared = { eps = 0.2 }', 'shared = { eps = 0.2 }\nsamples = 0'), ["datasets[0] (wdbc).samples", "positive integer"]),
    ("models-missing", _edit('models = [{ name = "mlp", hidden = [8] }]\n', ""), ["datasets[0] (wdbc)", "missing 'models'"]),
    ("models-empty", _edit('models = [{ name = "mlp", hidden = [8] }]', "models = []"), ["datasets[0] (wdbc).models", "non-empty list of tables"]),
    ("model-unknown", _edit('{ name = "mlp", hidden = [8] }', '{ name = "transformer" }'), ["datasets[0] (wdbc).models[0] (transformer)", "mlp"]),
    ("model-param-type", _edit("hidden = [8]", 'hidden = "wide"'), ["datasets[0] (wdbc).models[0] (mlp)", "hidden"]),
    ("recipe-unknown", _edit('name = "standard"', 'name = "adversarial_magic"'), ["recipes[0] (adversarial_magic)", "standard"]),
    ("recipe-bad-value", _edit("epochs = 2", "epochs = 0"), ["recipes[0] (standard)", "epochs"]),
    # explainers, attacks, metrics
    ("explainer-unknown", _edit('name = "gradient"', 'name = "gradients"'), ["explainers[0] (gradients)", "gradient"]),
    ("explainer-param-type", _edit("n_samples = 2", "n_samples = 1.5"), ["explainers[1] (smoothgrad)", "n_samples"]),
    ("explainer-empty-grid", _edit("n_samples = 2", "n_samples = []"), ["explainers[1] (smoothgrad).n_samples", "empty list"]),
    ("explainer-unknown-param", _edit("n_samples = 2", "n_samples = 2\nnoise_level = 0.1"), ["explainers[1] (smoothgrad)", "noise_level"]),
    ("attack-bad-value", _edit("steps = 2", "steps = 0"), ["attacks[0] (topk)", "steps must be an integer >= 1, got 0"]),
    ("metric-unknown", _edit('name = "spearman"', 'name = "spearmann"'), ["metrics[1] (spearmann)", "spearman"]),
    ("metric-name-list", _edit('name = "spearman"', 'name = ["spearman"]'), ["metrics[1] (['spearman'])", "missing 'name' (a string)"]),
    ("no-attack-for-robustness-metric", _edit('[[attacks]]\nname = "topk"\nk = 5\nsteps = 2\n', ""),
     ["metrics", "compare(s) an attacked explanation", "no [[attacks]]", "topk"]),
    ("attack-without-robustness-metric",
     _edit('[[metrics]]\nname = "topk_intersection"\nk = 5\n\n[[metrics]]\nname = "spearman"\n', '[[metrics]]\nname = "deletion"\n'),
     ["attacks", "no metric of the suite uses an attack", "topk_intersection"]),
    ("duplicate-metric", BASE + '\n[[metrics]]\nname = "spearman"\n', ["metrics", "listed twice"]),
    ("duplicate-explainer", BASE + '\n[[explainers]]\nname = "gradient"\n', ["grid", "same cell", "gradient"]),
    # shared values
    ("shared-not-declared", _edit("shared = { eps = 0.2 }", "shared = { eps = 0.2, temperature = 1.0 }"),
     ["datasets[0] (wdbc).shared", "temperature is not a parameter", "eps"]),
    ("shared-clashes-with-explicit", _edit("shared = { eps = 0.2 }", "shared = { eps = 0.2, k = 5 }"),
     ["metrics[0] (topk_intersection)", "sets k explicitly", "datasets[0] (wdbc).shared"]),
    # exclusions
    ("exclude-unknown-key", BASE + '\n[[exclude]]\nmethod = "gradient"\n', ["exclude[0]", "'method'", "allowed: dataset, model"]),
    ("exclude-unknown-name", BASE + '\n[[exclude]]\nexplainer = "occlusion"\n', ["exclude[0].explainer", "'occlusion' is not in the suite", "gradient, smoothgrad"]),
    ("exclude-everything", BASE + '\n[[exclude]]\ndataset = "wdbc"\n', ["exclude", "every cell of the grid is excluded"]),
    ("exclude-empty", BASE + "\n[[exclude]]\n", ["exclude[0]", "is empty", "dataset, model, recipe"]),
    # plug-ins
    ("plugins-not-list", 'plugins = "my_metric.py"\n' + BASE, ["plugins", "must be a list of .py paths or module names"]),
    ("plugin-file-missing", 'plugins = ["no_such_plugin.py"]\n' + BASE, ["plugins[0]", "no_such_plugin.py"]),
    # what only the data can tell (salbench.suite.check_data)
    ("attack-k-above-features", _edit("k = 5\nsteps = 2", "k = 500\nsteps = 2"),
     ["malformed.toml: ", "data set 'wdbc'", "30 features per sample", "attack 'topk'", "k must be an integer in [1, 30]", "got 500"]),
    ("shared-k-above-features", _edit("shared = { eps = 0.2 }", "shared = { eps = 0.2, k = 40 }").replace("k = 5\n", ""),
     ["attack 'topk' does not fit: k must be an integer in [1, 30] (the number of features), got 40",
      "metric 'topk_intersection' does not fit: k must be an integer in [1, 30] (the number of features), got 40"]),
    ("metric-k-above-features", _edit("k = 5\n\n[[metrics]]", "k = 31\n\n[[metrics]]"),
     ["data set 'wdbc'", "metric 'topk_intersection'", "k must be an integer in [1, 30]", "got 31"]),
    ("er-attack-k-above-half", _edit('name = "topk"\nk = 5', 'name = "er_attack"\nk = 16'),
     ["attack 'er_attack'", "k must be at most 15 (half the 30 features per sample), got k=16"]),
    ("borrowed-objective-k-above-features", _edit('name = "topk"\nk = 5', 'name = "clinical"\nk = 31').replace("shared = { eps = 0.2 }\n", ""),
     ["attack 'clinical' does not fit: k must be an integer in [1, 30] (the number of features), got 31"]),
    ("data-file-missing", _edit('name = "wdbc"', 'name = "medmnist"\nfile = "no_such_archive.npz"'),
     ["data set 'medmnist'", "does not load", "FileNotFoundError", "no_such_archive.npz"]),
    ("model-cannot-run-on-data", _edit('{ name = "mlp", hidden = [8] }', '{ name = "small_cnn" }'),
     ["model 'small_cnn'", "cannot run on data set 'wdbc'", "input_shape"]),
]


def test_the_base_suite_is_valid_and_passes_the_data_checks():
    suite = parse_suite(BASE, source="base")
    assert [c.describe() for c in suite.cells] == [f"wdbc/mlp/standard seed 0: {e} × topk" for e in ("gradient", "smoothgrad")]
    check_data(suite)


def test_there_are_at_least_thirty_cases():
    assert len(CASES) >= 30 and len({case for case, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize("text, expected", [pytest.param(t, e, id=c) for c, t, e in CASES])
def test_a_malformed_suite_fails_before_any_work_naming_the_field(text, expected, tmp_path, monkeypatch):
    monkeypatch.setenv("SALBENCH_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "malformed.toml").write_text(text)
    with pytest.raises(SuiteError) as info:
        run_suite(tmp_path / "malformed.toml", tmp_path / "out", backend="sequential", progress=False)
    message = str(info.value)
    missing = [part for part in expected if part not in message]
    assert not missing, f"the message lacks {missing}: {message}"
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()
