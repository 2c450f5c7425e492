"""Fine-tuning: recipes that start from the model another recipe trained (by default ``standard``)."""

from __future__ import annotations

from typing import Any, ClassVar

from salbench import recipes
from salbench.core.validation import check_positive
from salbench.recipes.softplus import with_softplus
from salbench.recipes.standard import Standard
from torch import nn

__all__ = ["FineTuning"]


class FineTuning(Standard):
    """Base class of recipes that fine-tune the cached ``standard`` model with an extra objective.

    The robust-explanation papers fine-tune a trained ("vanilla", "pretrained") network rather
    than train from scratch: R2ET and its baselines (Chen et al. 2024, authors'
    ``batch_retrain.retrain``: Adam, lr 1e-5, 10 epochs from the pretrained model) and ID-ExpO
    (Yoshikawa & Iwata 2024, ``IDExpOFinetuneGradCam`` from pretrained weights). A subclass
    declares the base through :attr:`base_recipe` and takes the base recipe's parameters as
    its ``base`` parameter; :func:`salbench.model_cache.trained_model` obtains that model
    through the cache (trained once per data set, architecture, base parameters and seed, and
    shared with the ``standard`` cells of a suite) and copies its weights into the model before
    :meth:`fit`. Called directly, :meth:`fit` fine-tunes whatever model it is given.

    The loop is :class:`~salbench.recipes.standard.Standard`'s (Adam, shuffled mini-batches
    seeded by ``seed``) on the subclass's :meth:`batch_loss`, for exactly ``epochs`` epochs
    without early stopping and without weight decay; the last weights are kept. Selecting the
    epoch with the best validation accuracy would favour the epochs least changed by the
    regulariser; the authors keep the last epoch that passes an accuracy threshold (R2ET) or
    select on validation accuracy plus insertion/deletion (ID-ExpO). The clean accuracy of the
    result is reported with every leaderboard.

    With ``softplus=β`` every ReLU of the base model is swapped for softplus_β before
    fine-tuning, and the model is used so afterwards (:meth:`prepare`, the swap of the
    ``softplus`` recipe): R2ET's "SP" (authors' ``replace_relu_to_sp`` on the pretrained model,
    mode ``sp0.5``), which their shipped run ``sp0.5,est_norm,tx`` combines with Est-H and the
    ranking regulariser (``r2et`` with ``softplus=0.5``). The authors fine-tune every model
    with Adam at lr 1e-5 for 10 epochs (``batch_retrain.py``: ``retrain_epoch = 10``,
    ``optim.Adam(..., lr=1e-5)``): pass ``epochs=10, lr=1e-5`` for their schedule.

    Args (every subclass takes them as ``**finetuning``):
        base: parameters of the base recipe (None: its defaults).
        epochs: fine-tuning epochs (all run; the last weights are kept); default 5.
        lr: Adam learning rate; default 1e-3.
        batch_size: mini-batch size; default 64.
        softplus: β (> 0) of the softplus that replaces every ReLU before fine-tuning; None keeps
            the base model's activations.
    """

    base_recipe: ClassVar[str] = "standard"

    def __init__(
        self,
        base: dict | None = None,
        epochs: int = 5,
        lr: float = 1e-3,
        batch_size: int = 64,
        softplus: float | None = None,
    ):
        """Check and store the base recipe's parameters and the loop's settings (subclasses take them as
        ``**finetuning``)."""
        if base is not None and not isinstance(base, dict):
            raise ValueError(f"base must be a table of {self.base_recipe!r} recipe parameters or None, got {base!r}")
        self.base = recipes.validate_params(self.base_recipe, base)
        recipes.get(self.base_recipe, **self.base)  # the base recipe checks its values (e.g. epochs >= 1)
        if softplus is not None:
            check_positive(softplus, "softplus")
        self.softplus = None if softplus is None else float(softplus)
        self._set_loop(epochs, lr, batch_size, 0.0, None)

    def prepare(self, model: nn.Module) -> nn.Module:
        """The model with softplus_β for every ReLU when ``softplus`` is set (else unchanged)."""
        return model if self.softplus is None else with_softplus(model, self.softplus, f"{self._name()}(softplus=...)")

    @property
    def base_params(self) -> dict[str, Any]:
        return self.base
