"""Selective p-values are uniform on null images; the naive z-test is not.

A CAM of the paper's CNN shape (conv-conv-maxpool-conv-conv-upsample-GAP-linear, 4 channels)
with fixed non-negative 1×1 kernels and negative biases, so that the map rises with the
image's intensity and the selected region is biased towards high values — the situation in
which the naive test is anti-conservative. Images X ~ N(0, I), references ~ N(0, I): every
hypothesis tested is null. Checks: the KS test of uniformity of the parametric and OC
p-values (p > 0.01) and the false-positive rate at α = 0.05 inside the 99% binomial interval
of Binomial(N, 0.05); the naive test's rate above that interval ("visibly inflated").
"""

from __future__ import annotations

import pytest
import torch
from salbench.metrics.selective import cam_saliency, salient_region_test, truncated_normal_pvalue
from scipy import stats
from torch import nn

ALPHA = 0.05




def _cam_model(seed: int = 0) -> nn.Module:
    c = 4
    net = nn.Sequential(
        nn.Conv2d(1, c, 1), nn.ReLU(), nn.Conv2d(c, c, 1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c, c, 1), nn.ReLU(), nn.Conv2d(c, c, 1), nn.ReLU(), nn.Upsample(scale_factor=2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 2),
    ).double()  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            scale = 1.0 if name.endswith("weight") else -0.3
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).abs() * scale)
    return cam_saliency(net.eval(), 1, (1, 8, 8))


def _null_pvalues(
    n: int, statistic: str, normalize: bool, threshold: float, seed: int, alternative: str = "abs"
) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g, dtype=torch.float64)
    ref = torch.randn(n, 1, 8, 8, generator=g, dtype=torch.float64) if statistic in ("mean", "abs") else None
    results = salient_region_test(
        _cam_model(), x, x_ref=ref, threshold=threshold, statistic=statistic, normalize=normalize,
        alternative=alternative, on_invalid="record",
    )
    valid = [r for r in results if r.reason is None]
    assert len(valid) >= 0.9 * n
    return {
        "parametric": torch.tensor([r.p_value for r in valid], dtype=torch.float64),
        "oc": torch.tensor([r.oc_p_value for r in valid], dtype=torch.float64),
        "naive": torch.tensor([r.naive_p_value for r in valid], dtype=torch.float64),
        "bonferroni": torch.tensor([r.bonferroni_p_value for r in valid], dtype=torch.float64),
    }


def _check(p: dict[str, torch.Tensor], naive_inflated: bool) -> None:
    n = p["parametric"].numel()
    low, high = stats.binom.ppf(0.005, n, ALPHA), stats.binom.ppf(0.995, n, ALPHA)
    for mode in ("parametric", "oc"):
        assert stats.kstest(p[mode].numpy(), "uniform").pvalue > 0.01, f"{mode} p-values are not uniform"
        rejections = int((p[mode] <= ALPHA).sum())
        assert low <= rejections <= high, f"{mode}: {rejections}/{n} rejections, 99% interval [{low}, {high}]"
    if naive_inflated:
        assert int((p["naive"] <= ALPHA).sum()) > high, "the naive test should be anti-conservative here"
    assert int((p["bonferroni"] <= ALPHA).sum()) <= high


@pytest.mark.parametrize("statistic", ["mean", "abs", "neighbor"])
def test_null_pvalues_are_uniform(statistic):
    _check(_null_pvalues(200, statistic, normalize=True, threshold=0.5, seed=1), naive_inflated=True)


@pytest.mark.parametrize("alternative", ["two-sided", "greater"])
def test_every_convention_is_uniform_on_null_images(alternative):
    """sicore's 2·min(F, 1 − F) and the one-sided p-values, from the same truncation sets."""
    _check(_null_pvalues(200, "mean", normalize=True, threshold=0.5, seed=1, alternative=alternative), naive_inflated=False)


def test_conventions_share_one_truncation_set():
    g = torch.Generator().manual_seed(3)
    x, ref = torch.randn(2, 6, 1, 8, 8, generator=g, dtype=torch.float64)
    runs = {
        a: salient_region_test(_cam_model(), x, x_ref=ref, threshold=0.5, statistic="mean", normalize=True, alternative=a)
        for a in ("abs", "two-sided", "greater", "less")
    }
    for k in range(6):
        base = runs["abs"][k]
        owner = torch.zeros(base.intervals.shape[0], dtype=torch.long)
        z = torch.tensor([base.z], dtype=torch.float64)
        for alternative, results in runs.items():
            assert torch.equal(results[k].intervals, base.intervals) and results[k].z == base.z
            want = float(truncated_normal_pvalue(z, base.intervals, owner, alternative))
            assert results[k].p_value == pytest.approx(want, rel=1e-12, abs=1e-300)
        assert runs["greater"][k].p_value + runs["less"][k].p_value == pytest.approx(1.0, abs=1e-12)
        assert runs["two-sided"][k].p_value == pytest.approx(2 * min(runs["greater"][k].p_value, runs["less"][k].p_value))
        assert runs["two-sided"][k].naive_p_value == pytest.approx(base.naive_p_value, rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize(
    "statistic,normalize,threshold,naive_inflated",
    [("mean", True, 0.5, True), ("abs", True, 0.5, True), ("back", True, 0.5, True), ("mean", False, 100.0, True)],
)
def test_null_pvalues_are_uniform_long(statistic, normalize, threshold, naive_inflated):
    _check(_null_pvalues(600, statistic, normalize, threshold, seed=2), naive_inflated)
