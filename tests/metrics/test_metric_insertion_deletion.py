"""Exact insertion / deletion curves and areas (Petsiuk et al. 2018)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from salbench import metrics
from salbench.metrics.base import Case
from torch import nn

# A 2-class linear model on 4 features: logit_0 = w·z, logit_1 = 0, so p_0(z) = sigmoid(w·z).
W = [1.0, -1.0, 0.5, 2.0]
X = [1.0, 2.0, 3.0, 4.0]            # contributions w_i x_i = (1, -2, 1.5, 8)
ATTR = [0.1, 0.4, 0.3, 0.2]         # ranking: features 1, 2, 3, 0


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def linear_model() -> nn.Module:
    model = nn.Linear(4, 2, dtype=torch.float64)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([W, [0.0] * 4]))
        model.bias.zero_()
    return model


def tensors(*rows):
    return (torch.tensor([r], dtype=torch.float64) for r in rows)


def trapezoid(xs, ys):
    return sum((xs[i] - xs[i - 1]) * (ys[i] + ys[i - 1]) / 2 for i in range(1, len(xs)))


def test_declared_directions():
    for name, higher in (("insertion", True), ("deletion", False)):
        attrs = metrics.registry.entry(name).attrs
        assert (attrs["category"], attrs["higher_is_better"], attrs["needs_attack"]) == ("faithfulness", higher, False)
        assert "text" not in attrs["modalities"]  # the curves perturb float inputs


# -- hand-worked curves ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, baseline, logits",
    [
        # baseline 0: insertion adds contributions -2, 1.5, 8, 1 in ranking order
        ("insertion", 0.0, [0.0, -2.0, -0.5, 7.5, 8.5]),
        # deletion removes them from the full sum 8.5
        ("deletion", 0.0, [8.5, 10.5, 9.0, 1.0, 0.0]),
        # mean baseline 2.5: baseline contributions (2.5, -2.5, 1.25, 5), sum 6.25
        ("insertion", "mean", [6.25, 6.75, 7.0, 10.0, 8.5]),
        ("deletion", "mean", [8.5, 8.0, 7.75, 4.75, 6.25]),
    ],
)
def test_hand_worked_curves_step_one(name, baseline, logits):
    x, attr = tensors(X, ATTR)
    area, curve = metrics.get(name, step=1, baseline=baseline).evaluate_curve(linear_model(), x, attr, 0)
    probs = [sigmoid(z) for z in logits]
    assert curve[0].tolist() == pytest.approx(probs, abs=1e-14)
    # trapezoid over x = 0, 1/4, ..., 1
    assert area.item() == pytest.approx((probs[0] / 2 + sum(probs[1:4]) + probs[4] / 2) / 4, abs=1e-14)
    logit_curve = metrics.get(name, step=1, baseline=baseline, output="logit").evaluate_curve(
        linear_model(), x, attr, 0)[1]
    assert logit_curve[0].tolist() == pytest.approx(logits, abs=1e-14)
    other_class = metrics.get(name, step=1, baseline=baseline).evaluate_curve(linear_model(), x, attr, 1)[1]
    assert other_class[0].tolist() == pytest.approx([1 - p for p in probs], abs=1e-14)


@pytest.mark.parametrize(
    "name, baseline, logits",
    [
        ("insertion", 0.0, [0.0, -0.5, 7.5]),
        ("deletion", 0.0, [8.5, 9.0, 1.0]),
        ("insertion", "mean", [6.25, 7.0, 10.0]),
        ("deletion", "mean", [8.5, 7.75, 4.75]),
    ],
)
def test_hand_worked_step_two_fraction_three_quarters(name, baseline, logits):
    # n_K = 3 units, step 2: points at 0, 2, 3 units, x = 0, 2/3, 1 (a shorter last interval)
    x, attr = tensors(X, ATTR)
    area, curve = metrics.get(name, step=2, fraction=0.75, baseline=baseline).evaluate_curve(
        linear_model(), x, attr, 0)
    probs = [sigmoid(z) for z in logits]
    assert curve[0].tolist() == pytest.approx(probs, abs=1e-14)
    expected = 2 / 3 * (probs[0] + probs[1]) / 2 + 1 / 3 * (probs[1] + probs[2]) / 2
    assert area.item() == pytest.approx(expected, abs=1e-14)


def test_absolute_ranks_by_magnitude_and_evaluate_returns_area_and_curve():
    x, attr = tensors(X, [0.1, -0.4, 0.3, -0.2])
    case = Case(model=linear_model(), explainer=None, x=x, target=torch.tensor([0]), attr=attr)
    area, curve = metrics.get("insertion", step=1, absolute=True).evaluate(case)
    probs = [sigmoid(z) for z in [0.0, -2.0, -0.5, 7.5, 8.5]]  # |attr| gives the ranking above
    assert curve[0].tolist() == pytest.approx(probs, abs=1e-14)
    assert area.tolist() == metrics.get("insertion", step=1, absolute=True)(linear_model(), x, attr, 0).tolist()


# -- signals, images, volumes: positions move with all their channels ---------------------------------
def brute_force_curve(model, x, attr, target, step, fraction, baseline, inserts):
    """Per-sample, per-point Python loops over a channel-summed position ranking (ties: lower index first)."""
    n, c = x.shape[:2]
    positions = x[0, 0].numel()
    curves = []
    for i in range(n):
        score = attr[i].sum(0).flatten().tolist()
        order = sorted(range(positions), key=lambda p: (-score[p], p))
        n_end = math.floor(fraction * positions + 0.5)
        counts = list(range(0, n_end, step)) + [n_end]
        row = []
        for count in counts:
            chosen = set(order[:count])
            z = baseline[i].clone().reshape(c, positions)
            for p in range(positions):
                if (p in chosen) == inserts:
                    z[:, p] = x[i].reshape(c, positions)[:, p]
            row.append(torch.softmax(model(z.view_as(x[i])[None]), 1)[0, target[i]].item())
        curves.append(row)
    return curves


@pytest.mark.parametrize("inserts", [True, False])
@pytest.mark.parametrize("baseline", [0.0, -1.5, "mean", "blur"])
@pytest.mark.parametrize("shape", [(3, 2, 5, 4), (3, 2, 11), (3, 2, 3, 2, 3)])  # images, signals, volumes
def test_position_curves_match_brute_force(inserts, baseline, shape):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(*shape, generator=gen, dtype=torch.float64)
    attr = torch.randn(*shape, generator=gen, dtype=torch.float64)
    attr[1] = attr[1].round()  # ties between positions
    features = math.prod(shape[1:])
    model = nn.Sequential(nn.Flatten(), nn.Linear(features, 3, dtype=torch.float64), nn.Tanh(),
                          nn.Linear(3, 3, dtype=torch.float64))
    target = torch.tensor([0, 2, 1])
    metric = metrics.get("insertion" if inserts else "deletion", step=3, fraction=0.5, baseline=baseline,
                         blur_sigma=1.0, batch_size=4)
    spatial = tuple(range(2, len(shape)))
    if baseline == "mean":
        base = x.mean(dim=spatial, keepdim=True).expand_as(x)
    elif baseline == "blur":
        from scipy.ndimage import gaussian_filter

        sigma = (0, 0, *(1.0,) * len(spatial))
        base = torch.from_numpy(gaussian_filter(x.numpy(), sigma=sigma, mode="nearest", truncate=3.0))
    else:
        base = torch.full_like(x, baseline)
    with torch.no_grad():
        expected = brute_force_curve(model, x, attr, target, 3, 0.5, base, inserts)
    curve = metric.evaluate_curve(model, x, attr, target)[1]
    assert np.allclose(curve.numpy(), np.array(expected), atol=1e-12)


def test_feature_unit_on_images_moves_single_elements():
    x = torch.ones(1, 2, 1, 2, dtype=torch.float64)
    attr = torch.tensor([[[[4.0, 1.0]], [[2.0, 3.0]]]], dtype=torch.float64)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, dtype=torch.float64))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, 10.0, 100.0, 1000.0], [0.0] * 4]))
        model[1].bias.zero_()
    # feature order (flat indices): 0 (4), 3 (3), 2 (2), 1 (1) -> cumulative logits 1, 1001, 1101, 1111
    curve = metrics.get("insertion", step=1, unit="feature", output="logit").evaluate_curve(model, x, attr, 0)[1]
    assert curve[0].tolist() == [0.0, 1.0, 1001.0, 1101.0, 1111.0]
    # pixel order: column 0 (4 + 2) then column 1 (1 + 3): logits 101, 1111
    curve = metrics.get("insertion", step=1, output="logit").evaluate_curve(model, x, attr, 0)[1]
    assert curve[0].tolist() == [0.0, 101.0, 1111.0]


# -- batching, invariants, ranges -------------------------------------------------------------------
def test_batched_equals_per_sample_for_any_batch_size():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 1, 6, 6, generator=gen, dtype=torch.float64)
    attr = torch.randn(5, 1, 6, 6, generator=gen, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 1, 0])
    model = nn.Sequential(nn.Conv2d(1, 2, 3, dtype=torch.float64), nn.ReLU(), nn.Flatten(),
                          nn.Linear(32, 3, dtype=torch.float64))
    for name in ("insertion", "deletion"):
        whole = metrics.get(name, step=5, baseline="mean", batch_size=1000).evaluate_curve(model, x, attr, target)
        # 9 points per sample, built point-major: calls of 3 inputs, and of 20 (parts of several points)
        chunked = metrics.get(name, step=5, baseline="mean", batch_size=3).evaluate_curve(model, x, attr, target)
        blocks = metrics.get(name, step=5, baseline="mean", batch_size=20).evaluate_curve(model, x, attr, target)
        for i in range(5):
            single = metrics.get(name, step=5, baseline="mean").evaluate_curve(
                model, x[i : i + 1], attr[i : i + 1], target[i : i + 1])
            assert torch.allclose(single[1][0], whole[1][i], atol=1e-14, rtol=0)
            assert torch.allclose(single[0][0], whole[0][i], atol=1e-14, rtol=0)
        assert torch.allclose(chunked[1], whole[1], atol=1e-14, rtol=0)
        assert torch.allclose(blocks[1], whole[1], atol=1e-14, rtol=0)


class Recorder(nn.Module):
    """A model that records the number of inputs of each call."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.sizes = model, []

    def forward(self, x):
        self.sizes.append(len(x))
        return self.model(x)


@pytest.mark.parametrize("batch_size", [None, 2])
@pytest.mark.parametrize("block", [1, 40, 1 << 18])
def test_block_layouts_and_default_calls_give_the_same_curves(monkeypatch, block, batch_size):
    """Blocks of one point × some samples (batch_size 2 and a tiny block), of several points × all
    samples, and one block: every layout scores each input alone, in sample-major curves; by
    default a call takes at least 64 inputs and 32 Ki elements (here: all 21 inputs in one call)."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, 1, 4, 4, generator=gen, dtype=torch.float64)
    attr = torch.randn(3, 1, 4, 4, generator=gen, dtype=torch.float64)
    target = torch.tensor([0, 1, 0])
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2, dtype=torch.float64))
    reference = [metrics.get("deletion", step=3).evaluate_curve(model, x[i : i + 1], attr[i : i + 1], target[i : i + 1])[1]
                 for i in range(3)]  # fmt: skip
    monkeypatch.setattr(metrics.insertion_deletion, "BLOCK_ELEMENTS", block)
    recorder = Recorder(model)
    metric = metrics.get("deletion", step=3, batch_size=batch_size)
    curve = metric.evaluate_curve(recorder, x, attr, target)[1]
    torch.testing.assert_close(curve, torch.cat(reference), rtol=0, atol=1e-14)
    assert sum(recorder.sizes) == 3 * 7 and max(recorder.sizes) == min(21, batch_size or 21)


def test_default_rows_per_call_is_the_shared_element_budget_rule():
    """Deletion calls the model as every perturbation metric does: 32 Ki input elements per CPU
    call, between 32 and 4096 inputs, whatever the batch size."""
    deletion = metrics.get("deletion")
    assert deletion.rows_per_call(torch.zeros(3, 1, 28, 28)) == 41  # 32768 // 784
    assert deletion.rows_per_call(torch.zeros(100, 1, 28, 28)) == 41
    assert deletion.rows_per_call(torch.zeros(32, 30)) == 1092  # 32768 // 30
    assert deletion.rows_per_call(torch.zeros(8, 3, 128, 128)) == 32  # the floor
    assert metrics.get("deletion", batch_size=5).rows_per_call(torch.zeros(100, 30)) == 5


class InputRecorder(nn.Module):
    """A 2-class model with zero logits that keeps a copy of every input it is called on."""

    def __init__(self):
        super().__init__()
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.clone())
        return x.new_zeros(len(x), 2)


@pytest.mark.parametrize("name", ["insertion", "deletion"])
@pytest.mark.parametrize("dtype, n_features", [(torch.float32, 40), (torch.float16, 2100)])
def test_inputs_hold_exactly_the_values_of_x_and_the_baseline(name, dtype, n_features):
    """Every scored input takes each feature bit for bit from x or from the baseline, as the rank
    rule says (brute force: a bool mask and ``torch.where``): the weighted blend is exact at
    weights 0 and 1, including for values far apart (1e30 against -3), and ranks stay exact
    integers where the input's dtype cannot hold them (float16 beyond 2048 features)."""
    gen = torch.Generator().manual_seed(5)
    scale = 1e30 if dtype == torch.float32 else 1e4
    x = (torch.randn(3, n_features, generator=gen) * scale).to(dtype)
    attr = torch.randn(3, n_features, generator=gen).to(dtype)
    attr[1] = attr[1].round()  # ties between features
    step = n_features // 5 + 1
    recorder = InputRecorder()
    metrics.get(name, step=step, baseline=-3.0).evaluate_curve(recorder, x, attr, 0)
    seen = torch.cat(recorder.inputs).view(-1, 3, n_features)  # point-major
    rank = torch.empty(3, n_features, dtype=torch.long).scatter_(
        1, attr.float().argsort(dim=1, descending=True, stable=True), torch.arange(n_features).expand(3, n_features))
    counts = [*range(0, n_features, step), n_features]
    assert len(seen) == len(counts)
    for m, c in enumerate(counts):
        from_x = rank < c if name == "insertion" else rank >= c
        assert torch.equal(seen[m], torch.where(from_x, x, torch.tensor(-3.0, dtype=dtype)))


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 12), st.integers(1, 5), st.floats(0.05, 1.0), st.integers(0, 2**16))
def test_exact_contributions_give_the_best_insertion_and_deletion_of_a_linear_model(n_features, step, fraction, seed):
    """For a linear logit and baseline 0, ranking by w·x contributions maximises every partial sum."""
    gen = torch.Generator().manual_seed(seed)
    model = nn.Linear(n_features, 2, dtype=torch.float64)
    x = torch.randn(4, n_features, generator=gen, dtype=torch.float64)
    contributions = (model.weight[0] - model.weight[1]).detach() * x
    other = torch.randn(4, n_features, generator=gen, dtype=torch.float64)
    for name, better in (("insertion", torch.ge), ("deletion", torch.le)):
        metric = metrics.get(name, step=step, fraction=fraction)
        best = metric(model, x, contributions, 0)
        assert better(best + (1e-12 if name == "insertion" else -1e-12), metric(model, x, other, 0)).all()
        assert ((best >= 0) & (best <= 1)).all()


def test_default_step_gives_at_most_64_steps():
    x = torch.zeros(2, 1, 28, 28)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 2))
    curve = metrics.get("deletion").evaluate_curve(model, x, torch.randn(2, 1, 28, 28), 0)[1]
    assert curve.shape == (2, 62)  # step ⌈784 / 64⌉ = 13: 0, 13, ..., 780, 784
    x = torch.zeros(2, 30)
    curve = metrics.get("deletion", fraction=0.5).evaluate_curve(nn.Linear(30, 2), x, torch.randn(2, 30), 0)[1]
    assert curve.shape == (2, 16)  # step 1 over 15 features


def test_registry_builds_with_string_and_number_baselines():
    assert metrics.get("insertion", baseline="blur").baseline == "blur"
    assert metrics.get("deletion", baseline=1).baseline == 1.0


# -- bad inputs -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params, message",
    [
        ({"fraction": 0.0}, r"fraction must lie in \(0, 1\]"),
        ({"fraction": 1.5}, r"fraction must lie in \(0, 1\]"),
        ({"step": 0}, "step must be an integer >= 1"),
        ({"step": -2}, "step must be an integer >= 1"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"baseline": "zero"}, "baseline must be a finite number, 'blur' or 'mean'"),
        ({"baseline": float("nan")}, "baseline must be a finite number"),
        ({"blur_sigma": 0.0}, "blur_sigma must be a finite number > 0"),
        ({"unit": "channel"}, "unit must be"),
        ({"output": "log"}, "output must be"),
    ],
)
def test_bad_parameters_name_the_parameter(params, message):
    for cls in (metrics.insertion_deletion.Insertion, metrics.insertion_deletion.Deletion):
        with pytest.raises(ValueError, match=message):
            cls(**params)


def test_bad_call_inputs_name_the_argument():
    model = nn.Linear(4, 2)
    x = torch.randn(2, 4)
    metric = metrics.get("insertion")
    with pytest.raises(ValueError, match="attr and x must have the same shape"):
        metric(model, x, torch.randn(2, 5), 0)
    bad = x.clone()
    bad[0, 1] = float("nan")
    with pytest.raises(ValueError, match="attr contains 1 NaN"):
        metric(model, x, bad, 0)
    with pytest.raises(ValueError, match="x contains 1 NaN"):
        metric(model, bad, x, 0)
    with pytest.raises(ValueError, match=r"target holds class indices outside \[0, 2\)"):
        metric(model, x, x, 2)
    with pytest.raises(ValueError, match=r"unit='pixel' needs channel-first inputs \(N, C, \*spatial\)"):
        metrics.get("insertion", unit="pixel")(model, x, x, 0)
    with pytest.raises(ValueError, match=r"baseline='blur' needs channel-first inputs \(N, C, \*spatial\)"):
        metrics.get("deletion", baseline="blur")(model, x, x, 0)
