"""The selective p-value of a model's CAM region as a grid metric (Miwa, Duy, Takeuchi, ICLR 2023)."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
from salbench.core.applicability import ByParameter
from salbench.core.validation import check_positive, check_positive_int
from salbench.explainers.layers import last_spatial_output
from salbench.metrics import register
from salbench.metrics.base import Case, Metric, MetricOutput
from salbench.metrics.selective import ALTERNATIVES, cam_saliency, gradcam_saliency, salient_region_test
from torch import Tensor, nn

__all__ = ["SelectivePValue"]

_STATISTICS = ("back", "neighbor", "mean", "abs")
_MODES = ("parametric", "oc")
_UPSAMPLE = ("bilinear", "nearest")
_REGIONS = ("cam", "gradcam")
_COMPARISONS = (">", ">=")


@register("selective_pvalue")
class SelectivePValue(Metric):
    """Selective p-values of the CAM or Grad-CAM salient region, with the naive and Bonferroni baselines.

    Miwa, Duy, Takeuchi, "Valid P-Value for Deep Learning-driven Salient Region", ICLR 2023
    (authors' code: takeuchi-lab/selective_inference_dnn_salient_region). For each sample x
    with target class c the region is S(x) = {i : CAM_c(x)_i > threshold}, or
    {i : CAM_c(x)_i >= threshold} with ``comparison=">="`` (after min-max normalisation if
    ``normalize``), and the test of T = ηᵀY ("back": mean over S minus mean
    over the complement; "neighbor": minus the mean over the pixels within ``neighborhood`` of S;
    "mean": mean over S of x − x_ref; "abs": mean over S of |x − x_ref|)
    conditions on the selection: see :func:`salbench.metrics.selective.salient_region_test`, which this
    metric calls with ``on_invalid="record"``.

    Outputs, one stored metric each (``selective_pvalue.<output>``): ``selective`` (the p-value
    of ``mode``: parametric, the exact homotopy, or oc, over-conditioning), ``oc``,
    ``naive`` (2Φ(−|z|), ignoring the selection) and ``bonferroni`` (naive × the number of
    possible regions, capped at 1). All follow ``alternative`` (default "abs", the two-sided
    P(|Z| >= |z| | 𝒵) of Miwa et al.'s code; "two-sided" is sicore's 2·min(F, 1 − F)): lower means stronger evidence,
    and the leaderboard shows the rejection rate at ``alpha`` (false positive rate on null
    data, power on signal data).

    The region is that of the model's own saliency map for the target class, upsampled with
    ``upsample``: with ``region="cam"`` its class activation map (:func:`cam_saliency`,
    bias-free), so the model must end in global average pooling and one linear layer (it
    requires ``gap_head``); with ``region="gradcam"`` its Grad-CAM map at ``layer``
    (:func:`gradcam_saliency`; ``"auto"`` = the last submodule whose output is a feature map, as
    the ``gradcam`` explainer picks it), so the model needs a convolution (it requires
    ``conv``). The requirement is declared by parameter
    (:class:`~salbench.core.applicability.ByParameter`). The model's layers must be ones the
    line propagation supports. The cell's explainer and its attribution are not used
    (``uses_explainer = False``: the grid runs it once per model and seed, without an
    explainer). "mean" and "abs"
    need the data set's reference images (``Case.reference``, (N, m, C, H, W); the mean of the
    m is used). A sample without a valid region (empty, or for "back" the whole image) gets NaN
    in every output and the reason as its note.

    Departures: as in :mod:`salbench.metrics.selective.region_test` (by default the region
    {> τ}; the authors' code, takeuchi-lab/selective_inference_dnn_salient_region, selects
    {>= τ}: ``comparison=">="``, which on a ReLU CAM with τ = 0 adds the pixels where every
    feature is dead; the reference variance in the naive test). ``alpha`` does not change the p-values; it is
    recorded with them for the leaderboard.

    Args:
        statistic: "back", "neighbor", "mean" or "abs".
        neighborhood: the Chebyshev radius of the neighbourhood for "neighbor", >= 1.
        alternative: "abs", "two-sided", "greater" or "less" (see
            :mod:`salbench.metrics.selective.truncated_normal`).
        mode: "parametric" or "oc": which p-value the ``selective`` output holds.
        threshold: τ on the (optionally normalised) CAM; Miwa et al. use 0 on the raw map.
        normalize: min-max normalise each map before thresholding.
        comparison: ">" (the region is {CAM > threshold}) or ">=" ({CAM >= threshold}, the
            authors' code's rule).
        alpha: significance level of the reported rejection rate, in (0, 1).
        sigma2: the known noise variance σ² > 0.
        upsample: "bilinear" or "nearest" interpolation of the map to the input size.
        region: "cam" (class activation map) or "gradcam" (Grad-CAM map).
        layer: for "gradcam", the submodule whose output Grad-CAM weighs, or "auto"; must be
            "auto" for "cam" (which always uses the features before the pooled head).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from salbench.metrics.base import Case
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(2, 2)).double()
        >>> x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
        >>> case = Case(model=net, explainer=None, x=x, target=torch.tensor([0, 1, 1]), attr=x,
        ...             reference=torch.randn(3, 1, 1, 8, 8, dtype=torch.float64))
        >>> SelectivePValue(statistic="mean").evaluate(case).values.shape
        torch.Size([3, 4])
    """

    category: ClassVar[str] = "significance"
    higher_is_better: ClassVar[bool] = False
    outputs: ClassVar[tuple[str, ...]] = ("selective", "oc", "naive", "bonferroni")
    modalities = ("image",)
    requires = ByParameter("region", {"cam": ("gap_head",), "gradcam": ("conv",)})
    uses_explainer = False

    def __init__(
        self,
        statistic: Literal["back", "neighbor", "mean", "abs"] = "mean",
        mode: Literal["parametric", "oc"] = "parametric",
        alternative: Literal["abs", "two-sided", "greater", "less"] = "abs",
        neighborhood: int = 1,
        threshold: float = 0.0,
        normalize: bool = False,
        comparison: Literal[">", ">="] = ">",
        alpha: float = 0.05,
        sigma2: float = 1.0,
        upsample: Literal["bilinear", "nearest"] = "bilinear",
        region: Literal["cam", "gradcam"] = "cam",
        layer: str = "auto",
    ):
        if statistic not in _STATISTICS:
            raise ValueError(f"statistic must be one of {_STATISTICS}, got {statistic!r}")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if alternative not in ALTERNATIVES:
            raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
        check_positive_int(neighborhood, "neighborhood")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number, got {threshold!r}")
        if not isinstance(normalize, bool):
            raise TypeError(f"normalize must be a bool, got {type(normalize).__name__}")
        if comparison not in _COMPARISONS:
            raise ValueError(f"comparison must be one of {_COMPARISONS}, got {comparison!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
        check_positive(sigma2, "sigma2")
        if upsample not in _UPSAMPLE:
            raise ValueError(f"upsample must be one of {_UPSAMPLE}, got {upsample!r}")
        if region not in _REGIONS:
            raise ValueError(f"region must be one of {_REGIONS}, got {region!r}")
        if not isinstance(layer, str) or not layer:
            raise ValueError(f"layer must be a submodule name or 'auto', got {layer!r}")
        if region == "cam" and layer != "auto":
            raise ValueError(f"layer applies to region='gradcam' only (CAM uses the features before the pooled head); got layer={layer!r}")
        self.region, self.layer, self.comparison = region, layer, comparison
        self.statistic, self.mode, self.threshold, self.normalize = statistic, mode, float(threshold), normalize
        self.alpha, self.sigma2, self.upsample = float(alpha), float(sigma2), upsample
        self.alternative, self.neighborhood = alternative, neighborhood

    def evaluate(self, case: Case) -> MetricOutput:
        """p-values (N, 4) in the order of :attr:`outputs`, with a note for every NaN sample."""
        x, target = case.x, case.target.reshape(-1)
        reference = self._reference(case)
        values = torch.full((x.shape[0], len(self.outputs)), float("nan"), dtype=torch.float64)
        notes: list[str | None] = [None] * x.shape[0]
        for c in torch.unique(target).tolist():
            rows = (target == c).nonzero().squeeze(1)
            saliency = self._saliency(case.model, int(c), x)
            results = salient_region_test(
                saliency, x[rows], x_ref=None if reference is None else reference[rows],
                threshold=self.threshold, statistic=self.statistic, normalize=self.normalize,
                inclusive=self.comparison == ">=", sigma2=self.sigma2, mode=self.mode, alternative=self.alternative, neighborhood=self.neighborhood,
                on_invalid="record",
            )
            for row, result in zip(rows.tolist(), results):
                values[row] = torch.tensor(
                    [result.p_value, result.oc_p_value, result.naive_p_value, result.bonferroni_p_value],
                    dtype=torch.float64,
                )
                notes[row] = result.reason
        return MetricOutput(values, None, notes)

    def _saliency(self, model: nn.Module, target: int, x: Tensor) -> nn.Module:
        """The network mapping inputs to the tested map of class ``target``."""
        shape = tuple(x.shape[1:])
        if self.region == "cam":
            return cam_saliency(model, target, shape, upsample=self.upsample)
        layer = self.layer
        if layer == "auto":
            probe = x[:1].to(next(model.parameters()).dtype)
            with torch.no_grad():
                layer = last_spatial_output(model, probe)[0]
        return gradcam_saliency(model, target, shape, layer, upsample=self.upsample)

    def _reference(self, case: Case) -> Tensor | None:
        if self.statistic in ("back", "neighbor"):
            return None
        if case.reference is None:
            raise ValueError(
                f"selective_pvalue with statistic={self.statistic!r} compares each sample with reference images, "
                "but the data set has none (Case.reference is None); use a data set with references "
                "(e.g. synthetic_blocks with references >= 1) or statistic='back'"
            )
        return case.reference
