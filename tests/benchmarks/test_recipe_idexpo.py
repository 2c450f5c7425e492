"""ID-ExpO's optimiser and checkpoint selection (the authors' protocol): the kept weights are those of
the epoch with the best validation criterion, computed on the validation split only."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from salbench import datasets, metrics, models, recipes
from salbench.datasets import load_dataset
from salbench.datasets.base import DataBundle, Split
from salbench.recipes.base import evaluate
from salbench.recipes.idexpo import IDExpO

BLOCKS = {"size": 8, "delta": 3.0, "n_train": 48, "n_val": 16, "n_test": 16}
FAST = {"epochs": 4, "batch_size": 16, "lr": 1e-2, "steps": 4}


@pytest.fixture(autouse=True)
def _fresh_data_cache():
    datasets._cache.clear()
    yield
    datasets._cache.clear()


def cnn(data):
    torch.manual_seed(0)
    return models.build("small_cnn", {"channels": (3, 4)}, data.input_shape, data.num_classes)


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def state_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def scored_states(monkeypatch):
    """Replaces the criterion by a prescribed sequence and records the weights each epoch was scored with."""
    log = []

    def install(sequence):
        def score(self, model, data):
            log.append(state(model))
            return sequence[len(log) - 1]

        monkeypatch.setattr(IDExpO, "checkpoint_score", score)
        return log

    return install


@pytest.mark.parametrize(
    "sequence, best", [([1.0, 3.0, 2.0, -math.inf], 2), ([-math.inf, -math.inf, 0.5, 0.5], 3), ([-math.inf] * 4, 1)]
)
def test_the_kept_weights_are_those_of_the_best_scoring_epoch(scored_states, sequence, best):
    data = load_dataset("synthetic_blocks", BLOCKS)
    log = scored_states(sequence)
    model = cnn(data)
    info = recipes.get("idexpo", explainer="gradient", **FAST).fit(model, data, seed=0)
    assert len(log) == 4 and not state_equal(log[0], log[-1])  # the epochs did change the weights
    assert info["best_epoch"] == best
    assert state_equal(state(model), log[best - 1])  # ties keep the first; all −∞ keeps epoch 1
    assert info["checkpoint_scores"] == [s if math.isfinite(s) else None for s in sequence]
    assert info["best_val_accuracy"] == evaluate(model, data.val)[0]


def test_without_selection_the_last_epoch_is_kept_and_nothing_is_scored(scored_states):
    data = load_dataset("synthetic_blocks", BLOCKS)
    log = scored_states([9.0, 0.0, 0.0, 0.0])
    model = cnn(data)
    info = recipes.get("idexpo", explainer="gradient", select=False, **FAST).fit(model, data, seed=0)
    assert log == [] and info["best_epoch"] == 4 and info["checkpoint_scores"] == []


def test_the_real_criterion_selects_its_argmax(monkeypatch):
    data = load_dataset("synthetic_blocks", BLOCKS)
    recorded = []
    real = IDExpO.checkpoint_score

    def score(self, model, data_):
        recorded.append((real(self, model, data_), state(model)))
        return recorded[-1][0]

    monkeypatch.setattr(IDExpO, "checkpoint_score", score)
    model = cnn(data)
    info = recipes.get("idexpo", explainer="gradcam", select_accuracy=0.0, **FAST).fit(model, data, seed=0)
    values = [s for s, _ in recorded]
    best = max(range(4), key=lambda i: (values[i], -i))
    assert info["best_epoch"] == best + 1 and state_equal(state(model), recorded[best][1])
    assert len(set(values)) == 4  # distinct scores, so the argmax is a real choice


def test_checkpoint_score_is_twice_accuracy_plus_insertion_plus_one_minus_deletion():
    data = load_dataset("synthetic_blocks", BLOCKS)
    model = cnn(data)
    recipes.get("standard", epochs=3, batch_size=16).fit(model, data, seed=0)
    recipe = recipes.get("idexpo", explainer="gradient", select_accuracy=0.0, select_samples=10, baseline=0.0)
    x, y = data.val.x[:10], data.val.y[:10]
    attr = hand_gradient(model, x, y)
    ins = metrics.get("insertion", fraction=0.5, baseline=0.0)(model, x, attr, y).mean().item()
    dele = metrics.get("deletion", fraction=0.5, baseline=0.0)(model, x, attr, y).mean().item()
    accuracy = (model(data.val.x).argmax(1) == data.val.y).float().mean().item()  # all 16, not the first 10
    assert recipe.checkpoint_score(model, data) == pytest.approx(2 * accuracy + ins + 1 - dele, abs=1e-6)
    assert math.isinf(recipes.get("idexpo", select_accuracy=1.0).checkpoint_score(model, flipped(data)))


def hand_gradient(model, x, y):
    """∂ logit_y / ∂x, computed here by hand (the ``gradient`` explainer's definition)."""
    x = x.clone().requires_grad_(True)
    model(x).gather(1, y[:, None]).sum().backward()
    return x.grad


def flipped(data: DataBundle) -> DataBundle:
    """The bundle with every validation label flipped (accuracy 1 − a < 1 unless a = 0)."""
    return dataclasses.replace(data, val=Split(x=data.val.x, y=1 - data.val.y))


def test_selection_never_looks_at_the_test_split():
    data = load_dataset("synthetic_blocks", BLOCKS)
    poisoned = dataclasses.replace(data, test=Split(x=torch.full_like(data.test.x, math.nan), y=1 - data.test.y))
    fitted = []
    for bundle in (data, poisoned):
        model = cnn(data)
        info = recipes.get("idexpo", explainer="gradient", select_accuracy=0.0, **FAST).fit(model, bundle, seed=0)
        fitted.append((state(model), info))
    assert state_equal(fitted[0][0], fitted[1][0]) and fitted[0][1] == fitted[1][1]


@pytest.mark.parametrize(
    "name, expected",
    [("sgd", (torch.optim.SGD, {"lr": 1e-4, "momentum": 0.9, "weight_decay": 5e-4, "nesterov": True})),
     ("adam", (torch.optim.Adam, {"lr": 1e-4, "weight_decay": 0}))],
)
def test_the_optimiser_is_the_authors_sgd_or_adam(name, expected):
    data = load_dataset("synthetic_blocks", BLOCKS)
    optimiser = recipes.get("idexpo", optimiser=name)._make_optimiser(cnn(data))
    kind, settings = expected
    assert type(optimiser) is kind
    assert {k: optimiser.defaults[k] for k in settings} == settings


@pytest.mark.parametrize(
    "params, match",
    [({"optimiser": "rmsprop"}, "optimiser"), ({"select_accuracy": 1.5}, "select_accuracy"),
     ({"select_samples": 0}, "select_samples"), ({"select": "yes"}, "select")],
)
def test_bad_selection_parameters_are_named(params, match):
    with pytest.raises(ValueError, match=match):
        recipes.get("idexpo", **params)


def test_more_selection_samples_than_validation_samples_fail_before_training():
    data = load_dataset("synthetic_blocks", BLOCKS)
    with pytest.raises(ValueError, match="select_samples=17"):
        recipes.get("idexpo", explainer="gradient", select_samples=17).fit(cnn(data), data, seed=0)
