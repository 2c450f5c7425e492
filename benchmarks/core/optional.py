"""Optional dependencies: imported on first use, with the pip extra to install when missing."""

from __future__ import annotations

import importlib
import types

__all__ = ["TEXT_EXTRA", "require_package", "require_text_package"]

TEXT_EXTRA = "salbench[text]"
"""The pip extra that installs the optional packages of the text modality."""


def require_package(module: str, distribution: str, needed_by: str, extra: str) -> types.ModuleType:
    """Import ``module`` (an optional dependency) or say which pip ``extra`` installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{needed_by} needs the Python package {distribution!r} (module {module!r}), which is not installed; "
            f"install it with: pip install '{extra}'"
        ) from err


def require_text_package(module: str, distribution: str, needed_by: str) -> types.ModuleType:
    """Import ``module`` (an optional dependency of the text modality) or say how to install it."""
    return require_package(module, distribution, needed_by, TEXT_EXTRA)
