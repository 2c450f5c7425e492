"""Weight decay: standard training with an L2 penalty on the weights (R2ET's "WD" baseline)."""

from __future__ import annotations

from salbench.core.validation import check_positive
from salbench.recipes import register
from salbench.recipes.standard import Standard

__all__ = ["WeightDecay"]


@register("weight_decay")
class WeightDecay(Standard):
    """Standard training with a required positive L2 weight decay (the "WD" baseline of R2ET).

    Chen et al., "Training for Stable Explanation for Free", NeurIPS 2024, compare R2ET with
    weight decay because a smaller weight norm bounds the input Hessian and so the change of a
    gradient explanation. The recipe is :class:`~salbench.recipes.standard.Standard` (Adam
    on cross-entropy, early stopping on validation accuracy) with ``weight_decay`` > 0 as
    Adam's L2 term: loss gradient + weight_decay·θ. It exists as a recipe of its own so that
    tables name the baseline; ``standard`` with the same ``weight_decay`` trains the same model
    (the cache keys differ, so it is trained again).

    Departure: the authors fine-tune the pretrained model with decay (Adam, lr 1e-5); here the
    model is trained from initialisation, the usual meaning of a weight-decay baseline — at
    the authors' learning rate a few epochs of decay barely move a trained model.

    Args:
        weight_decay: L2 coefficient (> 0; required — there is no neutral default).
        epochs, lr, batch_size, patience: as for ``standard``.

    Example:
        >>> from salbench import recipes
        >>> recipes.get("weight_decay", weight_decay=1e-3).weight_decay
        0.001
    """

    def __init__(self, weight_decay: float, **standard):
        check_positive(weight_decay, "weight_decay")
        super().__init__(weight_decay=weight_decay, **standard)
