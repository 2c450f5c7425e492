"""The CAM classifier of Miwa et al.'s synthetic experiments (conv-conv-pool-conv-conv-upsample-GAP-linear)."""

from __future__ import annotations

from salbench.core.validation import check_positive_int
from salbench.models import check_shape_and_classes, register
from torch import Tensor, nn

__all__ = ["MiwaCNN"]


@register("miwa_cnn")
class MiwaCNN(nn.Module):
    """The 4-channel CNN of Miwa, Duy & Takeuchi (ICLR 2023) for selective tests of CAM regions.

    Architecture (``simple_model_classification`` in the authors' ``models.py``,
    takeuchi-lab/selective_inference_dnn_salient_region): Conv2d(3×3, same) → ReLU →
    Conv2d → ReLU → MaxPool2d(2) → Conv2d → ReLU → Conv2d → ReLU → Upsample(×2, nearest), all
    with ``channels`` channels, then AdaptiveAvgPool2d(1) → Flatten → Linear(channels,
    num_classes). The CAM is CAM_c(x) = Σ_k w_{c,k} A_k(x) with A the upsampled last feature
    maps, exact for this model and made only of modules that
    :class:`salbench.metrics.selective.LinePropagator` propagates exactly (ReLU modules, max-pool,
    nearest upsampling).

    Named parts: ``features`` (the Sequential up to and including the upsampling), ``pool``,
    ``flatten``, ``classifier`` (the Linear layer whose weights are the CAM weights).

    Departure: the authors' network has one sigmoid output (binary cross-entropy); here it
    has ``num_classes`` logits trained with the recipes' cross-entropy, and the CAM of a class
    uses that class's weights (for two classes the logit difference is the CAM of w_1 − w_0;
    the test uses CAM_1, the map of the "abnormal" class as in the paper). Keras's
    UpSampling2D default is nearest, as here.

    Args:
        input_shape: (channels, height, width) of one image, height and width even; filled
            in by the harness.
        num_classes: number of classes; filled in by the harness.
        channels: channels of every convolution (4 in the paper).

    Example:
        >>> import torch
        >>> net = MiwaCNN((1, 16, 16), 2)
        >>> net(torch.zeros(3, 1, 16, 16)).shape, net.features(torch.zeros(3, 1, 16, 16)).shape
        (torch.Size([3, 2]), torch.Size([3, 4, 16, 16]))
    """

    provides = ("conv", "gap_head")  # AdaptiveAvgPool2d(1) → Flatten → Linear after the convolutions

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, channels: int = 4):
        super().__init__()
        check_shape_and_classes(input_shape, num_classes, rank=3)
        check_positive_int(channels, "channels")
        if input_shape[1] % 2 or input_shape[2] % 2:
            raise ValueError(
                f"input_shape {input_shape} must have even height and width (a 2×2 max-pool and a ×2 upsampling "
                "bring the maps back to the input size)"
            )

        def conv(width: int) -> list[nn.Module]:
            return [nn.Conv2d(width, channels, 3, padding=1), nn.ReLU()]

        self.features = nn.Sequential(
            *conv(input_shape[0]), *conv(channels), nn.MaxPool2d(2), *conv(channels), *conv(channels),
            nn.Upsample(scale_factor=2, mode="nearest"),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))
