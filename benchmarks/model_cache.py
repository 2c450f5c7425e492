"""Content-addressed cache of trained models: train once per configuration, load afterwards.

A trained model is determined by seven inputs: the data set and its parameters, the
architecture and its parameters, the recipe and its parameters, and the seed. Their canonical
JSON (names and validated parameters with every default filled in, keys sorted) hashed with
SHA-256 is the model's key. The cache directory holds ``<key>.pt`` (the state_dict, read with
``torch.load(weights_only=True)``) and ``<key>.json`` (the inputs, accuracies, training
information, versions, training time). Both are written atomically (temporary file, then
rename), the JSON last: it marks the entry as complete, so a run killed mid-write leaves no
entry that is later read, only one that is trained again.

Fine-tuning recipes (those with a ``base_recipe``, see :class:`salbench.recipes.base.Recipe`)
start from the model of their base recipe, obtained through the cache itself with the same data
set, architecture and seed: it is trained once and shared with every recipe that fine-tunes it
(and with the suite's own cells of the base recipe). The base parameters are part of the
fine-tuning recipe's parameters, hence of its key; the meta records the base model's key as
``base_key`` (None for a model trained from initialisation).

Cache directory: the ``cache_dir`` argument, else ``$SALBENCH_CACHE_DIR``, else
``platformdirs.user_cache_dir("salbench")/models``.

Example:
    >>> net, meta = trained_model("wdbc", {}, "mlp", {}, "standard", {"epochs": 5}, seed=0)  # doctest: +SKIP
    >>> meta["test_accuracy"]  # doctest: +SKIP
    0.95...
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any

import platformdirs
import torch
from salbench import datasets, models, recipes
from salbench.core.hashing import digest, versions
from salbench.core.validation import check_seed
from salbench.recipes.base import evaluate
from salbench.store import atomic_write_bytes
from torch import nn

__all__ = ["CACHE_ENV_VAR", "model_key", "trained_model", "cache_dir_path"]

CACHE_ENV_VAR = "SALBENCH_CACHE_DIR"


def _inputs(dataset: str, dataset_params: dict, model: str, model_params: dict,
            recipe: str, recipe_params: dict, seed: int) -> dict[str, Any]:
    """The seven inputs with registered names and validated parameters (defaults filled in)."""
    check_seed(seed)
    return {
        "dataset": datasets.registry.entry(dataset).name,
        "dataset_params": datasets.registry.validate(dataset, dataset_params),
        "model": models.registry.entry(model).name,
        "model_params": models.validate_params(model, model_params),
        "recipe": recipes.registry.entry(recipe).name,
        "recipe_params": recipes.validate_params(recipe, recipe_params),
        "seed": seed,
    }


def model_key(dataset: str, dataset_params: dict, model: str, model_params: dict,
              recipe: str, recipe_params: dict, seed: int) -> str:
    """SHA-256 hex of the canonical JSON of the seven (validated) inputs: the model's cache key."""
    return digest(_inputs(dataset, dataset_params, model, model_params, recipe, recipe_params, seed))


def cache_dir_path(cache_dir: str | Path | None = None) -> Path:
    """The model cache directory: ``cache_dir``, else ``$SALBENCH_CACHE_DIR``, else the user cache."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    return Path(platformdirs.user_cache_dir("salbench")) / "models"


def trained_model(dataset: str, dataset_params: dict, model: str, model_params: dict,
                  recipe: str, recipe_params: dict, seed: int,
                  cache_dir: str | Path | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The model trained with the seven inputs, from the cache or trained now (and cached).

    Returns the model (CPU, eval mode) and its meta: ``key``, the seven inputs (validated),
    ``input_shape``, ``num_classes``, ``vocab_size`` (``len(data.vocabulary)`` for text data,
    which text architectures are built with; else None), ``val_accuracy``, ``test_accuracy``
    (clean accuracy), ``training`` (the recipe's info), ``base_key``, ``versions``, ``train_seconds`` (this
    recipe's training only, not its base model's). The meta is the same dict (after a JSON
    round trip) whether the model was trained now or loaded.

    Training: ``torch.manual_seed(seed)`` (in a forked RNG state, so the caller's global RNG is
    untouched) before the model is built; ``recipe.check(model, data)`` (before any training,
    the base model's included); for a fine-tuning recipe, the base model from this cache and
    its weights copied in; ``recipe.prepare(model)``; then ``recipe.fit(model, data, seed=seed)``.
    Loading builds the architecture, applies ``recipe.prepare`` and loads the weights.
    """
    inputs = _inputs(dataset, dataset_params, model, model_params, recipe, recipe_params, seed)
    key = digest(inputs)
    directory = cache_dir_path(cache_dir)
    weights, meta_path = directory / f"{key}.pt", directory / f"{key}.json"
    if weights.is_file() and meta_path.is_file():
        return _load(key, weights, meta_path)
    return _train(key, inputs, directory)


def _recipe(inputs: dict[str, Any]):
    return recipes.get(inputs["recipe"], **inputs["recipe_params"])


def _load(key: str, weights: Path, meta_path: Path) -> tuple[nn.Module, dict[str, Any]]:
    meta = json.loads(meta_path.read_text())
    if meta.get("key") != key:
        raise ValueError(f"model cache entry {meta_path} is corrupt: it records key {meta.get('key')!r}, not {key!r}")
    # entries written before text models carry no "vocab_size": they are not text models
    vocab_size = meta.get("vocab_size")
    net = models.build(meta["model"], meta["model_params"], tuple(meta["input_shape"]), meta["num_classes"], vocab_size)
    net = _recipe(meta).prepare(net)
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net.eval(), meta


def _train(key: str, inputs: dict[str, Any], directory: Path) -> tuple[nn.Module, dict[str, Any]]:
    data = datasets.load_dataset(inputs["dataset"], inputs["dataset_params"])
    recipe = _recipe(inputs)
    vocab_size = len(data.vocabulary) if data.vocabulary is not None else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(inputs["seed"])
        net = models.build(inputs["model"], inputs["model_params"], data.input_shape, data.num_classes, vocab_size)
    recipe.check(net, data)
    base_key = None
    if recipe.base_recipe is not None:
        base, base_meta = trained_model(
            inputs["dataset"], inputs["dataset_params"], inputs["model"], inputs["model_params"],
            recipe.base_recipe, recipe.base_params, inputs["seed"], cache_dir=directory,
        )
        net.load_state_dict(base.state_dict())
        base_key = base_meta["key"]
    net = recipe.prepare(net)
    start = time.perf_counter()
    info = recipe.fit(net, data, seed=inputs["seed"])
    seconds = time.perf_counter() - start
    net.eval()
    meta = {
        "key": key,
        **inputs,
        "input_shape": list(data.input_shape),
        "num_classes": data.num_classes,
        "vocab_size": vocab_size,
        "val_accuracy": evaluate(net, data.val)[0],
        "test_accuracy": evaluate(net, data.test)[0],
        "training": info,
        "base_key": base_key,
        "versions": versions(),
        "train_seconds": seconds,
    }
    text = json.dumps(meta, indent=2, sort_keys=True)
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    atomic_write_bytes(directory / f"{key}.pt", buffer.getvalue())
    atomic_write_bytes(directory / f"{key}.json", text.encode())
    return net, json.loads(text)
