"""Sanity checks: model-parameter randomisation (cascading, independent) and the random-logit test."""

from __future__ import annotations

import copy

import pytest
import torch
from salbench import explainers, metrics
from salbench.metrics.base import Case
from salbench.metrics.parameter_randomisation import parameter_layers, reinitialise
from salbench.metrics.random_logit import other_classes
from salbench.metrics.sanity_check import spearman_similarity
from salbench.metrics.ssim import ssim
from salbench.testing import fixture
from scipy.stats import spearmanr
from torch import nn


def _case(model, x, target, explainer):
    return Case(model=model, explainer=explainer, x=x, target=target, attr=None)


def test_declarations():
    for name in ("parameter_randomisation", "random_logit"):
        attrs = metrics.registry.entry(name).attrs
        assert attrs["category"] == "randomisation" and attrs["higher_is_better"] is False


def test_spearman_similarity_matches_scipy_with_ties():
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(-3, 4, (5, 12), generator=gen).double()
    b = torch.randn(5, 12, generator=gen, dtype=torch.float64)
    expected = [spearmanr(a[i].abs(), b[i].abs()).statistic for i in range(5)]
    assert spearman_similarity(a, b, absolute=True).tolist() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("order", ["cascading", "independent"])
@pytest.mark.parametrize("modality", ["image", "tabular"])
def test_a_parameter_independent_map_fails_the_check(order, modality, identity):
    data = fixture(modality)
    out = metrics.get("parameter_randomisation", order=order).evaluate(_case(data.model, data.x, data.target, identity))
    assert torch.equal(out.values, torch.ones_like(out.values))
    assert out.curves.shape == (len(data.x), len(parameter_layers(data.model))) and (out.curves == 1).all()


def test_gradient_of_a_linear_model_gives_the_correlation_of_the_weights():
    torch.manual_seed(0)
    model = nn.Linear(50, 3).double()
    x = torch.randn(4, 50, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 0])
    out = metrics.get("parameter_randomisation", seed=3).evaluate(_case(model, x, target, explainers.get("gradient")))
    fresh = copy.deepcopy(model)
    reinitialise(fresh, 3, "")  # the gradient of the randomised model is its weight row
    expected = [spearmanr(model.weight[c].abs().detach(), fresh.weight[c].abs().detach()).statistic for c in target.tolist()]
    assert out.values.tolist() == pytest.approx(expected, rel=1e-12)
    assert out.values.abs().max() < 4 / 50**0.5  # independent weights: ρ ~ N(0, 1/49)


def test_cascading_and_independent_share_the_top_layer_and_never_change_the_model():
    data = fixture("tabular")
    before = copy.deepcopy(data.smooth_model.state_dict())
    case = _case(data.smooth_model, data.x, data.target, explainers.get("gradient"))
    cascading = metrics.get("parameter_randomisation").evaluate(case)
    independent = metrics.get("parameter_randomisation", order="independent").evaluate(case)
    torch.testing.assert_close(cascading.curves[:, 0], independent.curves[:, 0], rtol=0, atol=0)  # top layer alone in both
    torch.testing.assert_close(cascading.values, cascading.curves[:, -1], rtol=0, atol=0)
    torch.testing.assert_close(independent.values, independent.curves.mean(1), rtol=0, atol=0)
    assert not torch.allclose(cascading.curves[:, 1], independent.curves[:, 1])
    assert all(torch.equal(before[k], v) for k, v in data.smooth_model.state_dict().items())


def test_reinitialisation_is_seeded_per_layer_and_leaves_the_global_generator_alone():
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    state = torch.get_rng_state()
    reinitialise(a, 0, "fc")
    assert torch.equal(torch.get_rng_state(), state)
    reinitialise(b, 0, "fc")
    assert torch.equal(a.weight, b.weight)
    reinitialise(b, 0, "other")
    assert not torch.equal(a.weight, b.weight)


def test_constant_maps_give_nan_with_a_note_and_layers_without_reset_are_refused(identity, constant):
    data = fixture("tabular")
    out = metrics.get("parameter_randomisation").evaluate(_case(data.model, data.x, data.target, constant))
    assert out.values.isnan().all() and all("undefined" in note and "'0'" in note for note in out.notes)

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1, dtype=torch.float64))

        def forward(self, x):
            return data.model(x) * self.scale

    with pytest.raises(ValueError, match="no reset_parameters"):
        metrics.get("parameter_randomisation").evaluate(_case(Scaled(), data.x, data.target, identity))


def test_other_classes_are_uniform_others_drawn_per_sample():
    x = torch.arange(3000.0).view(1000, 3)
    target = torch.arange(1000) % 4
    other = other_classes(x, target, 4, seed=0)
    assert (other != target).all() and ((other >= 0) & (other < 4)).all()
    counts = torch.bincount(other, minlength=4).double()
    # class k is drawn for the 750 samples of other targets with probability 1/3: 250 ± 5σ
    assert (counts - 250).abs().max() < 5 * (750 * (1 / 3) * (2 / 3)) ** 0.5
    torch.testing.assert_close(other_classes(x[7:8], target[7:8], 4, seed=0), other[7:8])
    assert not torch.equal(other_classes(x, target, 4, seed=1), other)
    assert other_classes(x[:5], torch.zeros(5, dtype=torch.long), 2, seed=0).tolist() == [1] * 5


def test_random_logit_hand_worked_on_a_linear_model(identity):
    torch.manual_seed(0)
    model = nn.Linear(6, 3).double()
    x = torch.randn(4, 6, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 0])
    out = metrics.get("random_logit", seed=5).evaluate(_case(model, x, target, explainers.get("gradient")))
    other = other_classes(x, target, 3, seed=5)
    w = model.weight.detach().abs()
    expected = [spearmanr(w[c], w[o]).statistic for c, o in zip(target.tolist(), other.tolist())]
    assert out.values.tolist() == pytest.approx(expected, rel=1e-12)
    identity = metrics.get("random_logit").evaluate(_case(model, x, target, identity))
    assert torch.equal(identity.values, torch.ones(4, dtype=torch.float64))


@pytest.mark.parametrize("shape", [(3, 2, 12, 10), (2, 1, 20), (2, 1, 8, 9, 7)], ids=["image", "signal", "volume"])
def test_ssim_equals_scikit_image(shape):
    from skimage.metrics import structural_similarity

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(shape, generator=gen, dtype=torch.float64)
    b = a + 0.7 * torch.randn(shape, generator=gen, dtype=torch.float64)
    expected = []
    for ai, bi in zip(a.numpy(), b.numpy()):
        data_range = max(ai.max(), bi.max()) - min(ai.min(), bi.min())  # Quantus's choice
        expected.append(structural_similarity(ai, bi, data_range=data_range, channel_axis=0))
    assert ssim(a, b).tolist() == pytest.approx(expected, rel=1e-10)


def test_ssim_similarity_in_the_sanity_checks(identity):
    data = fixture("image")
    case = Case(model=data.model, explainer=identity, x=data.x, target=data.target, attr=None)
    assert torch.equal(metrics.get("random_logit", similarity="ssim").evaluate(case).values, torch.ones(4, dtype=torch.float64))
    gradient = Case(model=data.smooth_model, explainer=explainers.get("gradient"), x=data.x, target=data.target, attr=None)
    out = metrics.get("parameter_randomisation", similarity="ssim").evaluate(gradient)
    expected = ssim(explainers.get("gradient")(data.smooth_model, data.x, data.target).abs(),
                    explainers.get("gradient")(_randomised(data.smooth_model), data.x, data.target).abs())
    torch.testing.assert_close(out.values, expected, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="SSIM compares maps of shape"):
        metrics.get("random_logit", similarity="ssim").evaluate(
            Case(model=fixture("tabular").model, explainer=identity, x=fixture("tabular").x, target=data.target, attr=None)
        )


def _randomised(model):
    """Every parameter layer re-initialised as the cascading test's last step does (seed 0)."""
    fresh = copy.deepcopy(model)
    for name in parameter_layers(fresh):
        reinitialise(fresh.get_submodule(name), 0, name)
    return fresh


@pytest.mark.parametrize("shape", [(2, 3, 10), (2, 2, 7, 7, 8)], ids=["signal", "volume"])
@pytest.mark.parametrize("params", [
    {"name": "parameter_randomisation"}, {"name": "parameter_randomisation", "order": "independent"},
    {"name": "random_logit"}, {"name": "random_logit", "similarity": "ssim"},
])  # fmt: skip
def test_signals_and_volumes(shape, params, spatial_case):
    out = metrics.get(**params).evaluate(spatial_case(shape, [0, 2]))
    assert out.values.shape == (2,) and torch.isfinite(out.values).all() and (out.values < 1).all()
