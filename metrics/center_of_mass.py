"""Shift of a saliency map's centre of mass under attack (Ghorbani et al. 2019)."""

from __future__ import annotations

import torch
from salbench.core.applicability import CONTINUOUS
from salbench.metrics import register
from salbench.metrics.base import PairMetric
from torch import Tensor

__all__ = ["CenterOfMassShift", "center_of_mass", "spatial_mass", "index_moments"]


def spatial_mass(attr: Tensor) -> Tensor:
    """|E| summed over channels: (N, *spatial) for channel-first maps of rank >= 3, |E| itself for (N, F).

    Example:
        >>> spatial_mass(torch.tensor([[[1.0, -2.0], [-3.0, 0.0]]])), spatial_mass(torch.tensor([[1.0, -2.0]]))
        (tensor([[4., 2.]]), tensor([[1., 2.]]))
    """
    mass = attr.abs()
    return mass.sum(dim=1) if mass.dim() > 2 else mass


def index_moments(weight: Tensor) -> Tensor:
    """Σ_p p_d · w_p (N, D) over the positions p of ``weight`` (N, *spatial), for each of its D dimensions.

    Each moment comes from the marginal of ``weight`` along its dimension; for a weight that sums
    to 1 per sample it is the centre of mass in index units.

    Example:
        >>> index_moments(torch.tensor([[[0.0, 0.5], [0.5, 0.0]]]))
        tensor([[0.5000, 0.5000]])
    """
    moments = []
    for dim in range(1, weight.dim()):
        others = [d for d in range(1, weight.dim()) if d != dim]
        marginal = weight.sum(dim=others) if others else weight
        moments.append(marginal @ torch.arange(weight.shape[dim], device=weight.device, dtype=weight.dtype))
    return torch.stack(moments, dim=1)


def center_of_mass(attr: Tensor, name: str = "attr") -> Tensor:
    """Centre of mass (N, D) of |E| over the D spatial dimensions, in index units.

    For a map of rank >= 3 dimension 1 is channels: |E| is summed over it and the remaining
    dimensions are spatial (a signal (N, C, L) gives (position,), an image (N, C, H, W) (row,
    column), a volume (N, C, D, H, W) (depth, row, column)). For a rank-2 map (N, F) the feature
    index is the coordinate. Each coordinate is the mass-weighted mean index along its
    dimension, computed from the map's marginal along that dimension (:func:`index_moments`).
    """
    mass = spatial_mass(attr)
    total = mass.flatten(1).sum(dim=1)
    if (total == 0).any():
        samples = (total == 0).nonzero().flatten().tolist()
        raise ValueError(
            f"{name} is zero everywhere in sample(s) {samples}: its centre of mass is undefined; drop those "
            "samples or use a metric defined for them (topk_intersection)"
        )
    return index_moments(mass) / total[:, None]


@register("center_of_mass_shift")
class CenterOfMassShift(PairMetric):
    """Euclidean distance between the centres of mass of two saliency maps (Ghorbani et al. 2019).

    Ghorbani, Abid, Zou, "Interpretation of Neural Networks is Fragile", AAAI 2019 (the
    mass-centre attack and its dissimilarity measure):

        Δ = ‖CoM(|E(x)|) − CoM(|E(x′)|)‖₂,   CoM(m) = Σ_p p · m_p / Σ_p m_p

    over the spatial positions p (in index units, e.g. pixels). For signals (N, C, L), images
    (N, C, H, W) and volumes (N, C, D, H, W), |E| is summed over channels first; for rank-2 maps (N, F) the feature index is the coordinate; for
    other ranks dimension 1 is taken as channels. Lower is better. A map that is zero
    everywhere has no centre of mass: a direct call refuses it, and in a grid
    (:meth:`undefined`) that sample's value is NaN with a note naming the zero map.

    Example:
        >>> from salbench import metrics
        >>> import torch
        >>> a = torch.zeros(1, 1, 3, 3); a[0, 0, 0, 0] = 1.0
        >>> b = torch.zeros(1, 1, 3, 3); b[0, 0, 2, 2] = 1.0
        >>> metrics.get("center_of_mass_shift")(a, b)
        tensor([2.8284])
    """

    higher_is_better = False
    modalities = CONTINUOUS  # a centre in the input's index coordinates

    def compare(self, attr: Tensor, attr_adv: Tensor) -> Tensor:
        return (center_of_mass(attr, "attr") - center_of_mass(attr_adv, "attr_adv")).norm(dim=1)

    def undefined(self, attr: Tensor, attr_adv: Tensor) -> list[str | None]:
        zero_clean = (spatial_mass(attr).flatten(1).sum(dim=1) == 0).tolist()
        zero_adv = (spatial_mass(attr_adv).flatten(1).sum(dim=1) == 0).tolist()
        return [_zero_note(c, a) for c, a in zip(zero_clean, zero_adv)]


def _zero_note(clean: bool, adv: bool) -> str | None:
    """Why a sample's shift is missing: which of its maps has no centre of mass."""
    which = [name for name, zero in (("attr", clean), ("attr_adv", adv)) if zero]
    return f"{' and '.join(which)} zero everywhere: no centre of mass, the shift is undefined" if which else None
