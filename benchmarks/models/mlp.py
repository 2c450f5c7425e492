"""A multilayer perceptron for tabular (or flattened) inputs."""

from __future__ import annotations

import math

from salbench.core.validation import check_positive_int
from salbench.models import check_shape_and_classes, register
from torch import Tensor, nn

__all__ = ["MLP"]


@register("mlp")
class MLP(nn.Module):
    """Multilayer perceptron: Flatten → (Linear → ReLU) per hidden layer → Linear.

    f(x) = W_L ReLU(… ReLU(W_1 vec(x) + b_1) …) + b_L. Inputs of any shape are flattened, so the
    attribution keeps the input's shape. ``hidden=()`` gives a linear (logistic-regression)
    model.

    Args:
        input_shape: shape of one sample, e.g. (30,); filled in by the harness.
        num_classes: number of classes; filled in by the harness.
        hidden: width of each hidden layer.

    Example:
        >>> import torch
        >>> MLP((30,), 2, hidden=(16,))(torch.zeros(5, 30)).shape
        torch.Size([5, 2])
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: tuple[int, ...] = (64, 64)):
        super().__init__()
        check_shape_and_classes(input_shape, num_classes)
        if not isinstance(hidden, tuple):
            raise ValueError(f"hidden must be a tuple of positive ints (possibly empty), got {hidden!r}")
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for i, h in enumerate(hidden):
            check_positive_int(h, f"hidden[{i}]")
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
