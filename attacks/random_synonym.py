"""Random substitutions at DARE's budget: the baseline a word-substitution attack must beat."""

from __future__ import annotations

from salbench.attacks import register
from salbench.attacks.base import AttackInputs
from salbench.attacks.substitution import SubstitutionAttack, SubstitutionResult
from salbench.core.seeding import SampleStreams
from salbench.core.validation import check_seed
from torch import Tensor, nn

__all__ = ["RandomSynonym"]


@register("random_synonym")
class RandomSynonym(SubstitutionAttack):
    """Random words replaced by random label-keeping candidates at DARE's budget (Ivankay et al. 2023).

    The random baseline of DARE (Ivankay, Rigotti, Frossard, ACL 2023; authors' code
    IBM/domain-adaptive-attribution-robustness, ``explanationfooler.py`` with
    ``random_word_importance=True, random_synonym=True``): the words are visited in a random
    order, and each visited word (not a stop word, with candidates) is replaced by one of its
    first k candidates drawn uniformly among those that keep the predicted label (and pass the
    similarity floor, if any), until ⌊ρ_max · n⌋ words are replaced. The explainer is not used:
    the baseline measures what plausible substitutions do to an explanation by themselves. Same
    engine and candidate table as ``dare`` (:func:`salbench.attacks.substitution.greedy_substitution`).

    Each text's word order and draws come from its own ``torch.Generator`` seeded by (``seed``,
    the text's tokens) (:class:`salbench.core.seeding.SampleStreams`): a text gets the same
    substitutions in every batch. Departures: see ``dare``.

    Args:
        seed: seed of the word order and the draws (>= 0).
        **substitution: source, k, rho_max, min_similarity of
            :class:`~salbench.attacks.substitution.SubstitutionAttack`.

    Example:
        >>> from salbench import attacks
        >>> attacks.get("random_synonym", seed=3).k
        5
    """

    baseline = True

    def __init__(self, seed: int = 0, **substitution):
        check_seed(seed)
        super().__init__(**substitution)
        self.seed = seed

    def attack(self, model: nn.Module, explainer, x: Tensor, target: Tensor, inputs: AttackInputs) -> SubstitutionResult:
        streams = SampleStreams(self.seed, x)
        order = streams.rand((x.shape[2],), like=x)
        return self.search(model, x, inputs, order, streams=streams)
