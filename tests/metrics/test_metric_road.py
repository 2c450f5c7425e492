"""ROAD (Rong et al. 2022): the noisy linear imputation and the MoRF/LeRF curves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from salbench import metrics
from salbench.metrics.linear_imputation import impute


def test_imputation_reproduces_linear_ramps_and_averages_neighbours():
    # an affine image solves the neighbour equations exactly at interior pixels (the weights are
    # symmetric), whatever the shape of the holes; at the border the neighbourhood is one-sided
    h, w = 7, 9
    rows, cols = torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64)
    ramp = (0.3 * rows[:, None] - 0.7 * cols[None, :] + 2).view(1, 1, h, w)
    removed = torch.rand(1, 1, h, w, generator=torch.Generator().manual_seed(0)) < 0.8
    removed[..., [0, -1], :] = False
    removed[..., :, [0, -1]] = False
    torch.testing.assert_close(impute(ramp, removed, tol=1e-12), ramp)
    # one hole in a corner: the weighted mean of its three in-image neighbours (1/6, 1/6, 1/12)
    x = torch.tensor([[[[0.0, 6.0], [12.0, 24.0]]]], dtype=torch.float64)
    corner = torch.tensor([[[[True, False], [False, False]]]])
    expected = (6.0 / 6 + 12.0 / 6 + 24.0 / 12) / (1 / 6 + 1 / 6 + 1 / 12)
    assert impute(x, corner)[0, 0, 0, 0].item() == pytest.approx(expected, abs=1e-9)


def test_imputation_refuses_an_image_without_known_pixels():
    with pytest.raises(ValueError, match="every pixel removed"):
        impute(torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2, dtype=torch.bool))


def test_imputation_agrees_with_quantus_direct_solver():
    quantus_perturb = pytest.importorskip("quantus.functions.perturb_func")
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 12, 10, generator=g, dtype=torch.float64)
    removed = torch.rand(2, 1, 12, 10, generator=g) < 0.7
    ours = impute(x, removed, tol=1e-10)
    for i in range(2):
        indices = removed[i, 0].flatten().nonzero().flatten().numpy()
        ref = quantus_perturb.noisy_linear_imputation(x[i].numpy(), indices, noise=0.0)
        np.testing.assert_allclose(ours[i].numpy(), ref, rtol=0, atol=1e-9)


def test_road_curve_is_the_score_of_the_imputed_images():
    g = torch.Generator().manual_seed(2)
    x, attr = (
        torch.rand(3, 2, 5, 5, generator=g, dtype=torch.float64),
        torch.randn(3, 1, 5, 5, generator=g, dtype=torch.float64),
    )
    attr = attr.expand(3, 2, 5, 5)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(50, 3)).double()
    area, curve = metrics.get("road_morf", percentages=(0.2, 0.6), noise=0.0, tol=1e-12).evaluate_curve(
        model, x, attr, 2
    )
    order = attr[:, 0].flatten(1).argsort(1, descending=True)
    for k, p in enumerate((0.2, 0.6)):
        removed = torch.zeros(3, 25, dtype=torch.bool).scatter_(1, order[:, : int(p * 25)], True).view(3, 1, 5, 5)
        probs = model(impute(x, removed, tol=1e-12)).softmax(1)[:, 2]
        torch.testing.assert_close(curve[:, k], probs.detach())
    torch.testing.assert_close(area, curve.mean(1))  # two points: the trapezoid over the span is their mean


def test_road_morf_falls_below_lerf_for_a_faithful_map():
    # linear logit with attr = w ⊙ x: removing the most positive contributions first lowers the score
    g = torch.Generator().manual_seed(3)
    x = torch.rand(8, 1, 6, 6, generator=g, dtype=torch.float64)
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 2)).double()
    attr = model[1].weight[0].detach().view(1, 1, 6, 6) * (x - x.mean())
    morf = metrics.get("road_morf", output="logit")(model, x, attr, 0)
    lerf = metrics.get("road_lerf", output="logit")(model, x, attr, 0)
    assert (morf < lerf).all()


def test_road_of_a_constant_model_is_its_score_and_noise_is_seeded_per_sample():
    class Constant(torch.nn.Module):
        def forward(self, x):
            return torch.tensor([[0.0, 1.0]], dtype=x.dtype).expand(len(x), 2)

    x = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    area = metrics.get("road_morf")(Constant(), x, torch.rand_like(x), 1)
    torch.testing.assert_close(area, torch.full((2,), 1 / (1 + np.exp(-1)), dtype=torch.float64))


def test_road_agrees_with_quantus_accuracy_curve():
    quantus = pytest.importorskip("quantus")
    g = torch.Generator().manual_seed(5)
    x, attr = torch.rand(6, 1, 10, 10, generator=g), torch.randn(6, 1, 10, 10, generator=g)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(100, 2)).eval()
    target = model(x).argmax(1)
    ref = quantus.ROAD(
        percentages=[10, 30, 50, 70], noise=0.0, normalise=False, return_aggregate=False, disable_warnings=True
    )(model=model, x_batch=x.numpy(), y_batch=target.numpy(), a_batch=attr.numpy(), device="cpu")
    _, curve = metrics.get("road_morf", percentages=(0.1, 0.3, 0.5, 0.7), noise=0.0).evaluate_curve(
        model, x, attr, target
    )
    # two classes: the target is the argmax iff its probability exceeds 1/2; Quantus reports the mean
    accuracy = (curve > 0.5).double().mean(0)
    np.testing.assert_allclose(accuracy.numpy(), [ref[p] for p in (10, 30, 50, 70)], rtol=0, atol=1e-12)
