"""A small CAM-ready convolutional network for small images."""

from __future__ import annotations

from salbench.core.validation import check_positive_int
from salbench.models import check_shape_and_classes, register
from torch import Tensor, nn

__all__ = ["SmallCNN"]


@register("small_cnn")
class SmallCNN(nn.Module):
    """Small CNN for CAM: conv-ReLU blocks, global average pooling, one linear layer.

    Architecture (the global-average-pooling network of Zhou et al., "Learning Deep Features
    for Discriminative Localization", CVPR 2016, at MNIST scale): for each entry c of
    ``channels``, Conv2d(kernel_size, padding kernel_size // 2, "same" size) → ReLU, followed
    by MaxPool2d(2) between blocks when ``pool`` is set (never after the last block, so that
    the class activation maps keep the resolution of the last block). Then
    AdaptiveAvgPool2d(1) → Flatten → Linear(channels[-1], num_classes). The logits are
    f_c(x) = Σ_k w_{c,k} · mean_{ij} A_k(x)_{ij} + b_c with A = ReLU(last conv), so
    CAM_c(x) = Σ_k w_{c,k} A_k(x) (upsampled to the input size) is exact for this model.

    Named parts: ``features`` (the conv/ReLU/pool Sequential, ending in the last ReLU),
    ``last_conv`` (the last Conv2d, inside ``features``), ``pool``, ``flatten``,
    ``classifier`` (the Linear layer whose weights are the CAM weights).

    Args:
        input_shape: (channels, height, width) of one image; filled in by the harness.
        num_classes: number of classes; filled in by the harness.
        channels: output channels of each conv block (one block per entry). The default
            (8, 16, 32) trains on PneumoniaMNIST in about 30 s of one CPU core with the
            standard recipe to ~88% test accuracy; the wider two-block (16, 32) took about as
            long and reached ~83% (its receptive field is too small for the task).
        kernel_size: odd side of every convolution kernel.
        pool: 2×2 max-pool between consecutive blocks (each spatial side must be at least
            2^(len(channels) − 1)).

    Example:
        >>> import torch
        >>> net = SmallCNN((1, 16, 16), 2)
        >>> net(torch.zeros(3, 1, 16, 16)).shape, net.features(torch.zeros(3, 1, 16, 16)).shape
        (torch.Size([3, 2]), torch.Size([3, 32, 4, 4]))
    """

    provides = ("conv", "gap_head")  # AdaptiveAvgPool2d(1) → Flatten → Linear after the convolutions

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        channels: tuple[int, ...] = (8, 16, 32),
        kernel_size: int = 3,
        pool: bool = True,
    ):
        super().__init__()
        check_shape_and_classes(input_shape, num_classes, rank=3)
        if not isinstance(channels, tuple) or not channels:
            raise ValueError(f"channels must be a non-empty tuple of positive ints, got {channels!r}")
        for i, c in enumerate(channels):
            check_positive_int(c, f"channels[{i}]")
        check_positive_int(kernel_size, "kernel_size")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (so that convolutions keep the image size), got {kernel_size}")
        n_pools = len(channels) - 1 if pool else 0
        if min(input_shape[1:]) < 2**n_pools:
            raise ValueError(
                f"input_shape {input_shape} is too small for {n_pools} 2×2 max-pools (channels={channels}); "
                f"each spatial side must be >= {2**n_pools}, or use fewer channels entries or pool=False"
            )
        layers: list[nn.Module] = []
        width = input_shape[0]
        for i, c in enumerate(channels):
            if i > 0 and pool:
                layers.append(nn.MaxPool2d(2))
            layers += [nn.Conv2d(width, c, kernel_size, padding=kernel_size // 2), nn.ReLU()]
            width = c
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(width, num_classes)

    @property
    def last_conv(self) -> nn.Conv2d:
        """The last convolution (its ReLU'd output is the CAM feature map A)."""
        return self.features[-2]

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))
