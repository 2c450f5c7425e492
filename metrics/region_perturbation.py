"""Region perturbation, MoRF, and its AOPC (Samek et al. 2017)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from salbench.core.applicability import SPATIAL
from salbench.core.validation import check_positive_int
from salbench.metrics import register
from salbench.metrics.perturbation import check_fill, fill_input
from salbench.metrics.perturbed_scores import PerturbationMetric, check_output, checked_inputs
from salbench.metrics.segments import patch_segments, removal_scores, segment_relevance
from torch import Tensor, nn

__all__ = ["RegionPerturbation"]


@register("region_perturbation")
class RegionPerturbation(PerturbationMetric):
    """AOPC of the MoRF region-perturbation curve: mean drop of the target score as the most relevant patches are replaced (Samek et al. 2017).

    Samek, Binder, Montavon, Lapuschkin, Müller, "Evaluating the Visualization of What a Deep
    Neural Network Has Learned", IEEE TNNLS 28(11), 2017 (region perturbation, MoRF, AOPC):

        x^0 = x,  x^k = g(x^{k−1}, r_k),   AOPC = 1/(L+1) Σ_{k=0..L} ( f(x^0) − f(x^k) )

    The spatial dimensions are tiled by non-overlapping patches of side ``region`` from the
    origin (:func:`~salbench.metrics.segments.patch_segments`; images, volumes, signals), ranked
    by the sum of the attribution over the patch (and channels), descending; x^k has the top k
    patches replaced by the fill, L = min(``n_regions``, number of patches). f is the target's
    softmax probability (default) or logit. Higher is better. ``evaluate`` returns AOPC and the
    curve f(x^0) − f(x^k), k = 0..L, (N, L+1).

    Departures: the paper ranks overlapping 9×9 regions around the most relevant pixels and
    samples each region's replacement uniformly; here the regions are a non-overlapping grid
    (as Quantus's ``RegionPerturbation``, which pads the image to a multiple of the patch with
    the padding split on both sides, so its grid is offset where ``region`` does not divide the
    size; where it does, the curves agree, tests) and the fill is one noise image per sample.
    Quantus's default fill "black" is the minimum over the whole batch; the paper's is uniform
    noise, the default here.

    Args:
        region: patch side in positions (default 8, Quantus's ``patch_size``; the paper uses 9).
        n_regions: L, patches removed (default 100, Quantus's ``regions_evaluation``).
        baseline: "uniform" (U[0, 1) noise, seeded per sample), a number, "mean" or "blur".
        blur_sigma: std in pixels of the "blur" baseline.
        output: "probability" or "logit".
        seed: seed of the uniform fill.
        batch_size: inputs per model call (None: by the size of a sample and the device).

    Example:
        >>> import torch
        >>> from salbench import metrics
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
        >>> x, attr = torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4)
        >>> aopc, curve = metrics.get("region_perturbation", region=2, baseline=0.0).evaluate_curve(model, x, attr, 0)
        >>> aopc.shape, curve.shape, curve[:, 0].tolist()
        (torch.Size([2]), torch.Size([2, 5]), [0.0, 0.0])
    """

    higher_is_better = True
    modalities = SPATIAL
    test_params = {"region": 2, "n_regions": 6}

    def __init__(
        self,
        region: int = 8,
        n_regions: int = 100,
        baseline: float | Literal["uniform", "blur", "mean"] = "uniform",
        blur_sigma: float = 5.0,
        output: Literal["probability", "logit"] = "probability",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        check_positive_int(region, "region")
        check_positive_int(n_regions, "n_regions")
        check_fill(baseline, blur_sigma)
        check_output(output)
        self.region = region
        self.n_regions = n_regions
        self.baseline = baseline
        self.blur_sigma = blur_sigma
        self.output = output

    curve_axis = "regions replaced"

    def evaluate_curve(self, model: nn.Module, x: Tensor, attr: Tensor, target: Tensor | int) -> tuple[Tensor, Tensor]:
        """AOPC (N,) and the curve of drops f(x^0) − f(x^k), k = 0..L, (N, L+1)."""
        x, attr, target = checked_inputs(x, attr, target, min_dim=3)
        segments = patch_segments(x, self.region)
        relevance, _ = segment_relevance(attr, segments, "sum")
        n_steps = min(self.n_regions, relevance.shape[1])
        counts = torch.arange(n_steps + 1, device=x.device).expand(len(x), -1)
        fill = fill_input(x, self.baseline, self.blur_sigma, self.seed)
        scores = removal_scores(model, x, fill, segments, relevance, counts, target, self.output, self.rows_per_call(x))
        curve = scores[:, :1] - scores
        return curve.mean(dim=1), curve
