"""Score-CAM: channels weighted by the class score of the input masked with each channel (Wang et al. 2020)."""

from __future__ import annotations

import torch
from salbench.core.validation import check_positive_int
from salbench.explainers import register
from salbench.explainers.activation_map import ActivationMap, spatial_dims, weighted_sum
from salbench.explainers.layers import resize
from torch import Tensor, nn


@register("scorecam")
class ScoreCAM(ActivationMap):
    """Score-CAM: L = ReLU(Σ_k softmax(f(x ⊙ H_k))_c A_k), H_k = A_k resized to x, scaled to [0, 1] (Wang et al. 2020).

    Wang, Wang, Du, Yang, Zhang, Ding, Mardziel, Hu 2020, "Score-CAM: score-weighted visual
    explanations for convolutional neural networks", CVPR workshops. With A (N, K, *s) the
    output of ``layer``: each channel A_k is resized to x's spatial size (linear / bilinear /
    trilinear) and min-max scaled to [0, 1], giving the mask H_k; the masked input x ⊙ H_k
    (H_k broadcast over x's channels) is scored by the class probability
    s_k = softmax(f(x ⊙ H_k))_c, and L = ReLU(Σ_k s_k A_k). A constant channel (max = min:
    no mask) gets s_k = 0. This is the algorithm of the paper and of its authors' code
    (haofanwang/Score-CAM): the paper's Eq. also subtracts the score of a baseline input,
    which the algorithm and that code omit; pytorch-grad-cam instead takes a softmax over the
    K channels of the raw target logits f_c(x ⊙ H_k). Summing s_k A_k at the layer's resolution
    and then resizing equals the authors' summing of resized maps (resizing is linear), up to
    the ReLU, which here comes before the resizing, as in every CAM of salbench.

    Batching: the N·K masked inputs are evaluated ``batch_size`` at a time. Differentiable
    (``create_graph=True`` keeps the graph through A, the masks and the scores; the min-max
    scaling has kinks where the extremum moves). Layer choice, ReLU and output as
    :class:`~salbench.explainers.activation_map.ActivationMap`.

    Args:
        batch_size: masked inputs per forward pass, >= 1.
        layer, relu, upsample: as :class:`~salbench.explainers.activation_map.ActivationMap`.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                       nn.Flatten(), nn.Linear(4, 3))
        >>> explainers.get("scorecam", batch_size=3)(model, torch.randn(2, 3, 8, 8), 1).shape
        torch.Size([2, 3, 8, 8])
    """

    def __init__(self, batch_size: int = 256, **base):
        check_positive_int(batch_size, "batch_size")
        super().__init__(**base)
        self.batch_size = batch_size

    def layer_map(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        with torch.set_grad_enabled(create_graph):
            inputs = x if create_graph else x.detach()
            activation, _ = self.activation(model, inputs, target)
            n, k = activation.shape[:2]
            scores = []
            for start in range(0, n * k, self.batch_size):
                row = torch.arange(start, min(start + self.batch_size, n * k), device=x.device)
                sample, channel = row // k, row % k
                masks = resize(activation[sample, channel].unsqueeze(1), x.shape[2:])
                low = masks.amin(spatial_dims(masks), keepdim=True)
                span = masks.amax(spatial_dims(masks), keepdim=True) - low
                live = span > 0
                masks = (masks - low) / torch.where(live, span, torch.ones_like(span))
                probability = model(inputs[sample] * masks).softmax(1).gather(1, target[sample, None])
                scores.append(torch.where(live.flatten(1), probability, 0.0))
            weights = torch.cat(scores).view(n, k, *[1] * (activation.dim() - 2))
        return weighted_sum(weights, activation)
