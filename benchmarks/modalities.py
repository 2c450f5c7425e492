"""What the grid does differently per modality: how an explainer is applied and which positions are features.

The runner never branches on a modality name: it asks the data set's :class:`Modality`.

- ``explain`` adapts a registered explainer to the modality's inputs: the identity for the
  continuous modalities; for text, :class:`~salbench.explainers.word_attribution.WordAttribution`
  (the explainer on the token embeddings, pooled per word), since word ids cannot be
  differentiated.
- ``features`` gives the bool mask of the positions of an attribution that are real features
  (``Case.valid``): None (all) for the continuous modalities; the words of each text
  (:func:`salbench.core.text.word_mask`), whose lengths differ.

What an attack needs from the data (bounds, vocabulary, corpus) it declares itself
(``Attack.inputs``), and the data set provides (:meth:`salbench.datasets.base.DataBundle.attack_inputs`).

Example:
    >>> from salbench import explainers
    >>> type(modality("text").explain(explainers.get("gradient"))).__name__, modality("image").features(None)
    ('WordAttribution', None)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from salbench.core.applicability import CONTINUOUS
from salbench.core.text import word_mask
from salbench.explainers.base import Explainer
from salbench.explainers.word_attribution import WordAttribution
from torch import Tensor

__all__ = ["Modality", "modality"]


@dataclasses.dataclass(frozen=True)
class Modality:
    """The grid's handling of one modality (see the module docstring)."""

    name: str
    explain: Callable[[Explainer], Explainer]
    features: Callable[[Tensor], Tensor | None]


def _as_given(explainer: Explainer) -> Explainer:
    return explainer


def _every_position(x: Tensor) -> None:
    return None


_MODALITIES = {
    **{name: Modality(name, _as_given, _every_position) for name in CONTINUOUS},
    "text": Modality("text", WordAttribution, word_mask),
}


def modality(name: str) -> Modality:
    """The handling of modality ``name`` (one of :data:`salbench.core.applicability.MODALITIES`)."""
    if name not in _MODALITIES:
        raise ValueError(f"no modality named {name!r}; known: {', '.join(_MODALITIES)}")
    return _MODALITIES[name]
