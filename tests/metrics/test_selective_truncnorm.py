"""Truncated-normal tail probabilities against mpmath at 60 digits."""

from __future__ import annotations

import math

import mpmath
import pytest
import torch
from salbench.metrics.selective.truncated_normal import (
    log_normal_mass,
    log_truncated_normal_pvalue,
    ALTERNATIVES,
    log_normal_pvalue,
    truncated_normal_pvalue,
)

mpmath.mp.dps = 60
INF = float("inf")


def _mass(lower: float, upper: float) -> mpmath.mpf:
    if lower > 0:  # the upper tail, without cancelling against 1
        return mpmath.ncdf(-lower) - mpmath.ncdf(-upper)
    return mpmath.ncdf(upper) - mpmath.ncdf(lower)


def _reference_pvalue(z: float, intervals: list[tuple[float, float]]) -> mpmath.mpf:
    cut = abs(z)
    total = sum(_mass(l, u) for l, u in intervals)
    left = sum(_mass(l, min(u, -cut)) for l, u in intervals if l < -cut)
    right = sum(_mass(max(l, cut), u) for l, u in intervals if u > cut)
    return (left + right) / total


MASS_CASES = [
    (-INF, INF), (-1e-10, 1e-10), (1e-10, 2e-10), (-0.3, 0.9), (0.5, 0.75), (-0.9, -0.2), (-1.5, -0.5),
    (2.0, 2.0 + 1e-6), (-30.0, -30.0 + 1e-6), (5.0, 6.0), (-6.0, -5.0), (30.0, INF), (-INF, -37.0),
    (36.9, 37.1), (-38.5, -38.0),
    (-INF, 0.0), (0.0, INF), (-2.0, 40.0), (1.0, INF), (-1.0, 1.0),
]  # fmt: skip


@pytest.mark.parametrize("lower,upper", MASS_CASES)
def test_log_mass_matches_mpmath(lower, upper):
    got = float(log_normal_mass(torch.tensor([lower], dtype=torch.float64), torch.tensor([upper], dtype=torch.float64)))
    want = float(mpmath.log(_mass(lower, upper)))
    assert got == pytest.approx(want, rel=1e-12, abs=1e-8)  # mass to 1e-8 relative


def test_narrow_interval_keeps_the_stated_accuracy():
    """Width 1e-9 at 2: the difference of two CDFs keeps ~1e-7 relative accuracy (documented)."""
    lower, upper = 2.0, 2.0 + 1e-9
    got = float(log_normal_mass(torch.tensor([lower], dtype=torch.float64), torch.tensor([upper], dtype=torch.float64)))
    assert math.exp(got) == pytest.approx(float(_mass(lower, upper)), rel=1e-6)


PVALUE_CASES = [
    (0.3, [(-INF, INF)]),
    (1.96, [(-INF, INF)]),
    (2.5, [(2.0, 10.0)]),
    (-2.5, [(-3.0, -1.0), (0.5, 4.0)]),
    (4.0, [(-INF, -6.0), (3.9, 4.1), (5.0, 9.0)]),
    (12.0, [(11.5, 13.0)]),
    (20.0, [(-25.0, -19.0), (19.5, 30.0)]),
    (30.0, [(-INF, INF)]),
    (37.0, [(-47.0, 47.0)]),  # 2Φ(−37) ≈ 1.1e-299
    (37.0, [(36.0, 37.5)]),
    (37.0, [(-1.0, 1.0), (36.99, 38.0)]),
    (38.0, [(-48.0, 48.0)]),  # ≈ 5.8e-316: subnormal, still not 0
    (0.0, [(-0.1, 0.1)]),
    (1e-9, [(-1e-8, 2e-8)]),
]


@pytest.mark.parametrize("z,intervals", PVALUE_CASES)
def test_pvalue_matches_mpmath_in_the_tails(z, intervals):
    iv = torch.tensor(intervals, dtype=torch.float64)
    owner = torch.zeros(len(intervals), dtype=torch.long)
    zt = torch.tensor([z], dtype=torch.float64)
    want = _reference_pvalue(z, intervals)
    log_p = float(log_truncated_normal_pvalue(zt, iv, owner))
    assert log_p == pytest.approx(float(mpmath.log(want)), rel=1e-9, abs=1e-12)
    p = float(truncated_normal_pvalue(zt, iv, owner))
    assert p > 0.0
    assert p == pytest.approx(float(want), rel=1e-6 if p > 1e-307 else 1e-4)


def test_batched_tests_equal_separate_ones():
    zs = [c[0] for c in PVALUE_CASES]
    rows = [(k, iv) for k, (_, ivs) in enumerate(PVALUE_CASES) for iv in ivs]
    owner = torch.tensor([k for k, _ in rows])
    intervals = torch.tensor([iv for _, iv in rows], dtype=torch.float64)
    batched = log_truncated_normal_pvalue(torch.tensor(zs, dtype=torch.float64), intervals, owner)
    for k, (z, ivs) in enumerate(PVALUE_CASES):
        one, iv = torch.tensor([z], dtype=torch.float64), torch.tensor(ivs, dtype=torch.float64)
        single = log_truncated_normal_pvalue(one, iv, torch.zeros(len(ivs), dtype=torch.long))
        assert float(batched[k]) == float(single[0])


@pytest.mark.parametrize("z", [0.0, 1.0, 5.0, 20.0, 37.0, 38.5])
def test_untruncated_pvalue(z):
    got = float(log_normal_pvalue(torch.tensor([z], dtype=torch.float64)))
    want = float(mpmath.log(2 * mpmath.ncdf(-z))) if z > 0 else 0.0
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert math.exp(got) > 0.0


def _reference_cdf(z: float, intervals: list[tuple[float, float]]) -> tuple[mpmath.mpf, mpmath.mpf]:
    """(F, 1 − F) of the truncated normal at z, each summed from its own side (no cancellation)."""
    total = sum(_mass(l, u) for l, u in intervals)
    below = sum(_mass(l, min(u, z)) for l, u in intervals if l < z)
    above = sum(_mass(max(l, z), u) for l, u in intervals if u > z)
    return below / total, above / total


@pytest.mark.parametrize("z,intervals", PVALUE_CASES)
def test_every_alternative_matches_mpmath(z, intervals):
    """2·min(F, 1 − F) (sicore / si4onnx), 1 − F and F against mpmath at 60 digits, tails included."""
    below, above = _reference_cdf(z, intervals)
    want = {
        "abs": _reference_pvalue(z, intervals),
        "two-sided": min(2 * min(below, above), mpmath.mpf(1)),
        "greater": above,
        "less": below,
    }
    iv = torch.tensor(intervals, dtype=torch.float64)
    owner = torch.zeros(len(intervals), dtype=torch.long)
    for alternative in ALTERNATIVES:
        got = float(log_truncated_normal_pvalue(torch.tensor([z], dtype=torch.float64), iv, owner, alternative))
        assert got == pytest.approx(float(mpmath.log(want[alternative])), rel=1e-9, abs=1e-12), alternative


def test_conventions_differ_on_an_asymmetric_set_and_agree_on_a_symmetric_one():
    """The module docstring's example worked by hand: 𝒵 = [−1, 3], z = 1.5."""
    z = torch.tensor([1.5], dtype=torch.float64)
    owner = torch.zeros(1, dtype=torch.long)
    asym = torch.tensor([[-1.0, 3.0]], dtype=torch.float64)
    tail = float(mpmath.ncdf(3.0) - mpmath.ncdf(1.5)) / float(mpmath.ncdf(3.0) - mpmath.ncdf(-1.0))
    assert float(truncated_normal_pvalue(z, asym, owner, "abs")) == pytest.approx(tail, rel=1e-12)
    assert float(truncated_normal_pvalue(z, asym, owner, "two-sided")) == pytest.approx(2 * tail, rel=1e-12)
    sym = torch.tensor([[-3.0, 3.0]], dtype=torch.float64)
    assert float(truncated_normal_pvalue(z, sym, owner, "abs")) == pytest.approx(
        float(truncated_normal_pvalue(z, sym, owner, "two-sided")), rel=1e-12
    )


def test_one_sided_pvalues_add_to_one():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(50, generator=gen, dtype=torch.float64) * 3
    iv = torch.stack([z - torch.rand(50, generator=gen, dtype=torch.float64) * 4, z + torch.rand(50, generator=gen, dtype=torch.float64) * 4], 1)
    owner = torch.arange(50)
    total = truncated_normal_pvalue(z, iv, owner, "greater") + truncated_normal_pvalue(z, iv, owner, "less")
    torch.testing.assert_close(total, torch.ones(50, dtype=torch.float64), rtol=0, atol=1e-12)


def test_unknown_alternative_names_the_allowed_ones():
    iv = torch.tensor([[-1.0, 1.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"alternative must be one of \('abs', 'two-sided', 'greater', 'less'\), got 'both'"):
        log_truncated_normal_pvalue(torch.zeros(1, dtype=torch.float64), iv, torch.zeros(1, dtype=torch.long), "both")
