"""The trained-model cache: keys, train-once-then-load, safe files, atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import platformdirs
import pytest
import salbench.model_cache as model_cache
import torch
from salbench import datasets, models, recipes
from salbench.core import fingerprint
from salbench.core.fingerprint import source_modules
from salbench.core.registry import ParameterError, UnknownNameError
from salbench.model_cache import CACHE_ENV_VAR, cache_dir_path, model_code, model_inputs, model_key, trained_model
from salbench.recipes.standard import Standard

DATA = {"size": 8, "delta": 3.0, "n_train": 32, "n_val": 8, "n_test": 8}
MODEL = {"channels": [2, 2]}
RECIPE = {"epochs": 2, "batch_size": 16}
INPUTS = ("synthetic_blocks", DATA, "small_cnn", MODEL, "standard", RECIPE, 0)


@pytest.fixture(autouse=True)
def _fresh_data_cache():
    datasets._cache.clear()
    yield
    datasets._cache.clear()


@pytest.fixture
def count_fits(monkeypatch):
    """Counts Standard.fit calls (training runs) while still training."""
    calls = []
    real_fit = Standard.fit

    def fit(self, model, data, *, seed):
        calls.append(seed)
        return real_fit(self, model, data, seed=seed)

    monkeypatch.setattr(Standard, "fit", fit)
    return calls


def state_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# -- keys --------------------------------------------------------------------------------------
def test_key_is_sha256_hex_and_stable_for_order_and_explicit_defaults():
    key = model_key(*INPUTS)
    assert len(key) == 64 and all(c in "0123456789abcdef" for c in key)
    reordered = dict(reversed(list(DATA.items())))
    with_defaults = {**RECIPE, "lr": 1e-3, "weight_decay": 0, "patience": 10}  # int 0 coerced to float
    assert model_key("synthetic_blocks", reordered, "small_cnn", {**MODEL, "kernel_size": 3, "pool": True},
                     "standard", with_defaults, 0) == key
    assert model_key("synthetic_blocks", {**DATA, "channels": 1, "block": None}, "small_cnn", {"channels": (2, 2)},
                     "standard", RECIPE, 0) == key


@pytest.fixture
def second_recipe(monkeypatch):
    """A second recipe, registered only for the test (the registry's entries are restored after)."""
    monkeypatch.setattr(recipes.registry, "_entries", dict(recipes.registry._entries))

    @recipes.register("standard_copy")
    class StandardCopy(Standard):
        """The standard recipe under another name."""

    return "standard_copy"


@pytest.mark.parametrize(
    "position, value",
    [(0, "wdbc"), (1, {**DATA, "delta": 2.5}), (2, "mlp"), (3, {"channels": [2, 3]}), (4, None),
     (5, {**RECIPE, "lr": 2e-3}), (6, 1)],
)
def test_key_changes_with_each_of_the_seven_inputs(position, value, second_recipe):
    inputs = list(INPUTS)
    inputs[position] = second_recipe if position == 4 else value
    if position in (0, 2):  # another data set / architecture: its own (default) parameters
        inputs[position + 1] = {}
    assert model_key(*inputs) != model_key(*INPUTS)


@pytest.mark.parametrize("module", ["salbench.recipes.standard", "salbench.recipes.base", "salbench.models.small_cnn",
                                    "salbench.datasets.synthetic_blocks"])
def test_key_changes_when_the_code_of_the_recipe_architecture_or_data_set_changes(module, monkeypatch):
    assert module in source_modules([recipes.registry.entry("standard").factory, datasets.registry.entry("synthetic_blocks").factory,
                                     models.registry.entry("small_cnn").factory])
    before = model_key(*INPUTS)
    real = fingerprint._source_digest
    monkeypatch.setattr(fingerprint, "_source_digest", lambda name: "edited" if name == module else real(name))
    assert model_key(*INPUTS) != before


def test_key_holds_device_dtype_and_code_and_a_fine_tuned_model_counts_its_base_recipe(monkeypatch):
    inputs = model_inputs(*INPUTS)
    assert (inputs["device"], inputs["dtype"]) == ("cpu", "float32") and len(inputs["code"]) == 64
    with pytest.raises(ValueError, match="device must be a resolved device name"):
        model_key(*INPUTS, device="auto")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch sees no CUDA device here"):
            model_key(*INPUTS, device="cuda")
    with torch.random.fork_rng(devices=[]):
        torch.set_default_dtype(torch.float64)
        try:
            doubled = model_key(*INPUTS)
        finally:
            torch.set_default_dtype(torch.float32)
    assert doubled != model_key(*INPUTS)
    assert recipes.get("adversarial").base_recipe == "standard"  # fine-tunes a standard model
    seen = []
    monkeypatch.setattr(model_cache, "code_fingerprint", lambda *factories: seen.extend(factories) or "x")
    model_code("synthetic_blocks", "small_cnn", "adversarial", {})
    assert seen == [datasets.registry.entry("synthetic_blocks").factory, models.registry.entry("small_cnn").factory,
                    recipes.registry.entry("adversarial").factory, Standard]


def test_key_rejects_bad_inputs():
    with pytest.raises(UnknownNameError):
        model_key("synthetic_blocks", DATA, "vgg", {}, "standard", {}, 0)
    with pytest.raises(ParameterError, match="epochs"):
        model_key("synthetic_blocks", DATA, "small_cnn", {}, "standard", {"epochs": 1.5}, 0)
    with pytest.raises(ValueError, match="seed"):
        model_key("synthetic_blocks", DATA, "small_cnn", {}, "standard", {}, -1)


# -- train once, then load ------------------------------------------------------------------------
def test_first_call_trains_and_second_call_loads(tmp_path, count_fits, monkeypatch):
    net, meta = trained_model(*INPUTS, cache_dir=tmp_path)
    key = model_key(*INPUTS)
    assert len(count_fits) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{key}.json", f"{key}.pt"]
    assert not net.training and next(net.parameters()).device.type == "cpu"
    assert meta["key"] == key and meta["seed"] == 0 and meta["dataset"] == "synthetic_blocks"
    assert meta["model_params"] == {"channels": [2, 2], "kernel_size": 3, "pool": True}
    assert meta["recipe_params"]["lr"] == 1e-3 and meta["training"]["epochs_run"] == 2
    assert 0 <= meta["val_accuracy"] <= 1 and 0 <= meta["test_accuracy"] <= 1 and meta["train_seconds"] > 0
    assert {"torch", "numpy", "python", "salbench"} <= set(meta["versions"])

    def no_training(*args, **kwargs):
        raise AssertionError("the cached model must be loaded, not trained again")

    monkeypatch.setattr(Standard, "fit", no_training)
    loaded, loaded_meta = trained_model(*INPUTS, cache_dir=tmp_path)
    assert loaded is not net and state_equal(loaded, net) and not loaded.training
    assert loaded_meta == meta
    x = datasets.load_dataset("synthetic_blocks", DATA).test.x
    assert torch.equal(loaded(x), net(x))


def test_weights_are_a_plain_state_dict_loaded_with_weights_only(tmp_path, monkeypatch):
    net, meta = trained_model(*INPUTS, cache_dir=tmp_path)
    state = torch.load(tmp_path / f"{meta['key']}.pt", weights_only=True)
    assert state.keys() == net.state_dict().keys()
    seen = []
    real_load = torch.load

    def checking_load(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(model_cache.torch, "load", checking_load)
    trained_model(*INPUTS, cache_dir=tmp_path)
    assert seen == [True]


def test_training_is_reproducible_and_leaves_the_global_rng_alone(tmp_path):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, meta_a = trained_model(*INPUTS, cache_dir=tmp_path / "a")
    assert torch.equal(torch.get_rng_state(), before)
    b, meta_b = trained_model(*INPUTS, cache_dir=tmp_path / "b")
    assert state_equal(a, b) and meta_a["test_accuracy"] == meta_b["test_accuracy"]
    c, _ = trained_model(*INPUTS[:-1], 1, cache_dir=tmp_path / "a")
    assert not state_equal(a, c)


# -- interrupted writes ---------------------------------------------------------------------------
def test_a_crash_before_the_meta_is_written_leaves_no_entry_that_is_read(tmp_path, count_fits, monkeypatch):
    key = model_key(*INPUTS)
    real_replace = os.replace

    def crash_on_meta(src, dst):
        if str(dst).endswith(".json"):
            raise KeyboardInterrupt("killed while writing the meta")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_meta)
    with pytest.raises(KeyboardInterrupt):
        trained_model(*INPUTS, cache_dir=tmp_path)
    monkeypatch.setattr(os, "replace", real_replace)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{key}.pt"]  # no temporary files, no meta
    (tmp_path / f"{key}.pt").write_bytes(b"half a file")  # even a torn weights file is never read
    net, meta = trained_model(*INPUTS, cache_dir=tmp_path)
    assert len(count_fits) == 2 and meta["key"] == key
    assert state_equal(net, trained_model(*INPUTS, cache_dir=tmp_path)[0]) and len(count_fits) == 2


def test_a_crash_while_writing_weights_leaves_nothing(tmp_path, monkeypatch):
    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        trained_model(*INPUTS, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_meta_with_another_key_is_reported_as_corrupt(tmp_path):
    _, meta = trained_model(*INPUTS, cache_dir=tmp_path)
    path = tmp_path / f"{meta['key']}.json"
    path.write_text(json.dumps({**meta, "key": "0" * 64}))
    with pytest.raises(ValueError, match="corrupt"):
        trained_model(*INPUTS, cache_dir=tmp_path)


# -- cache directory ------------------------------------------------------------------------------
def test_cache_directory_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv(CACHE_ENV_VAR, raising=False)
    assert cache_dir_path() == Path(platformdirs.user_cache_dir("salbench")) / "models"
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "env"))
    assert cache_dir_path() == tmp_path / "env"
    assert cache_dir_path(tmp_path / "arg") == tmp_path / "arg"
    _, meta = trained_model(*INPUTS)
    assert (tmp_path / "env" / f"{meta['key']}.pt").is_file()
