"""The truncation sets of salient_region_test against a brute-force scan of the line.

The arbiter of correctness: an independent construction of the conditioning line
Y(z) = q + b·σ_T·z, a plain forward pass of the saliency network at 20001 grid points, the
region (and, for "abs", the signs of X − R on the region) recomputed at each, and the
comparison with the returned intervals: they must agree at every grid point except within
one grid step of an interval end, and every interval end inside the range must be a change
of the brute-force truth (no spurious splits). Every supported layer type, every statistic,
with and without min-max normalisation.
"""

from __future__ import annotations

import pytest
import torch
from salbench.metrics.selective import LinePropagator, cam_saliency, salient_region_test
from torch import nn

GRID = 20001




def _randomize(net: nn.Module, seed: int, scale: float = 0.6) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * scale)
        for m in net.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g, dtype=torch.float64) * 0.3)
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g, dtype=torch.float64))
    return net.eval()


def conv_variants() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
        nn.Conv2d(3, 4, 3, padding=2, dilation=2), nn.LeakyReLU(0.1),
        nn.Conv2d(4, 4, 3, padding="same", groups=2, padding_mode="circular"), nn.ReLU(),
        nn.Conv2d(4, 2, 3, stride=2, padding=1), nn.ReLU(),
        nn.Upsample(size=(8, 8), mode="bilinear"), nn.Conv2d(2, 1, 1),
    )  # fmt: skip


def pools() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),  # 8 -> 5 (ceil)
        nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2, stride=1, dilation=2),  # 5 -> 3
        nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=False),  # 3 -> 4
        nn.Conv2d(4, 3, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(3),
        nn.UpsamplingNearest2d(size=(8, 8)), nn.Conv2d(3, 1, 3, padding=1),
    )  # fmt: skip


def dense() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.Identity(),
        nn.Flatten(), nn.Linear(128, 24), nn.BatchNorm1d(24), nn.LeakyReLU(0.2), nn.Dropout(0.5),
        nn.Linear(24, 64), nn.Unflatten(1, (1, 8, 8)),
    )  # fmt: skip


def cam() -> nn.Module:
    classifier = nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()),
        nn.MaxPool2d(2),
        nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()),
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2),
    )  # fmt: skip
    return cam_saliency(_randomize(classifier, 5).double(), 1, (1, 8, 8))


def cam_upsampled() -> nn.Module:
    classifier = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1), nn.Sigmoid(),
    )  # fmt: skip
    return cam_saliency(_randomize(classifier, 6).double(), 0, (1, 8, 8), upsample="nearest")


def sigmoid_head() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 1, 3, padding=1), nn.Sigmoid())


NETWORKS = {  # builder, input channels, weight seed
    "conv_variants": (conv_variants, 2, 1),
    "pools": (pools, 1, 2),
    "dense": (dense, 1, 3),
    "cam": (cam, 1, None),
    "cam_upsampled": (cam_upsampled, 1, None),
    "sigmoid_head": (sigmoid_head, 1, 4),
}
CASES = [
    (name, statistic, normalize)
    for name in NETWORKS
    for statistic in ("back", "neighbor", "mean", "abs")
    for normalize in (False, True)
    if not (name == "sigmoid_head" and normalize)
]


def _model(name: str) -> tuple[nn.Module, int]:
    build, channels, seed = NETWORKS[name]
    net = build().double()
    if seed is not None:
        net = _randomize(net, seed)
    return net.eval(), channels


def _maps(net: nn.Module, x: torch.Tensor, normalize: bool) -> torch.Tensor:
    with torch.no_grad():
        maps = torch.cat([net(chunk).reshape(chunk.shape[0], -1) for chunk in x.split(4096)])
    if normalize:
        low, high = maps.min(1, keepdim=True).values, maps.max(1, keepdim=True).values
        maps = (maps - low) / (high - low)
    return maps


def _threshold(maps: torch.Tensor, quantile: float) -> float:
    """A threshold halfway between two adjacent scores of the observed map (no ties)."""
    values = maps[0].unique()
    k = int(quantile * (values.numel() - 1))
    return float((values[k] + values[k + 1]) / 2)


def _neighbourhood(region: torch.Tensor, shape: tuple[int, ...], radius: int) -> torch.Tensor:
    """Pixels within Chebyshev distance ``radius`` of the region, outside it: by explicit offsets."""
    mask = region.reshape(shape)
    near = torch.zeros_like(mask)
    for index in mask.nonzero().tolist():
        window = tuple(slice(max(0, i - radius), i + radius + 1) for i in index)
        near[window] = True
    return (near & ~mask).flatten()


def _reference_line(x, refs, region, statistic, sigma2, neighborhood=1):
    """Y(z) = q + b·σ_T·z, written from the definitions (independently of the package).

    ``refs`` is (1, m, C, H, W) or None; Y = (X; mean of the references), Cov Y = diag(σ², σ²/m).
    """
    inside = region.reshape(1, 1, *x.shape[2:]).expand_as(x).flatten().double()
    if statistic in ("back", "neighbor"):
        y = x.flatten()
        other = ~region if statistic == "back" else _neighbourhood(region, tuple(x.shape[2:]), neighborhood)
        outside = other.reshape(1, 1, *x.shape[2:]).expand_as(x).flatten().double()
        eta = inside / inside.sum() - outside / outside.sum()
        cov = torch.full_like(y, sigma2)
    else:
        ref = refs.mean(1)
        y = torch.cat([x.flatten(), ref.flatten()])
        g = torch.where(x.flatten() >= ref.flatten(), 1.0, -1.0).double() if statistic == "abs" else torch.ones_like(inside)
        half = g * inside / inside.sum()
        eta = torch.cat([half, -half])
        cov = torch.cat([torch.full_like(half, sigma2), torch.full_like(half, sigma2 / refs.shape[1])])
    var = (eta * cov * eta).sum()
    b = cov * eta / var
    q = y - b * (eta @ y)
    z_obs = float((eta @ y) / var.sqrt())
    n = x.numel()

    def at(zs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        ys = q + b * var.sqrt() * zs[:, None]
        return ys[:, :n].reshape(-1, *x.shape[1:]), (ys[:, n:] if refs is not None else None)

    return at, z_obs


def _check_against_brute_force(
    net, x, refs, statistic, normalize, sigma2=1.0, neighborhood=1, threshold=None, inclusive=False
):
    """Run the test on x and compare its truncation set with the brute-force scan of its line.

    ``threshold`` defaults to one between two scores of the observed map; ``inclusive`` selects
    {score >= threshold} in both the test and the scan.
    """
    channels = x.shape[1]
    maps = _maps(net, x, normalize)
    threshold = _threshold(maps, 0.6) if threshold is None else threshold

    def select(scores: torch.Tensor) -> torch.Tensor:
        return scores >= threshold if inclusive else scores > threshold

    x_ref = None if refs is None else (refs[:, 0] if refs.shape[1] == 1 else refs)
    (result,) = salient_region_test(
        net, x, x_ref=x_ref, threshold=threshold, statistic=statistic, normalize=normalize, sigma2=sigma2,
        neighborhood=neighborhood, inclusive=inclusive,
    )
    region = select(maps[0])
    assert torch.equal(result.region.flatten(), region)

    at, z_obs = _reference_line(x, refs, region, statistic, sigma2, neighborhood)
    assert result.z == pytest.approx(z_obs, rel=1e-10, abs=1e-12)
    start, stop = result.diagnostics.search_range
    if statistic != "abs":
        assert (start, stop) == pytest.approx((-(abs(z_obs) + 10), abs(z_obs) + 10))
    zs = torch.linspace(start, stop, GRID, dtype=torch.float64)
    h = (stop - start) / (GRID - 1)
    xs, refs_z = at(zs)
    truth = select(_maps(net, xs, normalize)).eq(region).all(1)
    if statistic == "abs":
        ref = refs.mean(1)
        signs = torch.where(xs.flatten(1) >= refs_z, 1, -1)
        observed = torch.where(x.flatten() >= ref.flatten(), 1, -1)
        inside = region.repeat(channels)
        truth &= (signs[:, inside] == observed[inside]).all(1)
        if start > -(abs(z_obs) + 10):  # the scan starts where a selected sign flips
            below, refs_below = at(torch.tensor([start - 1e-6], dtype=torch.float64))
            flipped = torch.where(below.flatten(1) >= refs_below, 1, -1)[0, inside] != observed[inside]
            assert bool(flipped.any())

    iv = result.intervals
    member = ((zs[:, None] >= iv[:, 0]) & (zs[:, None] <= iv[:, 1])).any(1)
    ends = iv.flatten()
    near_end = (zs[:, None] - ends).abs().min(1).values <= 1.01 * h
    x_obs, _ = at(torch.tensor([z_obs], dtype=torch.float64))
    assert torch.equal(select(_maps(net, x_obs, normalize)[0]), region), "the line must pass through x at z_obs"
    assert not bool(truth.all()), "the line must leave the observed region somewhere (else the test is vacuous)"
    assert bool(((member == truth) | near_end).all()), "intervals disagree with the brute-force truth away from their ends"
    for end in ends[(ends > start + h) & (ends < stop - h)]:
        window = truth[(zs - end).abs() <= 2 * h]
        assert bool(window.any()) and not bool(window.all()), f"interval end {float(end)} is not a change of region"
    assert result.diagnostics.n_intervals == iv.shape[0]
    assert 0.0 <= result.p_value <= 1.0 and 0.0 <= result.oc_p_value <= 1.0
    lo, hi = result.oc_interval
    assert lo <= result.z <= hi


@pytest.mark.parametrize("name,statistic,normalize", CASES)
def test_truncation_set_matches_brute_force(name, statistic, normalize):
    net, channels = _model(name)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(1, channels, 8, 8, generator=g, dtype=torch.float64)
    refs = torch.randn(1, 1, channels, 8, 8, generator=g, dtype=torch.float64) if statistic in ("mean", "abs") else None
    _check_against_brute_force(net, x, refs, statistic, normalize)


def dead_stretches() -> nn.Module:
    """Scores ReLU(a)·w1 + ReLU(b)·w2 without a bias: exactly 0 (on whole stretches of a line)
    wherever both units are dead, of either sign elsewhere."""
    net = _randomize(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 1, 1, bias=False)).double(), 9)
    with torch.no_grad():
        net[0].bias.sub_(0.7)  # many dead units
        net[2].weight.copy_(torch.tensor([1.0, -1.0], dtype=torch.float64).view(1, 2, 1, 1))
    return net


def cam_dead() -> nn.Module:
    """A bias-free CAM (Miwa et al.'s CNN in small) whose features are dead on many pixels: 0 there."""
    classifier = _randomize(
        nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2)).double(), 10
    )
    with torch.no_grad():
        classifier[0].bias.sub_(0.8)
    return cam_saliency(classifier, 1, (1, 8, 8), upsample="nearest")


@pytest.mark.parametrize("statistic", ["back", "mean", "abs"])
@pytest.mark.parametrize("source", ["dead_stretches", "cam_zero", "cam_attained"])
def test_inclusive_truncation_set_matches_brute_force_with_exact_ties(statistic, source):
    """{score >= τ} with τ attained exactly on whole stretches: a ReLU network's zeros at τ = 0,
    the bias-free CAM's zeros where every feature is dead, and τ equal to a score of the observed
    map (a boundary at z_obs, which must count as inside)."""
    g = torch.Generator().manual_seed(11)
    x = torch.randn(1, 1, 8, 8, generator=g, dtype=torch.float64)
    refs = torch.randn(1, 1, 1, 8, 8, generator=g, dtype=torch.float64) if statistic != "back" else None
    net = {"dead_stretches": dead_stretches, "cam_zero": cam_dead, "cam_attained": lambda: _model("cam")[0]}[source]()
    maps = _maps(net, x, False)[0]
    threshold = 0.0 if source != "cam_attained" else float(maps.unique()[maps.unique().numel() // 2])
    assert not torch.equal(maps >= threshold, maps > threshold)  # scores exactly at τ: the rules differ
    _check_against_brute_force(net, x, refs, statistic, normalize=False, threshold=threshold, inclusive=True)


@pytest.mark.parametrize("statistic", ["back", "mean", "abs"])
def test_truncation_set_with_three_references_and_sigma2(statistic):
    net, channels = _model("cam")
    g = torch.Generator().manual_seed(8)
    x = 1.5 * torch.randn(1, channels, 8, 8, generator=g, dtype=torch.float64)
    refs = 1.5 * torch.randn(1, 3, channels, 8, 8, generator=g, dtype=torch.float64) if statistic in ("mean", "abs") else None
    _check_against_brute_force(net, x, refs, statistic, normalize=False, sigma2=2.25)


def _pattern(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Every ReLU/LeakyReLU sign and max-pool arg-max of a plain forward pass (via hooks)."""
    found: list[torch.Tensor] = []

    def record(module, args, out):
        (inp,) = args
        if isinstance(module, nn.MaxPool2d):
            found.append(
                nn.functional.max_pool2d(
                    inp, module.kernel_size, module.stride, module.padding, module.dilation, module.ceil_mode, True
                )[1]
            )
        else:
            found.append(inp > 0)

    piecewise = [m for m in net.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.MaxPool2d))]
    handles = [m.register_forward_hook(record) for m in piecewise]
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return found


@pytest.mark.parametrize("name", list(NETWORKS))
def test_pieces_are_exact_and_tight(name):
    """On [lo, hi] the output is value + slope·t exactly; just past either end the pattern changes."""
    net, channels = _model(name)
    _check_pieces(net, (channels, 8, 8), seed=11)


def _check_pieces(net: nn.Module, shape: tuple[int, ...], seed: int, hooks_see_every_decision: bool = True) -> None:
    """Three random lines through ``net`` (a final Sigmoid is the reported output map): the piece is
    exact at 39 points, and (when hooks see every decision) tight at both ends."""
    body = net[:-1] if isinstance(net, nn.Sequential) and isinstance(net[-1], nn.Sigmoid) else net
    g = torch.Generator().manual_seed(seed)
    propagator = LinePropagator(net)
    for _ in range(3):
        a = torch.randn(1, *shape, generator=g, dtype=torch.float64)
        b = torch.randn(1, *shape, generator=g, dtype=torch.float64) * 0.3
        value, slope, lo, hi = propagator(a, b)
        assert propagator.final_sigmoid == (body is not net)
        with torch.no_grad():
            assert torch.allclose(value, body(a), rtol=1e-12, atol=1e-12)
        lo, hi = float(lo), float(hi)
        assert lo < 0 < hi
        ts = torch.linspace(max(lo, -5.0), min(hi, 5.0), 41, dtype=torch.float64)[1:-1]
        with torch.no_grad():
            along = body(a + b * ts.view(-1, *[1] * len(shape)))
        assert torch.allclose(along, value + slope * ts.view(-1, *[1] * (value.dim() - 1)), rtol=1e-9, atol=1e-10)
        if not hooks_see_every_decision:
            continue
        base = _pattern(net, a)
        for end in (lo, hi):
            if abs(end) == float("inf"):
                continue
            delta = 1e-7 * max(1.0, abs(end))
            inner = _pattern(net, a + b * (end - delta if end > 0 else end + delta))
            outer = _pattern(net, a + b * (end + delta if end > 0 else end - delta))
            assert all(torch.equal(p, q) for p, q in zip(base, inner)), "pattern changed inside the piece"
            assert not all(torch.equal(p, q) for p, q in zip(base, outer)), "the piece ends where nothing changes"


def test_pieces_starting_at_a_tie_are_exact_to_the_right():
    """Zero inputs into bias-free convolutions put pre-activations at exactly 0 with a slope."""
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1, bias=False), nn.ReLU(), nn.Conv2d(3, 3, 3, padding=1, bias=False), nn.LeakyReLU(0.1),
        nn.MaxPool2d(2), nn.Conv2d(3, 1, 1), nn.Upsample(scale_factor=2),
    ).double()  # fmt: skip
    net = _randomize(net, 8)
    g = torch.Generator().manual_seed(9)
    a = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    a[..., :4] = torch.randn(1, 1, 8, 4, generator=g, dtype=torch.float64)
    b = torch.randn(1, 1, 8, 8, generator=g, dtype=torch.float64)
    value, slope, lo, hi = LinePropagator(net)(a, b)
    assert float(lo) == 0.0 < float(hi)  # z sits on a breakpoint; the piece is the one to its right
    ts = torch.linspace(0, min(float(hi), 5.0), 41, dtype=torch.float64)[1:-1]
    with torch.no_grad():
        along = net(a + b * ts.view(-1, 1, 1, 1))
    assert torch.allclose(along, value + slope * ts.view(-1, 1, 1, 1), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("radius", [1, 2])
def test_neighbourhood_statistic_with_a_wider_radius(radius):
    net, channels = _model("pools")
    g = torch.Generator().manual_seed(12)
    x = torch.randn(1, channels, 8, 8, generator=g, dtype=torch.float64)
    _check_against_brute_force(net, x, None, "neighbor", normalize=True, neighborhood=radius)
