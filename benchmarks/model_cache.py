"""Content-addressed cache of trained models: train once per configuration, load afterwards.

A trained model is determined by its inputs: the data set and its parameters, the architecture
and its parameters, the recipe and its parameters, the seed, the device it is trained on
(``"cpu"``), torch's default dtype when it is built (e.g. ``"float32"``), and the code of the
data set, the architecture and the recipe (and of the recipes it fine-tunes):
:func:`model_code`, a SHA-256 of the source files of the modules that define them and of the
salbench modules those use (:func:`salbench.core.fingerprint.code_fingerprint`). Their canonical
JSON (names and validated parameters with every default filled in, keys sorted) hashed with
SHA-256 is the model's key, so an edit of any of that code (a recipe fix, a plug-in recipe
edited on disk) gives a new key: the model is trained again, never reused from other code.
Files enter by content, never by path (:func:`key_inputs`): the digest of the data set's files
(a user's CSV, an image folder, PneumoniaMNIST's archive) and of the files a model reads (a
checkpoint, a factory's source, an archive, a Hugging Face directory), so overwriting a
checkpoint gives a new key and moving the data does not. The cache directory holds ``<key>.pt`` (the state_dict, read with
``torch.load(weights_only=True)``) and ``<key>.json`` (the inputs, accuracies, training
information, versions, training time). Both are written atomically (temporary file, then
rename), the JSON last: it marks the entry as complete, so a run killed mid-write leaves no
entry that is later read, only one that is trained again.

Fine-tuning recipes (those with a ``base_recipe``, see :class:`salbench.recipes.base.Recipe`)
start from the model of their base recipe, obtained through the cache itself with the same data
set, architecture and seed: it is trained once and shared with every recipe that fine-tunes it
(and with the suite's own cells of the base recipe). The base parameters are part of the
fine-tuning recipe's parameters, hence of its key; the meta records the base model's key as
``base_key`` (None for a model trained from initialisation). A model that comes with trained
weights of its own (:func:`salbench.models.given_weights`: a checkpoint, an archive, a
pretrained directory) is its own base: a fine-tuning recipe starts from those weights.

Cache directory: the ``cache_dir`` argument, else ``$SALBENCH_CACHE_DIR``, else
``platformdirs.user_cache_dir("salbench")/models``.

Example:
    >>> net, meta = trained_model("wdbc", {}, "mlp", {}, "standard", {"epochs": 5}, seed=0)  # doctest: +SKIP
    >>> meta["test_accuracy"]  # doctest: +SKIP
    0.95...
    >>> sorted(model_inputs("wdbc", {}, "mlp", {}, "standard", {}, 0))
    ['code', 'dataset', 'dataset_params', 'device', 'dtype', 'model', 'model_params', 'recipe', 'recipe_params', 'seed']
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
from salbench.core.device import resolve_device, worker_device
from salbench.core.fingerprint import code_fingerprint
from salbench.core.hashing import digest, versions
from salbench.core.text import Vocabulary
from salbench.core.validation import check_seed
from salbench.recipes.base import balanced_accuracy, evaluate
from salbench.store import atomic_write_bytes
from torch import nn

__all__ = ["CACHE_ENV_VAR", "model_code", "model_inputs", "key_inputs", "model_key", "trained_model", "cache_dir_path", "dtype_name"]

CACHE_ENV_VAR = "SALBENCH_CACHE_DIR"


def dtype_name() -> str:
    """torch's default dtype without the ``torch.`` prefix, e.g. ``"float32"``: what models are built in."""
    return str(torch.get_default_dtype()).removeprefix("torch.")


def model_code(dataset: str, model: str, recipe: str, recipe_params: dict) -> str:
    """Code fingerprint of a trained model: the data set, the architecture, the recipe and the
    recipes it fine-tunes (their base recipes, whose models it starts from)."""
    factories = [datasets.registry.entry(dataset).factory, models.registry.entry(model).factory]
    current: Any = recipes.get(recipe, **recipe_params)
    while True:
        factories.append(type(current))
        if current.base_recipe is None:
            return code_fingerprint(*factories)
        current = recipes.get(current.base_recipe, **current.base_params)


def model_inputs(dataset: str, dataset_params: dict, model: str, model_params: dict,
                 recipe: str, recipe_params: dict, seed: int, device: str = "cpu") -> dict[str, Any]:
    """Everything the trained model depends on (see the module docstring): registered names,
    validated parameters (defaults filled in), seed, device, dtype and :func:`model_code`."""
    check_seed(seed)
    if device == "auto" or resolve_device(device) != device:
        raise ValueError(f"device must be a resolved device name ('cpu', 'cuda', 'cuda:<i>'), got {device!r}")
    recipe_params = recipes.validate_params(recipe, recipe_params)
    return {
        "dataset": datasets.registry.entry(dataset).name,
        "dataset_params": datasets.registry.validate(dataset, dataset_params),
        "model": models.registry.entry(model).name,
        "model_params": models.validate_params(model, model_params),
        "recipe": recipes.registry.entry(recipe).name,
        "recipe_params": recipe_params,
        "seed": seed,
        "device": device,
        "dtype": dtype_name(),
        "code": model_code(dataset, model, recipe, recipe_params),
    }


def model_key(dataset: str, dataset_params: dict, model: str, model_params: dict,
              recipe: str, recipe_params: dict, seed: int, device: str = "cpu") -> str:
    """SHA-256 hex of the canonical JSON of :func:`key_inputs` of :func:`model_inputs`: the model's cache key."""
    return digest(key_inputs(model_inputs(dataset, dataset_params, model, model_params, recipe, recipe_params, seed, device)))


def key_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """What a cache key holds of :func:`model_inputs`: the files the data set and the model read
    enter by content (``data_content``: :meth:`salbench.datasets.base.Dataset.content_digest`;
    ``model_content``: :func:`salbench.models.content_digest`), and the parameters that only say
    where they lie (the data set's ``location_params``, the model's ``path_params``) are left
    out, so a key follows what the files hold, never their path. Files that are missing give
    ``"missing"`` (nothing can run on them: the run's check before any work refuses them).
    """
    keyed = dict(inputs)
    dataset = datasets.get(inputs["dataset"], **inputs["dataset_params"])
    try:
        data_content = dataset.content_digest()
    except FileNotFoundError:
        data_content = "missing"
    if data_content is not None:
        location = type(dataset).location_params
        keyed["dataset_params"] = {k: v for k, v in inputs["dataset_params"].items() if k not in location}
        keyed["data_content"] = data_content
    try:
        model_content = models.content_digest(inputs["model"], inputs["model_params"])
    except FileNotFoundError:
        model_content = "missing"
    if model_content is not None:
        keyed["model_params"] = models.key_params(inputs["model"], inputs["model_params"])
        keyed["model_content"] = model_content
    return keyed


def cache_dir_path(cache_dir: str | Path | None = None) -> Path:
    """The model cache directory: ``cache_dir``, else ``$SALBENCH_CACHE_DIR``, else the user cache."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    return Path(platformdirs.user_cache_dir("salbench")) / "models"


def trained_model(dataset: str, dataset_params: dict, model: str, model_params: dict,
                  recipe: str, recipe_params: dict, seed: int,
                  cache_dir: str | Path | None = None, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The model trained with these inputs, from the cache or trained now (and cached).

    Returns the model (on ``device``, eval mode) and its meta: ``key``, :func:`model_inputs`,
    ``input_shape``, ``num_classes``, ``vocab_size`` (``len(data.vocabulary)`` for text data,
    which text architectures are built with; else None), ``val_accuracy``, ``test_accuracy``
    (clean accuracy), ``test_balanced_accuracy`` (:func:`salbench.recipes.base.balanced_accuracy`),
    ``training`` (the recipe's info), ``base_key``, ``versions``, ``train_seconds`` (this
    recipe's training only, not its base model's). The meta is the same dict (after a JSON
    round trip) whether the model was trained now or loaded. An entry cached before balanced
    accuracy was recorded has no ``test_balanced_accuracy``: it is returned as stored (missing,
    never recomputed or filled in). Such entries are not reached by the current code anyway:
    ``recipes/base.py`` is part of every recipe's code, so its change gave every model a new key.

    Training: ``torch.manual_seed(seed)`` (in a forked RNG state, so the caller's global RNG is
    untouched) before the model is built; ``recipe.check(model, data)`` (before any training,
    the base model's included); for a fine-tuning recipe, the base model from this cache and
    its weights copied in; ``recipe.prepare(model)``; then ``recipe.fit(model, data, seed=seed)``.
    Loading builds the architecture, applies ``recipe.prepare`` and loads the weights.
    """
    inputs = model_inputs(dataset, dataset_params, model, model_params, recipe, recipe_params, seed, device)
    key = digest(key_inputs(inputs))
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
    vocabulary = Vocabulary(tuple(meta["vocabulary"])) if meta.get("vocabulary") is not None else None
    net = models.build(meta["model"], meta["model_params"], tuple(meta["input_shape"]), meta["num_classes"], vocab_size,
                       vocabulary)
    net = _recipe(meta).prepare(net)
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net.to(worker_device(meta["device"])).eval(), meta


def _train(key: str, inputs: dict[str, Any], directory: Path) -> tuple[nn.Module, dict[str, Any]]:
    data = datasets.load_dataset(inputs["dataset"], inputs["dataset_params"])
    recipe = _recipe(inputs)
    vocab_size = len(data.vocabulary) if data.vocabulary is not None else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(inputs["seed"])
        net = models.build(inputs["model"], inputs["model_params"], data.input_shape, data.num_classes, vocab_size,
                           data.vocabulary)
    recipe.check(net, data)
    base_key = None
    if recipe.base_recipe is not None and not models.given_weights(inputs["model"], inputs["model_params"]):
        base, base_meta = trained_model(
            inputs["dataset"], inputs["dataset_params"], inputs["model"], inputs["model_params"],
            recipe.base_recipe, recipe.base_params, inputs["seed"], cache_dir=directory, device=inputs["device"],
        )
        net.load_state_dict(base.state_dict())
        base_key = base_meta["key"]
    net = recipe.prepare(net).to(worker_device(inputs["device"]))
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
        # an architecture built from the vocabulary's words (a Hugging Face model) is rebuilt from them
        "vocabulary": list(data.vocabulary.words) if models.VOCABULARY_PARAM in models.harness_params(inputs["model"]) else None,
        "val_accuracy": evaluate(net, data.val)[0],
        "test_accuracy": evaluate(net, data.test)[0],
        "test_balanced_accuracy": balanced_accuracy(net, data.test),
        "training": info,
        "base_key": base_key,
        "versions": versions(),
        "train_seconds": seconds,
    }
    text = json.dumps(meta, indent=2, sort_keys=True)
    buffer = io.BytesIO()
    torch.save({name: value.cpu() for name, value in net.state_dict().items()}, buffer)
    atomic_write_bytes(directory / f"{key}.pt", buffer.getvalue())
    atomic_write_bytes(directory / f"{key}.json", text.encode())
    return net, json.loads(text)
