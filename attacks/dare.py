"""DARE: the domain-adaptive attack on word attributions (Ivankay, Rigotti, Frossard, ACL 2023)."""

from __future__ import annotations

from salbench.attacks import register
from salbench.attacks.base import AttackInputs
from salbench.attacks.substitution import (
    SubstitutionAttack,
    SubstitutionResult,
    explanation_distance,
)
from torch import Tensor, nn

__all__ = ["Dare"]


@register("dare")
class Dare(SubstitutionAttack):
    """DARE: greedy domain-plausible word substitutions that move the word attributions most (Ivankay et al. 2023).

    Ivankay, Rigotti, Frossard, "DARE: Towards Robust Text Explanations in Biomedical and
    Healthcare Applications", ACL 2023; authors' code IBM/domain-adaptive-attribution-robustness,
    ``attacks/explanationfooler.py``. With A the word attributions of the explainer under attack
    (:class:`salbench.explainers.word_attribution.WordAttribution`) at ``target``, it maximises

        d_e(A(x), A(x̃)) = (1 − cos(A(x), A(x̃))) / 2

    over texts x̃ that replace at most ⌊ρ_max · n⌋ of the n words of x by substitutes from a
    domain candidate source, keeping the model's predicted label: words in decreasing |A(x)|,
    stop words and words without candidates skipped, each word's first k candidates tried and
    the best kept if it raises d_e (the engine :func:`salbench.attacks.substitution.greedy_substitution`,
    whose docstring lists the details and the departures from the authors' code). Defaults are
    the paper's: k = 5, ρ_max = 0.15, no sentence-similarity floor.

    Departures: (1) candidates come from a static table of a registered source
    (``domain_embedding``: word2vec neighbours in the training corpus; ``snomed``: SNOMED CT
    synonyms; ``generic``: general-domain neighbours) instead of the paper's biomedical masked
    language model queried in context; (2) words are ranked by the magnitude of the attacked
    explainer's own word attributions, where the authors always rank by saliency (absolute
    gradients); (3) the optional floor on the sentence similarity of x and x̃ (the authors
    filter on the candidate model's score instead). The attack is deterministic: no seed.

    The result is a :class:`~salbench.attacks.substitution.SubstitutionResult`: ``iterations`` counts the
    substituted words, ``substitutions`` lists them (position, original ids, substitute ids).

    Args: source, k, rho_max, min_similarity of
    :class:`~salbench.attacks.substitution.SubstitutionAttack`; if ``min_similarity`` is given,
    every x̃ has sentence similarity >= it to x.

    Example:
        >>> from salbench import attacks
        >>> attacks.get("dare", source="snomed", k=3).rho_max
        0.15
    """

    def attack(self, model: nn.Module, explainer, x: Tensor, target: Tensor, inputs: AttackInputs) -> SubstitutionResult:
        reference = explainer(model, x, target).detach()
        objective = explanation_distance(model, explainer, reference, target)
        return self.search(model, x, inputs, reference.abs(), objective=objective)
