"""The attack interface: ``attack(model, explainer, x, target, **inputs) -> AttackResult``.

An attack on an explanation looks for x′ near x (inside an ℓ∞ or ℓ2 ball of radius ε and the
valid input range) whose explanation differs from that of x while the model's predicted label
stays the same. Every sample of the returned x′ keeps its label: a sample for which no
label-preserving step was found is returned unchanged (x′ = x) with ``label_kept`` still True
and ``success`` False.

Besides (model, explainer, x, target) an attack takes the :class:`AttackInputs` it declares in
``inputs`` (keywords of the call): continuous attacks the valid input range ``bounds``; text
attacks (:class:`TextAttack`, word substitutions on the text tensors of
:mod:`salbench.core.text`) the ``vocabulary`` that decodes the ids and the ``corpus`` (the
training texts) their candidate sources are built from. The grid runner passes each attack
exactly what it declares, taken from the data set (:meth:`salbench.datasets.base.DataBundle.attack_inputs`).
Like every component, an attack also declares the ``modalities`` it applies to and what it
``requires`` (:mod:`salbench.core.applicability`).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from salbench.attacks.profiles import TableProfile
from salbench.core import applicability
from salbench.core.applicability import CONTINUOUS
from salbench.core.text import Vocabulary, check_text_input
from salbench.core.validation import check_input, check_target
from torch import Tensor, nn

__all__ = ["AttackResult", "AttackInputs", "Attack", "TextAttack", "Bounds", "check_declarations", "check_text_data"]

Bounds = tuple[Tensor | float, Tensor | float] | None
"""Valid input range: (low, high), each a float or a tensor broadcastable to x; None = unbounded."""


@dataclasses.dataclass
class AttackResult:
    """What an attack returns.

    Attributes:
        x_adv: the attacked inputs, shape of x, detached.
        iterations: per-sample number of accepted (label-preserving) steps, long (N,).
        label_kept: per-sample bool (N,): the real model predicts the same label on x_adv as on x.
        success: per-sample bool (N,): x_adv differs from x (at least one accepted step).
    """

    x_adv: Tensor
    iterations: Tensor
    label_kept: Tensor
    success: Tensor


@dataclasses.dataclass(frozen=True)
class AttackInputs:
    """What an attack may take besides the batch; each attack declares the names it uses (``Attack.inputs``).

    Attributes:
        bounds: the valid input range (:data:`Bounds`); None = unbounded.
        vocabulary: the :class:`~salbench.core.text.Vocabulary` of text token ids.
        corpus: the training texts, a (M, 2, L) text tensor (the corpus of the candidate sources).
        table_profile: a table's measurement rules declared by its data set
            (:class:`~salbench.attacks.profiles.TableProfile`), for the ``clinical`` attack's ``profile="data"``.
    """

    bounds: Bounds = None
    vocabulary: Vocabulary | None = None
    corpus: Tensor | None = None
    table_profile: TableProfile | None = None


INPUTS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(AttackInputs))


def check_declarations(attrs) -> None:
    """An attack's declarations: those of :func:`salbench.core.applicability.check_declarations`,
    ``baseline`` a bool and ``inputs`` among :data:`INPUTS` (the attack registry runs it at registration)."""
    applicability.check_declarations(attrs)
    if not isinstance(attrs.get("baseline", False), bool):
        raise ValueError(f"baseline must be True or False; got {attrs['baseline']!r}")
    inputs = attrs["inputs"]
    if not isinstance(inputs, tuple) or not set(inputs) <= set(INPUTS):
        raise ValueError(f"inputs must be a tuple of names among {', '.join(INPUTS)}; got {inputs!r}")


class Attack:
    """Base class of attacks on explanations; subclasses implement :meth:`attack`.

    The attack optimises against ``explainer.attack_proxy`` (the explainer itself, or for a
    non-differentiable wrapper such as ``decoy`` its differentiable base: a transfer attack).
    Declared: ``modalities`` (default: the continuous ones), ``requires`` (default: nothing)
    and ``inputs`` (default: ``bounds``), the :class:`AttackInputs` it takes; giving one it does
    not declare is an error. ``baseline = True`` marks a blind perturbation at the attack budget
    (random noise, random substitutions): it moves every sample by construction, so the
    leaderboard gives it no success rate and ranks it over all samples.
    """

    modalities: ClassVar[tuple[str, ...]] = CONTINUOUS
    requires: ClassVar[tuple[str, ...]] = ()
    inputs: ClassVar[tuple[str, ...]] = ("bounds",)
    baseline: ClassVar[bool] = False

    def __call__(self, model: nn.Module, explainer, x: Tensor, target: Tensor | int, **inputs) -> AttackResult:
        """Check the inputs (the batch, and ``inputs`` against the declared ones) and attack."""
        undeclared = sorted(set(inputs) - set(self.inputs))
        if undeclared:
            raise ValueError(
                f"attack {self._name()!r} takes {', '.join(self.inputs) or 'no inputs'} besides the batch, "
                f"not {', '.join(undeclared)}"
                + (f" (an attack input is one of {', '.join(INPUTS)})" if set(undeclared) - set(INPUTS) else "")
            )
        given = AttackInputs(**inputs)
        target = self.check(x, target, given)
        return self.attack(model, explainer.attack_proxy, x, target, given)

    def check(self, x: Tensor, target: Tensor | int, inputs: AttackInputs) -> Tensor:
        """Check the batch (and the inputs) before any work; return the target as a (N,) tensor."""
        check_input(x)
        return check_target(target, x)

    def attack(self, model: nn.Module, explainer, x: Tensor, target: Tensor, inputs: AttackInputs) -> AttackResult:
        """The attack proper, on checked inputs; ``explainer`` is the attacked explainer's proxy."""
        raise NotImplementedError

    def check_features(self, n_features: int) -> None:
        """Raise ValueError, naming the parameter, if the attack cannot work on samples of
        ``n_features`` features (e.g. a top-k attack with k > n_features); the grid calls it
        before any work. Every attack fits by default."""

    def _name(self) -> str:
        return getattr(type(self), "registered_name", type(self).__name__)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


class TextAttack(Attack):
    """Base class of attacks on text: ``x`` is a (N, 2, L) text tensor (:mod:`salbench.core.text`).

    ``explainer`` is a word attribution (:class:`salbench.explainers.word_attribution.WordAttribution`);
    the inputs are the ``vocabulary`` (decodes the ids) and the ``corpus`` (the training texts,
    from which the candidate sources build their tables), both required.
    """

    modalities = ("text",)
    inputs = ("vocabulary", "corpus")

    def check(self, x: Tensor, target: Tensor | int, inputs: AttackInputs) -> Tensor:
        check_text_input(x)
        missing = [name for name in self.inputs if getattr(inputs, name) is None]
        if missing:
            raise ValueError(
                f"attack {self._name()!r} works on text and needs {', '.join(missing)} (the data set's vocabulary "
                "and training texts: DataBundle.attack_inputs)"
            )
        return check_target(target, x)


def check_text_data(data, user: str) -> None:
    """``data`` is a text data bundle (modality ``"text"`` with a vocabulary); ``user`` names who needs it."""
    if data is None:
        raise ValueError(
            f"{user} works on text and needs the data bundle (its vocabulary and training corpus); pass data=bundle"
        )
    modality = getattr(data, "modality", None)
    if modality != "text" or getattr(data, "vocabulary", None) is None:
        raise ValueError(
            f"{user} works on text only: data must be a text data bundle (modality 'text' with a vocabulary), "
            f"got modality {modality!r}"
        )
