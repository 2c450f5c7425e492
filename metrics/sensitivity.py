"""Sensitivity of a saliency map to an input perturbation: ‖E(x) − E(x′)‖₂ / ‖x − x′‖₂."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from salbench.core.applicability import CONTINUOUS
from salbench.core.validation import check_input, check_same_shape
from salbench.metrics import register
from salbench.metrics.base import Case, Metric
from torch import Tensor


@register("sensitivity")
class Sensitivity(Metric):
    """Change of the attribution per unit change of the input at an attacked x′, ‖E(x) − E(x′)‖₂ / ‖x − x′‖₂ (Lu et al. 2020).

    A pair metric of the attack grid: it is not Yeh et al.'s max-sensitivity (the largest
    ‖E(x) − E(x + δ)‖ / ‖E(x)‖ over random draws δ in a ball, as Captum's ``sensitivity_max``
    and Quantus's ``MaxSensitivity``), which is the metric ``max_sensitivity``
    (:mod:`salbench.metrics.yeh_sensitivity`); the same ratio over random draws is
    ``local_lipschitz``.

    The robustness measure of the decoy paper (Lu, Guo, Xing, Noble, arXiv 2002.00526, §4),
    a finite-difference version of Yeh et al.'s max-sensitivity (NeurIPS 2019) evaluated at the
    attacked input x′ rather than maximised over a ball:

        S(x, x′) = ‖E(x) − E(x′)‖₂ / ‖x − x′‖₂

    over all non-batch elements, per sample. Lower is better.

    Explainers differ in scale (a gradient map is in logit units per input unit, a decoy map
    is scaled to [0, 1]), so the raw ratio compares methods only of the same scale. With
    ``normalize="max"`` each map is first divided by its own largest |value|, with
    ``normalize="l2"`` by its own ℓ2 norm (a zero map stays zero); the decoy paper compares
    maps after scaling to [0, 1], i.e. ``"max"`` for non-negative maps.

    An unchanged sample (x′ = x exactly, e.g. the attack found no label-preserving step) is
    normal in a grid: it scores 0.0 when its attribution is also unchanged (no measured
    change). If x′ = x but the attribution differs, the explainer is not deterministic and the
    ratio has no meaning: that is an error naming the samples.

    Args:
        normalize: "none" (raw maps), "max" or "l2" (per-map scaling, see above).

    Example:
        >>> from salbench import metrics
        >>> import torch
        >>> x = torch.zeros(1, 2); x_adv = torch.tensor([[3.0, 4.0]])
        >>> metrics.get("sensitivity")(x, x_adv, torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]))
        tensor([0.2000])
    """

    category: ClassVar[str] = "robustness"
    higher_is_better = False
    needs_attack = True
    modalities = CONTINUOUS  # the input change ‖x − x′‖ needs float inputs

    def __init__(self, normalize: Literal["none", "max", "l2"] = "none"):
        if normalize not in ("none", "max", "l2"):
            raise ValueError(f"normalize must be 'none', 'max' or 'l2', got {normalize!r}")
        self.normalize = normalize

    def _scaled(self, attr: Tensor) -> Tensor:
        if self.normalize == "none":
            return attr
        flat = attr.flatten(1)
        scale = flat.abs().amax(dim=1) if self.normalize == "max" else flat.norm(dim=1)
        return (flat / torch.where(scale > 0, scale, 1.0)[:, None]).view_as(attr)

    def __call__(self, x: Tensor, x_adv: Tensor, attr: Tensor, attr_adv: Tensor) -> Tensor:
        for tensor, name in ((x, "x"), (x_adv, "x_adv"), (attr, "attr"), (attr_adv, "attr_adv")):
            check_input(tensor, name)
        check_same_shape(x, x_adv, ("x", "x_adv"))
        check_same_shape(attr, x, ("attr", "x"))
        check_same_shape(attr_adv, x, ("attr_adv", "x"))
        attr, attr_adv = self._scaled(attr), self._scaled(attr_adv)
        unchanged = (x == x_adv).flatten(1).all(dim=1)
        input_change = (x - x_adv).flatten(1).norm(dim=1)
        attr_change = (attr - attr_adv).flatten(1).norm(dim=1)
        inconsistent = unchanged & (attr_change != 0)
        if inconsistent.any():
            samples = inconsistent.nonzero().flatten().tolist()
            raise ValueError(
                f"x_adv equals x but attr_adv differs from attr in sample(s) {samples}: the explainer is not "
                "deterministic, so the sensitivity ratio is undefined; fix the explainer's seed"
            )
        return torch.where(unchanged, 0.0, attr_change / torch.where(unchanged, 1.0, input_change))

    def evaluate(self, case: Case) -> tuple[Tensor, Tensor | None]:
        if case.x_adv is None or case.attr_adv is None:
            raise ValueError("metric Sensitivity needs an attack: the case has no x_adv / attr_adv")
        return self(case.x, case.x_adv, case.attr, case.attr_adv), None
