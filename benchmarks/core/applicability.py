"""What a component applies to: the modalities of the data and the requirements on the model and explainer.

Every explainer, attack and metric declares, as class attributes registered with it
(:class:`salbench.core.registry.Registry` lists them):

- ``modalities``: the kinds of data it works on, a subset of :data:`MODALITIES`;
- ``requires``: what the cell must offer besides data of those modalities, names of
  :data:`REQUIREMENTS` (a convolution, a GAP + linear head, a differentiable explainer).

Data sets declare their ``modality`` (one of :data:`MODALITIES`; the loaded bundle must match
it) and model architectures what they ``provides`` (names of :data:`MODEL_FEATURES`). A model
requirement is checked **statically, from the registered model class's declaration**: the
suite expander decides before any data is loaded or model built, so the architecture declares
what every instance of it has (``small_cnn`` always ends in global average pooling and one
linear layer). ``"differentiable"`` is checked on the built explainer: its
``attack_proxy`` (the explainer an attack differentiates, e.g. ``decoy``'s base) must be
differentiable. The suite expander (:mod:`salbench.suite`) drops the cells a declaration rules
out and says why (:meth:`Offer.unmet`).

Example:
    >>> offer = Offer(modality="tabular", model="mlp", provides=frozenset(), explainer=None)
    >>> offer.unmet("explainer", "gradcam", {"modalities": ("image",), "requires": ("conv",)})
    "explainer 'gradcam' applies to image data, not tabular"
    >>> offer.unmet("metric", "spearman", {"modalities": MODALITIES, "requires": ()}) is None
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

__all__ = ["MODALITIES", "CONTINUOUS", "SPATIAL", "REQUIREMENTS", "MODEL_FEATURES", "check_declarations", "Offer"]

MODALITIES: tuple[str, ...] = ("image", "volume", "signal", "tabular", "text")
"""image (N, C, H, W); volume (N, C, D, H, W); signal (N, C, L); tabular (N, F); text: a long
(N, 2, L) text tensor (:mod:`salbench.core.text`)."""

CONTINUOUS: tuple[str, ...] = ("image", "volume", "signal", "tabular")
"""The modalities whose inputs are float tensors (every one but text)."""

SPATIAL: tuple[str, ...] = ("image", "volume", "signal")
"""The modalities with channels and spatial dimensions (what a convolution runs over)."""

MODEL_FEATURES: dict[str, str] = {
    "conv": "a convolution over the input's spatial dimensions",
    "gap_head": "a global-average-pooling + linear head (logits = linear(spatial mean of feature maps))",
}
"""What a model architecture may declare in ``provides``, with what it means."""

REQUIREMENTS: dict[str, str] = {
    **MODEL_FEATURES,
    "differentiable": "a differentiable explainer (its attack proxy supports create_graph=True)",
}
"""What a component may declare in ``requires``: the model features, and ``differentiable``."""


def check_declarations(attrs: Mapping[str, Any]) -> None:
    """Check the declared ``modalities``, ``requires``, ``modality`` and ``provides`` among ``attrs``.

    Raises ValueError naming the attribute and what is allowed. Other attributes pass.
    """
    allowed = {"modalities": MODALITIES, "requires": tuple(REQUIREMENTS), "provides": tuple(MODEL_FEATURES)}
    for name, options in allowed.items():
        if name not in attrs:
            continue
        value = attrs[name]
        if not isinstance(value, (tuple, frozenset, set, list)) or not set(value) <= set(options):
            raise ValueError(f"{name} must be a collection of names among {', '.join(options)}; got {value!r}")
    if "modalities" in attrs and not attrs["modalities"]:
        raise ValueError("modalities must name at least one modality")
    if "modality" in attrs and attrs["modality"] not in MODALITIES:
        raise ValueError(f"modality must be one of {', '.join(MODALITIES)}; got {attrs['modality']!r}")


@dataclasses.dataclass(frozen=True)
class Offer:
    """What one grid cell offers a component: its data's modality, its model's features, its explainer.

    Attributes:
        modality: the data set's declared modality.
        model: the model architecture's name (for messages).
        provides: the features the model architecture declares.
        explainer: (name, whether its attack proxy is differentiable), or None in a cell
            without an explainer.
    """

    modality: str
    model: str
    provides: frozenset[str]
    explainer: tuple[str, bool] | None

    def unmet(self, kind: str, name: str, declared: Mapping[str, Any]) -> str | None:
        """Why component ``name`` (of ``kind``, with its declared attributes) does not apply here, or None."""
        modalities = declared["modalities"]
        if self.modality not in modalities:
            return f"{kind} {name!r} applies to {', '.join(modalities)} data, not {self.modality}"
        for need in declared["requires"]:
            if need in MODEL_FEATURES and need not in self.provides:
                return f"{kind} {name!r} needs {MODEL_FEATURES[need]} ({need!r}), which model {self.model!r} does not declare"
            if need == "differentiable" and self.explainer is not None and not self.explainer[1]:
                return f"{kind} {name!r} differentiates the explanation, but explainer {self.explainer[0]!r} is not differentiable"
        return None
