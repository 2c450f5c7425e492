"""Optional dependencies: imported on first use, with the pip extra to install when missing."""

from __future__ import annotations

import importlib
import types

__all__ = ["TEXT_EXTRA", "require_text_package"]

TEXT_EXTRA = "salbench[text]"
"""The pip extra that installs the optional packages of the text modality."""


def require_text_package(module: str, distribution: str, needed_by: str) -> types.ModuleType:
    """Import ``module`` (an optional dependency of the text modality) or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{needed_by} needs the Python package {distribution!r} (module {module!r}), which is not installed; "
            f"install the text extra: pip install '{TEXT_EXTRA}'"
        ) from err
