"""Standard training, and the training loop every recipe shares: Adam on a mini-batch loss."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from salbench.core.validation import check_positive, check_positive_int, check_seed
from salbench.datasets.base import DataBundle
from salbench.recipes import register
from salbench.recipes.base import Recipe, evaluate, model_device
from torch import Tensor, nn

__all__ = ["Standard"]


@register("standard")
class Standard(Recipe):
    """Adam on cross-entropy with early stopping on validation accuracy (best weights restored).

    Each epoch shuffles the training split with a ``torch.Generator`` seeded by ``seed`` and
    takes one Adam step (Kingma & Ba, ICLR 2015) per mini-batch of ``batch_size`` (the last
    batch may be smaller) on the mean cross-entropy. After each epoch the model is evaluated
    on the validation split; an epoch is an improvement if its validation accuracy is higher
    than the best so far, or equal with a lower validation loss. Training stops after
    ``patience`` epochs without improvement (early stopping, Prechelt 1998) or after
    ``epochs`` epochs, and the weights of the best epoch are restored.

    ``weight_decay`` is Adam's L2 penalty (added to the gradient, as ``torch.optim.Adam``
    does), not decoupled AdamW decay.

    This loop is the one every recipe runs: a recipe that trains differently subclasses
    :class:`Standard` and overrides :meth:`batch_loss` (the mini-batch objective), and may
    set ``patience = None`` (no early stopping: every epoch runs and the last weights are
    kept, reported as ``best_*``). The loop calls :meth:`Recipe.check` first and stops with a
    FloatingPointError if the loss becomes NaN or infinite.

    Args:
        epochs: maximum number of epochs.
        lr: Adam learning rate.
        batch_size: mini-batch size.
        weight_decay: L2 penalty coefficient (>= 0).
        patience: epochs without improvement before stopping.

    Example:
        >>> import torch
        >>> from salbench import models
        >>> from salbench.datasets import load_dataset
        >>> data = load_dataset("wdbc", {})
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> net = models.build("mlp", {}, data.input_shape, data.num_classes)
        >>> info = Standard(epochs=30).fit(net, data, seed=0)
        >>> info["best_val_accuracy"] > 0.9
        True
    """

    def __init__(
        self,
        epochs: int = 50,
        lr: float = 1e-3,
        batch_size: int = 64,
        weight_decay: float = 0.0,
        patience: int = 10,
    ):
        self._set_loop(epochs, lr, batch_size, weight_decay, patience)

    def _set_loop(self, epochs: int, lr: float, batch_size: int, weight_decay: float, patience: int | None) -> None:
        """Check and store the loop's settings (``patience=None``: no early stopping, keep the last epoch)."""
        check_positive_int(epochs, "epochs")
        check_positive(lr, "lr")
        check_positive_int(batch_size, "batch_size")
        check_positive(weight_decay, "weight_decay", allow_zero=True)
        if patience is not None:
            check_positive_int(patience, "patience")
        self.epochs, self.lr, self.batch_size = epochs, float(lr), batch_size
        self.weight_decay, self.patience = float(weight_decay), patience

    def batch_loss(
        self, model: nn.Module, x: Tensor, y: Tensor, *, data: DataBundle, generator: torch.Generator
    ) -> Tensor:
        """The scalar loss one Adam step minimises on the mini-batch (x, y): here the mean cross-entropy.

        Subclasses add their terms here (the one hook of the training loop); ``data`` gives them
        the bundle's bounds and shapes, ``generator`` their random draws (seeded by ``seed``).
        """
        return F.cross_entropy(model(x), y)

    def fit(self, model: nn.Module, data: DataBundle, *, seed: int) -> dict[str, Any]:
        check_seed(seed)
        self.check(model, data)
        device = model_device(model)
        x, y = data.train.x.to(device), data.train.y.to(device)
        generator = torch.Generator().manual_seed(seed)
        optimiser = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        best = (-1.0, math.inf)  # (validation accuracy, validation loss)
        best_state, best_epoch, train_loss = None, 0, math.nan
        for epoch in range(1, self.epochs + 1):
            train_loss = self._epoch(model, optimiser, x, y, data, generator, epoch)
            accuracy, loss = evaluate(model, data.val)
            if self.patience is None or accuracy > best[0] or (accuracy == best[0] and loss < best[1]):
                best, best_epoch = (accuracy, loss), epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            elif epoch - best_epoch >= self.patience:
                break
        model.load_state_dict(best_state)
        model.eval()
        return {
            "epochs_run": epoch,
            "best_epoch": best_epoch,
            "best_val_accuracy": best[0],
            "best_val_loss": best[1],
            "last_train_loss": train_loss,
        }

    def _epoch(
        self,
        model: nn.Module,
        optimiser: torch.optim.Optimizer,
        x: Tensor,
        y: Tensor,
        data: DataBundle,
        generator: torch.Generator,
        epoch: int,
    ) -> float:
        """One pass over the shuffled training data; returns the mean training loss."""
        model.train()
        order = torch.randperm(len(y), generator=generator).to(x.device)
        total = 0.0
        for batch in order.split(self.batch_size):
            loss = self.batch_loss(model, x[batch], y[batch], data=data, generator=generator)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"recipe {self._name()}: the training loss became {float(loss.detach())} in epoch {epoch}; "
                    "lower lr or the regulariser's weight"
                )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        return total / len(y)

    def _name(self) -> str:
        return getattr(type(self), "registered_name", type(self).__name__)
