"""The acquisition transforms and attack: exact identity at neutral parameters, differentiability
(gradcheck), hand-worked values, profiles and their errors, and the attack on a trained CNN
(ranges kept, label kept, determinism, stronger than random draws of the same transforms)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import torch
from salbench import attacks, explainers, metrics
from salbench.attacks import profiles, transforms
from salbench.attacks.acquisition import AcquisitionAttack
from salbench.attacks.profiles import ImageProfile, Range
from salbench.attacks.transforms import NAMES, NEUTRAL, AcquisitionModel
from salbench.core.seeding import SampleStreams
from torch import nn

GRADIENT = explainers.get("gradient")
UNIT = (torch.tensor(0.0), torch.tensor(1.0))


def neutral(n: int, dtype=torch.float32) -> torch.Tensor:
    return torch.tensor([NEUTRAL[name] for name in NAMES], dtype=dtype).expand(n, -1).clone()


def images(n=3, c=2, h=7, w=9, dtype=torch.float32, seed=0) -> torch.Tensor:
    """Random images in [0, 1] with some exact 0s and 1s (where clamp, gamma and √ have corners)."""
    x = torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    x[:, :, 0, :2] = 0.0
    x[:, :, -1, -2:] = 1.0
    return x


def column(theta: torch.Tensor, name: str) -> torch.Tensor:
    return theta[:, NAMES.index(name)]


# -- the transforms ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_transform_is_exactly_the_identity_at_its_neutral_parameters(dtype):
    x = images(dtype=dtype) * 1.4 - 0.2  # also values outside [0, 1] (noise can produce them)
    zeros, ones = torch.zeros(3, dtype=dtype), torch.ones(3, dtype=dtype)
    centre = x.mean(dim=(2, 3), keepdim=True)
    assert torch.equal(transforms.warp(x, zeros, zeros, zeros), x)
    assert torch.equal(transforms.bias_field(x, torch.zeros(3, 5, dtype=dtype)), x)
    assert torch.equal(transforms.gaussian_blur(x, zeros, max_variance=4.0), x)
    assert torch.equal(transforms.quantum_noise(x, zeros, torch.randn_like(x)), x)
    assert torch.equal(transforms.gamma(x, ones), x)
    assert torch.equal(transforms.window(x, ones, zeros, centre), x)


@pytest.mark.parametrize("foreground", [None, 0.4])
@pytest.mark.parametrize("bounds", [None, UNIT])
def test_the_acquisition_model_is_exactly_the_identity_at_neutral(bounds, foreground):
    x = images()
    model = AcquisitionModel(x, max_blur=2.0, bounds=bounds, foreground=foreground, seed=0)
    assert torch.equal(model(neutral(3)), x)


def random_parameters(n: int, generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    """Non-neutral parameters inside the chest_xray ranges (blur, noise, gamma away from their corners)."""
    ranges = profiles.image_ranges("chest_xray")
    low = torch.tensor([ranges[name][0] for name in NAMES], dtype=dtype)
    high = torch.tensor([ranges[name][1] for name in NAMES], dtype=dtype)
    u = 0.1 + 0.8 * torch.rand(n, len(NAMES), generator=generator, dtype=dtype)
    return low + u * (high - low)


def test_the_acquisition_model_passes_gradcheck_in_its_parameters():
    """float64, 2 non-square images; interior pixel values so that the clamp is inactive."""
    x = 0.2 + 0.6 * images(n=2, c=1, h=5, w=6, dtype=torch.float64)
    model = AcquisitionModel(x, max_blur=0.5, bounds=UNIT, foreground=None, seed=1)
    theta = random_parameters(2, torch.Generator().manual_seed(0)).requires_grad_(True)
    assert torch.autograd.gradcheck(model, (theta,))


@pytest.mark.parametrize(
    "name, function",
    [
        ("warp", lambda x, p: transforms.warp(x, 30 * p[:, 0], p[:, 1] / 5, p[:, 2] / 7)),
        ("bias_field", lambda x, p: transforms.bias_field(x, p[:, :5] / 3)),
        ("gaussian_blur", lambda x, p: transforms.gaussian_blur(x, p[:, 0] + 0.1, max_variance=2.0)),
        ("quantum_noise", lambda x, p: transforms.quantum_noise(x, p[:, 0], torch.ones_like(x) * 0.7)),
        ("gamma", lambda x, p: transforms.gamma(x - 0.3, p[:, 0] + 0.5)),
        ("window", lambda x, p: transforms.window(x, p[:, 0] + 0.5, p[:, 1], x.mean(dim=(2, 3), keepdim=True))),
    ],
)
def test_each_transform_passes_gradcheck_in_its_parameters(name, function):
    x = images(n=2, c=2, h=5, w=6, dtype=torch.float64, seed=3)
    p = torch.rand(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(4)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda q: function(x, q), (p,))


def test_every_parameter_moves_the_image_at_first_order_from_neutral():
    """The ascent starts at the identity, so each parameter needs a non-zero gradient there."""
    x = images(n=1, c=1, h=8, w=8, dtype=torch.float64, seed=5)
    model = AcquisitionModel(x, max_blur=0.5, bounds=None, foreground=None, seed=0)
    weights = torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    theta = neutral(1, torch.float64).requires_grad_(True)
    (grad,) = torch.autograd.grad((model(theta) * weights).sum(), theta)
    assert (grad.abs() > 1e-6).all(), dict(zip(NAMES, grad[0].tolist()))


def test_a_shift_of_one_pixel_moves_the_content_by_one_pixel_and_repeats_the_border():
    x = images(n=2, c=1, h=5, w=6)
    zeros = torch.zeros(2)
    right = transforms.warp(x, zeros, torch.full((2,), 1 / 6), zeros)
    assert torch.allclose(right[..., 1:], x[..., :-1], atol=1e-6)
    assert torch.allclose(right[..., 0], x[..., 0], atol=1e-6)
    down = transforms.warp(x, zeros, zeros, torch.full((2,), 1 / 5))
    assert torch.allclose(down[..., 1:, :], x[..., :-1, :], atol=1e-6)


def test_a_rotation_by_90_degrees_is_a_clockwise_quarter_turn():
    x = images(n=2, c=1, h=6, w=6)
    turned = transforms.warp(x, torch.full((2,), 90.0), torch.zeros(2), torch.zeros(2))
    assert torch.allclose(turned, torch.rot90(x, k=-1, dims=(2, 3)), atol=1e-5)


def test_the_bias_field_scales_the_edges_by_its_exponential():
    x = torch.ones(1, 1, 5, 7)
    field = transforms.bias_field(x, torch.tensor([[math.log(2), 0.0, 0.0, 0.0, 0.0]]))
    assert torch.allclose(field[..., -1], torch.full((1, 1, 5), 2.0))
    assert torch.allclose(field[..., 0], torch.full((1, 1, 5), 0.5))
    assert torch.equal(field[..., 3], x[..., 3])  # u = 0 in the middle column


@pytest.mark.parametrize("variance", [0.05, 0.5, 2.5, 9.0])
def test_the_blur_kernel_is_the_discrete_gaussian_with_the_asked_variance(variance):
    """Against scipy's exponentially scaled Bessel function e^(−t)·I_n(t) (an independent computation)."""
    radius, terms = transforms._radius(variance), transforms._series_terms(variance)
    kernel = transforms.discrete_gaussian(torch.tensor([variance], dtype=torch.float64), radius, terms)[0]
    n = np.arange(-radius, radius + 1)
    expected = scipy.special.ive(n, variance)
    assert np.allclose(kernel.numpy(), expected / expected.sum(), rtol=1e-9, atol=1e-12)
    assert kernel.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert (kernel.numpy() * n**2).sum() == pytest.approx(variance, rel=1e-4)


def test_blur_keeps_a_constant_image_and_smooths_an_impulse_into_the_kernel():
    constant = torch.full((1, 1, 6, 6), 0.3, dtype=torch.float64)
    assert torch.allclose(transforms.gaussian_blur(constant, torch.tensor([1.0], dtype=torch.float64)), constant)
    impulse = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    impulse[..., 4, 4] = 1.0
    variance = torch.tensor([0.5], dtype=torch.float64)
    blurred = transforms.gaussian_blur(impulse, variance, max_variance=0.5)
    kernel = transforms.discrete_gaussian(variance, transforms._radius(0.5), transforms._series_terms(0.5))[0]
    assert torch.allclose(blurred[0, 0, 4, 4 - 4 : 4 + 5], kernel[1:-1] * kernel[5])  # separable: row × centre


def test_gamma_noise_and_window_known_values():
    x = torch.tensor([0.25, -0.25, 0.0, 1.0]).view(1, 1, 2, 2)
    assert torch.allclose(transforms.gamma(x, torch.tensor([0.5])).flatten(), torch.tensor([0.5, -0.5, 0.0, 1.0]))
    draws = torch.tensor([1.0, -2.0, 3.0, 0.5]).view(1, 1, 2, 2)
    noisy = transforms.quantum_noise(x.abs(), torch.tensor([0.1]), draws)
    expected = x.abs() + 0.1 * x.abs().clamp_min(transforms.SIGNAL_FLOOR).sqrt() * draws
    assert torch.equal(noisy, expected)
    centre = x.mean(dim=(2, 3), keepdim=True)
    stretched = transforms.window(x, torch.tensor([1.5]), torch.tensor([0.0]), centre)
    assert torch.allclose(stretched.mean(), x.mean()) and torch.allclose(stretched - centre, 1.5 * (x - centre))


def test_the_noise_draws_are_fixed_by_the_seed():
    x = images()
    theta = neutral(3)
    theta[:, NAMES.index("noise")] = 0.05
    theta[:, NAMES.index("poisson")] = 0.05
    first = AcquisitionModel(x, max_blur=0.0, bounds=None, foreground=None, seed=7)
    again = AcquisitionModel(x, max_blur=0.0, bounds=None, foreground=None, seed=7)
    other = AcquisitionModel(x, max_blur=0.0, bounds=None, foreground=None, seed=8)
    assert torch.equal(first(theta), first(theta)) and torch.equal(first(theta), again(theta))
    assert not torch.equal(first(theta), other(theta))
    twice = theta.clone()
    twice[:, NAMES.index("poisson")] = 0.0
    once = twice.clone()
    twice[:, NAMES.index("noise")] = 0.1
    assert torch.allclose(first(twice) - x, 2 * (first(once) - x), atol=1e-6)  # linear in the level


def test_the_foreground_mask_is_the_smoothed_bright_region_and_nothing_else_changes():
    x = torch.zeros(1, 1, 8, 8)
    x[..., 2:6, 2:6] = 0.9
    x[..., 3, 3] = 0.0  # a dark pixel inside the region: its 3×3 average is 8/9·0.9 = 0.8
    mask = transforms.foreground_mask(x, 0.35)
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[2:6, 2:6] = True  # the square, hole included: corners average 4/9·0.9 = 0.4, outside pixels <= 0.3
    expected[2, 2] = False  # the corner next to the hole has only 3 bright pixels around it: 0.3
    assert torch.equal(mask[0, 0], expected)
    model = AcquisitionModel(x, max_blur=0.5, bounds=UNIT, foreground=0.35, seed=0)
    out = model(random_parameters(1, torch.Generator().manual_seed(1), dtype=torch.float32))
    assert torch.equal(out[~mask.expand_as(x)], x[~mask.expand_as(x)])
    assert not torch.equal(out[mask.expand_as(x)], x[mask.expand_as(x)])


# -- profiles and their errors ----------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(profiles.IMAGE_PROFILES))
def test_every_built_in_image_profile_is_valid_and_explained(name):
    profile = profiles.IMAGE_PROFILES[name]
    ranges = profiles.image_ranges(name)
    assert list(ranges) == list(NAMES)
    for parameter, given in profile.ranges.items():
        assert given.low <= NEUTRAL[parameter] <= given.high and given.low < given.high
        assert len(given.why) > 10


@pytest.mark.parametrize(
    "ranges, match",
    [
        ({"gamma": [1.2, 0.9]}, r"range of 'gamma' has low > high: \[1.2, 0.9\]"),
        ({"rotaton": [-1, 1]}, r"unknown acquisition parameter 'rotaton'. Did you mean 'rotation'"),
        ({"contrast": [1.05, 1.2]}, r"must contain its neutral value 1.0"),
        ({"gamma": [0.0, 1.0]}, r"range of 'gamma' must lie in its domain \(> 0\)"),
        ({"blur": [0.0, 20.0]}, r"range of 'blur' must lie in its domain \(>= 0 and <= 16\)"),
        ({"noise": 0.01}, r"ranges\['noise'\] must be a pair \[low, high\]"),
        ({"noise": [0.0, float("nan")]}, r"must be two finite numbers"),
    ],
)
def test_bad_range_overrides_fail_when_the_attack_is_built(ranges, match):
    with pytest.raises(ValueError, match=match):
        attacks.get("acquisition", ranges=ranges)


def test_a_bad_profile_fails_when_the_attack_is_built(monkeypatch):
    bad = ImageProfile("bad", "min > max", None, {"brightness": Range(0.1, -0.1, "typo")})
    monkeypatch.setitem(profiles.IMAGE_PROFILES, "bad", bad)
    with pytest.raises(ValueError, match=r"image profile 'bad': the range of 'brightness' has low > high"):
        attacks.get("acquisition", profile="bad")
    with pytest.raises(ValueError, match=r"unknown image profile 'chest_xry'. Did you mean 'chest_xray'"):
        attacks.get("acquisition", profile="chest_xry")


class Untouchable(nn.Module):
    """A model that must not be evaluated: the checks come before any work."""

    def forward(self, x):
        raise AssertionError("the model was evaluated before the inputs were checked")


@pytest.mark.parametrize(
    "x, bounds, match",
    [
        (torch.rand(2, 3, 6, 6), UNIT, r"image profile 'chest_xray' models images with 1 channel\(s\), but the input has 3"),
        (torch.rand(2, 30), None, r"needs images of shape \(N, C, H, W\)"),
        (torch.rand(2, 1, 6, 6) + 1.0, UNIT, "x lies outside bounds"),
    ],
)
def test_inputs_the_profile_does_not_apply_to_fail_before_any_work(x, bounds, match):
    with pytest.raises(ValueError, match=match):
        attacks.get("acquisition", steps=1)(Untouchable(), GRADIENT, x, 0, bounds=bounds)


def test_generic_profile_applies_to_any_number_of_channels_and_bad_parameters_raise():
    attack = attacks.get("acquisition", profile="generic", steps=1)
    assert attack.search_space(nn.Sequential(nn.Flatten(), nn.Linear(108, 2)), torch.rand(2, 3, 6, 6), UNIT).x.shape == (2, 3, 6, 6)
    with pytest.raises(ValueError, match="foreground must be a finite number >= 0"):
        attacks.get("acquisition", foreground=float("inf"))
    with pytest.raises(ValueError, match=r"objective must be one of \('topk', 'mse'\)"):
        AcquisitionAttack(objective="l2")
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        AcquisitionAttack(k=0)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        AcquisitionAttack(steps=0)
    assert AcquisitionAttack(objective="topk").random_start is False
    assert AcquisitionAttack(objective="mse").random_start is True  # its gradient is zero at x


# -- the attack on a trained CNN ---------------------------------------------------------------------
def run(blocks, **params):
    params = {"k": 20, "steps": 10, **params}
    attack = attacks.get("acquisition", **params)
    return attack, attack(blocks.model, GRADIENT, blocks.x, blocks.y, bounds=UNIT)


def test_the_attack_keeps_its_ranges_the_valid_range_and_the_label(blocks):
    attack, result = run(blocks, ranges={"rotation": [0.0, 0.0], "gamma": [0.9, 1.0]})
    low = torch.tensor([attack._ranges[name][0] for name in NAMES])
    high = torch.tensor([attack._ranges[name][1] for name in NAMES])
    p = result.parameters
    assert p.shape == (len(blocks.x), len(NAMES)) and (p >= low).all() and (p <= high).all()
    assert torch.equal(column(p, "rotation"), torch.zeros(len(p)))
    replay = AcquisitionModel(blocks.x, max_blur=attack._ranges["blur"][1], bounds=UNIT, foreground=None, seed=0)
    assert torch.equal(replay(p), result.x_adv)  # x′ is the acquisition its parameters describe
    assert (result.x_adv >= 0).all() and (result.x_adv <= 1).all()
    with torch.no_grad():
        assert torch.equal(blocks.model(result.x_adv).argmax(1), blocks.model(blocks.x).argmax(1))
    assert result.label_kept.all() and result.success.any()
    assert torch.equal(result.success, (result.x_adv != blocks.x).flatten(1).any(dim=1))
    assert result.iterations.max() <= 10


def test_the_attack_is_deterministic_under_its_seed(blocks):
    _, first = run(blocks, seed=3, steps=4)
    _, again = run(blocks, seed=3, steps=4)
    _, other = run(blocks, seed=4, steps=4)
    assert torch.equal(first.x_adv, again.x_adv) and torch.equal(first.parameters, again.parameters)
    assert not torch.equal(first.x_adv, other.x_adv)  # other noise draws


def test_with_a_foreground_mask_the_background_never_changes(blocks):
    _, result = run(blocks, foreground=0.5, steps=4)
    background = ~transforms.foreground_mask(blocks.x, 0.5).expand_as(blocks.x)
    assert torch.equal(result.x_adv[background], blocks.x[background])
    assert result.success.any()


def random_acquisitions(attack, blocks, draws: int) -> list[torch.Tensor]:
    """Uniform draws of the same parameters (label-keeping ones; x where a draw changes the label)."""
    space = attack.search_space(blocks.model, blocks.x, UNIT)
    streams = SampleStreams(11, space.x)
    out = []
    for _ in range(draws):
        x_random = space.realise(space.sample(streams))
        out.append(torch.where(space.keeps_label(x_random)[:, None, None, None], x_random, blocks.x))
    return out


def test_the_attack_moves_the_explanation_more_than_random_draws_of_the_same_transforms(blocks):
    """48 block images, k = 20 of 144 pixels, generic profile, 10 steps, against 5 random draws each."""
    intersection = metrics.get("topk_intersection", k=20)
    attr = GRADIENT(blocks.model, blocks.x, blocks.y)
    attack, result = run(blocks, profile="generic")
    attacked = intersection(attr, GRADIENT(blocks.model, result.x_adv, blocks.y)).mean().item()
    random = [intersection(attr, GRADIENT(blocks.model, x, blocks.y)).mean().item() for x in random_acquisitions(attack, blocks, 5)]
    # measured: attack 0.49, random draws 0.87–0.92
    assert attacked < min(random) - 0.15, (attacked, random)


def test_the_mse_objective_raises_the_explanation_change_over_random_draws(blocks):
    attack, result = run(blocks, objective="mse", profile="generic")
    attr = GRADIENT(blocks.model, blocks.x, blocks.y)

    def change(x):
        return (GRADIENT(blocks.model, x, blocks.y) - attr).flatten(1).square().sum(1).mean().item()

    random = [change(x) for x in random_acquisitions(attack, blocks, 5)]
    # measured: attack 9.2, random draws 0.54–0.75
    assert change(result.x_adv) > 2 * max(random), (change(result.x_adv), random)


def test_the_plausible_suite_pairs_each_plausible_attack_with_its_data():
    from salbench.suite import load_suite

    suite = load_suite("plausible")
    pairs = {(c.dataset.name, c.attack_name) for c in suite.cells}
    assert ("pneumoniamnist", "acquisition") in pairs and ("wdbc", "clinical") in pairs
    assert ("wdbc", "acquisition") not in pairs and ("pneumoniamnist", "clinical") not in pairs
    matched = {c.dataset.name: c.attack.params["eps"] for c in suite.cells if c.attack_name in ("topk", "random_noise")}
    assert matched == {"pneumoniamnist": 0.207, "wdbc": 0.235}
