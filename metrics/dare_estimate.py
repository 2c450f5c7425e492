"""DARE's robustness estimate r: attribution distance per unit of semantic change (Ivankay et al. 2023)."""

from __future__ import annotations

from typing import ClassVar

import torch
from salbench.core.validation import check_positive_int
from salbench.metrics import register
from salbench.metrics.attribution_distance import AttributionDistance
from salbench.metrics.base import Case, Metric, MetricOutput
from salbench.metrics.sentence_similarity import sentence_similarity
from torch import Tensor

__all__ = ["DareEstimate", "SIMILARITY_EPS"]

SIMILARITY_EPS = 1e-7
"""The paper's constant in the denominator 1 − s + 1e-7."""


@register("dare_estimate")
class DareEstimate(Metric):
    """Attribution distance per unit of semantic change of the text, r = d_e / (1 − s + 1e-7) (Ivankay et al. 2023).

    Ivankay, Rigotti, Frossard, "DARE: Towards Robust Text Explanations in Biomedical and
    Healthcare Applications", ACL 2023, §3 (the robustness estimate of a text x and its
    attacked version x′; authors' code: IBM/domain-adaptive-attribution-robustness):

        r(x, x′) = d_e(A(x), A(x′)) / (1 − s(x, x′) + 1e-7)

    d_e = (1 − cos(A(x), A(x′)))/2 is :mod:`salbench.metrics.attribution_distance` (on the valid word
    positions when ``Case.valid`` is given) and s the cosine similarity of the all-MiniLM-L6-v2
    sentence embeddings of the two texts (:mod:`salbench.metrics.sentence_similarity`), decoded from the
    text tensors with ``Case.vocabulary``. A large r means a small change of meaning moved the
    explanation a lot; lower is better. An unattacked sample (x′ = x) has d_e = 0 and s = 1, so
    r = 0.

    Departures: the paper's s is the similarity of a sentence encoder on the raw texts; here
    the texts are the decoded token sequences (lower-cased words joined by spaces, ``<unk>`` for
    a word outside the vocabulary, identically in x and x′) and the encoder is
    all-MiniLM-L6-v2. s may fall slightly below 0 for unrelated texts (the paper assumes
    s ∈ [0, 1]); it is not clipped. A sample whose d_e is undefined (an all-zero attribution)
    gets NaN with the note of :class:`~salbench.metrics.attribution_distance.AttributionDistance`.

    Args:
        batch_size: texts per forward pass of the sentence encoder, >= 1.

    Example:
        >>> from salbench import metrics
        >>> import torch
        >>> a = torch.tensor([[1.0, 0.0]]); b = torch.tensor([[0.0, 1.0]])
        >>> metrics.get("dare_estimate")(a, b, ["the heart is normal"], ["the heart is enlarged"])  # d_e = 0.5
        tensor([1.5490], dtype=torch.float64)
    """

    category: ClassVar[str] = "robustness"
    higher_is_better = False
    needs_attack = True
    modalities = ("text",)

    def __init__(self, batch_size: int = 64):
        check_positive_int(batch_size, "batch_size")
        self.batch_size = batch_size
        self._distance = AttributionDistance()

    def __call__(self, attr: Tensor, attr_adv: Tensor, text: list[str], text_adv: list[str]) -> Tensor:
        """(N,) float64 r of attributions ``attr``/``attr_adv`` (N, ...) of the texts ``text``/``text_adv``."""
        return self.estimate(self._distance(attr, attr_adv), text, text_adv, attr.device)

    def estimate(self, distance: Tensor, text: list[str], text_adv: list[str], device: torch.device) -> Tensor:
        """(N,) r from given d_e values (N,) and the two texts of each sample."""
        if len(text) != distance.shape[0]:
            raise ValueError(f"text must hold one string per sample ({distance.shape[0]}), got {len(text)}")
        similarity = sentence_similarity(text, text_adv, self.batch_size, device)
        return distance.double() / (1.0 - similarity + SIMILARITY_EPS)

    def evaluate(self, case: Case) -> MetricOutput:
        if case.x_adv is None or case.attr_adv is None:
            raise ValueError("metric DareEstimate needs an attack: the case has no x_adv / attr_adv")
        if case.vocabulary is None:
            raise ValueError("metric DareEstimate needs the case's vocabulary to decode the texts (a text data set)")
        distance, _, notes = self._distance.evaluate(case)
        texts = case.vocabulary.decode(case.x), case.vocabulary.decode(case.x_adv)
        return MetricOutput(self.estimate(distance, *texts, case.x.device), None, notes)
