"""Canonical JSON, content digests and package versions: what keys and provenance are built from.

Equal values give equal text (:func:`canonical_json`) and hence equal digests (:func:`digest`),
whatever the order of a mapping's keys; :func:`versions` names the packages a result depends on.

Example:
    >>> canonical_json({"b": 1, "a": [1.5, None]})
    '{"a":[1.5,null],"b":1}'
    >>> digest({"a": 1}) == digest({"a": 1}) != digest({"a": 2})
    True
"""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from typing import Any

__all__ = ["canonical_json", "digest", "versions"]

_PACKAGES = ("salbench", "torch", "numpy", "scipy", "pandas", "joblib", "scikit-learn", "seaborn")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def digest(obj: Any) -> str:
    """SHA-256 hex digest of :func:`canonical_json` of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def versions() -> dict[str, str]:
    """Python and the versions of the packages a result depends on."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
