"""Decoy generation and the decoy-enhanced explainer (Lu, Guo, Xing, Noble 2021)."""

from __future__ import annotations

import pytest
import torch
from salbench import explainers
from salbench.core.registry import UnknownNameError
from salbench.explainers.decoys import DecoyGenerator, Decoys, patch_masks
from torch import nn

BOUNDS = (0.0, 1.0)
FAST = dict(steps=8, lr=0.05, bounds=BOUNDS)  # short optimisation: each test takes about a second


def tiny_cnn(seed: int = 0) -> nn.Sequential:
    """conv → ReLU → conv → ReLU → pool → linear on 1×8×8 images, 3 classes, float64."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    ).double().eval()


@pytest.fixture
def model():
    return tiny_cnn()


@pytest.fixture
def x():
    gen = torch.Generator().manual_seed(5)
    return torch.rand(2, 1, 8, 8, generator=gen, dtype=torch.float64)


def hooked_output(model: nn.Module, layer: str, inputs: torch.Tensor) -> torch.Tensor:
    """F_ℓ by an ordinary forward hook over the full forward pass, independent of the module under test."""
    seen = []
    handle = model.get_submodule(layer).register_forward_hook(lambda m, a, out: seen.append(out.detach()))
    with torch.no_grad():
        model(inputs)
    handle.remove()
    return seen[0].flatten(1)


def gains(decoys: Decoys, x: torch.Tensor) -> torch.Tensor:
    """‖((x̃ − x)·s)⁺‖₁ per decoy, (N, J)."""
    return ((decoys.inputs - x[:, None]) * decoys.signs.view(1, -1, 1, 1, 1)).clamp(min=0).flatten(2).sum(2)


# -- masks -----------------------------------------------------------------------------------------
def test_patch_masks_hand_worked():
    # side 5, patch 2, stride 2: windows start at 0, 2 and, flush with the edge, 3
    masks = patch_masks((5, 5), 2, 2)
    assert masks.shape == (9, 5, 5)
    rows = [[0, 1], [2, 3], [3, 4]]
    for k, mask in enumerate(masks):
        expected = torch.zeros(5, 5, dtype=torch.bool)
        expected[rows[k // 3][0] : rows[k // 3][1] + 1, rows[k % 3][0] : rows[k % 3][1] + 1] = True
        assert torch.equal(mask, expected), k


@pytest.mark.parametrize("patch,stride,count", [(3, 3, 9), (3, 1, 36), (8, 8, 1), (1, 1, 64)])
def test_masks_are_full_squares_covering_every_pixel(patch, stride, count):
    masks = patch_masks((8, 8), patch, stride)
    assert masks.shape == (count, 8, 8)
    assert (masks.flatten(1).sum(1) == patch * patch).all()
    assert masks.any(0).all()


def test_masks_in_one_and_three_dimensions():
    """Intervals of a signal and cubes of a volume: full boxes, row-major by first corner, covering everything."""
    assert patch_masks((5,), 2, 2).int().tolist() == [[1, 1, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1]]
    cubes = patch_masks((4, 5, 4), 2, 2)
    assert cubes.shape == (2 * 3 * 2, 4, 5, 4) and (cubes.flatten(1).sum(1) == 8).all() and cubes.any(0).all()
    expected = torch.zeros(4, 5, 4, dtype=torch.bool)
    expected[0:2, 3:5, 2:4] = True  # corner (0, 3, 2): index 0·6 + 2·2 + 1
    assert torch.equal(cubes[5], expected)


# -- decoy generation ------------------------------------------------------------------------------
@pytest.mark.parametrize("layer", ["2", "3"])  # a convolution, and the ReLU after it
def test_kept_decoys_satisfy_the_layer_constraint(model, x, layer):
    eps = 0.05
    decoys = DecoyGenerator(layer=layer, eps=eps, **FAST)(model, x)
    assert decoys.inputs.shape == (2, 18, 1, 8, 8) and decoys.kept.shape == (2, 18)
    assert decoys.kept.float().mean() > 0.9
    reference = hooked_output(model, layer, x)
    for n in range(x.shape[0]):
        kept = decoys.inputs[n][decoys.kept[n]]
        gap = (hooked_output(model, layer, kept) - reference[n]).abs().amax(1)
        assert (gap <= eps + 1e-12).all()
        torch.testing.assert_close(gap, decoys.distance[n][decoys.kept[n]], rtol=0, atol=1e-12)
    # not vacuous: the decoys really move
    assert (gains(decoys, x)[decoys.kept] > 0.01).float().mean() > 0.9


def test_decoys_change_only_inside_their_mask(model, x):
    decoys = DecoyGenerator(layer="3", eps=0.1, patch=3, stride=2, **FAST)(model, x)
    outside = ~decoys.masks[None, :, None].expand_as(decoys.inputs)
    assert torch.equal(decoys.inputs[outside], x[:, None].expand_as(decoys.inputs)[outside])
    assert (decoys.inputs != x[:, None]).flatten(2).any(2).float().mean() > 0.9
    assert torch.equal(decoys.signs[:4], torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64))
    assert torch.equal(decoys.masks[0], decoys.masks[1]) and not torch.equal(decoys.masks[1], decoys.masks[2])


@pytest.mark.parametrize("shape", [(2, 2, 12), (2, 1, 4, 5, 4)])  # a signal (N, C, L), a volume (N, C, D, H, W)
def test_signal_and_volume_decoys_keep_the_last_convolution_and_their_mask(shape):
    torch.manual_seed(0)
    conv, pool = {3: (nn.Conv1d, nn.AdaptiveAvgPool1d), 5: (nn.Conv3d, nn.AdaptiveAvgPool3d)}[len(shape)]
    net = nn.Sequential(conv(shape[1], 3, 3, padding=1), nn.ReLU(), conv(3, 4, 3, padding=1), nn.ReLU(),
                        pool(1), nn.Flatten(), nn.Linear(4, 2)).double().eval()
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    decoys = DecoyGenerator(eps=0.05, patch=2, **FAST)(net, x)  # layer "auto": the last Conv1d / Conv3d, "2"
    masks = patch_masks(shape[2:], 2, 2)
    assert torch.equal(decoys.masks, masks.repeat_interleave(2, 0)) and decoys.inputs.shape == (2, 2 * len(masks), *shape[1:])
    outside = ~decoys.masks[None, :, None].expand_as(decoys.inputs)
    assert torch.equal(decoys.inputs[outside], x[:, None].expand_as(decoys.inputs)[outside])
    reference = hooked_output(net, "2", x)
    for n in range(x.shape[0]):
        gap = (hooked_output(net, "2", decoys.inputs[n][decoys.kept[n]]) - reference[n]).abs().amax(1)
        assert (gap <= 0.05 + 1e-12).all()
    moved = ((decoys.inputs - x[:, None]) * decoys.signs.view(1, -1, *[1] * (len(shape) - 1))).clamp(min=0).flatten(2).sum(2)
    assert decoys.kept.float().mean() > 0.9 and (moved[decoys.kept] > 0.01).float().mean() > 0.9
    attr = explainers.get("decoy", eps=0.05, patch=2, **FAST)(net, x, 1)
    assert attr.shape == x.shape and bool(attr.amax() <= 1) and bool(attr.amax() > 0)


def test_bounds_are_respected(model):
    x = torch.zeros(2, 1, 8, 8, dtype=torch.float64)
    x[1] = 1.0  # every pixel at a bound: the clipping decides
    decoys = DecoyGenerator(layer="3", eps=0.5, lr=0.3, steps=4, bounds=BOUNDS)(model, x)
    assert decoys.inputs.min() >= 0.0 and decoys.inputs.max() <= 1.0
    assert (decoys.inputs == 1.0).any() and (decoys.inputs[:1] > 0).any() and (decoys.inputs[1:] < 1).any()


def test_unbounded_decoys_may_leave_the_unit_range(model, x):
    decoys = DecoyGenerator(layer="3", eps=0.5, lr=0.3, steps=4)(model, x)
    assert decoys.inputs.max() > 1.0 or decoys.inputs.min() < 0.0


def test_eps_zero_at_an_injective_layer_gives_the_input(model, x):
    decoys = DecoyGenerator(layer="0", eps=0.0, **FAST)(model, x)
    assert (decoys.inputs - x[:, None]).abs().max() <= 1e-12
    assert torch.equal(decoys.inputs[~decoys.kept], x[:, None].expand_as(decoys.inputs)[~decoys.kept])
    assert (~decoys.kept).any()


def test_larger_eps_gives_larger_decoys(model, x):
    small = DecoyGenerator(layer="2", eps=0.01, **FAST)(model, x)
    large = DecoyGenerator(layer="2", eps=0.1, **FAST)(model, x)
    assert gains(large, x)[large.kept].mean() > 2 * gains(small, x)[small.kept].mean()


def test_violators_are_shrunk_or_discarded_and_counted(model, x):
    eps = 1e-4  # far below what one step of lr = 0.3 keeps
    shrinking = DecoyGenerator(layer="2", eps=eps, lr=0.3, steps=2, backtrack=20, bounds=BOUNDS)(model, x)
    assert shrinking.kept.all()
    assert (shrinking.distance <= eps).all() and (gains(shrinking, x) > 0).float().mean() > 0.5
    strict = DecoyGenerator(layer="2", eps=eps, lr=0.3, steps=2, backtrack=0, bounds=BOUNDS)(model, x)
    stats = strict.stats()
    assert stats.discarded.sum() > 0
    assert torch.equal(stats.kept, strict.kept.sum(1))
    assert torch.equal(stats.kept + stats.discarded, torch.full((2,), 18))
    assert torch.equal(strict.inputs[~strict.kept], x[:, None].expand_as(strict.inputs)[~strict.kept])
    assert (strict.distance[~strict.kept] > eps).all()


def test_chunking_does_not_change_the_decoys(model, x):
    whole = DecoyGenerator(layer="3", eps=0.05, **FAST)(model, x)
    chunked = DecoyGenerator(layer="3", eps=0.05, batch_size=13, **FAST)(model, x)
    assert torch.equal(whole.kept, chunked.kept)
    torch.testing.assert_close(whole.inputs, chunked.inputs, rtol=0, atol=1e-12)


def test_decoys_are_deterministic(model, x):
    generator = DecoyGenerator(layer="3", eps=0.05, **FAST)
    first, second = generator(model, x), generator(model, x)
    assert torch.equal(first.inputs, second.inputs) and torch.equal(first.kept, second.kept)


# -- the explainer ---------------------------------------------------------------------------------
@pytest.fixture
def linear_case():
    """f(x) = w·x on x of shape (1, 2, 1, 2), hand-made decoys; gradient × input gives E(x̃) = w ⊙ x̃."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 1, bias=False)).double()
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, -2.0, 3.0, 0.5]]))
    x = torch.tensor([0.0, 0.5, 0.5, 1.0], dtype=torch.float64).view(1, 2, 1, 2)
    rows = torch.tensor(
        [[0.1, 0.2, 0.3, 0.4], [0.5, 0.0, 0.1, 0.2], [0.2, 0.6, 0.2, 0.0], [9.0, 9.0, 9.0, 9.0]], dtype=torch.float64
    )
    decoys = Decoys(
        inputs=rows.view(1, 4, 2, 1, 2),
        kept=torch.tensor([[True, True, True, False]]),  # the last one is discarded: its 9s must not count
        distance=torch.zeros(1, 4, dtype=torch.float64),
        masks=torch.ones(4, 1, 2, dtype=torch.bool),
        signs=torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64),
    )
    return model, x, decoys


@pytest.mark.parametrize(
    "include_input,expected",
    [
        # E rows: [.1 -.4 .9 .2], [.5 0 .3 .1], [.2 -1.2 .6 0]; max − min:
        (False, [0.4, 1.2, 0.6, 0.2]),
        # plus E(x) = [0 -1 1.5 .5]
        (True, [0.5, 1.2, 1.2, 0.5]),
    ],
)
def test_range_matches_a_hand_computed_example(linear_case, include_input, expected):
    model, x, decoys = linear_case
    explainer = explainers.get("decoy", base="gradient_x_input", include_input=include_input)
    score = explainer.decoy_range(model, decoys, x, torch.tensor([0]))
    torch.testing.assert_close(score, torch.tensor(expected, dtype=torch.float64).view(1, 2, 1, 2))


def test_post_processing_matches_a_hand_computed_example(linear_case, monkeypatch):
    model, x, decoys = linear_case
    explainer = explainers.get("decoy", base="gradient_x_input", percentile=50.0)
    monkeypatch.setattr(explainer, "decoys", lambda model, x: decoys)
    # Z = [[.4, 1.2], [.6, .2]] → channel max [.6, 1.2] → clipped at the median .9 → / .9
    expected = torch.tensor([2 / 3, 1.0], dtype=torch.float64).expand(1, 2, 1, 2)
    torch.testing.assert_close(explainer(model, x, 0), expected)
    raw = explainers.get("decoy", base="gradient_x_input", channel_max=False, winsorize=False, normalize=False)
    monkeypatch.setattr(raw, "decoys", lambda model, x: decoys)
    expected_raw = torch.tensor([0.4, 1.2, 0.6, 0.2], dtype=torch.float64).view(1, 2, 1, 2)
    torch.testing.assert_close(raw(model, x, 0), expected_raw)
    stats = explainer.last_stats
    assert torch.equal(stats.kept, torch.tensor([3])) and torch.equal(stats.discarded, torch.tensor([1]))


def test_a_sample_without_kept_decoys_is_an_error(linear_case, monkeypatch):
    model, x, decoys = linear_case
    none_kept = Decoys(decoys.inputs, torch.zeros_like(decoys.kept), decoys.distance, decoys.masks, decoys.signs)
    explainer = explainers.get("decoy", base="gradient_x_input")
    monkeypatch.setattr(explainer, "decoys", lambda model, x: none_kept)
    with pytest.raises(ValueError, match=r"sample\(s\) \[0\] have no decoy that satisfies"):
        explainer(model, x, 0)
    monkeypatch.setattr(explainer, "include_input", True)
    assert explainer(model, x, 0).abs().max() == 0


def test_explainer_output_shape_range_and_stats(model, x):
    explainer = explainers.get("decoy", layer="3", **FAST)
    assert explainer.last_stats is None
    attr = explainer(model.float(), x.float(), torch.tensor([0, 2]))
    assert attr.shape == x.shape and attr.dtype == torch.float32
    assert attr.min() >= 0 and torch.allclose(attr.flatten(1).amax(1), torch.ones(2))
    assert torch.equal(explainer.last_stats.kept + explainer.last_stats.discarded, torch.full((2,), 18))


def test_eps_zero_gives_a_zero_map(model, x):
    explainer = explainers.get(
        "decoy", layer="0", eps=0.0, include_input=True, winsorize=False, normalize=False, **FAST
    )
    assert explainer(model, x, 1).abs().max() <= 1e-12


def test_explainer_is_deterministic_under_a_seed(model, x):
    def explain(seed):
        params = dict(n_samples=4, noise=0.2, seed=seed)
        return explainers.get("decoy", base="smoothgrad", base_params=params, layer="3", **FAST)(model, x, 2)

    first = explain(3)
    assert torch.equal(first, explain(3))
    assert not torch.allclose(first, explain(4))


def test_not_differentiable(model, x):
    with pytest.raises(ValueError, match="not differentiable"):
        explainers.get("decoy", layer="3")(model, x, 0, create_graph=True)


# -- bad parameters and inputs ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "params,match",
    [
        ({"patch": 0}, "patch must be an integer >= 1"),
        ({"eps": -0.1}, "eps must be a finite number >= 0"),
        ({"stride": 4}, r"stride must lie in \[1, patch=3\]"),
        ({"steps": 0}, "steps must be an integer >= 1"),
        ({"lr": 0.0}, "lr must be a finite number > 0"),
        ({"backtrack": -1}, "backtrack must be an integer >= 0"),
        ({"bounds": (1.0, 0.0)}, "low < high"),
        ({"layer": ""}, "layer must be a module name"),
        ({"percentile": 0.0}, r"percentile must lie in \(0, 100\]"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ],
)
def test_bad_parameters_raise(params, match):
    with pytest.raises(ValueError, match=match):
        explainers.get("decoy", **params)


def test_unknown_base_explainer_is_named():
    with pytest.raises(UnknownNameError, match="Did you mean 'gradient'"):
        explainers.get("decoy", base="gradiant")


def test_bad_base_params_raise():
    with pytest.raises(ValueError, match="n_samples"):
        explainers.get("decoy", base="smoothgrad", base_params={"n_sample": 3})


def test_unknown_layer_lists_the_modules(model, x):
    with pytest.raises(ValueError, match=r"layer='conv9' is not a submodule.*'0', '1', '2'"):
        explainers.get("decoy", layer="conv9")(model, x, 0)


def test_patch_larger_than_the_image(model, x):
    with pytest.raises(ValueError, match="patch=9 is larger than the 8×8 input"):
        explainers.get("decoy", patch=9, stride=1)(model, x, 0)


def test_input_outside_bounds_or_not_an_image(model, x):
    with pytest.raises(ValueError, match=r"outside bounds .* sample\(s\) \[1\]"):
        explainers.get("decoy", bounds=BOUNDS)(model, x + torch.tensor([0.0, 2.0]).view(2, 1, 1, 1), 0)
    with pytest.raises(ValueError, match=r"decoys needs x of shape \(N, C, \*spatial\) with 1 to 3 spatial"):
        DecoyGenerator()(model, x.flatten(1))
    with pytest.raises(ValueError, match=r"layer='auto' found no Conv1d"):  # a signal (N, C, L) for a 2-d network
        DecoyGenerator()(model, x[:, 0])


def test_attacks_on_decoy_maps_optimise_against_the_base_explainer():
    from salbench import attacks

    seen = []

    class Spy(attacks.base.Attack):
        """Records the explainer it was handed."""

        def attack(self, model, explainer, x, target, inputs):
            seen.append(explainer)
            return None

    decoy = explainers.get("decoy", base="gradient", base_params={"absolute": True})
    Spy()(torch.nn.Linear(4, 2), decoy, torch.zeros(2, 4), 0)
    assert seen == [decoy.attack_proxy] and seen[0] is not decoy
    assert explainers.get("gradient").attack_proxy.__class__.__name__ == "Gradient"


def test_smoothgrad_base_smooths_every_decoy_with_the_same_noise_whatever_the_batch(model, x):
    """The range equals SmoothGrad applied to each kept decoy alone (one call per decoy), for any batch_size."""
    params = dict(n_samples=3, noise=0.2, seed=7)
    plain = dict(channel_max=False, winsorize=False, normalize=False, layer="3", eps=0.05, **FAST)
    whole = explainers.get("decoy", base="smoothgrad", base_params=params, **plain)
    chunked = explainers.get("decoy", base="smoothgrad", base_params=params, batch_size=5, **plain)
    decoys = whole.decoys(model, x)
    single = explainers.get("smoothgrad", **params)
    expected = []
    for i in range(x.shape[0]):
        maps = torch.cat([single(model, d[None], 2) for d in decoys.inputs[i][decoys.kept[i]]])
        expected.append(maps.amax(0) - maps.amin(0))
    expected = torch.stack(expected)
    assert expected.abs().amax() > 0
    torch.testing.assert_close(whole(model, x, 2), expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(chunked(model, x, 2), expected, rtol=0, atol=1e-10)
