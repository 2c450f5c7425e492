"""Selective inference for salient regions of piecewise-linear networks (Miwa et al., ICLR 2023).

``salient_region_test(saliency_model, x, threshold=..., statistic=...)`` returns, per image, a
p-value for the region {score > threshold} of the saliency map that stays valid although the
region was chosen by looking at the same data. See :mod:`salbench.metrics.selective.region_test`.
"""

from salbench.metrics.selective.permutation import PermutationResult, permutation_test
from salbench.metrics.selective.piecewise import LinePropagator, UnsupportedModuleError
from salbench.metrics.selective.region_test import (
    RegionTestResult,
    ScanDiagnostics,
    salient_region_test,
)
from salbench.metrics.selective.saliency import cam_saliency, gradcam_saliency
from salbench.metrics.selective.truncated_normal import (
    ALTERNATIVES,
    log_truncated_normal_pvalue,
    truncated_normal_pvalue,
)

__all__ = [
    "salient_region_test",
    "RegionTestResult",
    "ScanDiagnostics",
    "LinePropagator",
    "UnsupportedModuleError",
    "cam_saliency",
    "gradcam_saliency",
    "permutation_test",
    "PermutationResult",
    "truncated_normal_pvalue",
    "log_truncated_normal_pvalue",
    "ALTERNATIVES",
]
