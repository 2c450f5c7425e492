"""Suite plugins: a component in a plain .py file, named by a suite, runs on every backend and
gets the contract checks of ``salbench.testing`` without being listed anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from salbench import explainers
from salbench.cli import main
from salbench.plugins import import_plugins, resolve_plugins
from salbench.runner import run_suite
from salbench.store import read_records
from salbench.suite import SuiteError, load_suite
from salbench.testing import check_explainer, registered

pytestmark = pytest.mark.usefixtures("salbench_cache_dir")

PLUGIN = '''
"""A plug-in explainer: the squared input gradient."""
from salbench import explainers
from salbench.explainers.base import Explainer, output_gradient


@explainers.register("gradient_squared")
class GradientSquared(Explainer):
    """Squared gradient of the target logit with respect to the input."""

    def attribute(self, model, x, target, *, create_graph):
        grad, _ = output_gradient(model, x, target, create_graph=create_graph)
        return grad.square()
'''

SUITE = """
plugins = ["plugins/gradient_squared.py"]

[suite]
name = "plugged"
samples = 3
seeds = [0, 1]

[[datasets]]
name = "wdbc"
models = [{ name = "mlp", hidden = [8] }]

[[recipes]]
name = "standard"
epochs = 3

[[explainers]]
name = "gradient_squared"

[[explainers]]
name = "gradient"

[[metrics]]
name = "deletion"
"""


@pytest.fixture(scope="module")
def plugged(tmp_path_factory):
    """The suite file beside its plugin folder (the plugin is imported by loading it)."""
    folder = tmp_path_factory.mktemp("plugged")
    (folder / "plugins").mkdir()
    (folder / "plugins" / "gradient_squared.py").write_text(PLUGIN)
    path = folder / "plugged.toml"
    path.write_text(SUITE)
    return path


def _assert_plugin_cells(out_dir) -> None:
    records = read_records(out_dir)
    assert set(records.explainer) == {"gradient_squared", "gradient"}
    assert records.groupby("explainer").cell_id.nunique().to_dict() == {"gradient_squared": 2, "gradient": 2}
    assert records.value.notna().all()


def test_a_plugin_explainer_runs_on_loky_workers(plugged, tmp_path, capsys):
    suite = load_suite(plugged)
    assert "gradient_squared" in explainers.names()
    summary = run_suite(suite, tmp_path, jobs=2, progress=False)
    assert summary.failed == 0 and summary.run == 4
    assert f"file {plugged.parent / 'plugins' / 'gradient_squared.py'}" in capsys.readouterr().out
    _assert_plugin_cells(tmp_path)


def test_a_plugin_explainer_runs_on_dask_workers(plugged, tmp_path):
    distributed = pytest.importorskip("distributed")
    suite = load_suite(plugged)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        summary = run_suite(suite, tmp_path, backend="dask", scheduler=cluster.scheduler_address, progress=False)
    assert summary.failed == 0 and summary.run == 4
    _assert_plugin_cells(tmp_path)


def test_the_contract_checks_reach_a_plugin_by_the_registry(plugged):
    load_suite(plugged)
    checked = {}
    for name in registered("explainers"):  # nothing names the plugin: it is checked by existing
        checked[name] = check_explainer(name)
    report = checked["gradient_squared"]
    assert report.applicable == ("image", "volume", "signal", "tabular")
    assert "gradcheck" in report.passed["image"] and "batch invariance" in report.passed["tabular"]


def test_no_plugins_refuses_a_suite_that_names_any(plugged, tmp_path, capsys):
    with pytest.raises(SuiteError, match=r"plugins: .*'plugins/gradient_squared.py'.*--no-plugins"):
        load_suite(plugged, allow_plugins=False)
    assert main(["run", str(plugged), "--no-plugins", "--out", str(tmp_path), "--quiet"]) == 2
    assert "plugins/gradient_squared.py" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize(
    "entries, match",
    [
        ('["plugins/ok.py", "plugins/missing.py"]', r"plugins\[1\]: plugin file 'plugins/missing.py' not found"),
        ('["plugins/notes.txt"]', r"plugins\[0\]: 'plugins/notes.txt' is a path but not a .py file"),
        ('["plugins/broken.py"]', r"plugins\[0\]: importing 'plugins/broken.py' failed: ZeroDivisionError"),
        ('["no_such_module_xyz"]', r"plugins\[0\]: importing 'no_such_module_xyz' failed: ModuleNotFoundError"),
        ('["3bad name"]', r"plugins\[0\]: '3bad name' is neither a .py file .* nor a module name"),
        ('"plugins/ok.py"', r"plugins: must be a list"),
    ],
)
def test_bad_plugin_entries_fail_at_load_naming_the_field(tmp_path, entries, match):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "ok.py").write_text("VALUE = 1\n")
    (tmp_path / "plugins" / "notes.txt").write_text("not python")
    (tmp_path / "plugins" / "broken.py").write_text("1 / 0\n")
    path = tmp_path / "bad.toml"
    path.write_text(SUITE.replace('plugins = ["plugins/gradient_squared.py"]', f"plugins = {entries}"))
    with pytest.raises(SuiteError, match=match):
        load_suite(path)
    assert not any(name.startswith("salbench_plugin_broken_") for name in sys.modules)


def test_a_file_plugin_is_imported_once_per_process_and_same_stems_do_not_collide(tmp_path):
    for folder, value in (("a", 1), ("b", 2)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "helper.py").write_text(f"import torch\nVALUE = {value}\nDRAW = torch.rand(1).item()\n")
    (a,) = resolve_plugins(["a/helper.py"], tmp_path)
    (b,) = resolve_plugins(["b/helper.py"], tmp_path)
    assert a.module != b.module and a.module.startswith("salbench_plugin_helper_")
    first = import_plugins([a, b])
    assert [m.VALUE for m in first] == [1, 2]
    torch.manual_seed(0)
    again = import_plugins(resolve_plugins(["a/helper.py"], tmp_path))  # the same name: not run again
    assert again[0] is first[0] and again[0].DRAW == first[0].DRAW
    # edited content is a new module (a stale import is never reused)
    (tmp_path / "a" / "helper.py").write_text("VALUE = 3\n")
    (edited,) = import_plugins(resolve_plugins(["a/helper.py"], tmp_path))
    assert edited.VALUE == 3 and edited is not first[0]


def test_a_file_already_imported_as_a_module_is_not_run_again(tmp_path, monkeypatch):
    """A test's ``import my_explainer`` and the suite's plugin of the same file register once."""
    (tmp_path / "my_plugin_mod.py").write_text("import torch\nDRAW = torch.rand(1).item()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_plugin_mod

    (module,) = import_plugins(resolve_plugins(["my_plugin_mod.py"], tmp_path))
    assert module is my_plugin_mod


PLUGIN_RECIPE = '''
"""A plug-in recipe: the standard training loop under its own name."""
from salbench import recipes
from salbench.recipes.standard import Standard


@recipes.register("plugged_standard")
class PluggedStandard(Standard):
    """The standard recipe, registered by a plug-in file."""
'''

RECIPE_SUITE = """
plugins = ["plugged_recipe.py"]

[suite]
name = "plugged_recipe"
samples = 3
seeds = [0]

[[datasets]]
name = "wdbc"
models = [{ name = "mlp", hidden = [4] }]

[[recipes]]
name = "plugged_standard"
epochs = 2

[[explainers]]
name = "gradient"

[[metrics]]
name = "deletion"
"""


def test_editing_a_plugin_recipe_on_disk_retrains_its_model(tmp_path):
    """The model key holds a fingerprint of the recipe's source: after an edit of the plug-in file
    the next run trains the model again (a new cache entry) instead of loading the old one, and
    the store of the old code is refused until --fresh. Each run is its own process, as a user's is."""
    (tmp_path / "plugged_recipe.py").write_text(PLUGIN_RECIPE)
    (tmp_path / "suite.toml").write_text(RECIPE_SUITE)
    cache, out = tmp_path / "cache", tmp_path / "out"
    env = {**os.environ, "SALBENCH_CACHE_DIR": str(cache)}

    def run(*extra: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "salbench.cli", "run", str(tmp_path / "suite.toml"), "--out", str(out), "--quiet", *extra]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)

    def entries() -> dict[str, dict]:
        return {p.stem: json.loads(p.read_text()) for p in cache.glob("*.json")}

    assert run().returncode == 0
    (first,) = entries().values()
    assert first["recipe"] == "plugged_standard" and set(read_records(out).model_key) == {first["key"]}
    assert run().returncode == 0 and len(entries()) == 1  # unchanged code: the cached model is reused

    (tmp_path / "plugged_recipe.py").write_text(PLUGIN_RECIPE + "# edited: any change of the source counts\n")
    refused = run()
    assert refused.returncode != 0 and "--fresh" in refused.stdout + refused.stderr
    assert run("--fresh").returncode == 0
    assert len(entries()) == 2  # trained again, under a new key
    (second,) = [meta for key, meta in entries().items() if key != first["key"]]
    assert second["code"] != first["code"] and set(read_records(out).model_key) == {second["key"]}
