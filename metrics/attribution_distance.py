"""DARE's attribution distance d_e: half the cosine distance of two attribution maps (Ivankay et al. 2023)."""

from __future__ import annotations

import torch
from salbench.metrics import register
from salbench.metrics.base import Case, MetricOutput, PairMetric
from torch import Tensor

__all__ = ["AttributionDistance", "zero_map_notes"]


@register("attribution_distance")
class AttributionDistance(PairMetric):
    """Cosine distance of the attributions of x and the attacked x′, d_e = (1 − cos)/2 (Ivankay et al. 2023).

    Ivankay, Rigotti, Frossard, "DARE: Towards Robust Text Explanations in Biomedical and
    Healthcare Applications", ACL 2023, §3 (authors' code: IBM/domain-adaptive-attribution-robustness):

        d_e(A(x), A(x′)) = (1 − cos(A(x), A(x′))) / 2,   cos(a, b) = a·b / (‖a‖₂ ‖b‖₂)

    over the flattened features of each sample (for text: the (N, L) word attributions). Range
    [0, 1]: 0 for maps pointing the same way (any positive rescaling), 1/2 for orthogonal maps, 1
    for opposite maps (A(x′) = −c·A(x)); lower is better (a robust explanation does not move). It
    is the objective of the DARE attack and enters the robustness estimate
    :mod:`salbench.metrics.dare_estimate`. Positions where both maps are zero (PAD words beyond a text's
    length) add nothing to a·b or the norms, so they do not change d_e; with ``Case.valid`` only
    the valid positions are used anyway.

    Computed in float64 (in float32 the rounding of cos leaves d_e ≈ 1e-8 for two identical maps,
    which the DARE estimate would divide by 1e-7). cos is clamped to [−1, 1] against floating-point rounding (an excess of a few ulp), so that
    d_e never leaves [0, 1]. A sample whose map is zero at every position has no direction and no
    cosine: its d_e is NaN, and :meth:`evaluate` attaches a note naming the zero map(s) (the
    grid stores it), rather than a made-up value. No parameters: the paper's d_e has none.

    Example:
        >>> from salbench import metrics
        >>> import torch
        >>> a = torch.tensor([[1.0, 0.0], [1.0, 2.0], [3.0, 0.0]])
        >>> b = torch.tensor([[0.0, 1.0], [-1.0, -2.0], [6.0, 0.0]])
        >>> metrics.get("attribution_distance")(a, b)
        tensor([0.5000, 1.0000, 0.0000], dtype=torch.float64)
    """

    higher_is_better = False

    def compare(self, attr: Tensor, attr_adv: Tensor) -> Tensor:
        # float64: in float32 the rounding of cos makes d_e of two identical maps about 1e-8, which
        # the DARE estimate divides by 1 - s + 1e-7 = 1e-7 for an unchanged text
        a, b = attr.flatten(1).double(), attr_adv.flatten(1).double()
        norms = a.norm(dim=1) * b.norm(dim=1)
        cos = ((a * b).sum(1) / norms).clamp(-1.0, 1.0)
        return torch.where(norms > 0, (1.0 - cos) / 2.0, torch.nan)

    def evaluate(self, case: Case) -> MetricOutput:
        values = MetricOutput(*super().evaluate(case)).values
        return MetricOutput(values, None, zero_map_notes(case.attr, case.attr_adv, case.valid))


def zero_map_notes(attr: Tensor, attr_adv: Tensor, valid: Tensor | None) -> list[str | None]:
    """Per sample, why its d_e is NaN (``attr`` and/or ``attr_adv`` zero at every valid position) or None."""
    if valid is not None:
        attr, attr_adv = (torch.where(valid, a, 0.0) for a in (attr, attr_adv))
    zero = [a.flatten(1).eq(0).all(1).tolist() for a in (attr, attr_adv)]
    notes: list[str | None] = []
    for zero_attr, zero_adv in zip(*zero):
        names = [n for n, z in (("A(x)", zero_attr), ("A(x')", zero_adv)) if z]
        reason = f"{' and '.join(names)} zero at every position: no direction, so d_e is undefined"
        notes.append(reason if names else None)
    return notes
