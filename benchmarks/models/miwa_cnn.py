"""The CAM classifier of Miwa et al.'s synthetic experiments (conv-conv-pool-conv-conv-upsample-GAP-linear)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

from salbench.core.validation import check_positive_int
from salbench.models import check_shape_and_classes, register
from salbench.models.external import PairedLinear
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

    ``output="softmax"`` (default): ``num_classes`` logits. Named parts: ``features`` (the
    Sequential up to and including the upsampling), ``pool``, ``flatten``, ``classifier`` (the
    Linear layer whose weights are the CAM weights). The CAM of a class uses that class's
    weights (for two classes the logit difference is the CAM of w_1 − w_0; the test uses CAM_1,
    the map of the "abnormal" class as in the paper). A departure from the authors' network.

    ``output="sigmoid"``: the authors' network, one output z (the log-odds of class 1; their
    Dense(1, sigmoid)), for ``num_classes`` = 2. It is ``model`` (Sequential of ``features``,
    ``pool``, ``flatten``, ``classifier`` = Linear(channels, 1)) and is seen as two logits
    (−z/2, z/2) as :class:`~salbench.models.external.TwoLogits` sees a one-logit model:
    ``head`` is the two-class view of ``model.classifier``, so the recipes' cross-entropy is
    the authors' binary cross-entropy and the CAM of class 1 is half theirs (the same region
    at threshold 0). Keras's UpSampling2D default is nearest, as here.

    Args:
        input_shape: (channels, height, width) of one image, height and width even; filled
            in by the harness.
        num_classes: number of classes; filled in by the harness.
        channels: channels of every convolution (4 in the paper).
        output: "softmax" (``num_classes`` logits) or "sigmoid" (one logit seen as two).

    Example:
        >>> import torch
        >>> net = MiwaCNN((1, 16, 16), 2)
        >>> net(torch.zeros(3, 1, 16, 16)).shape, net.features(torch.zeros(3, 1, 16, 16)).shape
        (torch.Size([3, 2]), torch.Size([3, 4, 16, 16]))
        >>> one = MiwaCNN((1, 16, 16), 2, output="sigmoid")
        >>> x = torch.randn(3, 1, 16, 16)
        >>> torch.allclose(one(x), torch.cat([-one.model(x), one.model(x)], 1) / 2)
        True
    """

    provides = ("conv", "gap_head")  # AdaptiveAvgPool2d(1) → Flatten → Linear after the convolutions

    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, channels: int = 4, output: Literal["softmax", "sigmoid"] = "softmax"
    ):
        super().__init__()
        check_shape_and_classes(input_shape, num_classes, rank=3)
        check_positive_int(channels, "channels")
        if output not in ("softmax", "sigmoid"):
            raise ValueError(f"output must be 'softmax' or 'sigmoid', got {output!r}")
        if output == "sigmoid" and num_classes != 2:
            raise ValueError(f"output='sigmoid' (one logit) is for two classes, got num_classes={num_classes}")
        if input_shape[1] % 2 or input_shape[2] % 2:
            raise ValueError(
                f"input_shape {input_shape} must have even height and width (a 2×2 max-pool and a ×2 upsampling "
                "bring the maps back to the input size)"
            )

        def conv(width: int) -> list[nn.Module]:
            return [nn.Conv2d(width, channels, 3, padding=1), nn.ReLU()]

        features = nn.Sequential(
            *conv(input_shape[0]), *conv(channels), nn.MaxPool2d(2), *conv(channels), *conv(channels),
            nn.Upsample(scale_factor=2, mode="nearest"),
        )
        self.output = output
        if output == "sigmoid":
            self.model = nn.Sequential(OrderedDict(
                features=features, pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), classifier=nn.Linear(channels, 1),
            ))
            self.head = PairedLinear(self.model.classifier)
            return
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if self.output == "sigmoid":
            return self.head(self.model[:-1](x))  # (−z/2, z/2) from the pooled features
        return self.classifier(self.flatten(self.pool(self.features(x))))
