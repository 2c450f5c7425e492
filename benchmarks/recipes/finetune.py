"""Plain fine-tuning on cross-entropy: the control of every fine-tuning recipe, and R2ET's "SP" baseline."""

from __future__ import annotations

from salbench.recipes import register
from salbench.recipes.finetuning import FineTuning

__all__ = ["FineTune"]


@register("finetune")
class FineTune(FineTuning):
    """Fine-tune the cached ``standard`` model on cross-entropy alone (no regulariser).

    The loop of :class:`~salbench.recipes.finetuning.FineTuning` on the mean cross-entropy:
    what every fine-tuning recipe adds its terms to, so it separates the effect of a
    regulariser from that of training longer. With ``softplus=β`` it is R2ET's "SP" baseline
    as the authors ran it (Chen et al., NeurIPS 2024; ccha005/R2ET ``batch_retrain.py``, mode
    ``sp0.5``: the pretrained ReLU network's activations swapped for softplus_0.5, then Adam
    at lr 1e-5 for 10 epochs on CE).

    Args:
        base, epochs, lr, batch_size, softplus: see :class:`~salbench.recipes.finetuning.FineTuning`.

    Example:
        >>> from salbench import models, recipes
        >>> sp = recipes.get("finetune", softplus=0.5, epochs=10, lr=1e-5)
        >>> [type(m).__name__ for m in sp.prepare(models.build("mlp", {"hidden": (4,)}, (3,), 2)).layers]
        ['Flatten', 'Linear', 'Softplus', 'Linear']
    """
