"""Infidelity (Yeh et al. 2019): hand-worked linear cases, the perturbations, agreement with Captum."""

from __future__ import annotations

import pytest
import torch
from salbench import metrics
from salbench.metrics.infidelity import perturbations
from salbench.testing import fixture


def linear(n_in: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(n_in, 3)).double()


@pytest.mark.parametrize("shape", [(4, 6), (3, 2, 7), (2, 1, 4, 5), (2, 2, 3, 3, 3)])
def test_infidelity_of_a_linear_models_gradient_is_zero_and_of_a_scaled_one_is_hand_worked(shape):
    # logit change f(x) − f(x − I) = Iᵀw exactly: the gradient w has infidelity 0; c·w has
    # (c − 1)² E[(Iᵀw)²] without normalisation, and 0 again with it (β = 1/c)
    x = torch.randn(shape, dtype=torch.float64)
    model = linear(x[0].numel())
    w = model[1].weight[1].detach().view(x.shape[1:]).expand_as(x)
    kind = "square" if len(shape) > 2 else "gaussian"
    raw = metrics.get("infidelity", n_samples=20, perturbation=kind, patch=2, normalize=False, seed=3)
    torch.testing.assert_close(raw(model, x, w, 1), torch.zeros(len(x), dtype=torch.float64), rtol=0, atol=1e-20)
    shifts = perturbations(x, kind, 20, 0.1, 2, seed=3)
    expected = (2.5 - 1) ** 2 * (shifts * w[:, None]).flatten(2).sum(2).square().mean(1)
    torch.testing.assert_close(raw(model, x, 2.5 * w, 1), expected)
    normalized = metrics.get("infidelity", n_samples=20, perturbation=kind, patch=2, seed=3)(model, x, 2.5 * w, 1)
    torch.testing.assert_close(normalized, torch.zeros(len(x), dtype=torch.float64), rtol=0, atol=1e-20)


def test_square_perturbations_are_the_input_on_one_cube():
    x = torch.rand(3, 2, 6, 5, dtype=torch.float64) + 0.1
    shifts = perturbations(x, "square", 50, 0.1, 3, seed=0)
    nonzero = shifts != 0
    assert (nonzero.flatten(2).sum(2) == 2 * 9).all()  # 3 × 3 positions, both channels
    assert torch.equal(shifts[nonzero], x[:, None].expand_as(shifts)[nonzero])
    with pytest.raises(ValueError, match="spatial inputs"):
        perturbations(torch.rand(2, 4), "square", 5, 0.1, 3, seed=0)


def test_infidelity_of_a_constant_model_is_the_mean_square_of_the_projection_and_zero_when_normalised():
    class Constant(torch.nn.Module):
        def forward(self, x):
            return torch.ones(len(x), 2, dtype=x.dtype)

    x, attr = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    shifts = perturbations(x, "gaussian", 10, 0.1, 4, seed=0)
    raw = metrics.get("infidelity", n_samples=10, normalize=False)(Constant(), x, attr, 0)
    torch.testing.assert_close(raw, (shifts * attr[:, None]).sum(2).square().mean(1))
    assert torch.equal(
        metrics.get("infidelity", n_samples=10)(Constant(), x, attr, 0), torch.zeros(3, dtype=torch.float64)
    )


@pytest.mark.parametrize("kind", ["gaussian", "square"])
@pytest.mark.parametrize("normalize", [True, False])
def test_infidelity_agrees_with_captum_given_the_same_perturbations(kind, normalize):
    captum_metrics = pytest.importorskip("captum.metrics")
    data = fixture("image")
    attr = torch.randn(data.x.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ours = metrics.get("infidelity", n_samples=7, perturbation=kind, patch=3, normalize=normalize)(
        data.model, data.x, attr, data.target
    )
    shifts = perturbations(data.x, kind, 7, 0.1, 3, seed=0).flatten(0, 1)  # sample-major, Captum's repeat_interleave
    ref = captum_metrics.infidelity(
        data.model,
        lambda inputs: (shifts, inputs - shifts),
        data.x,
        attr,
        target=data.target,
        n_perturb_samples=7,
        normalize=normalize,
    )
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-14)
