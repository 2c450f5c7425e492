"""Localisation of a saliency map against a ground-truth mask: pointing game, relevance mass and rank accuracy, ROC AUC.

Each metric scores the map's positions (:mod:`salbench.metrics.positions`: channels pooled for
signals, images and volumes; features for tables) against the positions of the region
(``Case.mask``, bool, the shape of the input). Higher is better for all four. A sample whose
mask has no region (e.g. a class without a planted object in ``synthetic_blocks``), or for
which a metric is otherwise undefined, gets NaN with a note saying why; a data set without
masks gets NaN with that note for every sample.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from salbench.core.applicability import CONTINUOUS
from salbench.core.validation import check_positive
from salbench.metrics import register
from salbench.metrics.base import Case, Metric, MetricOutput
from salbench.metrics.positions import check_mask, position_region, position_scores, spatial_shape
from salbench.metrics.ranking import average_ranks
from torch import Tensor

__all__ = ["PointingGame", "RelevanceMassAccuracy", "RelevanceRankAccuracy", "LocalisationAUC"]

NO_MASK = "the data set has no ground-truth masks (Case.mask is None): localisation is undefined"
EMPTY_REGION = "the ground-truth mask has no region in this sample: localisation is undefined"
_CONVOLUTIONS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


class _Localisation(Metric):
    """Shared entry points: ``metric(attr, mask)`` → (N,) values (NaN where undefined), and
    :meth:`score` → values with the notes that say why. Subclasses implement :meth:`compute`
    and may add reasons in :meth:`undefined`."""

    category: ClassVar[str] = "localisation"
    higher_is_better: ClassVar[bool] = True
    modalities = CONTINUOUS
    requires = ("mask",)

    def __init__(self, absolute: bool = False):
        self.absolute = absolute

    def __call__(self, attr: Tensor, mask: Tensor) -> Tensor:
        """(N,) per-sample values; NaN where the metric is undefined (:meth:`score` says why)."""
        return self.score(attr, mask).values

    def evaluate(self, case: Case) -> MetricOutput:
        if case.mask is None:
            n = len(case.attr)
            return MetricOutput(torch.full((n,), float("nan"), dtype=torch.float64, device=case.attr.device), None, [NO_MASK] * n)
        return self.score(case.attr, case.mask)

    def score(self, attr: Tensor, mask: Tensor) -> MetricOutput:
        """Values (N,) and notes: NaN with the reason for each sample where the metric is undefined."""
        check_mask(attr, mask)
        self.check_map(attr)
        scores = position_scores(attr.detach(), self.absolute).to(torch.promote_types(attr.dtype, torch.float32))
        region = position_region(mask)
        values = self.compute(scores, region, spatial_shape(attr))
        notes: list[str | None] = [None] * len(values)
        for bad, reason in self.undefined(scores, region):
            for i in bad.nonzero().flatten().tolist():
                notes[i] = notes[i] or reason
            values = values.masked_fill(bad, float("nan"))
        return MetricOutput(values, None, notes)

    def check_map(self, attr: Tensor) -> None:
        """Raise ValueError if the metric's parameters do not fit maps of this rank (every rank fits by default)."""

    def undefined(self, scores: Tensor, region: Tensor) -> list[tuple[Tensor, str]]:
        """(bool (N,), reason) pairs: the samples where the metric is undefined, and why."""
        return [(~region.any(dim=1), EMPTY_REGION)]

    def compute(self, scores: Tensor, region: Tensor, spatial: tuple[int, ...]) -> Tensor:
        """(N,) values, of the scores' dtype, from position scores (N, P) and the region (N, P, bool)."""
        raise NotImplementedError


@register("pointing_game")
class PointingGame(_Localisation):
    """Whether the map's maximum lies in the ground-truth region, within a tolerance (Zhang et al. 2018).

    Zhang, Bargal, Lin, Brandt, Shen, Sclaroff, "Top-Down Neural Attention by Excitation
    Backprop", IJCV 126:1084–1102, 2018, §5.1: a hit if the map's maximum point lies within
    ``tolerance`` (the paper: 15 pixels) of the object's region, else a miss; the accuracy is
    the share of hits. Per sample:

        hit = |argmax(E) ∩ dilate(G, τ)| / |argmax(E)|   ∈ [0, 1]

    with dilate(G, τ) the positions at Euclidean distance <= τ (in index units) of a region
    position, and argmax(E) the set of positions holding the maximum. Higher is better.

    Departures: a tie for the maximum scores the share of the tied positions that hit (the
    expected hit of a random choice among them; a constant map scores the region's share),
    where Quantus's ``PointingGame`` counts a hit if any of them hits; for a unique maximum both
    give 0 or 1. Quantus has no tolerance (τ = 0); its ``weighted`` option is not offered.

    Args:
        tolerance: τ, distance in positions (pixels, voxels, time steps) within which a maximum
            counts as a hit; default 0 (Quantus). Only for maps with spatial dimensions:
            features of a table have no distance.
        absolute: take the maximum of |E| instead of E (default False, as Quantus).

    Example:
        >>> from salbench import metrics
        >>> import torch
        >>> attr = torch.zeros(2, 1, 4, 4); attr[:, 0, 0, 3] = 1.0
        >>> mask = torch.zeros(2, 1, 4, 4, dtype=torch.bool); mask[:, 0, 0, :2] = True
        >>> metrics.get("pointing_game")(attr, mask), metrics.get("pointing_game", tolerance=2)(attr, mask)
        (tensor([0., 0.]), tensor([1., 1.]))
    """

    def __init__(self, tolerance: float = 0.0, absolute: bool = False):
        check_positive(tolerance, "tolerance", allow_zero=True)
        super().__init__(absolute)
        self.tolerance = tolerance

    def check_map(self, attr: Tensor) -> None:
        if self.tolerance > 0 and attr.dim() == 2:
            raise ValueError(
                f"pointing_game: tolerance={self.tolerance} needs maps with spatial dimensions (N, C, ...), "
                f"got shape {tuple(attr.shape)}; features of a table have no distance, use tolerance=0"
            )

    def compute(self, scores: Tensor, region: Tensor, spatial: tuple[int, ...]) -> Tensor:
        top = scores == scores.max(dim=1, keepdim=True).values
        if self.tolerance > 0:
            region = dilate(region.view(-1, *spatial), self.tolerance).flatten(1)
        return (top & region).sum(dim=1).to(scores.dtype) / top.sum(dim=1)


def dilate(region: Tensor, radius: float) -> Tensor:
    """Bool regions (N, *spatial) grown by a Euclidean ball of ``radius`` (1 to 3 spatial dimensions).

    >>> dilate(torch.tensor([[False, False, True, False, False]]), 1.5).int()
    tensor([[0, 1, 1, 1, 0]], dtype=torch.int32)
    """
    dims = region.dim() - 1
    reach = math.floor(radius)
    offsets = torch.arange(-reach, reach + 1, device=region.device, dtype=torch.float32)
    grids = torch.meshgrid(*[offsets] * dims, indexing="ij")
    ball = (sum(g**2 for g in grids) <= radius**2).float()
    grown = _CONVOLUTIONS[dims](region[:, None].float(), ball[None, None], padding=reach)
    return grown[:, 0] > 0.5


@register("relevance_mass_accuracy")
class RelevanceMassAccuracy(_Localisation):
    """Share of the map's total relevance that falls in the ground-truth region (Arras et al. 2022).

    Arras, Osman, Samek, "CLEVR-XAI: A benchmark dataset for the ground truth evaluation of
    neural network explanations", Information Fusion 81:14–40, 2022, §4.2:

        mass = R_within / R_total = Σ_{p ∈ G} R_p / Σ_p R_p

    over the positions p (R = E, or |E| with ``absolute``; channels summed). In [0, 1] for a
    non-negative map; a signed map can leave that range. Higher is better. Undefined (NaN with
    a note) where R_total = 0. Matches Quantus's ``RelevanceMassAccuracy``.

    Args:
        absolute: use |E| (default False, as Quantus; pool or clip the map in the explainer
            for another choice).

    Example:
        >>> from salbench import metrics
        >>> import torch
        >>> attr = torch.tensor([[3.0, 1.0, 0.0, 4.0]]); mask = torch.tensor([[True, True, False, False]])
        >>> metrics.get("relevance_mass_accuracy")(attr, mask)
        tensor([0.5000])
    """

    def undefined(self, scores: Tensor, region: Tensor) -> list[tuple[Tensor, str]]:
        zero = (scores.sum(dim=1) == 0, "the map's total relevance is 0: relevance mass accuracy is undefined (0/0)")
        return [*super().undefined(scores, region), zero]

    def compute(self, scores: Tensor, region: Tensor, spatial: tuple[int, ...]) -> Tensor:
        return (scores * region).sum(dim=1) / scores.sum(dim=1)


@register("relevance_rank_accuracy")
class RelevanceRankAccuracy(_Localisation):
    """Share of the K = |G| highest-ranked positions that lie in the ground-truth region G (Arras et al. 2022).

    Arras, Osman, Samek, Information Fusion 2022, §4.2:

        rank = |P_top-K ∩ G| / K,   K = |G|

    with P_top-K the K positions of largest R (E, or |E| with ``absolute``; channels summed).
    In [0, 1]; higher is better; a random map scores about |G| / P. Ties go to the lower flat
    index (stable sort), so the value is deterministic; Quantus's ``RelevanceRankAccuracy``
    (an unstable sort) agrees wherever the K-th and (K+1)-th scores differ.

    Args:
        absolute: rank positions by |E| (default False, as Quantus).

    Example:
        >>> from salbench import metrics
        >>> import torch
        >>> attr = torch.tensor([[3.0, 1.0, 0.0, 4.0]]); mask = torch.tensor([[True, True, False, False]])
        >>> metrics.get("relevance_rank_accuracy")(attr, mask)
        tensor([0.5000])
    """

    def compute(self, scores: Tensor, region: Tensor, spatial: tuple[int, ...]) -> Tensor:
        order = scores.sort(dim=1, descending=True, stable=True).indices
        size = region.sum(dim=1, keepdim=True)
        top = torch.arange(scores.shape[1], device=scores.device) < size
        return (region.gather(1, order) & top).sum(dim=1).to(scores.dtype) / size.squeeze(1)


@register("localisation_auc")
class LocalisationAUC(_Localisation):
    """ROC AUC of the map as a detector of the ground-truth region's positions (Fawcett 2006; Quantus's ``AUC``).

    The per-sample area under the ROC curve of the position scores R (E, or |E| with
    ``absolute``; channels summed) against the region G, computed exactly from ranks (the
    Mann–Whitney statistic, ties counted one half):

        AUC = (Σ_{p ∈ G} rank(R_p) − |G|(|G| + 1)/2) / (|G| · |Gᶜ|)

    with average ranks for ties; the same as ``sklearn.metrics.roc_auc_score`` and Quantus's
    ``AUC`` (``roc_curve`` + trapezoidal ``auc``). 1 when every region position outranks every
    other, 0.5 for a constant map; higher is better. Undefined (NaN with a note) when the
    region covers every position.

    Args:
        absolute: score positions by |E| (default False, as Quantus).

    Example:
        >>> from salbench import metrics
        >>> import torch
        >>> attr = torch.tensor([[3.0, 1.0, 0.0, 4.0]]); mask = torch.tensor([[True, True, False, False]])
        >>> metrics.get("localisation_auc")(attr, mask)
        tensor([0.5000])
    """

    def undefined(self, scores: Tensor, region: Tensor) -> list[tuple[Tensor, str]]:
        full = (region.all(dim=1), "the ground-truth region covers every position: no negatives, the ROC AUC is undefined")
        return [*super().undefined(scores, region), full]

    def compute(self, scores: Tensor, region: Tensor, spatial: tuple[int, ...]) -> Tensor:
        ranks = average_ranks(scores)
        positives = region.sum(dim=1).to(ranks.dtype)
        negatives = region.shape[1] - positives
        return ((ranks * region).sum(dim=1) - positives * (positives + 1) / 2) / (positives * negatives)
