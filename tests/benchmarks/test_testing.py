"""salbench.testing catches each kind of broken component, and reports what does not apply."""

from __future__ import annotations

import pytest
import torch
from salbench.attacks.base import Attack, AttackResult
from salbench.explainers.base import Explainer, output_gradient
from salbench.metrics.base import Metric
from salbench.testing import (
    ContractError,
    check_attack,
    check_explainer,
    check_metric,
    fixture,
    registered,
)
from torch import nn


class Plain(Explainer):
    """The input gradient (a correct explainer); subclasses break one thing each."""

    def attribute(self, model, x, target, *, create_graph):
        return output_gradient(model, x, target, create_graph=create_graph)[0]


class WrongShape(Plain):
    """Sums over the features."""

    def attribute(self, model, x, target, *, create_graph):
        return super().attribute(model, x, target, create_graph=create_graph).sum(1, keepdim=True)


class BatchNormalised(Plain):
    """Divides by the largest value of the whole batch."""

    def attribute(self, model, x, target, *, create_graph):
        grad = super().attribute(model, x, target, create_graph=create_graph)
        return grad / grad.abs().max()


class AcceptsNaN(Plain):
    """Skips the input checks."""

    def __call__(self, model, x, target, *, create_graph=False):
        return self.attribute(model, x, torch.as_tensor(target).expand(len(x)), create_graph=create_graph)


class GlobalRandom(Plain):
    """Draws from torch's global generator instead of a seed of its own."""

    def attribute(self, model, x, target, *, create_graph):
        return super().attribute(model, x, target, create_graph=create_graph) + torch.rand_like(x)


class WrongDerivative(Plain):
    """Right values, but a graph whose derivative is 2·I instead of the Hessian."""

    def attribute(self, model, x, target, *, create_graph):
        grad = super().attribute(model, x, target, create_graph=False)
        return grad + 2 * (x - x.detach()) if create_graph else grad


class ImageOnly(Plain):
    """Declares the image modality only."""

    modalities = ("image",)


class ClaimsTabular(Plain):
    """Declares tabular inputs but refuses them."""

    modalities = ("image", "tabular")

    def attribute(self, model, x, target, *, create_graph):
        if x.dim() != 4:
            raise ValueError("needs images")
        return super().attribute(model, x, target, create_graph=create_graph)


class Refuses(Plain):
    """Applies to nothing the fixtures hold."""

    def attribute(self, model, x, target, *, create_graph):
        raise TypeError("x must be a text tensor")


def test_a_correct_explainer_passes_every_check_on_every_fixture():
    report = check_explainer(Plain())
    assert report.applicable == ("image", "volume", "signal", "tabular") and report.not_applicable == {}
    expected = ("shape", "device", "batch invariance", "NaN rejection", "determinism", "target rejection",
                "create_graph", "gradcheck")
    assert report.passed == {modality: expected for modality in report.applicable}


def test_volume_and_signal_fixtures_are_channel_first_cnns_that_predict_every_class():
    for modality, shape, conv in (("volume", (4, 1, 4, 4, 4), nn.Conv3d), ("signal", (4, 2, 12), nn.Conv1d)):
        data = fixture(modality)
        assert data.x.shape == shape and data.bounds == (0.0, 1.0) and isinstance(data.model[0], conv)
        assert isinstance(data.smooth_model[1], nn.Softplus) and data.reference.shape == (4, 4, *shape[1:])
        with torch.no_grad():
            wide = data.model(torch.rand(256, *shape[1:], generator=torch.Generator().manual_seed(3), dtype=torch.float64))
        assert set(wide.argmax(1).tolist()) == {0, 1, 2}


def test_a_parameter_whose_form_depends_on_the_modality_comes_from_test_params_by_modality():
    """target_region's region has two numbers per spatial dimension: 4 for the image fixture, 6 for
    the volume, 2 for the signal; given one region for all, the other fixtures refuse it."""
    report = check_attack("target_region")
    assert report.applicable == ("image", "volume", "signal")
    with pytest.raises(ContractError) as caught:
        check_attack("target_region", {"region": (0, 0, 4, 4)})
    assert "volume: refused its fixture: ValueError: region must give 6 numbers" in str(caught.value)
    assert "signal: refused its fixture: ValueError: region must give 2 numbers" in str(caught.value)


@pytest.mark.parametrize(
    "explainer, failure",
    [
        (WrongShape(), "shape: AssertionError: attribution"),
        (BatchNormalised(), "batch invariance: AssertionError: sample 0 after the other samples"),
        (AcceptsNaN(), "NaN rejection: AssertionError: an input holding NaN was accepted"),
        (GlobalRandom(), "determinism: AssertionError: a second component built with the same parameters"),
        (WrongDerivative(), "gradcheck: GradcheckError"),
        (ClaimsTabular(), "tabular: refused its fixture: ValueError: needs images"),
    ],
)
def test_each_broken_explainer_fails_the_check_it_breaks(explainer, failure):
    with pytest.raises(ContractError, match="breaks its contract") as caught:
        check_explainer(explainer)
    assert failure in str(caught.value)


def test_modalities_come_from_declarations_and_a_refusal_of_a_declared_one_fails():
    declared = check_explainer(ImageOnly())
    assert declared.applicable == ("image",) and "declares modalities ('image',)" in declared.not_applicable["tabular"]
    with pytest.raises(ContractError, match=r"image: refused its fixture: TypeError: x must be a text tensor"):
        check_explainer(Refuses())  # it declares the image and tabular modalities (the base class's default)


def test_non_differentiable_explainers_refuse_create_graph_and_skip_gradcheck():
    report = check_explainer("occlusion")
    assert "create_graph" in report.passed["image"] and "gradcheck" not in report.passed["image"]
    assert report.skipped == ("gradcheck: not differentiable (differentiable = False)",)


class LabelChanging(Attack):
    """Returns the batch in reverse order: samples of other classes, in range."""

    def attack(self, model, explainer, x, target, inputs):
        x_adv, n = x.flip(0), len(x)
        return AttackResult(x_adv, torch.ones(n, dtype=torch.long), torch.ones(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool))


def test_an_attack_that_changes_labels_fails_the_shape_check():
    with pytest.raises(ContractError, match=r"shape: AssertionError: samples \[.*\] changed their label"):
        check_attack(LabelChanging())


class SilentNaN(Metric):
    """A NaN value without a note."""

    category = "faithfulness"
    higher_is_better = True

    def evaluate(self, case):
        values = case.attr.flatten(1).sum(1)
        values[0] = float("nan")
        return values, None


def test_a_metric_with_an_unexplained_nan_fails():
    with pytest.raises(ContractError, match="sample 0 has a NaN value without a note"):
        check_metric(SilentNaN())


def test_registered_lists_the_registry_and_rejects_other_kinds():
    assert "decoy" in registered("explainers") and "topk" in registered("attacks")
    with pytest.raises(ValueError, match="kind must be one of explainers, attacks, metrics"):
        registered("datasets")


def test_fixtures_are_fixed_and_leave_the_global_generator_alone():
    state = torch.get_rng_state()
    first, second = fixture("image"), fixture("image")
    assert torch.equal(torch.get_rng_state(), state)
    torch.testing.assert_close(first.x, second.x, rtol=0, atol=0)
    with torch.no_grad():
        assert torch.equal(first.model(first.x).argmax(1), first.target)
