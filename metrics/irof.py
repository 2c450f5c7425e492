"""IROF: iterative removal of features, over superpixels (Rieger & Hansen 2020)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from salbench.core.validation import check_positive, check_positive_int
from salbench.metrics import register
from salbench.metrics.perturbation import check_fill, fill_input
from salbench.metrics.perturbed_scores import PerturbationMetric, checked_inputs
from salbench.metrics.segments import patch_segments, removal_scores, segment_relevance, superpixel_segments
from torch import Tensor, nn

__all__ = ["IROF"]


@register("irof")
class IROF(PerturbationMetric):
    """Area over the curve of the normalised class probability as superpixels are removed in order of mean relevance (Rieger & Hansen 2020).

    Rieger, Hansen, "IROF: a low resource evaluation metric for explanation methods",
    ICLR 2020 workshop (arXiv:2003.08747). Each image is segmented into S superpixels (SLIC,
    :func:`~salbench.metrics.segments.superpixel_segments`; a volume into SLIC supervoxels, an
    extension of the paper's images); segments are ranked by their mean
    relevance (the channel-summed attribution averaged over the segment), descending; x_k has
    the top k segments replaced by the fill (default: the image's per-channel mean). With the
    target probability p and y_k = p(x_k) / p(x), k = 0..S, on the axis t_k = k / S:

        IROF(x) = 1 − ∫_0^1 y dt   (trapezoidal rule)

    the area over the curve; higher is better (the score falls fast when relevant segments go).
    The paper averages it over images; here one value per image.

    Departures: Quantus's ``IROF`` integrates y_1..y_S with unit spacing and no y_0 and
    reports S − that area (not normalised to [0, 1]), and its "mean" fill is the mean over the
    whole batch of the already perturbed images at every step; with a numeric fill and the same
    segments its value is S − Σ_{k=1..S−1} (y_k + y_{k+1}) / 2 of the curve here (tests).
    ``segmentation="patches"`` (square patches of side ``patch``) needs no scikit-image. SLIC
    runs on the CPU, one image at a time.

    Args:
        segmentation: "slic" (scikit-image) or "patches".
        n_segments: SLIC's target number of segments (default 100, scikit-image's and Quantus's).
        compactness: SLIC's compactness (default 10, scikit-image's; for inputs in [0, 1]).
        patch: patch side for ``segmentation="patches"``.
        baseline: the fill: "mean" (per-sample per-channel mean, the paper's), a number,
            "blur" or "uniform" (seeded noise).
        blur_sigma: std in pixels of the "blur" fill.
        seed: seed of the "uniform" fill.
        batch_size: inputs per model call (None: by the size of a sample and the device).

    Example:
        >>> import torch
        >>> from salbench import metrics
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
        >>> x, attr = torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4)
        >>> metrics.get("irof", segmentation="patches", patch=2)(model, x, attr, 1).shape
        torch.Size([2])
    """

    higher_is_better = True
    modalities = ("image", "volume")

    def __init__(
        self,
        segmentation: Literal["slic", "patches"] = "slic",
        n_segments: int = 100,
        compactness: float = 10.0,
        patch: int = 8,
        baseline: float | Literal["mean", "blur", "uniform"] = "mean",
        blur_sigma: float = 5.0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if segmentation not in ("slic", "patches"):
            raise ValueError(f"segmentation must be 'slic' or 'patches', got {segmentation!r}")
        check_positive_int(n_segments, "n_segments")
        check_positive(compactness, "compactness")
        check_positive_int(patch, "patch")
        check_fill(baseline, blur_sigma)
        self.segmentation = segmentation
        self.n_segments = n_segments
        self.compactness = compactness
        self.patch = patch
        self.baseline = baseline
        self.blur_sigma = blur_sigma

    def evaluate_curve(self, model: nn.Module, x: Tensor, attr: Tensor, target: Tensor | int) -> tuple[Tensor, None]:
        """IROF (N,) and no curve (the curves of a batch differ in length: see :meth:`curve`)."""
        return self.curve(model, x, attr, target)[0], None

    def curve(self, model: nn.Module, x: Tensor, attr: Tensor, target: Tensor | int) -> tuple[Tensor, Tensor, Tensor]:
        """IROF (N,), the normalised curves y (N, S_max+1) and their axes t (N, S_max+1).

        A sample with S < S_max segments repeats its last point (t = 1, zero width)."""
        x, attr, target = checked_inputs(x, attr, target)
        if x.dim() not in (4, 5):
            raise ValueError(
                f"IROF needs images (N, C, H, W) or volumes (N, C, D, H, W), got shape {tuple(x.shape)}"
            )
        if self.segmentation == "slic":
            segments = superpixel_segments(x, self.n_segments, self.compactness)
        else:
            segments = patch_segments(x, self.patch)
        relevance, sizes = segment_relevance(attr, segments, "mean")
        n_used = (sizes > 0).sum(dim=1, keepdim=True)
        counts = torch.arange(relevance.shape[1] + 1, device=x.device).expand(len(x), -1).minimum(n_used)
        fill = fill_input(x, self.baseline, self.blur_sigma, self.seed)
        scores = removal_scores(
            model, x, fill, segments, relevance, counts, target, "probability", self.rows_per_call(x)
        )
        curve = scores / scores[:, :1]
        axis = counts.to(curve.dtype) / n_used
        return 1 - torch.trapezoid(curve, x=axis, dim=1), curve, axis
