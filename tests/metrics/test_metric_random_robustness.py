"""Robustness to random perturbations: max/avg-sensitivity, local Lipschitz, relative stability, continuity.

Agreement with Captum's ``sensitivity_max`` and Quantus's metrics is checked on the same draws
(fed to them as their perturbation function), in float64: the same arithmetic in another
order, so the tolerance is rtol 1e-9 (1e-7 for Quantus's continuity and local Lipschitz
estimate, which add 1e-9 and 1e-10 to ‖x − x′‖).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from salbench import explainers, metrics
from salbench.metrics.base import Case
from salbench.testing import fixture
from torch import nn

RTOL = 1e-9
ROBUSTNESS = ("max_sensitivity", "avg_sensitivity", "local_lipschitz", "relative_stability")


def _case(data, explainer=None):
    explainer = explainer or explainers.get("gradient")
    return Case(model=data.smooth_model, explainer=explainer, x=data.x, target=data.target, attr=None)


def test_declarations():
    for name in ROBUSTNESS + ("continuity",):
        attrs = metrics.registry.entry(name).attrs
        assert attrs["category"] == "robustness" and attrs["higher_is_better"] is False and not attrs["needs_attack"]
    assert metrics.registry.entry("continuity").attrs["modalities"] == ("image", "volume", "signal")
    assert metrics.get("relative_stability").outputs == ("ris", "rrs", "ros")
    assert "not Yeh et al." in metrics.get("sensitivity").__doc__ and "Not the attack-based" in metrics.get("max_sensitivity").__doc__


# -- hand-worked cases and invariants -------------------------------------------------------------
@pytest.mark.parametrize("modality", ["image", "tabular"])
def test_identity_explainer_gives_the_hand_worked_ratios(modality, identity):
    data = fixture(modality)
    metric = metrics.get("max_sensitivity", n_samples=6, radius=0.05)
    delta = metric.neighbours(data.x) - data.x[:, None]
    relative = delta.flatten(2).norm(dim=2) / data.x.flatten(1).norm(dim=1)[:, None]  # ‖δ‖ / ‖x‖ for E(x) = x
    case = _case(data, identity)
    torch.testing.assert_close(metric.evaluate(case).values, relative.amax(1), rtol=RTOL, atol=0)
    avg = metrics.get("avg_sensitivity", n_samples=6, radius=0.05).evaluate(case).values
    torch.testing.assert_close(avg, relative.mean(1), rtol=RTOL, atol=0)
    lipschitz = metrics.get("local_lipschitz", n_samples=6, radius=0.05).evaluate(case).values
    torch.testing.assert_close(lipschitz, torch.ones(len(data.x), dtype=torch.float64), rtol=RTOL, atol=0)


def test_relative_input_stability_of_the_identity_explainer_is_one(identity):
    data = fixture("tabular")  # no zero inputs: (x − x′)/x is the same ratio in numerator and denominator
    values = metrics.get("relative_stability", n_samples=5).evaluate(_case(data, identity)).values
    torch.testing.assert_close(values[:, 0], torch.ones(len(data.x), dtype=torch.float64), rtol=RTOL, atol=0)


@pytest.mark.parametrize("name", ROBUSTNESS + ("continuity",))
def test_a_constant_explainer_scores_zero(name, constant):
    data = fixture("image")
    out = metrics.get(name).evaluate(_case(data, constant))
    assert torch.equal(out.values, torch.zeros_like(out.values)) and out.notes is None


@pytest.mark.parametrize("name", ["max_sensitivity", "avg_sensitivity"])
def test_a_zero_map_is_undefined_with_a_note(name, zero):
    out = metrics.get(name).evaluate(_case(fixture("tabular"), zero))
    assert out.values.isnan().all() and all("E(x) is zero" in note for note in out.notes)


def test_draws_depend_on_the_sample_and_seed_only():
    data = fixture("image")
    metric = metrics.get("avg_sensitivity", n_samples=4, radius=0.1)
    full = metric.evaluate(_case(data)).values
    alone = metric.evaluate(_case(data.sample(2))).values
    torch.testing.assert_close(full[2:3], alone, rtol=1e-12, atol=0)
    other = metrics.get("avg_sensitivity", n_samples=4, radius=0.1, seed=1).evaluate(_case(data)).values
    assert not torch.allclose(full, other)
    draws = metric.neighbours(data.x) - data.x[:, None]
    assert draws.abs().max() <= 0.1 and draws.abs().max() > 0.09  # uniform over the ball


def test_the_cells_attribution_is_used_and_validated(identity):
    data = fixture("tabular")
    metric = metrics.get("max_sensitivity", n_samples=3)
    given = metric(data.model, identity, data.x, data.target, attr=2 * data.x)  # ‖2x − x′‖ / ‖2x‖ >= 1/2
    assert (given > 0.4).all()
    with pytest.raises(ValueError, match="attr and x must have the same shape"):
        metric(data.model, identity, data.x, data.target, attr=data.x[:, :3])
    with pytest.raises(ValueError, match="has none"):
        metric.evaluate(Case(model=data.model, explainer=None, x=data.x, target=data.target, attr=None))
    with pytest.raises(ValueError, match="radius"):
        metrics.get("max_sensitivity", radius=0.0)


def test_relative_stability_keeps_only_draws_that_keep_the_prediction(identity):
    class Step(nn.Module):  # class 0 exactly at x = 0, class 1 anywhere else
        def forward(self, x):
            at_zero = (x.flatten(1) == 0).all(1).double()
            return torch.stack([at_zero, torch.full_like(at_zero, 0.5)], dim=1)

    x = torch.tensor([[0.0, 0.0], [1.0, 2.0]], dtype=torch.float64)
    step = nn.Sequential(Step())
    out = metrics.get("relative_stability", n_samples=4, layer="0").evaluate(
        Case(model=step, explainer=identity, x=x, target=torch.tensor([0, 1]), attr=None)
    )
    assert out.values[0].isnan().all() and "changed the model's prediction" in out.notes[0]
    assert out.notes[1] is None and out.values[1, 0].item() == pytest.approx(1.0, rel=RTOL)


def test_relative_stability_layer_names_a_submodule():
    data = fixture("tabular")
    auto = metrics.get("relative_stability", n_samples=3).evaluate(_case(data)).values
    named = metrics.get("relative_stability", n_samples=3, layer="1").evaluate(_case(data)).values  # ReLU = input of the last Linear
    torch.testing.assert_close(auto, named, rtol=0, atol=0)
    with pytest.raises(ValueError, match="not a submodule"):
        metrics.get("relative_stability", layer="nope").evaluate(_case(data))


def test_continuity_hand_worked(identity):
    # x = [1, 0, 0], K = 7 = 2W + 1: shifts −2..4, fill 0; E(x) = x, so each ratio is ‖Δx‖₁ / ‖Δx‖₂:
    # the 1 moved inside (t = 1, 2): |Δx| = (1, 1) → √2; moved out (t = −2, −1, 3, 4): 1; t = 0 left out.
    x = torch.tensor([[[1.0, 0.0, 0.0]]], dtype=torch.float64)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3, 2)).double()
    value = metrics.get("continuity", n_steps=7)(model, identity, x, 0)
    assert value.item() == pytest.approx(math.sqrt(2), rel=RTOL)


def test_continuity_of_a_constant_input_is_undefined_with_a_note(identity):
    x = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    out = metrics.get("continuity", n_steps=3).evaluate(Case(fixture("image").model, identity, x, torch.tensor([0]), None))
    assert out.values.isnan().all() and "no translation changed the input" in out.notes[0]
    with pytest.raises(ValueError, match="n_steps must be at most 2W"):
        metrics.get("continuity", n_steps=18)(fixture("image").model, identity, fixture("image").x, 0)


@pytest.mark.parametrize("shape", [(2, 3, 10), (2, 2, 4, 5, 6)], ids=["signal", "volume"])
@pytest.mark.parametrize("name", ROBUSTNESS + ("continuity",))
def test_signals_and_volumes(shape, name, spatial_case):
    params = {"n_steps": 5} if name == "continuity" else {"n_samples": 3}
    out = metrics.get(name, **params).evaluate(spatial_case(shape, [0, 2]))
    assert out.values.shape[0] == 2 and torch.isfinite(out.values).all() and (out.values > 0).all()


# -- agreement with Captum and Quantus on the same draws ------------------------------------------
@pytest.mark.parametrize("modality", ["image", "tabular"])
def test_max_sensitivity_equals_captum_sensitivity_max(modality):
    from captum.metrics import sensitivity_max

    data = fixture(modality)
    gradient = explainers.get("gradient")
    metric = metrics.get("max_sensitivity", n_samples=5, radius=0.1)
    draws = metric.neighbours(data.x)

    def perturb(inputs):  # Captum repeats each sample n_perturb_samples times, sample-major, as the draws are laid out
        torch.testing.assert_close(inputs, data.x.repeat_interleave(5, dim=0))
        return draws.flatten(0, 1)

    def explain(inputs, target):  # Captum passes and expects tuples of tensors
        (inputs,) = inputs if isinstance(inputs, tuple) else (inputs,)
        return (gradient(data.smooth_model, inputs, target),)

    captum = sensitivity_max(
        explain, data.x,
        perturb_func=perturb, n_perturb_samples=5, target=data.target,
    )
    ours = metric.evaluate(_case(data)).values
    torch.testing.assert_close(ours, captum, rtol=RTOL, atol=0)
    assert (ours > 0).all()


def _quantus_inputs(data):
    gradient = explainers.get("gradient")

    def explain(model, inputs, targets, **kwargs):
        return gradient(model, torch.as_tensor(inputs), torch.as_tensor(targets)).numpy()

    return {"model": data.smooth_model, "x_batch": data.x.numpy(), "y_batch": data.target.numpy(),
                "a_batch": gradient(data.smooth_model, data.x, data.target).numpy(), "explain_func": explain, "device": "cpu"}


def _feeder(draws):
    """A Quantus perturbation function that returns draw s of every sample at its s-th call."""
    calls = iter(range(draws.shape[1]))

    def perturb(arr, **kwargs):
        return draws[:, next(calls)].reshape(arr.shape).numpy()

    return perturb


@pytest.fixture
def float64_default():
    """Quantus builds model inputs with ``torch.Tensor(x)`` (the default dtype): our models are float64."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


@pytest.mark.parametrize("modality", ["image", "tabular"])
@pytest.mark.parametrize(("name", "quantus_name", "quantus_params", "rtol"), [
    ("max_sensitivity", "MaxSensitivity", {}, RTOL),
    ("avg_sensitivity", "AvgSensitivity", {}, RTOL),
    # Quantus divides maps by a max by default, and adds 1e-10 to ‖x − x′‖ (≈ 0.1 here: relative 1e-9)
    ("local_lipschitz", "LocalLipschitzEstimate", {"normalise": False}, 1e-7),
])
def test_agreement_with_quantus(float64_default, modality, name, quantus_name, quantus_params, rtol):
    quantus = pytest.importorskip("quantus")
    data = fixture(modality)
    metric = metrics.get(name, n_samples=5, radius=0.1)
    reference = getattr(quantus, quantus_name)(
        nr_samples=5, perturb_func=_feeder(metric.neighbours(data.x)), disable_warnings=True, **quantus_params
    )
    expected = torch.as_tensor(np.asarray(reference(**_quantus_inputs(data))))
    torch.testing.assert_close(metric.evaluate(_case(data)).values, expected, rtol=rtol, atol=0)
    assert (expected > 0).all()


@pytest.mark.parametrize("modality", ["image", "tabular"])
def test_relative_stability_agrees_with_quantus(float64_default, modality):
    quantus = pytest.importorskip("quantus")
    data = fixture(modality)
    metric = metrics.get("relative_stability", n_samples=5, radius=0.01)  # small: every draw keeps the prediction
    draws = metric.neighbours(data.x)
    layer = "5" if modality == "image" else "1"  # Flatten / ReLU: the input of the last Linear ("auto")
    expected = []
    for cls, extra in (("RelativeInputStability", {}), ("RelativeRepresentationStability", {"layer_names": [layer]}),
                       ("RelativeOutputStability", {})):
        reference = getattr(quantus, cls)(nr_samples=5, perturb_func=_feeder(draws), disable_warnings=True, **extra)
        expected.append(torch.as_tensor(np.asarray(reference(**_quantus_inputs(data)))))
    ours = metric.evaluate(_case(data))
    assert ours.notes is None
    torch.testing.assert_close(ours.values, torch.stack(expected, dim=1), rtol=RTOL, atol=0)
    assert (ours.values > 0).all()


def test_continuity_agrees_with_quantus(float64_default):
    quantus = pytest.importorskip("quantus")
    data = fixture("image")
    reference = quantus.Continuity(nr_steps=8, abs=False, normalise=False, disable_warnings=True)
    inputs = _quantus_inputs(data)
    expected = torch.as_tensor(np.asarray(reference(**inputs)))
    ours = metrics.get("continuity", n_steps=8).evaluate(_case(data)).values
    torch.testing.assert_close(ours, expected, rtol=1e-7, atol=0)
    assert (expected > 0).all()
