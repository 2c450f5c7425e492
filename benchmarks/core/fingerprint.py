"""Code fingerprints: a digest of the source code a component's numbers come from.

:func:`code_fingerprint` hashes the source files of the modules that define the given
components (classes or factory functions) and their base classes, and, transitively, of every
salbench module (``salbench.*``, suite plugin files ``salbench_plugin_*``) that those modules
use: the modules they import and the modules that define the classes and functions they import
by name. A package's ``__init__`` counts as one file: the registry lookups through a package
(``attacks.get(...)``) are not followed, only what a module uses directly. Keys built with it
(model-cache keys, cell ids) change whenever that code changes, so a stored result of other
code is never reused. A module plugin outside salbench counts with its own file only.

Sources are read once per process (the code that runs is the code that was imported).

Example:
    >>> from salbench.core import hashing
    >>> fingerprint = code_fingerprint(hashing.digest)
    >>> len(fingerprint), fingerprint == code_fingerprint(hashing.canonical_json)
    (64, True)
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import sys
import types
from collections.abc import Iterable
from typing import Any

__all__ = ["code_fingerprint", "source_modules"]

_OURS = ("salbench.", "salbench_plugin_")


def code_fingerprint(*components: Any) -> str:
    """SHA-256 hex over the (module name, source digest) of :func:`source_modules` of ``components``."""
    modules = source_modules(components)
    text = "\n".join(f"{name} {_source_digest(name)}" for name in sorted(modules))
    return hashlib.sha256(text.encode()).hexdigest()


def source_modules(components: Iterable[Any]) -> set[str]:
    """Names of the modules whose source determines ``components`` (see the module docstring)."""
    roots = set()
    for component in components:
        for owner in inspect.getmro(component) if isinstance(component, type) else (component,):
            name = getattr(owner, "__module__", None)
            if name is not None and (_ours(name) or owner is component):
                roots.add(name)
    seen: set[str] = set()
    todo = sorted(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in sys.modules:
            continue
        seen.add(name)
        module = sys.modules[name]
        if hasattr(module, "__path__"):  # a package: its __init__ only
            continue
        todo.extend(used for used in _used_modules(module) if used not in seen)
    return seen


def _ours(name: str) -> bool:
    return name == "salbench" or name.startswith(_OURS)


def _used_modules(module: types.ModuleType) -> set[str]:
    """The salbench modules a module imports or takes classes and functions from."""
    out = set()
    for value in vars(module).values():
        if isinstance(value, types.ModuleType):
            name = value.__name__
        elif isinstance(value, (type, types.FunctionType)):
            name = getattr(value, "__module__", None) or ""
        else:
            continue
        if _ours(name):
            out.add(name)
    return out


@functools.cache
def _source_digest(name: str) -> str:
    """SHA-256 of the module's source file (its name alone for a module without one)."""
    file = getattr(sys.modules[name], "__file__", None)
    if not file:
        return "no-source"
    with open(file, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()
