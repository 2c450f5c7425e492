"""Permutation p-values of a model's CAM region as a grid metric: the baselines of Miwa et al. (ICLR 2023)."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from salbench.core.validation import check_positive_int, check_seed
from salbench.metrics import register
from salbench.metrics.base import Case, MetricOutput
from salbench.metrics.selective import permutation_test
from salbench.metrics.selective.permutation import SCHEMES
from salbench.metrics.selective_pvalue import SelectivePValue

__all__ = ["PermutationPValue"]


@register("permutation_pvalue")
class PermutationPValue(SelectivePValue):
    """The permutation p-value of the CAM or Grad-CAM salient region (Miwa et al.'s permutation1/2).

    The region and the statistic are those of :class:`~salbench.metrics.selective_pvalue.SelectivePValue`
    (the same parameters, the same saliency network and reference images); the p-value is that of
    :func:`salbench.metrics.selective.permutation_test`, which redraws the region on each of
    ``permutations`` permuted copies of the image: ``scheme="pixels"`` permutes the positions of
    the image and its references alike (the authors' ``permutation1``), ``scheme="pooled"``
    redeals the values of the image and its references ("mean" and "abs" only; their
    ``permutation2``). p = (1 + #{b : |T_b| >= |T_obs|}) / (1 + B): the authors use #{…}/B
    (see :mod:`salbench.metrics.selective.permutation`). Lower means stronger evidence; the
    leaderboard shows the rejection rate at ``alpha``. An image without a valid region gets NaN
    and the reason as its note.

    Randomness: each image's permutations come from ``seed`` and the image's bytes, so a value
    does not depend on the batch.

    Args:
        scheme: "pixels" or "pooled".
        permutations: B >= 1 permutations per image (the authors use 1000).
        seed: seed of the permutations.
        statistic, neighborhood, threshold, normalize, comparison, alpha, upsample, region, layer: as for
            :class:`~salbench.metrics.selective_pvalue.SelectivePValue`.

    Example:
        >>> import torch
        >>> from salbench.metrics.base import Case
        >>> from salbench.models.miwa_cnn import MiwaCNN
        >>> net, x = MiwaCNN((1, 8, 8), 2).double(), torch.randn(2, 1, 8, 8, dtype=torch.float64)
        >>> case = Case(model=net, explainer=None, x=x, target=torch.ones(2, dtype=torch.long), attr=None,
        ...             reference=torch.zeros(2, 1, 1, 8, 8, dtype=torch.float64))
        >>> p = PermutationPValue(statistic="abs", permutations=19).evaluate(case).values
        >>> p.shape, bool(((p[~p.isnan()] * 20) % 1 < 1e-9).all())  # multiples of 1/(1 + B)
        (torch.Size([2]), True)
    """

    outputs: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        statistic: Literal["back", "neighbor", "mean", "abs"] = "mean",
        scheme: Literal["pixels", "pooled"] = "pixels",
        permutations: int = 1000,
        seed: int = 0,
        neighborhood: int = 1,
        threshold: float = 0.0,
        normalize: bool = False,
        comparison: Literal[">", ">="] = ">",
        alpha: float = 0.05,
        upsample: Literal["bilinear", "nearest"] = "bilinear",
        region: Literal["cam", "gradcam"] = "cam",
        layer: str = "auto",
    ):
        super().__init__(
            statistic=statistic, neighborhood=neighborhood, threshold=threshold, normalize=normalize, comparison=comparison, alpha=alpha,
            upsample=upsample, region=region, layer=layer,
        )
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
        if scheme == "pooled" and statistic not in ("mean", "abs"):
            raise ValueError(f"scheme='pooled' redeals the image and its references: statistic must be 'mean' or 'abs', got {statistic!r}")
        check_positive_int(permutations, "permutations")
        check_seed(seed)
        self.scheme, self.permutations, self.seed = scheme, permutations, seed

    def evaluate(self, case: Case) -> MetricOutput:
        """p-values (N,), with a note for every NaN sample."""
        x, target = case.x, case.target.reshape(-1)
        reference = self._reference(case)
        values = torch.full((x.shape[0],), float("nan"), dtype=torch.float64)
        notes: list[str | None] = [None] * x.shape[0]
        for c in torch.unique(target).tolist():
            rows = (target == c).nonzero().squeeze(1)
            results = permutation_test(
                self._saliency(case.model, int(c), x), x[rows], x_ref=None if reference is None else reference[rows],
                threshold=self.threshold, statistic=self.statistic, normalize=self.normalize,
                inclusive=self.comparison == ">=", neighborhood=self.neighborhood, scheme=self.scheme, permutations=self.permutations, seed=self.seed,
            )
            for row, result in zip(rows.tolist(), results):
                values[row] = result.p_value
                notes[row] = result.reason
        return MetricOutput(values, None, notes)
