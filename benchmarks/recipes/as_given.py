"""Recipe ``none``: the model as it is given, not trained."""

from __future__ import annotations

from typing import Any

import torch
from salbench.datasets.base import DataBundle
from salbench.recipes import register
from salbench.recipes.base import Recipe, evaluate
from torch import nn

__all__ = ["AsGiven"]


@register("none")
class AsGiven(Recipe):
    """Evaluate the model as it is given: no training, no change to its weights.

    For a model the user brings with its weights (a factory with a checkpoint, a TorchScript
    or ``torch.export`` archive, a Hugging Face directory; see
    :mod:`salbench.models.external`): the benchmark of that model itself. On an architecture
    built from initialisation it evaluates the untrained network, which is what a sanity check
    of an explainer against a random model wants.

    Example:
        >>> import torch
        >>> from salbench.datasets import load_dataset
        >>> data = load_dataset("synthetic_blocks", {"size": 8, "n_train": 16, "n_val": 4, "n_test": 4})
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
        >>> before = net[1].weight.clone()
        >>> AsGiven().fit(net, data, seed=0)["epochs_run"], torch.equal(net[1].weight, before)
        (0, True)
    """

    def fit(self, model: nn.Module, data: DataBundle, *, seed: int) -> dict[str, Any]:
        with torch.no_grad():
            accuracy, loss = evaluate(model, data.val)
        model.eval()
        return {"epochs_run": 0, "best_val_accuracy": accuracy, "best_val_loss": loss}
