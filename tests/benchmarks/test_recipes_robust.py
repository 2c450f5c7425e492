"""Robust-explanation recipes (weight_decay, softplus, est_hessian, adversarial, r2et, idexpo) and fine-tuning.

The differentiable insertion/deletion costs that ID-ExpO trains on converge to the exact
metrics as the temperature sharpens: that is tested where they are defined,
``tests/metrics/test_metric_soft_insertion_deletion.py``
(``test_soft_costs_converge_to_the_exact_ones_as_temperature_sharpens``), not repeated here.
"""

from __future__ import annotations

import hashlib
import math

import pytest
import torch
import torch.nn.functional as F
from salbench import datasets, models, recipes
from salbench.core.hashing import canonical_json
from salbench.core.registry import ParameterError
from salbench.datasets import load_dataset
from salbench.model_cache import model_code, model_key, trained_model
from salbench.recipes.est_hessian import EstHessian
from salbench.recipes.penalties import adaptive_weight, hessian_norm, loss_gradient
from salbench.recipes.r2et import R2ET, explanation_mass, ranking_regulariser
from salbench.recipes.standard import Standard
from torch import nn
from torch.func import functional_call

BLOCKS = {"size": 8, "delta": 3.0, "n_train": 48, "n_val": 16, "n_test": 16}
CNN = {"channels": (3, 4)}
BASE = {"epochs": 2, "batch_size": 16}
FAST = {"epochs": 1, "batch_size": 16, "base": BASE}


@pytest.fixture(autouse=True)
def _fresh_data_cache():
    datasets._cache.clear()
    yield
    datasets._cache.clear()


def blocks():
    return load_dataset("synthetic_blocks", BLOCKS)


def smooth_mlp(n_in: int = 6, dtype=torch.float64) -> nn.Module:
    """A softplus MLP: smooth, so its input Hessian is not zero almost everywhere as a ReLU net's is."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(n_in, 5), nn.Softplus(), nn.Linear(5, 3)).to(dtype)


def cnn(data, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return models.build("small_cnn", CNN, data.input_shape, data.num_classes)


def state_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# -- every recipe: differentiable loss that training decreases --------------------------------------
LOSS_CASES = [
    ("standard", {}),
    ("weight_decay", {"weight_decay": 1e-3}),
    ("softplus", {"beta": 2.0}),
    ("est_hessian", {"lam": 0.5, "adaptive": False}),
    ("adversarial", {"eps": 0.3, "steps": 3}),
    ("adversarial", {"eps": 1.0, "norm": "l2", "steps": 3, "random_start": False}),
    ("r2et", {"k": 8, "lam": 0.1, "adaptive": False}),
    ("r2et", {"k": 8, "lam": 0.1, "mm_terms": 2, "hessian": False, "adaptive": False}),
    ("r2et", {"k": 8, "lam": 0.1, "softplus": 0.5, "adaptive": False}),
    ("finetune", {"softplus": 0.5}),
    ("adversarial", {"target": "explanation", "k": 8, "eps": 1.0, "norm": "l2", "steps": 1, "random_start": False}),
    ("idexpo", {"explainer": "gradcam", "lam_insdel": 1.0, "steps": 8}),
    ("idexpo", {"explainer": "gradient", "lam_insdel": 1.0, "lam_norm": 1.0, "steps": 8}),
]


def full_batch_loss(recipe, model, data):
    """The recipe's loss on the whole training split, with a fresh generator (a fixed objective)."""
    generator = torch.Generator().manual_seed(0)
    return recipe.batch_loss(model, data.train.x, data.train.y, data=data, generator=generator)


@pytest.mark.parametrize("name, params", LOSS_CASES, ids=lambda v: v if isinstance(v, str) else None)
def test_each_recipe_loss_is_differentiable_and_decreases(name, params):
    data = blocks()
    recipe = recipes.get(name, **params)
    model = recipe.prepare(cnn(data))
    recipe.check(model, data)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = full_batch_loss(recipe, model, data)
        optimiser.zero_grad()
        loss.backward()
        grads = [p.grad for p in model.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize(
    "name, params",
    [("est_hessian", {"lam": 1.0, "adaptive": False}), ("r2et", {"k": 2, "lam": 1.0, "adaptive": False}),
     ("r2et", {"k": 2, "lam": 1.0, "mm_terms": 1, "hessian": False, "adaptive": False})],
    ids=["est_hessian", "r2et", "r2et_mm_noh"],
)
def test_double_backprop_gradient_matches_finite_differences(name, params):
    """The parameter gradient of the regularised loss (through the input gradient) is the true one.

    (ID-ExpO is left out: its soft costs treat their thresholds as constants by design, so their
    autograd gradient is not the finite-difference one.)
    """
    torch.manual_seed(3)
    data = load_dataset("wdbc", {})
    x, y = data.train.x[:5].double(), data.train.y[:5]
    model = nn.Sequential(nn.Linear(30, 4), nn.Softplus(), nn.Linear(4, 2)).double()
    recipe = recipes.get(name, **params)
    names = [n for n, _ in model.named_parameters()]

    def loss(*values):
        params_ = dict(zip(names, values))
        wrapped = _Functional(model, params_)
        return recipe.batch_loss(wrapped, x, y, data=data, generator=torch.Generator().manual_seed(0))

    values = tuple(p.detach().clone().requires_grad_(True) for p in model.parameters())
    assert torch.autograd.gradcheck(loss, values, eps=1e-6, atol=1e-5, rtol=1e-4)


class _Functional(nn.Module):
    """``model`` evaluated with the given parameter tensors (so gradcheck can vary them)."""

    def __init__(self, model: nn.Module, params: dict):
        super().__init__()
        self.model, self.params = model, params

    def forward(self, x):
        return functional_call(self.model, self.params, (x,))


# -- R2ET's regulariser, by hand ------------------------------------------------------------------
MASS = [0.5, 3.0, 1.0, 6.0, 2.0, 4.0]  # ranked: 6 (3), 4 (5), 3 (1), 2 (4), 1 (2), 0.5 (0)


@pytest.mark.parametrize(
    "k, mm_terms, expected",
    [
        (2, None, (4 - 6) + (3 - 4) + (2 - 4)),  # pairs (0,1), (1,2), (1,3) of ranks = (3 + 2) − (6 + 4)
        (3, None, (3 - 6) + (3 - 4) + (2 - 3) + (1 - 3) + (0.5 - 3)),  # = (2 + 1 + 0.5) − (6 + 4 + 3)
        (2, 1, 3 - 4),  # the minimal margin: largest below the top 2 minus smallest in it
        (3, 2, (2 + 1) - (4 + 3)),
        (2, 2, (3 + 2) - (6 + 4)),  # n = k gives R2ET's full sum
    ],
)
def test_ranking_regulariser_matches_hand_computed_values(k, mm_terms, expected):
    mass = torch.tensor([MASS], dtype=torch.float64)
    assert ranking_regulariser(mass, k, mm_terms).item() == pytest.approx(expected, abs=1e-12)


def test_r2et_loss_on_a_six_feature_linear_model_by_hand():
    # f(x) = W x with w_0 = 0, w_1 = 2·v: at x = 0 both logits are 0, p = (1/2, 1/2), and for y = 0
    # ∇_x CE = Σ_j (p_j − δ_j0) w_j = w_1 / 2 = v, so I(x) = |v| = MASS and R = −5 (k = 2).
    v = torch.tensor([0.5, -3.0, 1.0, 6.0, -2.0, 4.0], dtype=torch.float64)
    model = nn.Linear(6, 2, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.stack([torch.zeros(6, dtype=torch.float64), 2 * v]))
    x, y = torch.zeros(1, 6, dtype=torch.float64), torch.tensor([0])
    mass = explanation_mass(loss_gradient(model, x, y, create_graph=True))
    assert torch.equal(mass, torch.tensor([MASS], dtype=torch.float64))
    assert ranking_regulariser(mass, 2).item() == pytest.approx(-5.0)
    data = load_dataset("wdbc", {})
    ce = math.log(2)
    plain = R2ET(k=2, lam=0.25, hessian=False, adaptive=False)
    assert plain.batch_loss(model, x, y, data=data, generator=None).item() == pytest.approx(ce - 0.25 * 5)
    # adaptive: |λ (CE + 1) / R|·R = −λ (CE + 1) whatever R's scale
    adaptive = R2ET(k=2, lam=0.25, hessian=False)
    assert adaptive.batch_loss(model, x, y, data=data, generator=None).item() == pytest.approx(ce - 0.25 * (ce + 1))


def test_explanation_mass_sums_channels_of_images():
    grad = torch.tensor([[[[1.0, -2.0]], [[-3.0, 0.5]]]])  # (1, 2 channels, 1, 2)
    assert torch.equal(explanation_mass(grad), torch.tensor([[4.0, 2.5]]))


# -- the Hessian estimate and the adaptive weight --------------------------------------------------
def test_hessian_norm_is_the_hessian_applied_to_the_gradient_sign():
    model = smooth_mlp()
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 6, generator=gen, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    grad = loss_gradient(model, x, y, create_graph=True)
    estimate = hessian_norm(model, x, y, grad, h=1e-3)
    expected = []
    for i in range(4):  # exact per-sample input Hessian of the CE, independently
        hess = torch.autograd.functional.hessian(lambda z: F.cross_entropy(model(z[None]), y[i : i + 1]), x[i])
        expected.append((hess @ grad[i].sign() / 6).norm())
    assert torch.allclose(estimate, torch.stack(expected), rtol=1e-3)


def test_adaptive_weight_sets_the_term_to_lambda_ce_plus_one_and_is_zero_for_a_zero_penalty():
    ce = torch.tensor(0.7)
    for penalty in (torch.tensor(-3.0), torch.tensor(1e-6), torch.tensor(250.0)):
        weight = adaptive_weight(0.1, ce, penalty)
        assert (weight * penalty).abs().item() == pytest.approx(0.1 * 1.7)
    assert adaptive_weight(0.1, ce, torch.tensor(0.0)).item() == 0.0
    penalty = torch.tensor(2.0, requires_grad=True)
    assert not adaptive_weight(0.1, ce, penalty).requires_grad  # a constant for autograd


# -- adversarial examples ---------------------------------------------------------------------------
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_examples_stay_in_the_ball_and_bounds_and_raise_the_loss(norm):
    data = load_dataset("wdbc", {})
    torch.manual_seed(0)
    model = models.build("mlp", {"hidden": (8,)}, data.input_shape, 2)
    Standard(epochs=5).fit(model, data, seed=0)
    recipe = recipes.get("adversarial", eps=0.5, norm=norm, steps=10)
    x, y = data.train.x, data.train.y
    x_adv = recipe.perturb(model, x, y, data.bounds, torch.Generator().manual_seed(0))
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert (size <= 0.5 + 1e-5).all()
    low, high = data.bounds
    assert ((x_adv >= low) & (x_adv <= high)).all()
    with torch.no_grad():
        assert F.cross_entropy(model(x_adv), y) > F.cross_entropy(model(x), y) + 0.05


# -- determinism -------------------------------------------------------------------------------------
DETERMINISM_CASES = [
    ("weight_decay", {"weight_decay": 1e-2, "epochs": 2, "batch_size": 16}),
    ("softplus", {"epochs": 2, "batch_size": 16}),
    ("est_hessian", {"epochs": 2, "batch_size": 16}),
    ("adversarial", {"epochs": 2, "batch_size": 16, "eps": 0.3, "steps": 2}),
    ("r2et", {"k": 8, "epochs": 2, "batch_size": 16, "lam": 0.1}),
    ("adversarial", {"epochs": 2, "batch_size": 16, "eps": 0.3, "steps": 2, "target": "explanation", "k": 8}),
    ("idexpo", {"epochs": 1, "batch_size": 16, "steps": 4}),
]


@pytest.mark.parametrize("name, params", DETERMINISM_CASES, ids=lambda v: v if isinstance(v, str) else None)
def test_recipes_are_deterministic_under_a_seed(name, params):
    data = blocks()

    def fitted(seed):
        recipe = recipes.get(name, **params)
        model = recipe.prepare(cnn(data))
        recipe.fit(model, data, seed=seed)
        return model

    a, b, c = fitted(1), fitted(1), fitted(2)
    assert state_equal(a, b)  # bitwise identical
    assert not state_equal(a, c)  # another seed shuffles (and draws) differently


# -- fine-tuning through the model cache ------------------------------------------------------------
@pytest.fixture
def fit_log(monkeypatch):
    """Records (recipe name, initial weights) at every fit while still training."""
    log = []
    real_fit = Standard.fit

    def fit(self, model, data, *, seed):
        log.append((self._name(), {k: v.clone() for k, v in model.state_dict().items()}))
        return real_fit(self, model, data, seed=seed)

    monkeypatch.setattr(Standard, "fit", fit)
    return log


def test_finetuning_starts_from_the_cached_base_model(tmp_path, fit_log):
    inputs = ("synthetic_blocks", BLOCKS, "small_cnn", CNN)
    tuned, meta = trained_model(*inputs, "r2et", {"k": 8, **FAST}, 0, cache_dir=tmp_path)
    assert [name for name, _ in fit_log] == ["standard", "r2et"]  # the base first, through the cache
    base, base_meta = trained_model(*inputs, "standard", BASE, 0, cache_dir=tmp_path)
    assert len(fit_log) == 2  # the base model was cached, not trained again
    assert meta["base_key"] == base_meta["key"] == model_key(*inputs, "standard", BASE, 0)
    assert base_meta["base_key"] is None
    start = fit_log[1][1]
    assert all(torch.equal(start[k], v) for k, v in base.state_dict().items())  # fine-tuning began at the base
    assert not state_equal(tuned, base)
    trained_model(*inputs, "est_hessian", FAST, 0, cache_dir=tmp_path)  # a second recipe shares the base
    assert [name for name, _ in fit_log] == ["standard", "r2et", "est_hessian"]
    loaded, loaded_meta = trained_model(*inputs, "r2et", {"k": 8, **FAST}, 0, cache_dir=tmp_path)
    assert len(fit_log) == 3 and state_equal(loaded, tuned) and loaded_meta == meta


def test_base_parameters_are_canonical_in_the_key():
    inputs = ("synthetic_blocks", BLOCKS, "small_cnn", CNN)
    key = model_key(*inputs, "r2et", {"k": 8}, 0)
    assert model_key(*inputs, "r2et", {"k": 8, "base": {}}, 0) == key
    assert model_key(*inputs, "r2et", {"k": 8, "base": {"epochs": 50, "weight_decay": 0}}, 0) == key
    assert model_key(*inputs, "r2et", {"k": 8, "base": {"epochs": 49}}, 0) != key
    assert recipes.validate_params("r2et", {"k": 8})["base"] == recipes.validate_params("standard", {})
    with pytest.raises(ParameterError, match="epoch"):
        model_key(*inputs, "r2et", {"k": 8, "base": {"epoch": 3}}, 0)


def test_key_of_a_recipe_without_a_base_is_the_digest_of_its_validated_inputs():
    # sha256 of the canonical JSON of the inputs with the registry's validated parameters, the
    # device, the dtype and the code of the data set, architecture and recipe
    inputs = {
        "dataset": "synthetic_blocks",
        "dataset_params": datasets.registry.validate("synthetic_blocks", BLOCKS),
        "model": "small_cnn",
        "model_params": models.validate_params("small_cnn", CNN),
        "recipe": "standard",
        "recipe_params": recipes.registry.validate("standard", BASE),
        "seed": 0,
        "device": "cpu",
        "dtype": "float32",
        "code": model_code("synthetic_blocks", "small_cnn", "standard", recipes.registry.validate("standard", BASE)),
    }
    expected = hashlib.sha256(canonical_json(inputs).encode()).hexdigest()
    assert model_key("synthetic_blocks", BLOCKS, "small_cnn", CNN, "standard", BASE, 0) == expected
    for name in ("standard", "weight_decay", "softplus"):
        params = {"weight_decay": 0.1} if name == "weight_decay" else {}
        assert recipes.validate_params(name, params) == recipes.registry.validate(name, params)


def test_softplus_models_are_trained_and_loaded_with_softplus(tmp_path):
    inputs = ("synthetic_blocks", BLOCKS, "small_cnn", CNN, "softplus", {"beta": 3.0, "epochs": 2}, 0)
    net, _ = trained_model(*inputs, cache_dir=tmp_path)
    loaded, _ = trained_model(*inputs, cache_dir=tmp_path)
    for model in (net, loaded):
        assert not any(isinstance(m, nn.ReLU) for m in model.modules())
        assert [m.beta for m in model.modules() if isinstance(m, nn.Softplus)] == [3.0, 3.0]
    x = blocks().test.x
    assert torch.equal(net(x), loaded(x))


# -- bad parameters fail before any training ---------------------------------------------------------
@pytest.mark.parametrize(
    "name, params, match",
    [
        ("r2et", {"lam": -0.1}, "lam"),
        ("r2et", {"k": 0}, "k"),
        ("r2et", {"k": 4, "mm_terms": 5}, "mm_terms"),
        ("r2et", {"h": 0.0}, "h"),
        ("est_hessian", {"lam": -1.0}, "lam"),
        ("idexpo", {"lam_insdel": -0.01}, "lam_insdel"),
        ("idexpo", {"lam_norm": -1.0}, "lam_norm"),
        ("idexpo", {"explainer": "occlusion"}, "not differentiable"),
        ("idexpo", {"explainer": "random"}, "not differentiable"),
        ("idexpo", {"explainer": "gradient", "fraction": 1.5}, "fraction"),
        ("idexpo", {"explainer": "no_such_explainer"}, "no_such_explainer"),
        ("adversarial", {"eps": -0.1}, "eps"),
        ("adversarial", {"norm": "l1"}, "norm"),
        ("weight_decay", {"weight_decay": 0.0}, "weight_decay"),
        ("softplus", {"beta": 0.0}, "beta"),
        ("r2et", {"base": {"epochs": 0}}, "epochs"),
        ("r2et", {"epochs": 0}, "epochs"),
    ],
)
def test_bad_parameters_are_named_when_the_recipe_is_built(name, params, match):
    with pytest.raises(ValueError, match=match):
        recipes.get(name, **params)


def test_weight_decay_has_no_default():
    with pytest.raises(ParameterError, match="weight_decay"):
        recipes.get("weight_decay")


@pytest.mark.parametrize(
    "dataset, dataset_params, model, model_params, recipe, params, match",
    [
        ("synthetic_blocks", BLOCKS, "small_cnn", CNN, "r2et", {"k": 33}, "k=33"),  # 2k = 66 > 64 pixels
        ("synthetic_blocks", BLOCKS, "small_cnn", CNN, "r2et", {"k": 60, "mm_terms": 5}, "k=60"),
        ("wdbc", {}, "mlp", {}, "r2et", {"k": 16}, "30 explanation entries"),
        ("wdbc", {}, "mlp", {}, "idexpo", {"explainer": "gradcam"}, "gradcam"),  # no convolution to explain
        ("wdbc", {}, "mlp", {}, "idexpo", {"explainer": "gradient", "baseline": "blur"}, "blur"),
    ],
)
def test_parameters_that_do_not_fit_the_data_fail_before_any_training(
    tmp_path, fit_log, dataset, dataset_params, model, model_params, recipe, params, match
):
    with pytest.raises(ValueError, match=match):
        trained_model(dataset, dataset_params, model, model_params, recipe, params, 0, cache_dir=tmp_path)
    assert fit_log == [] and list(tmp_path.iterdir()) == []  # not even the base model was trained


def test_fitting_directly_checks_the_data_too():
    with pytest.raises(ValueError, match="k=40"):
        recipes.get("r2et", k=40).fit(cnn(blocks()), blocks(), seed=0)


def test_softplus_needs_relu_modules():
    with pytest.raises(ValueError, match="nn.ReLU"):
        recipes.get("softplus").prepare(smooth_mlp())


def test_a_non_finite_loss_stops_training_with_a_clear_error(monkeypatch):
    monkeypatch.setattr(EstHessian, "batch_loss", lambda self, model, x, y, **kw: model(x).sum() * math.nan)
    with pytest.raises(FloatingPointError, match="est_hessian"):
        recipes.get("est_hessian", epochs=1).fit(cnn(blocks()), blocks(), seed=0)
