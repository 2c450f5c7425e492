"""Random-logit test: similarity of the map for the explained class to the map for a random other class (Sixt et al. 2020)."""

from __future__ import annotations

import torch
from salbench.core.seeding import SampleStreams
from salbench.core.validation import check_logits_target, check_seed
from salbench.explainers.base import Explainer
from salbench.metrics import register
from salbench.metrics.base import MetricOutput
from salbench.metrics.recompute import explain_rows, notes_where
from salbench.metrics.sanity_check import SanityCheck
from torch import Tensor, nn

__all__ = ["RandomLogit", "other_classes"]

CONSTANT_NOTE = "the similarity is undefined: the map for the target or for the random other class is constant"


def other_classes(x: Tensor, target: Tensor, n_classes: int, seed: int) -> Tensor:
    """(N,) a class ≠ target per sample, uniform over the other n_classes − 1, drawn from the
    sample's own stream (:class:`~salbench.core.seeding.SampleStreams`).

    >>> x = torch.arange(8.0).view(4, 2); target = torch.tensor([0, 1, 2, 0])
    >>> bool((other_classes(x, target, 3, seed=0) != target).all())
    True
    """
    if n_classes < 2:
        raise ValueError(f"the random-logit test needs a model with at least 2 classes, got {n_classes}")
    u = SampleStreams(seed, x).rand((), like=x)
    offset = (u * (n_classes - 1)).long().clamp_max(n_classes - 2).to(target.device)
    return offset + (offset >= target).long()


@register("random_logit")
class RandomLogit(SanityCheck):
    """Similarity of the map for the explained class to the map for a random other class (Sixt et al. 2020).

    Sixt, Granz, Landgraf, "When Explanations Lie: Why Many Modified BP Attributions Fail",
    ICML 2020, §5 (random logit): an explanation of class c should differ from an explanation of
    another class c′ ≠ c; a method whose map barely depends on the class fails. With c′ drawn
    uniformly among the other classes, per sample from (``seed``, the sample)
    (:func:`other_classes`),

        value(x) = s(E(x, c), E(x, c′))

    s being the similarity (``similarity``): Spearman's rank correlation of |E| over the
    features by default, or SSIM (:class:`~salbench.metrics.sanity_check.SanityCheck`). Lower
    is better; 1 for a map that ignores the class (e.g. the input itself); NaN with a note where
    the similarity is undefined (ρ of a constant map).

    Departures: the paper and Quantus's ``RandomLogit`` compare the two maps by SSIM
    (``similarity="ssim"``; Quantus: of E, not |E|, each map divided by its maximum first, with
    ``num_classes`` and one seed for the whole batch); Spearman is the default here, as in
    :class:`~salbench.metrics.parameter_randomisation.ParameterRandomisation`, so that the two
    sanity checks are on one scale and apply to any input shape (SSIM needs a spatial map).

    Args:
        seed: seed of the other class, >= 0.
        similarity, absolute, batch_size: see :class:`~salbench.metrics.sanity_check.SanityCheck`.

    Example:
        >>> import torch
        >>> from salbench import explainers, metrics
        >>> model = torch.nn.Linear(4, 3)
        >>> x = torch.randn(2, 4)  # gradient x input = w_c ⊙ x: its ranks change with the class
        >>> metrics.get("random_logit")(model, explainers.get("gradient_x_input"), x, 0).shape
        torch.Size([2])
    """

    def __init__(self, seed: int = 0, **check):
        check_seed(seed)
        super().__init__(**check)
        self.seed = seed

    def score(self, model: nn.Module, explainer: Explainer, x: Tensor, target: Tensor, attr: Tensor) -> MetricOutput:
        with torch.no_grad():
            logits = model(x[:1])
        check_logits_target(logits, target)
        other = other_classes(x, target, logits.shape[1], self.seed)
        values = self.compare(attr, explain_rows(explainer, model, x, other, self.batch_size))
        return MetricOutput(values, None, notes_where(values.isnan(), CONSTANT_NOTE))
