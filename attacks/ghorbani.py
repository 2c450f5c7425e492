"""The feature-importance attacks of Ghorbani, Abid, Zou, "Interpretation of Neural Networks is
Fragile" (AAAI 2019): top-k, target-region and mass-centre.

All three follow the authors' code (github.com/amiratag/InterpretationFragility, ``utils.py``):
the explanation is turned into a normalised saliency map S = |E| / Σ|E| (the authors scale it
by the number of pixels, a constant that does not change a sign step), the attack takes ℓ∞
sign steps on a softplus surrogate and keeps the iterate that is best on the real network
(:mod:`salbench.attacks.pgd`).

Departures shared by the three:
- The authors reduce an RGB map to pixels (Σ over channels of |E|) before ranking; here the
  top-k attack ranks the map's elements as the explainer returns them, the definition of the
  ``topk_intersection`` metric (identical for one-channel images and tabular data). The
  target-region and mass-centre attacks are spatial and do sum |E| over channels.
- A step whose label changes is rejected and the sample stops there; the authors continue
  from the label-changing point and only skip it when keeping the best.
- Default budget: ε = 8/255 (the authors' ε = 8 on a 0–255 scale) for inputs in [0, 1];
  50 steps of α = 2.5·ε/50 = ε/20 (the authors' notebook: 300 steps of α = ε/16), for cost.
"""

from __future__ import annotations

import torch
from salbench.attacks import register
from salbench.attacks.pgd import ExplanationAttack
from salbench.attacks.ranking import magnitudes, ranked_features
from salbench.core.applicability import SPATIAL
from salbench.core.validation import check_k, check_positive_int
from salbench.metrics.center_of_mass import index_moments, spatial_mass
from torch import Tensor

__all__ = ["TopKAttack", "TargetRegionAttack", "MassCenterAttack", "mass_share", "centre_of_mass"]


def _normalised(weight: Tensor) -> Tensor:
    """``weight`` divided by its per-sample total; 0 for a (numerically) all-zero sample.

    Totals below √tiny (≈1e-19 in float32) count as zero: such a map is numerically zero, and
    the objective's gradient, which scales as 1/total, overflows on its way back through the
    network and turns into NaN (seen with a β = 100 surrogate whose maps underflow to ~1e-36).
    """
    total = weight.flatten(1).sum(dim=1).view(-1, *([1] * (weight.dim() - 1)))
    usable = total > torch.finfo(weight.dtype).tiny ** 0.5
    return torch.where(usable, weight / torch.where(usable, total, torch.ones_like(total)), torch.zeros_like(weight))


def mass_share(attr: Tensor) -> Tensor:
    """Ghorbani's normalised saliency: |E_i| / Σ_j |E_j| per sample, (N, F); 0 for an all-zero map."""
    return _normalised(magnitudes(attr))


def _spatial_shape(shape: torch.Size) -> torch.Size:
    """Spatial dims of a batch: (D,) for (N, D); (*S) for channel-first (N, C, *S)."""
    return shape[1:] if len(shape) == 2 else shape[2:]


def centre_of_mass(attr: Tensor) -> Tensor:
    """Centre of mass (N, s) of |E| summed over channels, in index coordinates of the s spatial dims.

    c_d = Σ_p w_p · p_d with w = Σ_channels |E| / Σ |E| (0 for an all-zero map, so that the
    objective stays differentiable there); for (N, D) inputs the one coordinate is the feature
    index. Ghorbani et al. use the same centre for 2-D saliency maps; the metric
    ``center_of_mass_shift`` computes it with the same moments (:func:`salbench.metrics.center_of_mass.index_moments`).
    """
    return index_moments(_normalised(spatial_mass(attr)))


@register("topk")
class TopKAttack(ExplanationAttack):
    """Top-k attack: move explanation mass off the k most important features (Ghorbani et al. 2019).

    With T = the k features of largest |E(x)| on the real model (as in the authors' code), it
    maximises, on the surrogate,

        J(x′) = −Σ_{i ∈ T} S_i(x′),   S = |E| / Σ|E|,

    and keeps the x′ with the lowest real top-k intersection |T ∩ topk(E(x′))| / k (the
    authors' criterion), ties keeping the earlier iterate. Departures: see the module
    docstring; T is ranked on the map's elements, as the ``topk_intersection`` metric ranks.

    Args:
        k: number of top features (1 ≤ k ≤ features per sample); default 50 (R2ET's image k;
            the authors use 1000 of 227² ImageNet pixels).
        eps, norm, steps, alpha, surrogate_beta, random_start, seed: see
            :class:`salbench.attacks.pgd.ExplanationAttack`; defaults ε = 8/255 (inputs in [0, 1]),
            ℓ∞, 50 steps, α = 2.5·ε/steps, softplus β = 10, start at x.

    Example:
        >>> from salbench import attacks, explainers
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        >>> x = torch.rand(4, 1, 4, 4)
        >>> atk = attacks.get("topk", k=4, steps=5)
        >>> result = atk(net, explainers.get("gradient"), x, net(x).argmax(1), bounds=(0.0, 1.0))
        >>> bool(result.label_kept.all()), bool((result.x_adv - x).abs().max() <= 8 / 255)
        (True, True)
    """

    reference_from_real = True
    test_params = {"k": 3}  # the contract checks' tables have 6 features

    def __init__(self, k: int = 50, **ball):
        check_positive_int(k, "k")
        super().__init__(**ball)
        self.k = k

    def check_features(self, n_features: int) -> None:
        check_k(self.k, n_features)

    def reference(self, attr: Tensor) -> Tensor:
        """Indicator (N, F) of the original top-k features."""
        self.check_features(attr[0].numel())
        top = ranked_features(attr, self.k)
        return torch.zeros(attr.shape[0], attr[0].numel(), dtype=attr.dtype, device=attr.device).scatter_(1, top, 1.0)

    def objective(self, attr: Tensor, reference: Tensor) -> Tensor:
        return -(mass_share(attr) * reference).sum(dim=1)

    def score(self, attr: Tensor, reference: Tensor) -> Tensor:
        """Minus the top-k intersection with the original top k."""
        return -reference.gather(1, ranked_features(attr, self.k)).sum(dim=1) / self.k


@register("target_region")
class TargetRegionAttack(ExplanationAttack):
    """Target-region attack: raise the explanation's mass inside a chosen region (Ghorbani et al. 2019).

    Maximises the share of the saliency inside the region R (all channels):

        J(x′) = Σ_{i ∈ R} S_i(x′),   S = |E| / Σ|E|,

    the authors' target loss (their ``target_map`` times the normalised saliency), and keeps
    the x′ with the largest share on the real model.

    Args:
        region: starts then sizes of the region along each spatial dimension: (top, left,
            height, width) for images (N, C, H, W); (start, length) for tabular inputs (N, D)
            and signals (N, C, L). Required: no region is a sensible default. It must fit in
            the input (checked per call).
        eps, norm, steps, alpha, surrogate_beta, random_start, seed: see
            :class:`salbench.attacks.pgd.ExplanationAttack`; defaults as for ``topk``.

    Example:
        >>> from salbench import attacks
        >>> attacks.get("target_region", region=(0, 0, 4, 4)).region
        (0, 0, 4, 4)
    """

    reference_from_real = True
    modalities = SPATIAL  # a target region is a place in an image, signal or volume, not a set of table columns
    test_params = {"region": (0, 0, 4, 4)}  # a region of the contract checks' 8×8 images
    test_params_by_modality = {"volume": {"region": (0, 0, 0, 2, 2, 2)}, "signal": {"region": (0, 6)}}  # 4³ volumes, 12-long signals

    def __init__(self, region: tuple[int, ...], **ball):
        _check_region(region)
        super().__init__(**ball)
        self.region = tuple(region)

    def reference(self, attr: Tensor) -> Tensor:
        """Indicator (1, F) of the region's features."""
        spatial = _spatial_shape(attr.shape)
        half = len(self.region) // 2
        if half != len(spatial):
            raise ValueError(
                f"region must give {2 * len(spatial)} numbers (the starts, then the sizes, of the {len(spatial)} "
                f"spatial dimension(s) of inputs of shape {tuple(attr.shape)}), got {self.region}"
            )
        mask = torch.zeros(spatial, dtype=attr.dtype, device=attr.device)
        window = []
        for start, size, length in zip(self.region[:half], self.region[half:], spatial):
            if start + size > length:
                raise ValueError(f"region {self.region} does not fit in spatial shape {tuple(spatial)}")
            window.append(slice(start, start + size))
        mask[tuple(window)] = 1.0
        return mask.expand(attr.shape[1:]).reshape(1, -1)

    def objective(self, attr: Tensor, reference: Tensor) -> Tensor:
        return (mass_share(attr) * reference).sum(dim=1)


def _check_region(region: tuple[int, ...]) -> None:
    ok = isinstance(region, (tuple, list)) and len(region) >= 2 and len(region) % 2 == 0
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) for v in region)
    half = len(region) // 2 if ok else 0
    if not ok or any(v < 0 for v in region[:half]) or any(v < 1 for v in region[half:]):
        raise ValueError(
            "region must be a tuple of ints: the starts (>= 0), then the sizes (>= 1), of the region along each "
            f"spatial dimension, e.g. (top, left, height, width) for images or (start, length) for tabular data; got {region!r}"
        )


@register("mass_center")
class MassCenterAttack(ExplanationAttack):
    """Mass-centre attack: move the explanation's centre of mass (Ghorbani et al. 2019).

    Maximises the squared displacement of the centre of mass C of Σ_channels |E| (see
    :func:`centre_of_mass`):

        J(x′) = ‖C(E(x′)) − C(E(x))‖₂²,

    and keeps the x′ with the largest displacement on the real model.

    Departure: J and its gradient are zero at x′ = x, so an ascent started at x never moves.
    The authors' code escapes that by accident (it truncates C(E(x)) to integer pixel
    coordinates); here the attack starts by default from a uniform point of the ball
    (``random_start=True``, seeded), falling back to x for samples where it changes the label.

    Args:
        eps, norm, steps, alpha, surrogate_beta, random_start, seed: see
            :class:`salbench.attacks.pgd.ExplanationAttack`; defaults as for ``topk`` except
            ``random_start=True``.

    Example:
        >>> from salbench import attacks
        >>> attacks.get("mass_center", steps=20).random_start
        True
    """

    def __init__(self, random_start: bool = True, **ball):
        super().__init__(random_start=random_start, **ball)

    def reference(self, attr: Tensor) -> Tensor:
        """The original centre of mass (N, s)."""
        return centre_of_mass(attr)

    def objective(self, attr: Tensor, reference: Tensor) -> Tensor:
        return (centre_of_mass(attr) - reference).square().sum(dim=1)
