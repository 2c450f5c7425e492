"""Model architectures: ``nn.Module`` classes built from a data set's input shape and class count.

Every architecture's first two ``__init__`` parameters are ``input_shape: tuple[int, ...]``
and ``num_classes: int``; a text architecture declares a third: ``vocab_size: int`` (see
:class:`salbench.models.text_classifier.TextClassifier`), or ``vocabulary: Vocabulary`` when it
needs the words themselves (:class:`salbench.models.huggingface.HuggingFaceClassifier` maps
them to a pretrained tokenizer's subwords). The harness fills them in from the
:class:`DataBundle` (``vocab_size`` is ``len(bundle.vocabulary)``, ``vocabulary`` is
``bundle.vocabulary``), so a suite or a cache key names only the architecture's own
parameters. Architectures use ``nn.ReLU`` modules (never ``F.relu``) so that attacks can swap
them for ``nn.Softplus``. An architecture declares what every instance of it has that some
components require, as the class attribute ``provides`` (names of
:data:`salbench.core.applicability.MODEL_FEATURES`: ``conv``, ``gap_head``; default none); a
suite uses it to drop, e.g., Grad-CAM on an MLP before anything is built.

Example:
    >>> from salbench import models
    >>> net = models.build("mlp", {"hidden": (8,)}, input_shape=(30,), num_classes=2)
    >>> models.validate_params("small_cnn", {"channels": [4, 8]})
    {'channels': (4, 8), 'kernel_size': 3, 'pool': True}
    >>> models.build("text_cnn", {}, input_shape=(2, 16), num_classes=3, vocab_size=50).embedding
    Embedding(50, 64, padding_idx=0)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from salbench.core.applicability import MODEL_FEATURES, check_declarations
from salbench.core.registry import ParameterError, Registry, RegistryError
from salbench.core.text import Vocabulary
from salbench.core.validation import check_positive_int
from torch import nn

__all__ = [
    "registry", "register", "get", "names", "HARNESS_PARAMS", "VOCAB_PARAM", "VOCABULARY_PARAM", "harness_params",
    "validate_params", "content_digest",
    "build", "check_shape_and_classes", "provides", "given_weights", "resolve_paths", "key_params",
]

registry = Registry("model", group="salbench.models", defaults={"provides": ()}, check=check_declarations)
register = registry.register
get = registry.get
names = registry.names

HARNESS_PARAMS = ("input_shape", "num_classes")
"""The leading ``__init__`` parameters of every architecture, filled in from the data set."""

VOCAB_PARAM = "vocab_size"
"""The third harness parameter, declared (right after :data:`HARNESS_PARAMS`) by text architectures only."""

VOCABULARY_PARAM = "vocabulary"
"""The third harness parameter of a text architecture that needs the vocabulary's words, not only its size."""


def harness_params(name: str) -> tuple[str, ...]:
    """The parameters of architecture ``name`` that the harness fills in: :data:`HARNESS_PARAMS`, plus
    :data:`VOCAB_PARAM` or :data:`VOCABULARY_PARAM` for a text architecture (one that declares it as its
    third parameter)."""
    declared = tuple(p.name for p in registry.entry(name).params)
    if declared[: len(HARNESS_PARAMS)] != HARNESS_PARAMS:
        raise RegistryError(
            f"model {name!r} must take {HARNESS_PARAMS} as its first __init__ parameters, "
            f"got {declared[: len(HARNESS_PARAMS)]}"
        )
    third = declared[len(HARNESS_PARAMS) : len(HARNESS_PARAMS) + 1]
    return HARNESS_PARAMS + third if third in ((VOCAB_PARAM,), (VOCABULARY_PARAM,)) else HARNESS_PARAMS


def validate_params(name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The architecture's own parameters, validated and with defaults, without its :func:`harness_params`."""
    given = dict(params or {})
    harness = harness_params(name)
    clash = [p for p in harness if p in given]
    if clash:
        raise ParameterError(
            f"model {name!r}: parameter(s) {clash} come from the data set; remove them from the model's parameters"
        )
    placeholders = {"input_shape": (1,), "num_classes": 2, VOCAB_PARAM: 2, VOCABULARY_PARAM: _NO_WORDS}
    full = registry.validate(name, {**given, **{p: placeholders[p] for p in harness}})
    return {k: v for k, v in full.items() if k not in harness}


def content_digest(name: str, params: dict[str, Any] | None = None) -> str | None:
    """SHA-256 (hex) of the files architecture ``name`` reads with its own ``params``, or None if it reads none.

    What a model cache key includes so that it follows the content of those files (a pretrained
    model's directory), never their path. An architecture that reads files declares the static
    method ``content_digest(params)`` (its own validated parameters → hex digest).

    Example:
        >>> content_digest("mlp", {}) is None
        True
    """
    own = validate_params(name, params)
    of_files = getattr(registry.entry(name).factory, "content_digest", None)
    return of_files(own) if of_files is not None else None


def provides(name: str, params: dict[str, Any] | None = None) -> frozenset[str]:
    """What a model has for the components that require something (``conv``, ``gap_head``): the
    architecture's class attribute ``provides``, or, for a model the user brings (an architecture
    with a ``provides`` parameter, see :mod:`salbench.models.external`), that parameter.

    Example:
        >>> sorted(provides("small_cnn")), sorted(provides("torchscript", {"path": "m.ts", "provides": ["conv"]}))
        (['conv', 'gap_head'], ['conv'])
    """
    own = validate_params(name, params)
    declared = own["provides"] if "provides" in own else registry.entry(name).attrs["provides"]
    unknown = sorted(set(declared) - set(MODEL_FEATURES))
    if unknown:
        raise ParameterError(
            f"model {name!r}: provides {unknown} unknown; allowed: "
            + "; ".join(f"{k} ({meaning})" for k, meaning in MODEL_FEATURES.items())
        )
    return frozenset(declared)


def given_weights(name: str, params: dict[str, Any] | None = None) -> bool:
    """Whether the model comes with trained weights of its own (a checkpoint, an archive, a
    pretrained directory; an architecture says so with ``given_weights(params)``): a fine-tuning
    recipe then starts from them instead of training its base recipe first."""
    own = validate_params(name, params)
    given = getattr(registry.entry(name).factory, "given_weights", None)
    return bool(given(own)) if given is not None else False


def resolve_paths(name: str, params: dict[str, Any], base_dir: str | Path) -> dict[str, Any]:
    """``params`` with the relative file paths of the architecture's ``path_params`` made absolute
    against ``base_dir`` (a suite's folder): a plain path, or the file of ``"file.py:name"``; a
    module's ``"pkg.module:name"`` stays as it is."""
    out = dict(params)
    for key in getattr(registry.entry(name).factory, "path_params", ()):
        value = out.get(key)
        if not isinstance(value, str):
            continue
        file, colon, attr = value.rpartition(":")
        if not file.endswith(".py"):
            if _MODULE_SPEC.fullmatch(value):
                continue
            file, colon, attr = value, "", ""
        out[key] = f"{Path(base_dir, file).resolve()}{colon}{attr}"
    return out


_MODULE_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")  # "pkg.module:name"


def key_params(name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The validated parameters a cache key holds: those of ``path_params`` (where the files lie)
    are left out, since :func:`content_digest` stands for what the files hold."""
    own = validate_params(name, params)
    return {k: v for k, v in own.items() if k not in getattr(registry.entry(name).factory, "path_params", ())}


def build(
    name: str,
    params: dict[str, Any] | None,
    input_shape: tuple[int, ...],
    num_classes: int,
    vocab_size: int | None = None,
    vocabulary: Vocabulary | None = None,
) -> nn.Module:
    """Architecture ``name`` with its own ``params`` for inputs of ``input_shape`` and ``num_classes`` classes.

    A text architecture needs the data set's vocabulary: ``vocab_size`` (its size) or
    ``vocabulary`` (the :class:`~salbench.core.text.Vocabulary`; its size stands for
    ``vocab_size``, and both may be given if they agree); an architecture that declares
    ``vocabulary`` needs the vocabulary itself. Any other architecture takes neither.
    """
    own = validate_params(name, params)
    if vocabulary is not None:
        if not isinstance(vocabulary, Vocabulary):
            raise TypeError(f"vocabulary must be a salbench Vocabulary or None, got {type(vocabulary).__name__}")
        if vocab_size is not None and vocab_size != len(vocabulary):
            raise ValueError(f"vocab_size={vocab_size!r} differs from the {len(vocabulary)} words of vocabulary")
    given = {VOCAB_PARAM: len(vocabulary) if vocabulary is not None else vocab_size, VOCABULARY_PARAM: vocabulary}
    text = harness_params(name)[len(HARNESS_PARAMS) :]
    if text and given[text[0]] is None:
        what = "vocab_size (the size of the data set's vocabulary)" if text[0] == VOCAB_PARAM else "vocabulary (the data set's)"
        raise ValueError(f"model {name!r} is a text architecture: build needs {what}")
    if not text and given[VOCAB_PARAM] is not None:
        raise ValueError(
            f"model {name!r} is not a text architecture and takes no vocab_size or vocabulary; got "
            f"vocab_size={given[VOCAB_PARAM]!r} (pass None)"
        )
    vocab = {text[0]: given[text[0]]} if text else {}
    return registry.get(name, input_shape=tuple(input_shape), num_classes=num_classes, **vocab, **own)


_NO_WORDS = Vocabulary(("<pad>", "<unk>"))  # stands for the data set's vocabulary when parameters are validated


def check_shape_and_classes(input_shape: tuple[int, ...], num_classes: int, rank: int | None = None) -> None:
    """``input_shape`` is a tuple of positive ints (of length ``rank`` if given); ``num_classes`` >= 2."""
    if not isinstance(input_shape, tuple) or not input_shape or (rank is not None and len(input_shape) != rank):
        what = f"of {rank} positive ints" if rank is not None else "of positive ints"
        raise ValueError(f"input_shape must be a non-empty tuple {what}, got {input_shape!r}")
    for i, size in enumerate(input_shape):
        check_positive_int(size, f"input_shape[{i}]")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")


from salbench.models import (  # noqa: E402,F401  (registers the built-ins)
    external,
    huggingface,
    minilm_classifier,
    miwa_cnn,
    mlp,
    named,
    resnet,
    small_cnn,
    text_bigru,
    text_cnn,
)
