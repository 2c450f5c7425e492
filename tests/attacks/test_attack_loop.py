"""Every registered attack on trained models: label kept, budget kept, best iterate returned,
determinism, strength against the random baseline, and clear errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from salbench import attacks, explainers, metrics
from salbench.attacks.pgd import ExplanationAttack
from salbench.explainers.base import Explainer

GRADIENT = explainers.get("gradient")
ITERATIVE = sorted(n for n in attacks.names() if issubclass(attacks.registry.entry(n).factory, ExplanationAttack))
"""The attacks on the shared projected-gradient loop."""
BALL = sorted(n for n in attacks.names() if "eps" in {p.name for p in attacks.registry.entry(n).params})
"""The ε-ball attacks (the domain-plausible ones, acquisition and clinical, have their own tests)."""


def attack_params(name: str, data: str) -> dict:
    """Attack-specific parameters that fit the fixture's inputs (144 pixels or 10 features)."""
    image = data == "blocks"
    if name in ("topk", "er_attack"):
        return {"k": 10 if image else 4}
    if name == "target_region":
        return {"region": (0, 0, 4, 4) if image else (0, 3)}
    return {}


def build(name: str, data: str, **params):
    return attacks.get(name, **attack_params(name, data), **params)


@dataclasses.dataclass
class Setting:
    data: str
    norm: str
    eps: float
    bounds: str  # "unit", "tensor" or "none"

    def bounds_for(self, x: torch.Tensor):
        if self.bounds == "unit":
            return (0.0, 1.0)
        if self.bounds == "tensor":  # per-feature range, broadcast over the batch
            return (x.amin(dim=0, keepdim=True) - 0.05, x.amax(dim=0, keepdim=True) + 0.05)
        return None


SETTINGS = [
    Setting("blocks", "linf", 8 / 255, "unit"),
    Setting("blocks", "l2", 1.0, "tensor"),
    Setting("tabular", "linf", 0.5, "none"),  # large enough that some steps change the label
    Setting("tabular", "l2", 1.0, "tensor"),
]


def run(name, trained, setting: Setting, **params):
    params = {"eps": setting.eps, "norm": setting.norm, **params}
    if name != "random_noise":
        params.setdefault("steps", 5)
    bounds = setting.bounds_for(trained.x)
    return build(name, setting.data, **params)(trained.model, GRADIENT, trained.x, trained.y, bounds=bounds), bounds


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: f"{s.data}-{s.norm}-{s.bounds}")
@pytest.mark.parametrize("name", BALL)
def test_attack_keeps_label_ball_and_bounds(name, setting, request):
    trained = request.getfixturevalue(setting.data)
    result, bounds = run(name, trained, setting)
    x, x_adv = trained.x, result.x_adv
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    with torch.no_grad():
        assert torch.equal(trained.model(x_adv).argmax(1), trained.model(x).argmax(1))
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(dim=1) if setting.norm == "linf" else delta.norm(dim=1)
    assert size.max() <= setting.eps * (1 + 1e-5)
    if bounds is not None:
        assert (x_adv >= bounds[0]).all() and (x_adv <= bounds[1]).all()
    assert result.label_kept.dtype == torch.bool and result.label_kept.all()
    assert torch.equal(result.success, delta.ne(0).any(dim=1))
    assert result.success.any(), "the attack moved no sample at all"
    steps = 1 if name == "random_noise" else 5
    assert result.iterations.dtype == torch.long and result.iterations.min() >= 0 and result.iterations.max() <= steps


def test_a_step_that_changes_the_label_is_rejected(tabular):
    """With ε = 0.5 on the tabular set some steps cross the decision boundary; those samples stop."""
    result, _ = run("topk", tabular, SETTINGS[2], steps=10)
    assert (result.iterations < 10).any() and (result.iterations > 0).any()
    assert result.label_kept.all()


@pytest.mark.parametrize("name", BALL)
def test_attack_is_deterministic_under_its_seed(name, blocks):
    setting = SETTINGS[0]
    first, _ = run(name, blocks, setting, seed=3)
    again, _ = run(name, blocks, setting, seed=3)
    assert torch.equal(first.x_adv, again.x_adv) and torch.equal(first.iterations, again.iterations)
    if name in ("random_noise", "mass_center", "mse"):  # the seed is used: another one gives another result
        other, _ = run(name, blocks, setting, seed=4)
        assert not torch.equal(first.x_adv, other.x_adv)


@pytest.mark.parametrize("name", BALL)
def test_a_sample_gets_the_same_result_in_any_batch(name, blocks):
    """Random starts and draws come from a stream per sample (seed, its content) and every step is
    per sample, so a sample attacked with others, in another order or in a smaller batch ends
    at the same x′ after the same iterations (exactly)."""
    start = {} if name == "random_noise" else {"random_start": True}
    attack = build(name, "blocks", eps=8 / 255, seed=3, **start, **({} if name == "random_noise" else {"steps": 5}))
    full = attack(blocks.model, GRADIENT, blocks.x[:8], blocks.y[:8], bounds=(0.0, 1.0))
    rows = torch.tensor([5, 2, 0])
    part = attack(blocks.model, GRADIENT, blocks.x[rows], blocks.y[rows], bounds=(0.0, 1.0))
    assert torch.equal(part.x_adv, full.x_adv[rows]) and torch.equal(part.iterations, full.iterations[rows])
    assert full.success[rows].any()  # the attack moved these samples: the comparison is not of x with x


class Recording(Explainer):
    """The gradient explainer, recording every input on which the real model is explained."""

    def __init__(self, real):
        self.real = real
        self.seen: list[torch.Tensor] = []

    def attribute(self, model, x, target, *, create_graph):
        if model is self.real:
            self.seen.append(x.detach().clone())
        return GRADIENT.attribute(model, x, target, create_graph=create_graph)


@pytest.mark.parametrize("name, data", [("topk", "blocks"), ("mse", "tabular"), ("mass_center", "blocks")])
def test_attack_returns_the_best_iterate_by_the_real_score(name, data, request):
    """The real model is explained at x and at every accepted iterate; the result is the best of them."""
    trained = request.getfixturevalue(data)
    explainer = Recording(trained.model)
    attack = build(name, data, eps=0.5 if data == "tabular" else 8 / 255, steps=8, alpha=0.05 if data == "tabular" else 2 / 255)
    result = attack(trained.model, explainer, trained.x, trained.y, bounds=None if data == "tabular" else (0.0, 1.0))
    reference = attack.reference(GRADIENT(trained.model, trained.x, trained.y))
    iterates = torch.stack(explainer.seen)  # (calls, N, ...): x, the start, then one per step
    scores = torch.stack([attack.score(GRADIENT(trained.model, it, trained.y), reference) for it in iterates])
    best_score = attack.score(GRADIENT(trained.model, result.x_adv, trained.y), reference)
    assert (best_score >= scores.max(dim=0).values - 1e-6).all()
    matches = (iterates == result.x_adv).flatten(2).all(dim=2)  # (calls, N)
    assert matches.any(dim=0).all(), "x_adv is not one of the explained iterates"
    if name == "topk":  # the top-k intersection is not monotone along the path: the best is not always the last
        assert not matches[-1].all()


def test_topk_lowers_topk_intersection_clearly_more_than_random_noise(blocks):
    """48 correctly classified block images, k = 20 of 144 pixels, ε = 8/255 (ℓ∞), 10 steps."""
    assert blocks.x.shape[0] >= 32
    k, eps = 20, 8 / 255
    intersection = metrics.get("topk_intersection", k=k)
    attr = GRADIENT(blocks.model, blocks.x, blocks.y)

    def mean_intersection(result):
        return intersection(attr, GRADIENT(blocks.model, result.x_adv, blocks.y)).mean().item()

    topk = attacks.get("topk", k=k, eps=eps, steps=10)(blocks.model, GRADIENT, blocks.x, blocks.y, bounds=(0.0, 1.0))
    noise = attacks.get("random_noise", eps=eps)(blocks.model, GRADIENT, blocks.x, blocks.y, bounds=(0.0, 1.0))
    after_topk, after_noise = mean_intersection(topk), mean_intersection(noise)
    # measured: topk 0.61, random_noise 0.99
    assert after_topk < after_noise - 0.1, (after_topk, after_noise)


@pytest.mark.parametrize("name", ITERATIVE)
def test_attack_raises_its_own_score_more_than_random_noise(name, blocks):
    """Each objective points the right way: the mean real score beats noise of the same budget."""
    attack = build(name, "blocks", eps=8 / 255, steps=10)
    result = attack(blocks.model, GRADIENT, blocks.x, blocks.y, bounds=(0.0, 1.0))
    noise = attacks.get("random_noise", eps=8 / 255)(blocks.model, GRADIENT, blocks.x, blocks.y, bounds=(0.0, 1.0))
    reference = attack.reference(GRADIENT(blocks.model, blocks.x, blocks.y))

    def mean_score(x_adv):
        return attack.score(GRADIENT(blocks.model, x_adv, blocks.y), reference).mean().item()

    assert mean_score(result.x_adv) > mean_score(noise.x_adv)


# -- errors ---------------------------------------------------------------------------------------
def construct(name: str, **params):
    """Build through the class itself, so that values reach the attack's own checks."""
    return attacks.registry.entry(name).factory(**{**attack_params(name, "blocks"), **params})


@pytest.mark.parametrize("name", BALL)
@pytest.mark.parametrize(
    "params, match",
    [
        ({"eps": 0.0}, "eps must be a finite number > 0"),
        ({"eps": -0.1}, "eps must be a finite number > 0"),
        ({"eps": float("nan")}, "eps must be a finite number > 0"),
        ({"norm": "l1"}, r"norm must be one of \('linf', 'l2'\)"),
        ({"seed": -1}, "seed must be an integer >= 0"),
    ],
)
def test_bad_common_parameters_raise(name, params, match):
    with pytest.raises(ValueError, match=match):
        construct(name, **params)


@pytest.mark.parametrize("name", ITERATIVE)
@pytest.mark.parametrize(
    "params, match",
    [
        ({"steps": 0}, "steps must be an integer >= 1"),
        ({"steps": 2.5}, "steps must be an integer >= 1"),
        ({"alpha": 0.0}, "alpha must be a finite number > 0"),
        ({"surrogate_beta": -1.0}, "surrogate_beta must be a finite number > 0"),
    ],
)
def test_bad_loop_parameters_raise(name, params, match):
    with pytest.raises(ValueError, match=match):
        construct(name, **params)


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("topk", {"k": 0}, "k must be an integer >= 1"),
        ("er_attack", {"k": -2}, "k must be an integer >= 1"),
        ("random_noise", {"n_tries": 0}, "n_tries must be an integer >= 1"),
        ("target_region", {"region": (0, 0, 4)}, "region must be a tuple of ints"),
        ("target_region", {"region": (0, 0, 0, 4)}, "region must be a tuple of ints"),
        ("target_region", {"region": (-1, 3)}, "region must be a tuple of ints"),
    ],
)
def test_bad_attack_specific_parameters_raise(name, params, match):
    with pytest.raises(ValueError, match=match):
        construct(name, **params)


def test_registry_rejects_an_unknown_norm_and_a_missing_region():
    with pytest.raises(ValueError, match="norm"):
        attacks.get("topk", norm="l3")
    with pytest.raises(ValueError, match="region"):
        attacks.get("target_region")


@pytest.mark.parametrize(
    "name, k, match",
    [("topk", 145, r"k must be an integer in \[1, 144\]"), ("er_attack", 73, "k must be at most 72")],
)
def test_k_larger_than_the_input_allows_raises(name, k, match, blocks):
    with pytest.raises(ValueError, match=match):
        attacks.get(name, k=k, steps=1)(blocks.model, GRADIENT, blocks.x[:2], blocks.y[:2])


@pytest.mark.parametrize("name", BALL)
def test_bad_inputs_raise(name, blocks):
    attack = build(name, "blocks", **({} if name == "random_noise" else {"steps": 1}))
    x, y = blocks.x[:4].clone(), blocks.y[:4]
    with pytest.raises(ValueError, match="target must have shape \\(4,\\)"):
        attack(blocks.model, GRADIENT, x, y[:3])
    with pytest.raises(ValueError, match="x lies outside bounds"):
        attack(blocks.model, GRADIENT, x, y, bounds=(0.0, 0.5))
    x[1, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        attack(blocks.model, GRADIENT, x, y)


class NotDifferentiable(Explainer):
    """An explainer that cannot be differentiated (like occlusion)."""

    differentiable = False

    def attribute(self, model, x, target, *, create_graph):
        return x.abs()


@pytest.mark.parametrize("name", ITERATIVE)
def test_gradient_attack_with_a_non_differentiable_explainer_raises(name, blocks):
    with pytest.raises(ValueError, match="not differentiable.*random_noise"):
        build(name, "blocks", steps=1)(blocks.model, NotDifferentiable(), blocks.x[:2], blocks.y[:2])
