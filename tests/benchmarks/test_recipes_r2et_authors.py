"""R2ET as its authors ran it: the softplus option of fine-tuning, the combined run, explanation-AT."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from salbench import models, recipes
from salbench.datasets import load_dataset
from salbench.model_cache import trained_model
from salbench.recipes.r2et import explanation_mass, ranking_regulariser
from torch import nn

BLOCKS = {"size": 8, "delta": 3.0, "n_train": 48, "n_val": 16, "n_test": 16}
CNN = {"channels": (3, 4)}
FAST = {"epochs": 1, "batch_size": 16, "base": {"epochs": 2, "batch_size": 16}}


def relu_mlp(n_in: int = 30) -> nn.Module:
    torch.manual_seed(0)
    return models.build("mlp", {"hidden": (6,)}, (n_in,), 2).double()


def loss(recipe, model, x, y, data):
    return recipe.batch_loss(model, x, y, data=data, generator=torch.Generator().manual_seed(0))


def test_the_authors_combination_is_the_sum_of_its_parts():
    """sp0.5,est_norm,tx: CE + Est-H term + ranking term = Est-H's loss + R2ET\\H's loss − CE, on one
    softplus model, each term with its own adaptive weight from the one λ."""
    data = load_dataset("wdbc", {})
    x, y = data.train.x[:16].double(), data.train.y[:16]
    combined = recipes.get("r2et", k=8, lam=0.3, softplus=0.5)
    model = combined.prepare(relu_mlp())
    assert [m.beta for m in model.modules() if isinstance(m, nn.Softplus)] == [0.5]
    est_h = recipes.get("est_hessian", lam=0.3, softplus=0.5)
    ranking = recipes.get("r2et", k=8, lam=0.3, hessian=False, softplus=0.5)
    ce = F.cross_entropy(model(x), y)
    parts = loss(est_h, model, x, y, data) + loss(ranking, model, x, y, data) - ce
    assert loss(combined, model, x, y, data).item() == pytest.approx(parts.item(), rel=1e-12)
    # and each adaptive term is ±λ(CE + 1): Est-H's is positive, the ranking term's negative
    assert (loss(est_h, model, x, y, data) - ce).item() == pytest.approx(0.3 * (ce.item() + 1), rel=1e-9)
    assert (loss(ranking, model, x, y, data) - ce).item() == pytest.approx(-0.3 * (ce.item() + 1), rel=1e-9)


def test_finetune_is_cross_entropy_alone():
    data = load_dataset("wdbc", {})
    x, y = data.train.x[:16].double(), data.train.y[:16]
    model = relu_mlp()
    assert torch.equal(loss(recipes.get("finetune"), model, x, y, data), F.cross_entropy(model(x), y))


def test_softplus_finetuning_starts_from_the_base_weights_and_is_cached_with_softplus(tmp_path):
    inputs = ("synthetic_blocks", BLOCKS, "small_cnn", CNN)
    base, _ = trained_model(*inputs, "standard", FAST["base"], 0, cache_dir=tmp_path)
    sp, meta = trained_model(*inputs, "finetune", {"softplus": 2.0, **FAST}, 0, cache_dir=tmp_path)
    loaded, _ = trained_model(*inputs, "finetune", {"softplus": 2.0, **FAST}, 0, cache_dir=tmp_path)
    assert meta["base_key"] is not None
    for model in (sp, loaded):
        assert not any(isinstance(m, nn.ReLU) for m in model.modules())
        assert {m.beta for m in model.modules() if isinstance(m, nn.Softplus)} == {2.0}
    assert sp.state_dict().keys() == base.state_dict().keys()
    x = load_dataset("synthetic_blocks", BLOCKS).test.x
    assert torch.equal(sp(x), loaded(x))
    # at lr → 0 the fine-tuned model is the base model with softplus_2 for its ReLUs
    still, _ = trained_model(*inputs, "finetune", {"softplus": 2.0, **FAST, "lr": 1e-12}, 0, cache_dir=tmp_path)
    swapped = recipes.get("softplus", beta=2.0).prepare(base)
    assert torch.allclose(still(x), swapped(x), atol=1e-6)


def test_explanation_at_is_one_normalised_step_of_the_ranking_attack_per_sample():
    """The batched step equals the authors' per-sample PGD_m step: x − ε·∇g0/‖∇g0‖, with
    g0 = Σ_pairs (I_upper − I_lower) over the sample's clean ranking; and it raises R."""
    data = load_dataset("wdbc", {})
    torch.manual_seed(0)
    model = recipes.get("softplus", beta=2.0).prepare(models.build("mlp", {"hidden": (8,)}, data.input_shape, 2))
    recipes.get("standard", epochs=3).fit(model, data, seed=0)
    model.double()  # smooth, so that a short step crosses no ReLU boundary
    x, y = data.train.x[:6].double(), data.train.y[:6]
    at = recipes.get("adversarial", target="explanation", k=8, norm="l2", eps=1.0, steps=1, alpha=1.0,
                     random_start=False)
    x_adv = at.perturb(model, x, y, None, torch.Generator().manual_seed(0))
    for i in range(len(y)):
        xi, yi = x[i : i + 1].clone().requires_grad_(True), y[i : i + 1]
        clean = explanation_mass(torch.autograd.grad(F.cross_entropy(model(xi), yi), xi)[0])
        order = clean.sort(dim=1, descending=True, stable=True).indices
        grad = torch.autograd.grad(F.cross_entropy(model(xi), yi), xi, create_graph=True)[0]
        g0 = -ranking_regulariser(explanation_mass(grad), 8, order=order).sum()
        step = torch.autograd.grad(g0, xi)[0]
        expected = x[i] - step[0] / step.norm()
        assert torch.allclose(x_adv[i], expected, atol=1e-9)

    def mass(z):
        z = z.clone().requires_grad_(True)
        return explanation_mass(torch.autograd.grad(F.cross_entropy(model(z), y, reduction="sum"), z)[0])

    assert torch.allclose((x_adv - x).norm(dim=1), torch.ones(6, dtype=torch.float64))
    # a short step along the same direction raises R for every sample (ascent, to first order):
    # the explanation loss moved, the top 8 lost ground to the next 8
    short = recipes.get("adversarial", target="explanation", k=8, norm="l2", eps=0.01, steps=1, alpha=0.01,
                        random_start=False).perturb(model, x, y, None, torch.Generator().manual_seed(0))
    assert torch.allclose(short - x, 0.01 * (x_adv - x))
    order = mass(x).sort(dim=1, descending=True, stable=True).indices
    before, after = (ranking_regulariser(mass(z), 8, order=order) for z in (x, short))
    assert (after > before).all()


def test_explanation_at_trains_through_the_cache(tmp_path):
    params = {"target": "explanation", "k": 8, "norm": "l2", "eps": 1.0, "steps": 1, "alpha": 1.0,
              "random_start": False, **FAST}
    inputs = ("synthetic_blocks", BLOCKS, "small_cnn", CNN, "adversarial")
    tuned, _ = trained_model(*inputs, params, 0, cache_dir=tmp_path)
    predicting, _ = trained_model(*inputs, {**params, "target": "prediction", "k": None}, 0, cache_dir=tmp_path)
    x = load_dataset("synthetic_blocks", BLOCKS).test.x
    assert not torch.equal(tuned(x), predicting(x))  # a different adversary, a different model


@pytest.mark.parametrize(
    "params, match",
    [
        ({"target": "explanation"}, "k"),
        ({"k": 3}, "k"),
        ({"target": "logits", "k": 3}, "target"),
        ({"target": "explanation", "k": 0}, "k"),
        ({"softplus": 0.0}, "softplus"),
    ],
)
def test_bad_parameters_are_named(params, match):
    with pytest.raises(ValueError, match=match):
        recipes.get("adversarial", **params)


def test_an_explanation_target_beyond_the_features_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match="k=16"):
        trained_model("wdbc", {}, "mlp", {}, "adversarial", {"target": "explanation", "k": 16}, 0, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_softplus_finetuning_needs_relu_modules():
    smooth = nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="nn.ReLU"):
        recipes.get("r2et", k=1, softplus=0.5).prepare(smooth)


def test_attacks_take_a_softplus_finetuned_model_as_its_own_surrogate():
    """The suite attacks softplus models with the default surrogate_beta: no ReLU to replace, so
    the attack runs on the model itself, exactly as with surrogate_beta=None."""
    from salbench import attacks, explainers

    data = load_dataset("wdbc", {})
    model = recipes.get("r2et", k=8, softplus=0.5).prepare(relu_mlp().float()).eval()
    x = data.test.x[:4]
    y = model(x).argmax(1)
    runs = [attacks.get("er_attack", k=8, steps=5, **extra)(model, explainers.get("gradient"), x, y)
            for extra in ({}, {"surrogate_beta": None})]
    assert runs[0].success.any()
    assert torch.equal(runs[0].x_adv, runs[1].x_adv)
