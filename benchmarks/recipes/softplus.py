"""Softplus training: the network with every ReLU replaced by softplus_β (R2ET's "SP" baseline)."""

from __future__ import annotations

from salbench.attacks.surrogate import softplus_surrogate
from salbench.core.validation import check_positive
from salbench.recipes import register
from salbench.recipes.standard import Standard
from torch import nn

__all__ = ["Softplus", "with_softplus"]


def with_softplus(model: nn.Module, beta: float, recipe: str) -> nn.Module:
    """A trainable copy of ``model`` with softplus_β for every ReLU (same state_dict keys): the swap of
    the ``softplus`` recipe and of a fine-tuning recipe's ``softplus`` option, named ``recipe`` in errors."""
    if not any(isinstance(m, (nn.ReLU, nn.LeakyReLU)) for m in model.modules()):
        raise ValueError(
            f"recipe {recipe} replaces nn.ReLU modules, but {type(model).__name__} has none "
            "(functional relu calls cannot be replaced); build the network from nn.ReLU modules"
        )
    return softplus_surrogate(model, beta).requires_grad_(True)


@register("softplus")
class Softplus(Standard):
    """Standard training of the network with every ReLU replaced by softplus_β, kept for evaluation.

    softplus_β(z) = log(1 + exp(β z)) / β, a smooth ReLU (→ ReLU as β → ∞). Smooth activations
    bound the curvature of the network and so the change of its gradient explanations
    (Dombrowski et al., "Explanations can be manipulated and geometry is to blame", NeurIPS
    2019); Chen et al. (R2ET, NeurIPS 2024) use it as the "SP" baseline (authors' code:
    ``replace_relu_to_sp``). The replacement is the attacks' softplus surrogate
    (:func:`salbench.attacks.surrogate.softplus_surrogate`: ``nn.ReLU`` → ``nn.Softplus(beta)``,
    ``nn.LeakyReLU`` → its smooth version), applied by :meth:`prepare`, so the model is
    *trained and evaluated* with softplus: the model cache rebuilds the architecture and
    applies the replacement again when it loads the weights (softplus has no parameters, the
    state_dict is the architecture's). Then :class:`~salbench.recipes.standard.Standard`'s
    loop (Adam on cross-entropy, early stopping).

    Departures: the authors swap the activations of the pretrained ReLU model and fine-tune
    it; here the softplus network is trained from initialisation (the swap alone shifts every
    activation by up to log 2/β, which a short fine-tuning at lr 1e-5 has to repair). β = 0.5
    is the value in the authors' retraining script (mode ``sp0.5``). The authors' form is the
    ``finetune`` recipe with ``softplus=β`` (every fine-tuning recipe takes that option).

    Attacks with a softplus surrogate (``surrogate_beta``) accept this model as it is: it has
    no ReLU to replace and is already smooth, so it is its own surrogate
    (:func:`salbench.attacks.surrogate.softplus_surrogate`).

    Args:
        beta: softplus β (> 0).
        epochs, lr, batch_size, weight_decay, patience: as for ``standard``.

    Example:
        >>> import torch
        >>> from salbench import models, recipes
        >>> net = recipes.get("softplus", beta=2.0).prepare(models.build("mlp", {"hidden": (4,)}, (3,), 2))
        >>> [type(m).__name__ for m in net.layers]
        ['Flatten', 'Linear', 'Softplus', 'Linear']
    """

    def __init__(self, beta: float = 0.5, **standard):
        check_positive(beta, "beta")
        self.beta = float(beta)
        super().__init__(**standard)

    def prepare(self, model: nn.Module) -> nn.Module:
        """A copy of ``model`` with softplus_β for every ReLU (trainable, same state_dict keys)."""
        return with_softplus(model, self.beta, "softplus")
