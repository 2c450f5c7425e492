"""A small CAM-ready convolutional network for small signals, images and volumes (1 to 3 spatial dimensions)."""

from __future__ import annotations

from typing import ClassVar

from salbench.core.validation import check_positive_int
from salbench.models import check_shape_and_classes, register
from torch import Tensor, nn

__all__ = ["SmallCNN", "SmallCNN1d", "SmallCNN3d"]

_LAYERS = {1: (nn.Conv1d, nn.MaxPool1d, nn.AdaptiveAvgPool1d), 2: (nn.Conv2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d),
           3: (nn.Conv3d, nn.MaxPool3d, nn.AdaptiveAvgPool3d)}
_SHAPES = {1: "(channels, length)", 2: "(channels, height, width)", 3: "(channels, depth, height, width)"}


@register("small_cnn")
class SmallCNN(nn.Module):
    """Small CNN for CAM: conv-ReLU blocks, global average pooling, one linear layer (1-D, 2-D or 3-D).

    Architecture (the global-average-pooling network of Zhou et al., "Learning Deep Features
    for Discriminative Localization", CVPR 2016, at MNIST scale): for each entry c of
    ``channels``, Conv(kernel_size, padding kernel_size // 2, "same" size) → ReLU, followed
    by MaxPool(2) between blocks when ``pool`` is set (never after the last block, so that
    the class activation maps keep the resolution of the last block). Then
    AdaptiveAvgPool(1) → Flatten → Linear(channels[-1], num_classes). The logits are
    f_c(x) = Σ_k w_{c,k} · mean_p A_k(x)_p + b_c with A = ReLU(last conv), so
    CAM_c(x) = Σ_k w_{c,k} A_k(x) (upsampled to the input size) is exact for this model.

    The number of spatial dimensions comes from ``input_shape``: (C, L) signals use Conv1d /
    MaxPool1d / AdaptiveAvgPool1d, (C, H, W) images the 2-d layers, (C, D, H, W) volumes the
    3-d ones; one piece of code serves all three, and the module names (so the state-dict keys)
    do not depend on the dimension. ``small_cnn1d`` and
    ``small_cnn3d`` are this architecture restricted to signals and volumes (a suite that names
    them on other data fails with the shape they need).

    Named parts: ``features`` (the conv/ReLU/pool Sequential, ending in the last ReLU),
    ``last_conv`` (the last convolution, inside ``features``), ``pool``, ``flatten``,
    ``classifier`` (the Linear layer whose weights are the CAM weights).

    Args:
        input_shape: (channels, *spatial) of one sample, 1 to 3 spatial dimensions; filled in
            by the harness.
        num_classes: number of classes; filled in by the harness.
        channels: output channels of each conv block (one block per entry). The default
            (8, 16, 32) trains on PneumoniaMNIST in about 30 s of one CPU core with the
            standard recipe to ~88% test accuracy; the wider two-block (16, 32) took about as
            long and reached ~83% (its receptive field is too small for the task).
        kernel_size: odd side of every convolution kernel.
        pool: max-pool of side 2 between consecutive blocks (each spatial side must be at
            least 2^(len(channels) − 1)).

    Example:
        >>> import torch
        >>> net = SmallCNN((1, 16, 16), 2)
        >>> net(torch.zeros(3, 1, 16, 16)).shape, net.features(torch.zeros(3, 1, 16, 16)).shape
        (torch.Size([3, 2]), torch.Size([3, 32, 4, 4]))
        >>> SmallCNN((2, 8, 8, 8), 3, channels=(4, 4)).features(torch.zeros(1, 2, 8, 8, 8)).shape
        torch.Size([1, 4, 4, 4, 4])
        >>> type(SmallCNN((1, 32), 2).last_conv).__name__
        'Conv1d'
    """

    provides = ("conv", "gap_head")  # AdaptiveAvgPool(1) → Flatten → Linear after the convolutions
    spatial_dims: ClassVar[tuple[int, ...]] = (1, 2, 3)
    """The numbers of spatial dimensions the architecture accepts."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        channels: tuple[int, ...] = (8, 16, 32),
        kernel_size: int = 3,
        pool: bool = True,
    ):
        super().__init__()
        check_shape_and_classes(input_shape, num_classes)
        dims = len(input_shape) - 1
        if dims not in self.spatial_dims:
            wanted = " or ".join(_SHAPES[d] for d in self.spatial_dims)
            raise ValueError(f"input_shape must be {wanted} of positive ints, got {input_shape!r}")
        if not isinstance(channels, tuple) or not channels:
            raise ValueError(f"channels must be a non-empty tuple of positive ints, got {channels!r}")
        for i, c in enumerate(channels):
            check_positive_int(c, f"channels[{i}]")
        check_positive_int(kernel_size, "kernel_size")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (so that convolutions keep the input size), got {kernel_size}")
        n_pools = len(channels) - 1 if pool else 0
        if min(input_shape[1:]) < 2**n_pools:
            raise ValueError(
                f"input_shape {input_shape} is too small for {n_pools} max-pools of side 2 (channels={channels}); "
                f"each spatial side must be >= {2**n_pools}, or use fewer channels entries or pool=False"
            )
        conv, max_pool, average_pool = _LAYERS[dims]
        layers: list[nn.Module] = []
        width = input_shape[0]
        for i, c in enumerate(channels):
            if i > 0 and pool:
                layers.append(max_pool(2))
            layers += [conv(width, c, kernel_size, padding=kernel_size // 2), nn.ReLU()]
            width = c
        self.features = nn.Sequential(*layers)
        self.pool = average_pool(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(width, num_classes)

    @property
    def last_conv(self) -> nn.Module:
        """The last convolution (its ReLU'd output is the CAM feature map A)."""
        return self.features[-2]

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))


@register("small_cnn1d")
class SmallCNN1d(SmallCNN):
    """small_cnn for signals (C, L) only: Conv1d blocks, global average pooling, one linear layer.

    :class:`SmallCNN` restricted to one spatial dimension (its parameters and defaults).

    Example:
        >>> import torch
        >>> SmallCNN1d((2, 64), 2)(torch.zeros(5, 2, 64)).shape
        torch.Size([5, 2])
    """

    spatial_dims = (1,)


@register("small_cnn3d")
class SmallCNN3d(SmallCNN):
    """small_cnn for volumes (C, D, H, W) only: Conv3d blocks, global average pooling, one linear layer.

    :class:`SmallCNN` restricted to three spatial dimensions (its parameters and defaults).

    Example:
        >>> import torch
        >>> SmallCNN3d((1, 8, 8, 8), 2, channels=(4, 8))(torch.zeros(2, 1, 8, 8, 8)).shape
        torch.Size([2, 2])
    """

    spatial_dims = (3,)
