"""The recipe interface, ``recipe.fit(model, data, seed=...) -> info``, and batched evaluation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from salbench.datasets.base import DataBundle, Split
from torch import Tensor, nn

__all__ = ["Recipe", "evaluate", "balanced_accuracy", "model_device"]


class Recipe:
    """Base class of training recipes.

    :meth:`fit` trains ``model`` in place on ``data.train`` (using ``data.val`` for model
    selection if the recipe does), leaves it in eval mode and returns a JSON-serialisable dict
    of training information (at least ``epochs_run`` and ``best_val_accuracy``). Given the same
    initial weights, data and ``seed``, the result is the same: every random choice of the
    recipe (shuffling, noise) draws from a ``torch.Generator`` seeded by ``seed``. The initial
    weights are the caller's business (the model cache seeds ``torch.manual_seed`` before it
    builds the model).

    Three hooks let the model cache (:func:`salbench.model_cache.trained_model`) handle every
    recipe alike:

    - :meth:`check` rejects parameters that do not fit the data or the architecture (a top-k
      size beyond the feature count, an explainer that cannot explain the model). The cache
      calls it before any training, including the training of a base model.
    - :attr:`base_recipe` / :attr:`base_params`: a fine-tuning recipe names the recipe and
      parameters of the model it starts from; the cache obtains that model through itself
      (trained once, shared with every recipe that fine-tunes it) and copies its weights into
      the freshly built model before :meth:`fit`.
    - :meth:`prepare` changes the architecture the recipe trains and the model is used with
      (e.g. ReLU → softplus). It must not add or rename parameters or buffers: the cache
      stores the state_dict and applies :meth:`prepare` again when it loads the model.
    """

    base_recipe: ClassVar[str | None] = None
    """Name of the recipe whose trained model this recipe starts from; None: from initialisation."""

    @property
    def base_params(self) -> dict[str, Any] | None:
        """Validated parameters of :attr:`base_recipe` (None when there is no base)."""
        return None

    def check(self, model: nn.Module, data: DataBundle) -> None:
        """Raise a ValueError naming the parameter if this recipe cannot train ``model`` on ``data``."""

    def prepare(self, model: nn.Module) -> nn.Module:
        """The model as this recipe trains it and as it is used afterwards (default: unchanged)."""
        return model

    def fit(self, model: nn.Module, data: DataBundle, *, seed: int) -> dict[str, Any]:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's parameters (CPU for a model without parameters)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def _logits(model: nn.Module, split: Split, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    """(logits, labels) of ``split`` in batches, the model in eval mode; its mode is restored afterwards."""
    was_training = model.training
    model.eval()
    device = model_device(model)
    try:
        for x, y in zip(split.x.split(batch_size), split.y.split(batch_size)):
            yield model(x.to(device)), y.to(device)
    finally:
        model.train(was_training)


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, *, batch_size: int = 1024) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of ``model`` on ``split``, in eval mode, in batches.

    The model's train/eval mode is restored afterwards.
    """
    correct, loss = 0, 0.0
    for logits, y in _logits(model, split, batch_size):
        correct += int((logits.argmax(1) == y).sum())
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
    return correct / len(split), loss / len(split)


@torch.no_grad()
def balanced_accuracy(model: nn.Module, split: Split, *, batch_size: int = 1024) -> float:
    """Balanced accuracy of ``model`` on ``split``: the mean over classes of the per-class recall
    (the share of the class's samples predicted as that class), in eval mode, in batches.

    The mean is over the classes that occur in ``split``: a class without samples has no recall,
    so it is excluded (as scikit-learn's ``balanced_accuracy_score`` does), not counted as 0 or 1.
    On a split with every class equally often it equals the accuracy. The model's train/eval
    mode is restored afterwards.

    >>> from salbench.datasets.base import Split
    >>> split = Split(torch.tensor([[1.0], [1.0], [1.0], [-1.0]]), torch.tensor([0, 0, 0, 1]))
    >>> always_zero = nn.Linear(1, 2).requires_grad_(False)
    >>> _ = always_zero.weight.zero_(), always_zero.bias.copy_(torch.tensor([1.0, 0.0]))
    >>> evaluate(always_zero, split)[0], balanced_accuracy(always_zero, split)  # recalls 3/3 and 0/1
    (0.75, 0.5)
    """
    labels, predicted = zip(*((y, logits.argmax(1)) for logits, y in _logits(model, split, batch_size)))
    labels, predicted = torch.cat(labels), torch.cat(predicted)
    classes = labels.unique()
    recalls = [(predicted[labels == c] == c).double().mean() for c in classes]
    return float(torch.stack(recalls).mean())
