"""ResNet with BasicBlocks in torchvision's layout, written out so that nothing requires torchvision."""

from __future__ import annotations

from salbench.core.validation import check_positive_int
from salbench.models import check_shape_and_classes, register
from torch import Tensor, nn

__all__ = ["ResNet", "BasicBlock"]

_STEMS = ("imagenet", "small")
_MAX_STAGES = 4


class BasicBlock(nn.Module):
    """He et al.'s basic block: conv3×3-BN-ReLU-conv3×3-BN, plus the identity (or a 1×1 conv-BN
    ``downsample`` where the stride or width changes), then ReLU; torchvision's names."""

    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


@register("resnet")
class ResNet(nn.Module):
    """ResNet with basic blocks (He, Zhang, Ren, Sun 2016, "Deep residual learning for image
    recognition", CVPR), module for module torchvision's ``resnet18``/``resnet34`` layout.

    Architecture: a stem, then one stage per entry of ``blocks`` (stage i has ``blocks[i]``
    :class:`BasicBlock` s of width ``widths[i]``, the first with stride 2 from the second stage
    on), then ``avgpool`` (AdaptiveAvgPool2d(1)) → flatten → ``fc`` (Linear). Stems:
    ``"imagenet"`` is torchvision's 7×7/2 convolution, BN, ReLU and 3×3/2 max-pool (for
    224×224 inputs); ``"small"`` a 3×3/1 convolution, BN and ReLU without pooling (the usual
    CIFAR/MedMNIST variant, for 28×28 inputs).

    With the defaults (``blocks=(2, 2, 2, 2)``, ``widths=(64, 128, 256, 512)``,
    ``stem="imagenet"``) and 3 input channels, the parameter names and shapes are
    torchvision's ``resnet18(num_classes=...)``, so its state dicts load with ``strict=True``;
    ``blocks=(3, 4, 6, 3)`` is ResNet-34. The stages are ``layer1`` … ``layer4``; with fewer than
    four entries in ``blocks`` the remaining ones are ``nn.Identity``. The last stage's output is the
    feature map Grad-CAM and CAM use (``layer="auto"`` finds it). The forward is TorchScript-able.

    Args:
        input_shape: (channels, height, width) of one image; filled in by the harness.
        num_classes: number of classes; filled in by the harness.
        blocks: basic blocks per stage (1 to 4 stages).
        widths: output channels per stage (as many entries as ``blocks``).
        stem: ``"imagenet"`` or ``"small"`` (see above).

    Example:
        >>> import torch
        >>> net = ResNet((1, 28, 28), 2, blocks=(1, 1), widths=(4, 8), stem="small")
        >>> net(torch.zeros(3, 1, 28, 28)).shape, net.layer2(net.layer1(torch.zeros(3, 4, 28, 28))).shape
        (torch.Size([3, 2]), torch.Size([3, 8, 14, 14]))
        >>> sum(p.numel() for p in ResNet((3, 224, 224), 1000).parameters())  # torchvision's resnet18
        11689512
    """

    provides = ("conv", "gap_head")

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        blocks: tuple[int, ...] = (2, 2, 2, 2),
        widths: tuple[int, ...] = (64, 128, 256, 512),
        stem: str = "imagenet",
    ):
        super().__init__()
        check_shape_and_classes(input_shape, num_classes, rank=3)
        for name, value in (("blocks", blocks), ("widths", widths)):
            if not isinstance(value, tuple) or not value:
                raise ValueError(f"{name} must be a non-empty tuple of positive ints, got {value!r}")
            for i, v in enumerate(value):
                check_positive_int(v, f"{name}[{i}]")
        if len(blocks) != len(widths):
            raise ValueError(f"blocks and widths need one entry per stage, got {len(blocks)} and {len(widths)}")
        if len(blocks) > _MAX_STAGES:
            raise ValueError(f"at most {_MAX_STAGES} stages (torchvision's layer1 … layer4), got {len(blocks)}")
        if stem not in _STEMS:
            raise ValueError(f"stem must be one of {_STEMS}, got {stem!r}")
        imagenet = stem == "imagenet"
        self.conv1 = nn.Conv2d(input_shape[0], widths[0], 7 if imagenet else 3, 2 if imagenet else 1,
                               3 if imagenet else 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if imagenet else nn.Identity()
        cin = widths[0]
        for i in range(_MAX_STAGES):  # stages beyond len(blocks) are identities, without parameters
            stage: nn.Module = nn.Identity()
            if i < len(blocks):
                stride = [2 if i > 0 and j == 0 else 1 for j in range(blocks[i])]
                stage = nn.Sequential(*[BasicBlock(cin if j == 0 else widths[i], widths[i], s) for j, s in enumerate(stride)])
                cin = widths[i]
            self.add_module(f"layer{i + 1}", stage)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))
