"""Architectures of ``torchvision`` and ``timm`` named in a suite, where those packages import.

Registered architectures (optional extras ``salbench[torchvision]``, ``salbench[timm]``)::

    models = [{ name = "torchvision", arch = "resnet18", kwargs = { num_classes = 2 }, checkpoint = "resnet18.pt" }]
    models = [{ name = "timm", arch = "densenet121", checkpoint = "densenet.pt", state_dict_key = "model" }]

``torchvision``: ``torchvision.models.get_model(arch, weights=None, **kwargs)``; ``timm``:
``timm.create_model(arch, pretrained=False, **kwargs)``. Never with downloaded weights: the
weights are the architecture's initialisation (seeded by the model cache; train them with a
recipe) or, with ``checkpoint``, a local state dict loaded strictly with ``weights_only=True``
(:func:`salbench.models.external.load_checkpoint`). ``num_classes`` is the data set's class
count unless ``kwargs`` sets it (``num_classes = 1`` for a binary classifier with one logit,
seen as two logits, :class:`~salbench.models.external.TwoLogits`). The model is checked on a
batch of zeros of the data set's input shape as a factory model is (e.g. ``in_chans = 1`` of
timm or a 3-channel data set for a torchvision ResNet). ``provides`` declares ``conv`` /
``gap_head`` for the components that require them. The cache key holds the package's name
and version and the checkpoint's content, so a new release of the package or new weights is a
new model.

Without the package, building (or keying) such a model is an ``ImportError`` naming the pip
extra to install; salbench itself needs neither package.

Untested against the real packages here: ``torchvision`` and ``timm`` cannot be installed
against this machine's torch; the tests inject a module that mimics ``torchvision.models.get_model``
and ``timm.create_model``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from salbench.core.files import content_digest as files_digest
from salbench.core.optional import require_package
from salbench.models import register
from salbench.models.external import classifier, load_checkpoint
from torch import nn

__all__ = ["LIBRARIES", "named_model", "torchvision_model", "timm_model"]

Library = Literal["torchvision", "timm"]

LIBRARIES: dict[str, tuple[str, str]] = {
    "torchvision": ("torchvision.models", "get_model"),
    "timm": ("timm", "create_model"),
}
"""Per library: the module and the function that build an architecture by name."""

_NO_PRETRAINED = {"torchvision": {"weights": None}, "timm": {"pretrained": False}}  # nothing is downloaded


def named_model(
    library: Library,
    input_shape: tuple[int, ...],
    num_classes: int,
    arch: str,
    kwargs: dict | None,
    checkpoint: str | None,
    state_dict_key: str | None,
) -> nn.Module:
    """Architecture ``arch`` of ``library`` for the data set, with the state dict of ``checkpoint`` if given."""
    kwargs = dict(kwargs or {})
    refused = sorted(set(kwargs) & set(_NO_PRETRAINED[library]))
    if refused:
        raise ValueError(
            f"model {library!r}: kwargs {refused} load downloaded weights, which salbench never does; give a local "
            "state dict as checkpoint instead"
        )
    module_name, function = LIBRARIES[library]
    build = getattr(require_package(module_name, library, f"model {library!r}", f"salbench[{library}]"), function)
    try:
        model = build(arch, **_NO_PRETRAINED[library], **{"num_classes": num_classes, **kwargs})
    except (KeyError, ValueError, RuntimeError, TypeError) as err:
        raise ValueError(f"model {library!r}: {module_name}.{function}({arch!r}, ...) fails: {err}") from err
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, state_dict_key)
    return classifier(model, input_shape, num_classes, f"{library} architecture {arch!r}")


def _registered(library: Library, function: str) -> Callable[..., nn.Module]:
    """The architecture ``library`` (registered under that name): :func:`named_model` of that library."""

    def build(
        input_shape: tuple[int, ...],
        num_classes: int,
        arch: str,
        kwargs: dict | None = None,
        checkpoint: str | None = None,
        state_dict_key: str | None = None,
        provides: tuple[str, ...] = (),
    ) -> nn.Module:
        return named_model(library, input_shape, num_classes, arch, kwargs, checkpoint, state_dict_key)

    build.__doc__ = f"A ``{library}`` architecture by name (``{function}``), optionally with a checkpoint."
    build.__name__ = build.__qualname__ = f"{library}_model"
    build.content_digest = lambda params: _digest(library, params)  # what salbench.models reads off them
    build.given_weights = lambda params: params["checkpoint"] is not None
    build.path_params = ("checkpoint",)
    return register(library)(build)


def _digest(library: Library, params: dict[str, Any]) -> str:
    """SHA-256 of the library's name and version and of the checkpoint's content."""
    package = require_package(library, library, f"model {library!r}", f"salbench[{library}]")
    weights = files_digest({"checkpoint": Path(params["checkpoint"])}) if params["checkpoint"] is not None else "-"
    return hashlib.sha256(f"{library}\0{package.__version__}\0{weights}".encode()).hexdigest()


torchvision_model = _registered("torchvision", "torchvision.models.get_model")
timm_model = _registered("timm", "timm.create_model")
