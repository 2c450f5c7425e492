"""What a component applies to: the modalities of the data and the requirements on the model and explainer.

Every explainer, attack and metric declares, as class attributes registered with it
(:class:`salbench.core.registry.Registry` lists them):

- ``modalities``: the kinds of data it works on, a subset of :data:`MODALITIES`;
- ``requires``: what the cell must offer besides data of those modalities, names of
  :data:`REQUIREMENTS` (a convolution, a GAP + linear head, a differentiable explainer); or,
  where that depends on one of the component's parameters, a :class:`ByParameter` mapping each
  value of that parameter to such names (resolved on the component's validated parameters).

Data sets declare their ``modality`` (one of :data:`MODALITIES`; the loaded bundle must match
it) and ``masks`` (True: every bundle has ground-truth masks; False: none; None: it depends on
the files, so a component that needs them is kept and scores NaN with a note where they are
missing) and model architectures what they ``provides`` (names of :data:`MODEL_FEATURES`). A model
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

__all__ = ["MODALITIES", "CONTINUOUS", "SPATIAL", "REQUIREMENTS", "MODEL_FEATURES", "check_declarations", "Offer", "ByParameter"]

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
    "mask": "ground-truth relevance masks in the data set",
}
"""What a component may declare in ``requires``: the model features, ``differentiable``, and
``mask`` (checked against the data set's ``masks`` declaration)."""


@dataclasses.dataclass(frozen=True)
class ByParameter:
    """A ``requires`` declaration that depends on the value of one parameter of the component.

    ``choices`` maps every value the parameter may take to the requirements with that value; a
    value without an entry is an error when resolved (the component's own validation names the
    allowed values first).

    Example:
        >>> need = ByParameter("region", {"cam": ("gap_head",), "gradcam": ("conv",)})
        >>> need.resolve({"region": "gradcam", "alpha": 0.05})
        ('conv',)
        >>> str(need)
        "gap_head if region='cam', conv if region='gradcam'"
    """

    parameter: str
    choices: Mapping[Any, tuple[str, ...]]

    def resolve(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        """The requirements for the validated parameters ``params`` (defaults included)."""
        if self.parameter not in params:
            raise ValueError(f"the requirements depend on parameter {self.parameter!r}, which the parameters {sorted(params)} lack")
        value = params[self.parameter]
        if value not in self.choices:
            raise ValueError(f"no requirements declared for {self.parameter}={value!r}; declared for {sorted(map(repr, self.choices))}")
        return self.choices[value]

    def __str__(self) -> str:
        """As listings show it: ``gap_head if region='cam', conv if region='gradcam'``."""
        return ", ".join(f"{' + '.join(needs) or '-'} if {self.parameter}={value!r}" for value, needs in self.choices.items())

    def every(self) -> tuple[str, ...]:
        """Every requirement of any choice, in declaration order (for a check without parameters)."""
        return tuple(dict.fromkeys(need for needs in self.choices.values() for need in needs))


def check_declarations(attrs: Mapping[str, Any]) -> None:
    """Check the declared ``modalities``, ``requires``, ``modality`` and ``provides`` among ``attrs``.

    Raises ValueError naming the attribute and what is allowed. Other attributes pass.
    """
    allowed = {"modalities": MODALITIES, "requires": tuple(REQUIREMENTS), "provides": tuple(MODEL_FEATURES)}
    for name, options in allowed.items():
        if name not in attrs:
            continue
        value = attrs[name]
        if name == "requires" and isinstance(value, ByParameter):
            values = list(value.choices.values())
            if not values:
                raise ValueError(f"requires: ByParameter({value.parameter!r}) must declare at least one choice")
        else:
            values = [value]
        for each in values:
            if not isinstance(each, (tuple, frozenset, set, list)) or not set(each) <= set(options):
                raise ValueError(f"{name} must be a collection of names among {', '.join(options)}; got {each!r}")
    if "modalities" in attrs and not attrs["modalities"]:
        raise ValueError("modalities must name at least one modality")
    if "masks" in attrs and attrs["masks"] not in (True, False, None):
        raise ValueError(f"masks must be True, False or None (depends on the files); got {attrs['masks']!r}")
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
        masks: the data set's ``masks`` declaration (True, False, or None: unknown until loaded).
    """

    modality: str
    model: str
    provides: frozenset[str]
    explainer: tuple[str, bool] | None
    masks: bool | None = False

    def unmet(self, kind: str, name: str, declared: Mapping[str, Any], params: Mapping[str, Any] | None = None) -> str | None:
        """Why component ``name`` (of ``kind``, with its declared attributes) does not apply here, or None.

        ``params``: the component's validated parameters, which resolve a ``requires`` declared
        :class:`ByParameter`; without them such a component must offer every requirement any
        value of the parameter could need (:meth:`ByParameter.every`), a conservative check.
        """
        modalities = declared["modalities"]
        if self.modality not in modalities:
            return f"{kind} {name!r} applies to {', '.join(modalities)} data, not {self.modality}"
        requires, label = declared["requires"], repr(name)
        if isinstance(requires, ByParameter):
            if params is None:
                label, requires = f"{label} (with any {requires.parameter})", requires.every()
            else:
                label = f"{label} ({requires.parameter}={params.get(requires.parameter)!r})"
                requires = requires.resolve(params)
        for need in requires:
            if need in MODEL_FEATURES and need not in self.provides:
                return f"{kind} {label} needs {MODEL_FEATURES[need]} ({need!r}), which model {self.model!r} does not declare"
            if need == "differentiable" and self.explainer is not None and not self.explainer[1]:
                return f"{kind} {label} differentiates the explanation, but explainer {self.explainer[0]!r} is not differentiable"
            if need == "mask" and self.masks is False:
                return f"{kind} {label} needs {REQUIREMENTS[need]}, which this data set does not declare (masks = False)"
        return None
