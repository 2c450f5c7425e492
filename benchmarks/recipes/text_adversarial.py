"""Adversarial training on word substitutions that raise the class loss (DARE's AT baseline, Ivankay et al. 2023)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from salbench import explainers
from salbench.attacks.base import check_text_data
from salbench.attacks.substitution import (
    Objective,
    candidate_table,
    check_substitution_params,
    class_loss,
    greedy_substitution,
)
from salbench.core.validation import check_fraction
from salbench.datasets.base import DataBundle
from salbench.explainers.word_attribution import WordAttribution
from salbench.recipes import register
from salbench.recipes.finetuning import FineTuning
from torch import Tensor, nn

__all__ = ["TextAdversarial", "eval_mode"]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode inside the block; its previous mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


@register("text_adversarial")
class TextAdversarial(FineTuning):
    """Adversarial training on greedy word substitutions that maximise the cross-entropy (A2T-style).

    The adversarial-training baseline of DARE (Ivankay, Rigotti, Frossard, ACL 2023; authors'
    code IBM/domain-adaptive-attribution-robustness, ``scripts/adv_train.py`` with the attack
    ``attacks/a2t.py``, after Yoo & Qi's A2T, 2021). Per mini-batch (x, y):

    1. ``fraction`` of the samples, round(fraction · batch size) of them, are drawn with the
       recipe's generator (seeded by ``seed``);
    2. for each, x̃ maximises CE(f(x̃), y) over texts with at most ⌊ρ_max · n⌋ of the n words
       replaced by candidates of ``source`` (the engine
       :func:`salbench.attacks.substitution.greedy_substitution`: words in decreasing A(x) with A the
       absolute-gradient word attributions at y (Σ over the embedding of |∂f_y/∂e|, Captum's
       ``Saliency`` and DARE's ranking), k candidates per word, a substitution kept only if it
       raises the loss; no label constraint). The search runs in eval mode and contributes no
       gradient;
    3. the Adam step minimises CE(f(x′), y) over the batch, x′ the batch with the attacked
       samples replaced by x̃ (the model in its training mode).

    It fine-tunes the cached ``standard`` model (:class:`~salbench.recipes.finetuning.FineTuning`:
    exactly ``epochs`` epochs, the last weights kept), as the authors fine-tune a pretrained
    classifier. Defaults: the paper's 75% of each batch attacked, k = 5, ρ_max = 0.15; 3 epochs.

    Departures from the authors' code: (1) they attack each sample with probability 0.75 (a
    Bernoulli draw), here exactly round(0.75 · batch) samples; (2) A2T ranks words by the
    signed loss gradient summed over the embedding and stops attacking a sample once it is
    misclassified; here words are ranked by the absolute gradient summed over the embedding
    (the signed sum is ≈ 0 for BERT-family models, whose embedding layer norm makes
    Σ_k ∂f/∂e_k vanish, so it would rank a transformer's words by rounding noise) and the
    budget bounds the search; (3) candidates come from a static candidate table (see
    ``dare``) instead of a masked language model in context; (4) the fine-tuned model is a
    word-level CNN or GRU trained here, where the authors fine-tune a pretrained transformer.

    Args:
        fraction: share of each mini-batch that is attacked, in (0, 1].
        source: registered candidate source (:mod:`salbench.attacks.candidates`).
        k: candidates tried per word (>= 1, at most the source's ``max_candidates``).
        rho_max: largest fraction of a text's words substituted, in (0, 1].
        base: parameters of the ``standard`` recipe that trains the model fine-tuned here.
        epochs, lr, batch_size: the fine-tuning loop's (see :class:`~salbench.recipes.finetuning.FineTuning`).

    Example:
        >>> from salbench import recipes
        >>> recipes.get("text_adversarial", k=3).fraction
        0.75
    """

    def __init__(
        self,
        fraction: float = 0.75,
        source: str = "domain_embedding",
        k: int = 5,
        rho_max: float = 0.15,
        epochs: int = 3,
        **finetuning,
    ):
        check_fraction(fraction, "fraction")
        check_substitution_params(source, k, rho_max)
        self.fraction, self.source, self.k, self.rho_max = float(fraction), source, k, float(rho_max)
        super().__init__(epochs=epochs, **finetuning)
        self._ranking = WordAttribution(explainers.get("gradient", absolute=True))

    def check(self, model: nn.Module, data: DataBundle) -> None:
        check_text_data(data, f"recipe {self._name()!r}")
        candidate_table(self.source, data.vocabulary, data.train.x)  # a source that cannot serve this vocabulary fails before training

    def batch_loss(
        self, model: nn.Module, x: Tensor, y: Tensor, *, data: DataBundle, generator: torch.Generator
    ) -> Tensor:
        chosen, x_adv = self.attacked(model, x, y, data, generator)
        return F.cross_entropy(model(x.index_copy(0, chosen, x_adv)), y)

    def attacked(
        self, model: nn.Module, x: Tensor, y: Tensor, data: DataBundle, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """The indices of the attacked samples of the batch and their substituted texts x̃ (detached)."""
        chosen = torch.randperm(len(y), generator=generator)[: round(self.fraction * len(y))].to(x.device)
        if len(chosen) == 0:
            return chosen, x[chosen]
        x_sel, y_sel = x[chosen], y[chosen]
        with eval_mode(model):
            scores, objective = self.search(model, x_sel, y_sel)
            result = greedy_substitution(
                model, x_sel, data.vocabulary, candidate_table(self.source, data.vocabulary, data.train.x), scores, k=self.k,
                rho_max=self.rho_max, objective=objective, keep_label=False,
            )
        return chosen, result.x_adv

    def search(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Objective]:
        """The word ranking scores and the objective of the attack: A(x) (absolute gradient) and CE."""
        return self._ranking(model, x, y).detach(), class_loss(model, y)
