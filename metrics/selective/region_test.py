"""Selective p-values for the salient region of a saliency map (Miwa, Duy, Takeuchi, ICLR 2023).

Miwa, Duy, Takeuchi, "Valid P-Value for Deep Learning-driven Salient Region", ICLR 2023
(authors' code: takeuchi-lab/selective_inference_dnn_salient_region).

Model. X = s + ε with ε ~ N(0, σ²I) (σ² known); reference images X_ref,1..m ~ N(s_ref, σ²I)
independent of X, of which the mean R (covariance σ²/m I) is used. A saliency network maps X
to a score map; the salient region is S(X) = {i : score_i(X) > τ} (or {score_i(X) >= τ} with
``inclusive=True``, the authors' code's rule), after an optional min-max
normalisation (score − min)/(max − min) of the map. The hypothesis is tested with T = ηᵀY:

* ``"back"``: Y = X, T = mean of X over S − mean of X over the complement of S;
* ``"neighbor"``: Y = X, T = mean of X over S − mean of X over its neighbourhood N(S) = the
  pixels within Chebyshev distance ``neighborhood`` of S, outside S (si4onnx's
  ``NeighborMeanDiff``); N(S) is a function of S, so the selection event is the same as for "back";
* ``"mean"``: Y = (X; R), η = (1_S; −1_S)/|S|: T = mean over S of X − R;
* ``"abs"``:  Y = (X; R), η = (g∘1_S; −g∘1_S)/|S| with g = sign(X − R) (+1 where X >= R):
  T = mean over S of |X − R|. The signs g on S are part of the selection event.

With C channels the region is spatial and η spreads over the C entries of each pixel
(|S| becomes C·|S|). The covariance of Y is Σ = diag(σ²I, σ²/m I), σ_T² = ηᵀΣη and the
standardised statistic is Z = T/σ_T.

Selective inference. Condition on the nuisance q = Y − Ση Z/σ_T: along the line
Y(z) = q + d·z, d = Ση/σ_T, the truncation set is 𝒵 = {z : S(Y(z)) = S_obs (and g_S(Y(z)) =
g_S,obs for "abs")}, and under H0: ηᵀE[Y] = 0, Z | 𝒵 is a standard normal truncated to 𝒵. The
network is piecewise linear in z (:class:`~salbench.metrics.selective.piecewise.LinePropagator`); so are
the threshold decisions, including min-max normalisation: given max > min,
(s_i − min)/(max − min) > τ ⇔ s_i − (1 − τ)·min − τ·max > 0, with the identities of the
arg-min and arg-max pixels made part of the piece. A final Sigmoid is monotone: the
threshold τ ∈ (0, 1) moves to logit(τ) on the pre-sigmoid score (not combinable with
normalisation, whose decision would not be piecewise linear).

* ``mode="parametric"`` (homotopy): scan z over [−(|z_obs| + 10), |z_obs| + 10] (standardised
  scale, i.e. 10 σ_T beyond |T|, as in the paper), from one piece's upper end u to u + ``STEP``
  (``STEP`` = 1e-8, the resolution of the scan: pieces narrower than that can be missed), and
  take 𝒵 = the union of the pieces whose region equals the observed one. For "abs" the sign
  constraints are linear in z, so they form one interval around z_obs that is intersected
  with the scan range up front (only pieces inside it can qualify).
* ``mode="oc"`` (over-conditioning): 𝒵 = the piece that contains z_obs (conditioning also on
  the activation pattern; valid but less powerful). Reported in parametric mode too, as it
  costs one propagation.

p = P(|Z| >= |z_obs| | Z ∈ 𝒵) in log space (:mod:`salbench.metrics.selective.truncated_normal`). The
baselines beside it: the naive z-test 2Φ(−|z_obs|) (ignores selection; uses σ_T with the
reference variance included — the authors' code leaves out the reference variance in its
naive test), and Bonferroni over all possible selections: min(1, naive·2^n) for n pixels
("back", "mean"), min(1, naive·(1 + 2^C)^n) for "abs", whose selection also picks the C
signs of every selected pixel (the authors count Σ_k C(n, k)·2^k = 3^n − 1 such selections
for C = 1).

Computation. Everything is float64 on the model's device. One propagation carries line
segments of many images at once, about ``_BUDGET`` = 2^14 input elements in all (larger
batches only thrash the CPU caches); finished segments drop out and queued ones take their
place. With fewer images than fill a propagation, each image's search range is cut into up
to ``_MAX_CHUNKS`` = 32 segments scanned side by side: the same pieces, found in fewer
sequential steps. The leading affine layers (before the first ReLU or max-pool) are applied
once per line. Before the walk, where the network has interval bounds
(:meth:`LinePropagator.bounds`), the range is cut into ``_PRUNE_SEGMENTS`` segments and each is
settled whole where interval arithmetic over it decides the region: in the truncation set
(every pixel's decision certainly as observed) or out of it (some pixel's decision certainly
not); undecided segments are halved and tried again, and walked piece by piece once narrow
(see :func:`_prune`). Far from z_obs the region differs from the observed one in hundreds of
pixels, so most of the range is settled in a few dozen propagations instead of thousands of
pieces (a 64×64 U-Net: ~135 propagations instead of ~7000; Miwa et al.'s CAM CNN as trained by
the miwa2023 suite, region {CAM > 0}, null images: ~140 instead of ~4000 per image at 64×64,
0.24 s instead of 6.5 s per "mean" p-value on one core, ~6× fewer at 16×16 and 32×32); the
truncation set is the same. Where the bounds are too loose to settle much (the same CNN
randomly initialised, small ResNets with batch norm) an image whose segments a round leaves
all undecided stops being halved, so the walk costs only the first round's propagations more. The pieces found are written into buffers that double when full, so that
memory stays flat over the thousands of steps of a scan (see ``_Found``). Exact ties at the
evaluation point (equal values with different slopes, as in max-pool windows or min/max over
constant backgrounds) are resolved towards the piece just right of it.

Departures from the authors' code: the region is {score > τ} by default (the authors' code, and
METHODS.md, use >=, available as ``inclusive=True``; the two differ only on ties, which for ReLU
CAMs happen at score exactly 0 where all features are dead, so τ = 0 on a raw CAM selects only
live pixels with ">" and the dead ones too with ">="); the
reference variance enters the naive test; the p-values use float64 log-space arithmetic
instead of mpmath; and the scan is batched over images and segments as above.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
import torch.nn.functional as F
from salbench.core.validation import check_input, check_positive, check_positive_int
from salbench.metrics.selective.piecewise import LinePropagator, decision_bounds
from salbench.metrics.selective.truncated_normal import (
    check_alternative,
    log_normal_pvalue,
    log_truncated_normal_pvalue,
)
from torch import Tensor, nn

__all__ = ["salient_region_test", "RegionTestResult", "ScanDiagnostics", "STEP", "SEARCH_WIDTH"]

STEP = 1e-8
"""How far past a piece's upper end the parametric scan resumes (standardised scale)."""

SEARCH_WIDTH = 10.0
"""The scan covers |z| <= |z_obs| + SEARCH_WIDTH (standardised scale)."""

_BUDGET = 1 << 14
"""Input elements (lines × C·H·W) carried by one propagation: larger batches only thrash the CPU caches."""

_MAX_CHUNKS = 32
"""At most this many segments of one image's search range are scanned side by side."""

_PRUNE_SEGMENTS = 16
"""Segments per image's search range that the interval bounds try to settle first."""

_PRUNE_LEVELS = 9
_PRUNE_PIECES = 8
"""Undecided segments are halved until narrower than the range / 2^_PRUNE_LEVELS or than
_PRUNE_PIECES times the piece at z_obs (deep networks give loose bounds: then the walk is cheaper), then walked."""

_STATISTICS = ("back", "neighbor", "mean", "abs")
_INF = float("inf")
_MODES = ("parametric", "oc")


@dataclasses.dataclass(frozen=True)
class ScanDiagnostics:
    """How the truncation set was found.

    ``steps``: propagations along the line (1 for the piece at z_obs, plus the scan's);
    ``n_intervals``: intervals in the truncation set after merging; ``search_range``: the z
    range scanned in parametric mode (for "abs" already cut to the sign event).
    """

    steps: int
    n_intervals: int
    search_range: tuple[float, float]


@dataclasses.dataclass(frozen=True)
class RegionTestResult:
    """The selective test of one image's salient region.

    p-values follow the test's ``alternative`` (two-sided "abs" by default). ``p_value`` is the selected mode's (parametric or OC);
    ``log_p_value`` its natural log (finite even where ``p_value`` would underflow);
    ``z = statistic / sigma`` is the standardised statistic; ``intervals`` (K, 2) is the
    truncation set on the standardised scale. With ``on_invalid="record"`` an image without a
    valid region has NaN p-values and statistic and says why in ``reason`` (else None).
    """

    p_value: float
    log_p_value: float
    oc_p_value: float
    naive_p_value: float
    bonferroni_p_value: float
    z: float
    statistic: float
    sigma: float
    region: Tensor
    intervals: Tensor
    oc_interval: tuple[float, float]
    diagnostics: ScanDiagnostics
    reason: str | None = None


@dataclasses.dataclass
class _Lines:
    """The conditioning line of each image: X(z) = base + direction·z, and its statistic."""

    base: Tensor
    direction: Tensor
    z: Tensor
    statistic: Tensor
    sigma: Tensor
    lower: Tensor  # the sign event of "abs" (otherwise −inf, +inf), absolute z
    upper: Tensor
    log_selections: float  # log of the number of possible selections (Bonferroni)


class _RegionEvent:
    """Threshold decisions on a score map along lines, with their interval of constancy.

    A pixel is in the region where its margin (score − τ, or its normalised form) is > 0, or
    >= 0 if ``inclusive``; every membership decision of the module is made here.
    """

    def __init__(self, threshold: float, normalize: bool, inclusive: bool = False):
        self.threshold = threshold
        self.normalize = normalize
        self.inclusive = inclusive

    def _member(self, margin: Tensor) -> tuple[Tensor, Tensor]:
        """Membership of each margin, and the margins signed for :func:`decision_bounds`.

        :func:`decision_bounds` reads a margin of +0 as ">= 0" and −0 as "< 0": exact zeros
        become −0 for the strict rule (a score exactly at τ is outside; with a rising slope it
        enters at once, so the piece ends there) and +0 for the inclusive rule (a score exactly
        at τ is inside; the piece ends where it falls below). A margin that is 0 with slope 0 (a
        stretch of a ReLU CAM that is identically 0) never ends a piece, and belongs to the
        region only under the inclusive rule.
        """
        signed = torch.where(margin == 0, 0.0 if self.inclusive else -0.0, margin)
        return (margin >= 0 if self.inclusive else margin > 0), signed

    def __call__(self, value: Tensor, slope: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Regions (B, P) and offsets (lo, hi) for score values/slopes of shape (B, P)."""
        if not self.normalize:
            member, signed = self._member(value - self.threshold)
            lo, hi = decision_bounds(signed, slope)
            return member, lo, hi
        # among tied extremes take the one that stays extreme just right of z (as for max-pools)
        low, high = value.amin(1, keepdim=True), value.amax(1, keepdim=True)
        low_slope = torch.where(value == low, slope, _INF).amin(1, keepdim=True)
        high_slope = torch.where(value == high, slope, -_INF).amax(1, keepdim=True)
        tau = self.threshold
        member, signed = self._member(value - (1 - tau) * low - tau * high)
        margin_slope = slope - (1 - tau) * low_slope - tau * high_slope
        # the decisions, and which pixel is the minimum and which the maximum
        g0 = torch.cat([signed, value - low, high - value], 1)
        g1 = torch.cat([margin_slope, slope - low_slope, high_slope - slope], 1)
        lo, hi = decision_bounds(g0, g1)
        return member, lo, hi

    def certain(self, center: Tensor, radius: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """Whether the region certainly equals ``target`` (B, P), and whether it certainly differs,
        for every score map within ``center ± radius`` (B, P): (inside (B,), outside (B,)).

        Interval arithmetic on the margins; a margin counts as certain only beyond a tolerance of
        1e-9 times the scale of the scores, far above the rounding of the bounds. A margin that
        can be 0 is never settled, under either rule (for the inclusive one, a pixel identically
        at τ, such as a dead stretch of a ReLU CAM with τ = 0, leaves its segments to the walk).
        """
        low, high = center - radius, center + radius
        if not self.normalize:
            m_low, m_high = low - self.threshold, high - self.threshold
        else:
            tau = self.threshold  # margin = s − (1 − τ)·min(s) − τ·max(s), each term bounded apart
            least = _times(-(1 - tau), low.amin(1, keepdim=True), high.amin(1, keepdim=True))
            most = _times(-tau, low.amax(1, keepdim=True), high.amax(1, keepdim=True))
            m_low, m_high = low + least[0] + most[0], high + least[1] + most[1]
        tolerance = 1e-9 * (1.0 + torch.maximum(low.abs(), high.abs()).amax(1, keepdim=True))
        kept = torch.where(target, m_low > tolerance, m_high < -tolerance)
        flipped = torch.where(target, m_high < -tolerance, m_low > tolerance)
        return kept.all(1), flipped.any(1)


def _times(factor: float, low: Tensor, high: Tensor) -> tuple[Tensor, Tensor]:
    """The interval factor·[low, high]."""
    return (factor * low, factor * high) if factor >= 0 else (factor * high, factor * low)


def salient_region_test(
    saliency_model: nn.Module,
    x: Tensor,
    *,
    x_ref: Tensor | None = None,
    threshold: float,
    statistic: Literal["back", "neighbor", "mean", "abs"] = "back",
    neighborhood: int = 1,
    normalize: bool = False,
    inclusive: bool = False,
    sigma2: float = 1.0,
    mode: Literal["parametric", "oc"] = "parametric",
    alternative: Literal["abs", "two-sided", "greater", "less"] = "abs",
    on_invalid: Literal["raise", "record"] = "raise",
) -> list[RegionTestResult]:
    """Selective p-values for the salient regions of a batch of images (see the module docs).

    Args:
        saliency_model: a piecewise-linear network (see :class:`LinePropagator`) mapping
            (N, C, *S) inputs to (N, 1, *S) or (N, *S) score maps, e.g. from
            :func:`~salbench.metrics.selective.saliency.cam_saliency`.
        x: inputs (N, C, *S) with one to three spatial dims S: signals (N, C, T), images
            (N, C, H, W), volumes (N, C, D, H, W); computed in float64.
        x_ref: references for "mean" and "abs": (N, C, *S) (one per input) or (N, m, C, *S)
            (m per input, averaged); must be None for "back".
        threshold: τ; the region is {score > τ} (after min-max normalisation if ``normalize``;
            on the sigmoid's output, in (0, 1), if the model ends in a Sigmoid); {score >= τ}
            if ``inclusive``.
        statistic: "back", "neighbor", "mean" or "abs".
        neighborhood: for "neighbor", the Chebyshev radius r >= 1 of the neighbourhood (a
            (2r + 1)-wide window around every pixel of S, S itself excluded).
        normalize: min-max normalise each score map before thresholding.
        inclusive: the region is {score >= τ} instead of {score > τ} (Miwa et al.'s code).
        sigma2: the known noise variance σ² > 0.
        mode: "parametric" (exact homotopy) or "oc" (over-conditioning) for ``p_value``.
        alternative: the p-value convention of every p-value in the result, computed from the
            same truncation set: "abs" = P(|Z| >= |z| | 𝒵) (Miwa et al.'s code; default),
            "two-sided" = 2·min(F, 1 − F) (sicore / si4onnx), "greater" = 1 − F, "less" = F,
            with F the truncated-normal CDF at z (see
            :mod:`~salbench.metrics.selective.truncated_normal`). The naive and Bonferroni
            p-values follow it (without truncation "abs" and "two-sided" coincide).
        on_invalid: "raise" on an image whose region is empty (or, for "back", whose
            complement is empty), or "record" it in that image's result (NaN p-values and a
            ``reason``).

    Returns:
        One :class:`RegionTestResult` per image, in order.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.ReLU()).double()
        >>> x = torch.randn(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> results = salient_region_test(net, x, threshold=0.1, statistic="back")
        >>> [0 <= r.p_value <= 1 for r in results]
        [True, True]
    """
    _check_options(saliency_model, x, threshold, statistic, normalize, sigma2, mode, on_invalid)
    check_alternative(alternative)
    check_positive_int(neighborhood, "neighborhood")
    propagator = LinePropagator(saliency_model)
    event = _region_event(threshold, normalize, inclusive, propagator)
    device = next((p.device for p in saliency_model.parameters()), x.device)
    x = x.detach().to(device=device, dtype=torch.float64)
    ref, n_ref = _reference(x_ref, x, statistic, device)

    n = x.shape[0]
    groups = torch.arange(n, device=device).split(_capacity(x))
    region = torch.cat([_observed_region(propagator, event, x[group]) for group in groups])
    other = _comparison_set(region.view(n, *x.shape[2:]), statistic, neighborhood)
    reasons = _invalid_reasons(region, other, statistic)
    if on_invalid == "raise" and any(reasons):
        image, reason = next((i, r) for i, r in enumerate(reasons) if r)
        raise ValueError(f"x[{image}]: {reason}; no test is defined for it")
    valid = torch.tensor([r is None for r in reasons], device=device)
    region_maps = region.view(n, *x.shape[2:])
    if not bool(valid.any()):
        return [_invalid_result(mask, reason) for mask, reason in zip(region_maps, reasons)]
    lines = _lines(statistic, x[valid], None if ref is None else ref[valid], n_ref, region[valid], other[valid], sigma2)
    oc = _observed_piece(propagator, event, x, lines, region, valid, groups)
    outcome = _test(propagator, event, lines, region[valid], oc, mode, alternative)
    return _results(outcome, lines, region_maps, reasons, alternative)


# -- arguments --------------------------------------------------------------------------------
def _check_options(
    model: nn.Module,
    x: Tensor,
    threshold: float,
    statistic: str,
    normalize: bool,
    sigma2: float,
    mode: str,
    on_invalid: str,
) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"saliency_model must be a torch.nn.Module, got {type(model).__name__}")
    check_input(x, "x", min_dim=3)
    if not 3 <= x.dim() <= 5:
        raise ValueError(
            f"x must have shape (N, C, T), (N, C, H, W) or (N, C, D, H, W) (one to three spatial dims), got {tuple(x.shape)}"
        )
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    if statistic not in _STATISTICS:
        raise ValueError(f"statistic must be one of {_STATISTICS}, got {statistic!r}")
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize must be a bool, got {type(normalize).__name__}")
    check_positive(sigma2, "sigma2")
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if on_invalid not in ("raise", "record"):
        raise ValueError(f"on_invalid must be 'raise' or 'record', got {on_invalid!r}")


def _region_event(threshold: float, normalize: bool, inclusive: bool, propagator: LinePropagator) -> _RegionEvent:
    """The region's decisions on the propagated scores, after checking ``inclusive``."""
    if not isinstance(inclusive, bool):
        raise ValueError(f"inclusive must be True or False, got {inclusive!r}")
    return _RegionEvent(_score_threshold(threshold, normalize, propagator.final_sigmoid), normalize, inclusive)


def _score_threshold(threshold: float, normalize: bool, final_sigmoid: bool) -> float:
    """The threshold on the propagated (pre-sigmoid) score."""
    if not final_sigmoid:
        return float(threshold)
    if normalize:
        raise ValueError(
            "normalize=True is not supported for a model ending in Sigmoid: min-max normalising sigmoid "
            "outputs makes the region's decisions non-linear in z; threshold the sigmoid output directly"
        )
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must lie in (0, 1) for a model ending in Sigmoid, got {threshold!r}")
    return math.log(threshold / (1 - threshold))


def _reference(x_ref: Tensor | None, x: Tensor, statistic: str, device: torch.device) -> tuple[Tensor | None, int]:
    """The mean reference per input (N, C, *S) and the number m of references."""
    if statistic in ("back", "neighbor"):
        if x_ref is not None:
            raise ValueError(f"x_ref must be None for statistic={statistic!r} (it compares the region with other pixels of x)")
        return None, 0
    if x_ref is None:
        raise ValueError(f"statistic={statistic!r} needs x_ref: references of shape (N, C, *S) or (N, m, C, *S), like x")
    check_input(x_ref, "x_ref", min_dim=3)
    if x_ref.shape == x.shape:
        return x_ref.detach().to(device=device, dtype=torch.float64), 1
    if x_ref.dim() == x.dim() + 1 and x_ref.shape[0] == x.shape[0] and x_ref.shape[2:] == x.shape[1:]:
        return x_ref.detach().to(device=device, dtype=torch.float64).mean(1), x_ref.shape[1]
    n, rest = x.shape[0], ", ".join(map(str, x.shape[1:]))
    raise ValueError(
        f"x_ref must have shape ({n}, {rest}) (one reference per input) or ({n}, m, {rest}) "
        f"(m per input) to match x, got {tuple(x_ref.shape)}"
    )


def _capacity(x: Tensor) -> int:
    """Images (or line segments) per propagation: about ``_BUDGET`` input elements."""
    return max(1, _BUDGET // x[0].numel())


def _observed_region(propagator: LinePropagator, event: _RegionEvent, x: Tensor) -> Tensor:
    """The regions (N, |S|) of inputs x (N, C, *S), after checking the score maps' shape."""
    score = propagator(x, torch.zeros_like(x))[0]
    n, spatial = x.shape[0], tuple(x.shape[2:])
    if tuple(score.shape) not in ((n, 1, *spatial), (n, *spatial)):
        size = ", ".join(map(str, spatial))
        raise ValueError(
            f"saliency_model must return score maps of shape ({n}, 1, {size}) or ({n}, {size}) for x of "
            f"shape {tuple(x.shape)}, got {tuple(score.shape)}"
        )
    score = score.reshape(n, -1)
    return event(score, torch.zeros_like(score))[0]


def _comparison_set(region: Tensor, statistic: str, neighborhood: int) -> Tensor:
    """(N, |S|) boolean: what the region is compared with — its complement ("back"), its
    neighbourhood ("neighbor": dilated by a (2r + 1)-wide max-pool window, minus the region),
    or nothing (the reference statistics: all False)."""
    flat = region.flatten(1)
    if statistic == "back":
        return ~flat
    if statistic != "neighbor":
        return torch.zeros_like(flat)
    pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[region.dim() - 2]
    dilated = pool(region.unsqueeze(1).double(), 2 * neighborhood + 1, stride=1, padding=neighborhood) > 0
    return dilated.flatten(1) & ~flat


def _invalid_reasons(region: Tensor, other: Tensor, statistic: str) -> list[str | None]:
    """Why each image has no test (None where it has one)."""
    reasons: list[str | None] = []
    for k, m in zip(region.sum(1).tolist(), other.sum(1).tolist()):
        if k == 0:
            reasons.append("the salient region is empty (no score above the threshold)")
        elif m == 0 and statistic == "back":
            reasons.append("the salient region covers the whole image, so statistic='back' has no complement")
        elif m == 0 and statistic == "neighbor":
            reasons.append("the salient region has no neighbourhood inside the image, so statistic='neighbor' has nothing to compare")
        else:
            reasons.append(None)
    return reasons


# -- the statistic and its line -----------------------------------------------------------------
def _lines(
    statistic: str, x: Tensor, ref: Tensor | None, n_ref: int, region: Tensor, other: Tensor, sigma2: float
) -> _Lines:
    n, c, spatial = x.shape[0], x.shape[1], x.shape[2:]
    pixels = spatial.numel()
    per_input = (n, *[1] * (x.dim() - 1))
    inside = region.view(n, 1, *spatial).expand_as(x).to(x.dtype)
    size = inside.flatten(1).sum(1).view(per_input)
    infinite = x.new_full((n,), float("inf"))
    if statistic in ("back", "neighbor"):
        outside = other.view(n, 1, *spatial).expand_as(x).to(x.dtype)
        others = outside.flatten(1).sum(1).view(per_input)
        eta = inside / size - outside / others
        sigma = torch.sqrt(sigma2 * (1.0 / size + 1.0 / others)).view(n)
        t = (eta * x).flatten(1).sum(1)
        direction = sigma2 * eta / sigma.view(per_input)
        z = t / sigma
        base = x - direction * z.view(per_input)
        return _Lines(base, direction, z, t, sigma, -infinite, infinite, pixels * math.log(2.0))
    diff = x - ref
    sign = torch.where(diff >= 0, 1.0, -1.0).to(x.dtype) if statistic == "abs" else torch.ones_like(x)
    eta = sign * inside / size  # on X; −eta on the reference mean
    sigma = torch.sqrt(sigma2 * (1.0 + 1.0 / n_ref) / size).view(n)
    t = (eta * diff).flatten(1).sum(1)
    z = t / sigma
    direction = sigma2 * eta / sigma.view(per_input)
    base = x - direction * z.view(per_input)
    lower, upper = -infinite, infinite
    if statistic == "abs":
        # X − R along the line moves with slope (1 + 1/m)·direction; each selected sign must hold
        lo, hi = decision_bounds(sign * diff, inside * sign * direction * (1.0 + 1.0 / n_ref))
        lower, upper = z + lo, z + hi
    selections = math.log(2.0) if statistic == "mean" else math.log1p(2.0**c)
    return _Lines(base, direction, z, t, sigma, lower, upper, pixels * selections)


# -- the truncation set ---------------------------------------------------------------------------
@dataclasses.dataclass
class _Outcome:
    """Per valid image: log p-values, the truncation set (owner, intervals), OC interval, scan."""

    log_p: Tensor
    log_p_oc: Tensor
    owner: Tensor
    intervals: Tensor
    oc: Tensor
    steps: Tensor
    start: Tensor
    stop: Tensor


def _piece(
    propagator: LinePropagator, event: _RegionEvent, base: Tensor, direction: Tensor, z: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Region at z on each line and the absolute bounds (lower, upper) of its linear piece.

    ``base`` and ``direction`` are the line mapped through ``propagator.head``.
    """
    point = torch.addcmul(base, direction, z.view(-1, *([1] * (base.dim() - 1))))
    value, slope, lo, hi = propagator.tail(point, direction)
    region, event_lo, event_hi = event(value.flatten(1), slope.flatten(1))
    return region, z + torch.maximum(lo, event_lo), z + torch.minimum(hi, event_hi)


def _observed_piece(
    propagator: LinePropagator,
    event: _RegionEvent,
    x: Tensor,
    lines: _Lines,
    region: Tensor,
    valid: Tensor,
    groups: tuple[Tensor, ...],
) -> Tensor:
    """The OC interval (K, 2) of the valid images: their piece at x (z = z_obs) within the sign event.

    Evaluated at x itself in the batches that gave the observed regions, so that the values
    are the same bits and a score exactly at the threshold is decided the same way.
    """
    direction = torch.zeros_like(x)
    direction[valid] = lines.direction
    pieces = [_piece(propagator, event, *propagator.head(x[g], direction[g]), x.new_zeros(g.numel())) for g in groups]
    seen, lower, upper = (torch.cat(column)[valid] for column in zip(*pieces))
    if not bool((seen == region[valid]).all()):
        raise RuntimeError(
            "the region at x differs between two evaluations of the same values (non-deterministic kernels?)"
        )
    return torch.stack([torch.maximum(lines.z + lower, lines.lower), torch.minimum(lines.z + upper, lines.upper)], 1)


def _test(
    propagator: LinePropagator, event: _RegionEvent, lines: _Lines, region: Tensor, oc: Tensor, mode: str,
    alternative: str,
) -> _Outcome:
    """p-values from the OC interval ``oc`` (K, 2) and, in parametric mode, from the scan."""
    n = lines.z.shape[0]
    owner = torch.arange(n, device=oc.device)
    log_p_oc = log_truncated_normal_pvalue(lines.z, oc, owner, alternative)
    reach = lines.z.abs() + SEARCH_WIDTH
    start, stop = torch.maximum(-reach, lines.lower), torch.minimum(reach, lines.upper)
    if mode == "oc":
        steps = torch.ones(n, dtype=torch.long, device=oc.device)
        return _Outcome(log_p_oc, log_p_oc, owner, oc, oc, steps, start, stop)
    capacity = _capacity(lines.base)
    if propagator.bounded:  # settle most of the range by interval bounds; walk only the rest
        image, first, last = _segments(owner, start, stop, _PRUNE_SEGMENTS)
        # halving stops where a segment holds few pieces (gauged by the piece at z_obs): walk those
        narrowest = torch.maximum((stop - start) / 2.0**_PRUNE_LEVELS, _PRUNE_PIECES * (oc[:, 1] - oc[:, 0]))
        kept, (image, first, last), checks = _prune(propagator, event, lines, region, image, first, last, narrowest, capacity)
    else:  # few images: cut each search range into chunks scanned side by side (same work, less latency)
        image, first, last = _segments(owner, start, stop, max(1, min(_MAX_CHUNKS, capacity // n)))
        kept, checks = (owner[:0], oc[:0]), torch.zeros_like(owner)
    found, steps = _scan(propagator, event, lines, region, image, first, last, capacity)
    clipped = torch.stack([torch.maximum(oc[:, 0], start), torch.minimum(oc[:, 1], stop)], 1)
    owner, intervals = _merge(torch.cat([found[0], kept[0], owner]), torch.cat([found[1], kept[1], clipped]), STEP)
    log_p = log_truncated_normal_pvalue(lines.z, intervals, owner, alternative)
    return _Outcome(log_p, log_p_oc, owner, intervals, oc, steps + checks + 1, start, stop)


def _segments(owner: Tensor, start: Tensor, stop: Tensor, count: int) -> tuple[Tensor, Tensor, Tensor]:
    """Each image's range [start, stop] cut into ``count`` equal segments: (image, first, last)."""
    fractions = torch.linspace(0, 1, count + 1, dtype=start.dtype, device=start.device)
    edges = torch.lerp(start[:, None], stop[:, None], fractions)
    edges[:, -1] = stop
    return owner.repeat_interleave(count), edges[:, :-1].flatten(), edges[:, 1:].flatten()


def _prune(
    propagator: LinePropagator,
    event: _RegionEvent,
    lines: _Lines,
    region: Tensor,
    image: Tensor,
    first: Tensor,
    last: Tensor,
    narrowest: Tensor,
    capacity: int,
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor, Tensor], Tensor]:
    """Settle line segments by interval bounds (:meth:`LinePropagator.bounds`) before the walk.

    A segment whose regions all equal the observed one is in the truncation set whole; one on
    which some pixel's decision certainly differs is out whole; an undecided one is halved until
    it is at most ``narrowest[image]`` wide, or until a round settles none of its image's
    segments (the bounds are too loose there), then left to the piece-by-piece walk.
    Exact: a segment is settled only where the bounds decide it (sound up to a tolerance far
    above float64 rounding, see :meth:`_RegionEvent.certain`). Returns the segments kept
    (image, intervals (K, 2)), those left to walk (image, first, last), and the propagations
    per image.
    """

    def certify(part: Tensor) -> tuple[Tensor, Tensor]:
        """(inside, outside) of segments ``part``: their regions certainly all equal / certainly differ from the observed."""
        base, direction = propagator.head(lines.base[image[part]], lines.direction[image[part]])
        shape = (-1, *([1] * (base.dim() - 1)))
        center = torch.addcmul(base, direction, ((first[part] + last[part]) / 2).view(shape))
        radius = direction.abs() * ((last[part] - first[part]) / 2).view(shape)
        score, spread = propagator.bounds(center, radius)
        return event.certain(score.flatten(1), spread.flatten(1), region[image[part]])

    checks = torch.zeros(lines.z.shape[0], dtype=torch.long, device=first.device)
    kept: list[tuple[Tensor, Tensor]] = []
    walk: list[tuple[Tensor, Tensor, Tensor]] = []
    while image.numel():
        parts = torch.arange(image.numel(), device=image.device).split(capacity)
        inside, outside = (torch.cat(column) for column in zip(*(certify(part) for part in parts)))
        checks.index_add_(0, image, torch.ones_like(image))
        kept.append((image[inside], torch.stack([first[inside], last[inside]], 1)))
        open_ = ~inside & ~outside
        settled = torch.zeros_like(checks).index_add_(0, image, (~open_).long())
        narrow = open_ & ((last - first <= narrowest[image]) | (settled[image] == 0))
        walk.append((image[narrow], first[narrow], last[narrow]))
        split = open_ & ~narrow
        middle = (first[split] + last[split]) / 2
        image = image[split].repeat(2)
        first, last = torch.cat([first[split], middle]), torch.cat([middle, last[split]])
    whole = tuple(torch.cat(column) for column in zip(*kept))
    return whole, tuple(torch.cat(column) for column in zip(*walk)), checks


def _scan(
    propagator: LinePropagator,
    event: _RegionEvent,
    lines: _Lines,
    region: Tensor,
    image: Tensor,
    start: Tensor,
    stop: Tensor,
    capacity: int,
) -> tuple[tuple[Tensor, Tensor], Tensor]:
    """Walk every line segment [start_k, stop_k] of image ``image_k`` piece by piece.

    At most ``capacity`` segments share a propagation; finished ones drop out and waiting ones
    take their place. Returns the pieces whose region equals the observed one as (image (K,),
    intervals (K, 2)), clipped to their segment, and the propagations per image.
    """
    total = image.numel()
    steps = torch.zeros(region.shape[0], dtype=torch.long, device=start.device)
    found = _Found(start, capacity)
    queued = 0
    state: list[Tensor] = []  # segment ids, z, base, direction (after the head), observed region, end
    while queued < total or (state and state[0].numel()):
        if queued < total and (not state or state[0].numel() <= capacity * 3 // 4):
            room = capacity - (state[0].numel() if state else 0)
            new = torch.arange(queued, min(total, queued + room), device=start.device)
            queued += new.numel()
            base, direction = propagator.head(lines.base[image[new]], lines.direction[image[new]])
            fresh = [new, start[new], base, direction, region[image[new]], stop[new]]
            state = fresh if not state else [torch.cat([old, add]) for old, add in zip(state, fresh)]
        ids, z, base, direction, target, end = state
        seen, lower, upper = _piece(propagator, event, base, direction, z)
        match = (seen == target).all(1)
        clipped = torch.stack([torch.maximum(lower, start[ids]), torch.minimum(upper, end)], 1)
        found.add(image[ids[match]], clipped[match])
        steps.index_add_(0, image[ids], torch.ones_like(ids))
        z = torch.maximum(upper, z) + STEP
        going = z < end
        state[1] = z
        if not bool(going.all()):
            state = [t[going] for t in state]
    return found.pieces(), steps


class _Found:
    """The pieces a scan has found, (image (K,), intervals (K, 2)), in buffers that double when full.

    Not a list of every step's matches concatenated at the end: a scan takes one step per
    linear piece, thousands per image at 64×64 (where a propagation carries one segment), and
    such a list keeps a few small allocations per step alive until the scan ends. Each lands
    between the large short-lived buffers of the following propagations, and glibc's malloc
    (2.36) cannot reuse the holes they pin for the next buffers of the same size: PyTorch's
    CPU allocator calls 64-byte aligned ``posix_memalign``, which asks for the size plus
    alignment slack. The heap grew by up to ~1 MB per step (GBs per call, more or less from
    run to run as the heap's layout before the scan varies). Buffers grown by doubling keep
    O(log K) allocations alive.
    """

    def __init__(self, like: Tensor, size: int):
        self.image = torch.empty(size, dtype=torch.long, device=like.device)
        self.intervals = like.new_empty(size, 2)
        self.count = 0

    def add(self, image: Tensor, intervals: Tensor) -> None:
        """Append pieces: their images (k,) and intervals (k, 2)."""
        end = self.count + image.numel()
        if end > self.image.numel():
            size = max(2 * self.image.numel(), end)
            self.image, self.intervals = (_grown(t, self.count, size) for t in (self.image, self.intervals))
        self.image[self.count : end] = image
        self.intervals[self.count : end] = intervals
        self.count = end

    def pieces(self) -> tuple[Tensor, Tensor]:
        """(image (K,), intervals (K, 2)) of the pieces added, in order."""
        return self.image[: self.count], self.intervals[: self.count]


def _grown(buffer: Tensor, count: int, size: int) -> Tensor:
    """A buffer of ``size`` rows holding the first ``count`` rows of ``buffer``."""
    out = buffer.new_empty(size, *buffer.shape[1:])
    out[:count] = buffer[:count]
    return out


def _merge(owner: Tensor, intervals: Tensor, tolerance: float) -> tuple[Tensor, Tensor]:
    """Sort intervals per owner and merge those that overlap or are within ``tolerance``."""
    order = torch.argsort(intervals[:, 0], stable=True)
    order = order[torch.argsort(owner[order], stable=True)]
    owner, intervals = owner[order], intervals[order]
    reach = _segment_cummax(intervals[:, 1], owner)
    fresh = torch.ones_like(owner, dtype=torch.bool)
    fresh[1:] = (owner[1:] != owner[:-1]) | (intervals[1:, 0] > reach[:-1] + tolerance)
    group = torch.cumsum(fresh.long(), 0) - 1
    count = int(group[-1]) + 1 if group.numel() else 0
    lower = intervals.new_full((count,), float("inf")).scatter_reduce(0, group, intervals[:, 0], "amin")
    upper = intervals.new_full((count,), -float("inf")).scatter_reduce(0, group, intervals[:, 1], "amax")
    return owner[fresh], torch.stack([lower, upper], 1)


def _segment_cummax(values: Tensor, owner: Tensor) -> Tensor:
    """Running maximum of ``values`` restarted at every change of the (sorted) ``owner``."""
    out = values.clone()
    shift = 1
    while shift < out.numel():
        same = owner[shift:] == owner[:-shift]
        out[shift:] = torch.where(same, torch.maximum(out[shift:], out[:-shift]), out[shift:])
        shift *= 2
    return out


# -- results ---------------------------------------------------------------------------------------
def _results(
    outcome: _Outcome, lines: _Lines, region: Tensor, reasons: list[str | None], alternative: str
) -> list[RegionTestResult]:
    log_naive = log_normal_pvalue(lines.z, alternative)
    log_bonferroni = (log_naive + lines.log_selections).clamp_max(0.0)
    columns = [outcome.log_p, outcome.log_p_oc, log_naive, log_bonferroni, lines.z, lines.statistic, lines.sigma]
    columns = torch.stack(columns).cpu().tolist()
    oc = outcome.oc.cpu().tolist()
    ranges = torch.stack([outcome.start, outcome.stop], 1).cpu().tolist()
    steps = outcome.steps.cpu().tolist()
    per_image = torch.bincount(outcome.owner, minlength=lines.z.shape[0]).cpu().tolist()
    intervals = torch.split(outcome.intervals, per_image)
    valid = iter(range(lines.z.shape[0]))
    results: list[RegionTestResult] = []
    for mask, reason in zip(region, reasons):
        if reason is not None:
            results.append(_invalid_result(mask, reason))
            continue
        k = next(valid)
        log_p, log_oc, log_naive_k, log_bonferroni_k, z, t, sigma = (column[k] for column in columns)
        results.append(
            RegionTestResult(
                p_value=math.exp(log_p),
                log_p_value=log_p,
                oc_p_value=math.exp(log_oc),
                naive_p_value=math.exp(log_naive_k),
                bonferroni_p_value=math.exp(log_bonferroni_k),
                z=z,
                statistic=t,
                sigma=sigma,
                region=mask,
                intervals=intervals[k],
                oc_interval=(oc[k][0], oc[k][1]),
                diagnostics=ScanDiagnostics(steps[k], per_image[k], (ranges[k][0], ranges[k][1])),
            )
        )
    return results


def _invalid_result(mask: Tensor, reason: str) -> RegionTestResult:
    nan = float("nan")
    return RegionTestResult(
        p_value=nan,
        log_p_value=nan,
        oc_p_value=nan,
        naive_p_value=nan,
        bonferroni_p_value=nan,
        z=nan,
        statistic=nan,
        sigma=nan,
        region=mask,
        intervals=torch.empty(0, 2, dtype=torch.float64, device=mask.device),
        oc_interval=(nan, nan),
        diagnostics=ScanDiagnostics(0, 0, (nan, nan)),
        reason=reason,
    )
