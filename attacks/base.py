"""The attack interface: ``attack(model, explainer, x, target, bounds=..., data=...) -> AttackResult``.

An attack on an explanation looks for x′ near x (inside an ℓ∞ or ℓ2 ball of radius ε and the
valid input range) whose explanation differs from that of x while the model's predicted label
stays the same. Every sample of the returned x′ keeps its label: a sample for which no
label-preserving step was found is returned unchanged (x′ = x) with ``label_kept`` still True
and ``success`` False.

The runner passes every attack the data bundle (``data=``). Continuous attacks ignore it; text
attacks (:class:`TextAttack`, word substitutions on the text tensors of
:mod:`salbench.core.text`) need it, for its vocabulary and training corpus.
"""

from __future__ import annotations

import dataclasses

from torch import Tensor, nn

__all__ = ["AttackResult", "Attack", "TextAttack", "Bounds", "check_text_data"]

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


class Attack:
    """Base class of attacks on explanations; subclasses implement :meth:`attack`.

    The attack optimises against ``explainer.attack_proxy`` (the explainer itself, or for a
    non-differentiable wrapper such as ``decoy`` its differentiable base: a transfer attack).
    """

    def __call__(
        self, model: nn.Module, explainer, x: Tensor, target: Tensor | int, *, bounds: Bounds = None, data=None
    ) -> AttackResult:
        """Check the inputs and attack; ``data`` (the data bundle) is not used by continuous attacks."""
        from salbench.core.validation import check_input, check_target

        check_input(x)
        target = check_target(target, x)
        return self.attack(model, explainer.attack_proxy, x, target, bounds=bounds)

    def attack(self, model: nn.Module, explainer, x: Tensor, target: Tensor, *, bounds: Bounds) -> AttackResult:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


class TextAttack(Attack):
    """Base class of attacks on text; subclasses implement ``attack(model, explainer, x, target, *, data)``.

    ``x`` is a (N, 2, L) text tensor (:mod:`salbench.core.text`), ``explainer`` a word
    attribution (:class:`salbench.explainers.word_attribution.WordAttribution`) and ``data`` the text
    data bundle, required (its vocabulary decodes the ids; its training split is the corpus of
    the candidate sources). ``bounds`` has no meaning for text and must be None.
    """

    def __call__(
        self, model: nn.Module, explainer, x: Tensor, target: Tensor | int, *, bounds: Bounds = None, data=None
    ) -> AttackResult:
        from salbench.core.text import check_text_input
        from salbench.core.validation import check_target

        name = getattr(type(self), "registered_name", type(self).__name__)
        check_text_input(x)
        target = check_target(target, x)
        check_text_data(data, f"attack {name!r}")
        if bounds is not None:
            raise ValueError(
                f"attack {name!r} attacks text, which has no valid input range; bounds must be None, got {bounds!r}"
            )
        return self.attack(model, explainer.attack_proxy, x, target, data=data)

    def attack(  # type: ignore[override]
        self, model: nn.Module, explainer, x: Tensor, target: Tensor, *, data
    ) -> AttackResult:
        """The attack proper; takes the data bundle where continuous attacks take ``bounds``."""
        raise NotImplementedError


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
