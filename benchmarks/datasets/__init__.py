"""Data sets: each loads into a :class:`~salbench.datasets.base.DataBundle` (train/val/test splits).

``load_dataset(name, params)`` validates the parameters and caches the loaded bundle in-process,
so that the grid cells of one data set do not re-read or re-normalise it.

Example:
    >>> from salbench.datasets import load_dataset
    >>> bundle = load_dataset("synthetic_blocks", {"size": 8, "n_train": 16, "n_val": 4, "n_test": 4})
    >>> bundle.input_shape, bundle.num_classes
    ((1, 8, 8), 2)
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from salbench.core.applicability import check_declarations
from salbench.core.registry import Registry
from salbench.datasets.base import DataBundle, Dataset, Split
from salbench.core.files import Stamp, stamp

__all__ = ["registry", "register", "get", "names", "load_dataset", "DataBundle", "Dataset", "Split"]

registry = Registry("dataset", group="salbench.datasets", attributes=("modality", "masks"), check=check_declarations)
register = registry.register
get = registry.get
names = registry.names

CACHE_SIZE = 4
"""How many loaded bundles :func:`load_dataset` keeps (least recently used first out)."""

_cache: OrderedDict[tuple[str, str, Stamp], DataBundle] = OrderedDict()


def load_dataset(name: str, params: dict[str, Any] | None = None) -> DataBundle:
    """The bundle of data set ``name`` with ``params``, loaded once per process.

    The parameters are validated first (unknown names, wrong types); equal parameter sets (in
    any order, defaults given or not) share one cache entry, keyed by the data set's name, the
    sorted JSON of the validated parameters and the :func:`~salbench.core.files.stamp`
    (path, size, modification time) of its :meth:`~Dataset.data_files`: a file rewritten on
    disk is loaded again, never served from the cache.
    """
    entry = registry.entry(name)
    validated = registry.validate(name, params)
    dataset = entry.factory(**validated)
    key = (entry.name, json.dumps(validated, sort_keys=True), stamp(dataset.data_files()))
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    bundle = dataset.load()
    if not isinstance(bundle, DataBundle):
        raise TypeError(f"data set {entry.name!r}: load() must return a DataBundle, got {type(bundle).__name__}")
    if bundle.modality != entry.attrs["modality"]:
        raise ValueError(
            f"data set {entry.name!r} declares modality {entry.attrs['modality']!r} but loaded a bundle of "
            f"modality {bundle.modality!r}"
        )
    _cache[key] = bundle
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return bundle


from salbench.datasets import (  # noqa: E402,F401  (registers the built-ins)
    arrays,
    diabetes,
    drug_reviews,
    image_folder,
    iu_xray_reports,
    medmnist,
    synthetic_blocks,
    table,
    text_file,
    wdbc,
)
