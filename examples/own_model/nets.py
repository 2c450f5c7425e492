"""The factory of "Benchmark your own model": a ResNet-18 for 1-channel images.

salbench calls ``build(**kwargs)`` with the suite's ``kwargs`` and loads the checkpoint into what
it returns. ``salbench.models.resnet.ResNet`` has torchvision's ``resnet18`` layout (module for
module, the same state-dict names), so with torchvision installed this could equally return
``torchvision.models.resnet18(num_classes=num_classes)`` with a 1-channel ``conv1``.
"""

from salbench.models.resnet import ResNet


def build(num_classes: int = 2, size: int = 28):
    """ResNet-18 (BasicBlocks [2, 2, 2, 2], widths 64–512) with the 3×3 stem used for small images."""
    return ResNet((1, size, size), num_classes, stem="small")
