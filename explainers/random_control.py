"""The random attribution: a control that knows nothing about the model."""

from __future__ import annotations

from typing import Literal

from salbench.core.seeding import SampleStreams
from salbench.explainers import register
from salbench.explainers.base import Explainer
from torch import Tensor, nn


@register("random")
class RandomAttribution(Explainer):
    """Random attribution of the input's shape, a control that ignores the model.

    The baseline every faithfulness and localisation metric should beat (used as such by
    e.g. Hooker et al. 2019, "A benchmark for interpretability methods in deep neural
    networks", and Adebayo et al. 2018, "Sanity checks for saliency maps"):
    E(x) ~ U[0, 1) (``distribution="uniform"``) or N(0, 1) (``"normal"``), independent
    per feature. Each sample's map is drawn from its own CPU ``torch.Generator`` seeded with
    (``seed``, the sample's content) at every call (:class:`salbench.core.seeding.SampleStreams`),
    in x's dtype, then moved to x's device: the same seed and sample give the same map on
    every device and in every batch. The model is not evaluated, so the target's class range is not checked.
    Not differentiable.

    Args:
        distribution: "uniform" on [0, 1) or standard "normal".
        seed: seed of the generator.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> rnd = explainers.get("random", seed=3)
        >>> a = rnd(torch.nn.Identity(), torch.zeros(2, 5), 0)
        >>> bool((a == rnd(torch.nn.Identity(), torch.zeros(2, 5), 0)).all())
        True
    """

    differentiable = False

    def __init__(self, distribution: Literal["uniform", "normal"] = "uniform", seed: int = 0):
        if distribution not in ("uniform", "normal"):
            raise ValueError(f"distribution must be 'uniform' or 'normal', got {distribution!r}")
        self.distribution = distribution
        self.seed = seed

    def attribute(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        streams = SampleStreams(self.seed, x)
        draw = streams.rand if self.distribution == "uniform" else streams.randn
        return draw(x.shape[1:], like=x)
