"""Permutation baselines (the authors' permutation1 / permutation2): invariants, validity on null
images, power on a planted block, batch invariance and argument checks."""

from __future__ import annotations

import pytest
import torch
from salbench.metrics.selective import cam_saliency
from salbench.metrics.selective.permutation import permutation_test
from scipy import stats
from torch import nn


def _pointwise() -> nn.Module:
    """score = x (a 1×1 convolution with weight 1): the region moves with its pixels."""
    net = nn.Conv2d(1, 1, 1).double()
    with torch.no_grad():
        net.weight.fill_(1.0)
        net.bias.zero_()
    return net


def _cam() -> nn.Module:
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 3, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2)).double()  # fmt: skip
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).abs())
    return cam_saliency(net.eval(), 1, (1, 8, 8))


@pytest.mark.parametrize("scheme,statistic", [("pixels", "mean"), ("pixels", "abs")])
def test_a_pointwise_map_gives_p_one_under_pixel_permutations(scheme, statistic):
    """With score = x the region is {x > 0} wherever its pixels go, so T never changes: p = 1."""
    g = torch.Generator().manual_seed(1)
    x, ref = torch.randn(2, 3, 1, 8, 8, generator=g, dtype=torch.float64)
    results = permutation_test(_pointwise(), x, x_ref=ref, threshold=0.0, statistic=statistic, scheme=scheme, permutations=30)
    assert all(r.p_value == 1.0 and r.valid_permutations == 30 for r in results)


@pytest.mark.parametrize("scheme,statistic", [("pixels", "back"), ("pixels", "mean"), ("pooled", "mean")])
def test_null_images_reject_at_most_at_the_level(scheme, statistic):
    """300 null images, B = 99: the rejection rate at α = 0.05 stays inside the 99% binomial interval of 0.05."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(300, 1, 8, 8, generator=g, dtype=torch.float64)
    ref = torch.randn(300, 1, 8, 8, generator=g, dtype=torch.float64) if statistic != "back" else None
    results = permutation_test(_cam(), x, x_ref=ref, threshold=0.5, normalize=True, statistic=statistic, scheme=scheme, permutations=99)
    p = torch.tensor([r.p_value for r in results if r.reason is None])
    assert p.numel() >= 290
    high = stats.binom.ppf(0.995, p.numel(), 0.05)
    assert int((p <= 0.05).sum()) <= high


def test_a_planted_block_is_found_by_a_smoothing_map():
    """A 3×3 CAM keeps a bright block together; permuted, the block's pixels scatter and the region
    they fall in averages them away, so the observed T is extreme."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64)
    x[:, :, 2:5, 2:5] += 3.0
    results = permutation_test(_cam(), x, threshold=0.5, normalize=True, statistic="back", permutations=99)
    assert all(r.p_value <= 0.05 for r in results), [r.p_value for r in results]


def test_values_do_not_depend_on_the_batch():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 1, 8, 8, generator=g, dtype=torch.float64)
    together = permutation_test(_cam(), x, threshold=0.5, normalize=True, permutations=40, seed=7)
    alone = permutation_test(_cam(), x[2:], threshold=0.5, normalize=True, permutations=40, seed=7)
    assert together[2] == alone[0]
    other_seed = permutation_test(_cam(), x[2:], threshold=0.5, normalize=True, permutations=40, seed=8)
    assert other_seed[0].statistic == alone[0].statistic


def test_arguments_are_checked():
    x = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="scheme='pooled' .* needs statistic 'mean' or 'abs'"):
        permutation_test(_pointwise(), x, threshold=0.0, scheme="pooled")
    with pytest.raises(ValueError, match="scheme must be one of"):
        permutation_test(_pointwise(), x, threshold=0.0, scheme="rows")
    with pytest.raises(ValueError, match="permutations"):
        permutation_test(_pointwise(), x, threshold=0.0, permutations=0)
    (empty,) = permutation_test(_pointwise(), x - 1.0, threshold=0.0)
    assert empty.reason is not None and "empty" in empty.reason and empty.valid_permutations == 0


def _relu_pointwise() -> nn.Module:
    """score = ReLU(x): exactly 0 on every non-positive pixel."""
    return nn.Sequential(_pointwise(), nn.ReLU())


def test_the_inclusive_rule_selects_the_pixels_at_the_threshold():
    """score = ReLU(x), τ = 0: ">" selects {x > 0}, ">=" every pixel, so T is the mean of x − r over all."""
    g = torch.Generator().manual_seed(4)
    x, ref = torch.randn(2, 2, 1, 8, 8, generator=g, dtype=torch.float64)
    strict = permutation_test(_relu_pointwise(), x, x_ref=ref, threshold=0.0, statistic="mean", permutations=5)
    inclusive = permutation_test(
        _relu_pointwise(), x, x_ref=ref, threshold=0.0, statistic="mean", permutations=5, inclusive=True
    )
    diff = (x - ref).flatten(1)
    everywhere = diff.mean(1)
    positive = torch.stack([d[v > 0].mean() for d, v in zip(diff, x.flatten(1))])
    assert [r.statistic for r in inclusive] == pytest.approx(everywhere.tolist(), rel=1e-12)
    assert [r.statistic for r in strict] == pytest.approx(positive.tolist(), rel=1e-12)


@pytest.mark.parametrize("metric", ["selective_pvalue", "permutation_pvalue"])
def test_the_metrics_pass_the_comparison_through_and_check_it(metric):
    from salbench.metrics import get as get_metric
    from salbench.metrics.base import Case
    from salbench.metrics.selective import salient_region_test

    g = torch.Generator().manual_seed(5)
    classifier = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2)).double()
    with torch.no_grad():
        for p in classifier.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
        classifier[0].bias.sub_(0.8)  # dead features: the CAM is exactly 0 on many pixels
    x, ref = torch.randn(2, 3, 1, 8, 8, generator=g, dtype=torch.float64)
    case = Case(model=classifier.eval(), explainer=None, x=x, target=torch.ones(3, dtype=torch.long), attr=None, reference=ref.unsqueeze(1))
    params = {"statistic": "mean"} | ({"permutations": 9} if metric == "permutation_pvalue" else {})
    values = {c: get_metric(metric, comparison=c, **params).evaluate(case).values for c in (">", ">=")}
    assert not torch.equal(values[">"].nan_to_num(-1), values[">="].nan_to_num(-1))
    if metric == "selective_pvalue":
        direct = salient_region_test(cam_saliency(classifier, 1, (1, 8, 8)), x, x_ref=ref, threshold=0.0, statistic="mean", inclusive=True, on_invalid="record")
        assert values[">="][:, 0].tolist() == pytest.approx([r.p_value for r in direct], nan_ok=True)
    with pytest.raises(ValueError, match="comparison"):
        get_metric(metric, comparison="=>")
