"""The README's "Benchmark your own model": a torchvision-layout ResNet-18 trained for a few steps,
saved as a checkpoint and benchmarked through the suite's factory spec (examples/own_model)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pandas as pd
import pytest
from salbench.model_cache import model_key
from salbench.publish import publish
from salbench.results import load_results
from salbench.runner import run_suite
from salbench.suite import SuiteError, load_suite

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "own_model"


def train_checkpoint(folder: Path, steps: int, seed: int) -> None:
    """What a user has already done: the example's own training script, run from its folder."""
    spec = importlib.util.spec_from_file_location(f"own_model_train_{seed}_{steps}", folder / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.train(steps=steps, seed=seed, out=folder / "resnet18.pt")


@pytest.fixture
def own_model(tmp_path, monkeypatch):
    folder = tmp_path / "own_model"
    shutil.copytree(EXAMPLE, folder)
    monkeypatch.setenv("SALBENCH_CACHE_DIR", str(tmp_path / "cache"))
    return folder


def test_a_resnet18_checkpoint_is_benchmarked_through_the_factory_spec(own_model, tmp_path):
    train_checkpoint(own_model, steps=30, seed=0)
    suite = load_suite(own_model / "suite.toml")
    model = suite.cells[0].model
    assert model.name == "factory" and model.params["checkpoint"] == str(own_model / "resnet18.pt")
    summary = run_suite(suite, tmp_path / "out", jobs=1, backend="sequential", progress=False)
    assert summary.failed == 0 and summary.run == len(suite.cells) == 4
    publish(tmp_path / "out")
    board = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "synthetic_blocks / factory / none" in board and "gradcam" in board and "topk_intersection" in board
    first = load_results(tmp_path / "out").records

    # the same content elsewhere: the same model key (content, not path)
    moved = tmp_path / "elsewhere"
    shutil.copytree(own_model, moved)
    assert load_suite(moved / "suite.toml").cells[0].model_key == suite.cells[0].model_key

    # overwriting the checkpoint changes the key, and the results
    train_checkpoint(own_model, steps=5, seed=1)
    again = load_suite(own_model / "suite.toml")
    assert again.cells[0].model_key != suite.cells[0].model_key
    assert {c.id for c in again.cells}.isdisjoint(c.id for c in suite.cells)
    run_suite(again, tmp_path / "out", jobs=1, backend="sequential", progress=False, fresh=True)
    second = load_results(tmp_path / "out").records
    assert first["model_key"].iloc[0] != second["model_key"].iloc[0]
    values = lambda r: r.sort_values(["explainer", "attack", "metric", "sample"])["value"].to_numpy()  # noqa: E731
    assert first["clean_accuracy"].iloc[0] != second["clean_accuracy"].iloc[0] or not pd.Series(values(first)).equals(
        pd.Series(values(second))
    )


def test_the_suites_model_paths_are_relative_to_the_suite_file(own_model, tmp_path):
    with pytest.raises(SuiteError, match=r"checkpoint .*resnet18.pt does not exist"):  # before any work
        run_suite(load_suite(own_model / "suite.toml"), tmp_path / "out", backend="sequential", progress=False)
    assert not (tmp_path / "out" / "store").exists()
    train_checkpoint(own_model, steps=0, seed=0)
    suite = load_suite(own_model / "suite.toml")
    assert suite.cells[0].model.params["factory"] == f"{own_model / 'nets.py'}:build"
    assert model_key(*suite.cells[0].model_inputs) == suite.cells[0].model_key
