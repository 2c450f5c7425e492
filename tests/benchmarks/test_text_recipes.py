"""The text defences ``text_adversarial`` and ``far`` (benchmarks/recipes/text_adversarial.py, far.py).

A synthetic corpus (label 1 iff a finding word occurs), a small text CNN and a hand-made candidate
table; FAR's attribution term is checked against finite differences in float64.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F
from salbench import models, recipes
from salbench.attacks.candidates.base import CandidateTable
from salbench.core.text import n_words
from salbench.datasets.base import DataBundle, Split
from salbench.datasets.text import build_text_bundle
from salbench.metrics.attribution_distance import AttributionDistance
from salbench.recipes import text_adversarial as adversarial_module

LENGTH = 20
FINDING = ["effusion", "opacity", "edema", "enlarged"]
NORMAL = ["clear", "normal", "stable", "unremarkable"]
NEUTRAL = ["heart", "lungs", "size", "lobe", "chest", "pleural", "right", "left", "the", "is", "no"]
SYNONYMS = {
    "effusion": ["pleural effusion", "edema", "clear"],
    "opacity": ["edema", "normal"],
    "edema": ["opacity", "effusion"],
    "enlarged": ["heart size", "opacity"],
    "clear": ["normal", "effusion"],
    "normal": ["unremarkable", "stable"],
    "stable": ["normal"],
    "unremarkable": ["clear", "opacity"],
    "heart": ["chest", "lobe"],
    "lungs": ["lobe", "right lobe"],
    "right": ["left"],
    "left": ["right"],
    "size": ["heart size"],
}


def texts(n: int, rng: random.Random) -> tuple[list[str], list[int]]:
    out, labels = [], []
    for _ in range(n):
        label = int(rng.random() < 0.5)
        words = [rng.choice(NEUTRAL) for _ in range(rng.randint(6, 12))] + [rng.choice(FINDING if label else NORMAL)]
        rng.shuffle(words)
        out.append(" ".join(words))
        labels.append(label)
    return out, labels


@pytest.fixture(scope="module")
def data() -> DataBundle:
    rng = random.Random(1)
    splits = {name: texts(n, rng) for name, n in (("train", 48), ("val", 16), ("test", 16))}
    return build_text_bundle(splits, num_classes=2, max_len=LENGTH, min_freq=1)


@pytest.fixture(scope="module")
def table(data) -> CandidateTable:
    vocab = data.vocabulary
    entries = {vocab.index(w): [tuple(vocab.index(t) for t in s.split()) for s in subs] for w, subs in SYNONYMS.items()}
    return CandidateTable("hand", vocab, entries)


@pytest.fixture(autouse=True)
def hand_table(monkeypatch, table):
    monkeypatch.setattr(adversarial_module, "candidate_table", lambda source, vocabulary, corpus: table)


def network(data, seed: int = 0, dtype=torch.float32):
    torch.manual_seed(seed)
    net = models.build("text_cnn", {"embedding_dim": 8, "filters": 4}, (2, LENGTH), 2, vocab_size=len(data.vocabulary))
    return net.to(dtype)


def changed_words(x: torch.Tensor, x_adv: torch.Tensor) -> list[tuple[int, tuple[int, ...], tuple[int, ...]]]:
    """(position, original ids, new ids) of every word position whose tokens differ."""
    def words(t):
        out: dict[int, list[int]] = {}
        for id_, p in t.T.tolist():
            if p >= 0:
                out.setdefault(p, []).append(id_)
        return out

    before, after = words(x), words(x_adv)
    assert before.keys() == after.keys()
    return [(p, tuple(before[p]), tuple(after[p])) for p in sorted(before) if before[p] != after[p]]


def test_registered_with_the_papers_defaults():
    assert {"far", "text_adversarial"} <= set(recipes.names())
    far = recipes.get("far")
    assert (far.delta, far.fraction, far.k, far.rho_max, far.source, far.explainer) == (
        0.5, 0.75, 5, 0.15, "domain_embedding", "gradient",
    )
    assert recipes.validate_params("text_adversarial")["fraction"] == 0.75


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("text_adversarial", {"fraction": 0.0}, r"fraction must lie in \(0, 1\]"),
        ("far", {"fraction": 1.5}, r"fraction must lie in \(0, 1\]"),
        ("text_adversarial", {"k": 0}, "k must be an integer >= 1"),
        ("far", {"rho_max": 0.0}, r"rho_max must lie in \(0, 1\]"),
        ("far", {"source": "thesaurus"}, "source must be a registered candidate source"),
        ("far", {"delta": 0.0}, "delta must be a finite number > 0"),
        ("far", {"explainer": "occlusion"}, "not differentiable"),
        ("text_adversarial", {"epochs": 0}, "epochs must be an integer >= 1"),
    ],
)
def test_bad_parameters(name, params, message):
    with pytest.raises(ValueError, match=message):
        recipes.get(name, **params)


@pytest.mark.parametrize("name", ["text_adversarial", "far"])
def test_check_rejects_non_text_data(name, data):
    split = Split(torch.zeros(4, 3), torch.tensor([0, 1, 0, 1]))
    tabular = DataBundle(split, split, split, num_classes=2, modality="tabular")
    with pytest.raises(ValueError, match=f"recipe '{name}' works on text only.*got modality 'tabular'"):
        recipes.get(name).check(network(data), tabular)
    with pytest.raises(ValueError, match=f"recipe '{name}' works on text only"):
        recipes.get(name).fit(network(data), tabular, seed=0)
    recipes.get(name).check(network(data), data)


@pytest.mark.parametrize("name", ["text_adversarial", "far"])
def test_attacked_samples(name, data, table):
    recipe = recipes.get(name, rho_max=0.3, k=2)
    model = network(data).eval()
    x, y = data.train.x[:16], data.train.y[:16]
    chosen, x_adv = recipe.attacked(model, x, y, data, torch.Generator().manual_seed(5))
    assert torch.equal(chosen, torch.randperm(16, generator=torch.Generator().manual_seed(5))[:12])
    assert all(p.grad is None for p in model.parameters())  # the search leaves no gradient behind
    budget = torch.floor(n_words(x[chosen]).double() * 0.3 + 1e-9)
    substituted = 0
    for row in range(len(chosen)):
        changes = changed_words(x[chosen][row], x_adv[row])
        assert len(changes) <= budget[row]
        for _, (original,), new in changes:
            assert new in table.candidates(original)[:2]
        substituted += len(changes)
    assert substituted > 0
    if name == "text_adversarial":  # the greedy only ever raises the loss
        before = F.cross_entropy(model(x[chosen]), y[chosen], reduction="none")
        after = F.cross_entropy(model(x_adv), y[chosen], reduction="none")
        assert (after >= before).all() and (after > before).any()


def test_text_adversarial_loss_is_ce_on_the_attacked_batch(data):
    recipe = recipes.get("text_adversarial", rho_max=0.3)
    model = network(data).eval()
    x, y = data.train.x[:16], data.train.y[:16]
    loss = recipe.batch_loss(model, x, y, data=data, generator=torch.Generator().manual_seed(2))
    chosen, x_adv = recipe.attacked(model, x, y, data, torch.Generator().manual_seed(2))
    assert torch.allclose(loss, F.cross_entropy(model(x.index_copy(0, chosen, x_adv)), y))


def test_far_loss_adds_the_attribution_term(data):
    recipe = recipes.get("far", rho_max=0.3)
    model = network(data).eval()
    x, y = data.train.x[:16], data.train.y[:16]
    loss = recipe.batch_loss(model, x, y, data=data, generator=torch.Generator().manual_seed(3))
    chosen, x_adv = recipe.attacked(model, x, y, data, torch.Generator().manual_seed(3))
    ce = F.cross_entropy(model(x.index_copy(0, chosen, x_adv)), y)
    attribution = recipe._attribution
    d_e = AttributionDistance().compare(attribution(model, x[chosen], y[chosen]), attribution(model, x_adv, y[chosen]))
    assert d_e.sum() > 0
    assert torch.allclose(loss, ce + 0.5 * d_e.sum() / 16, atol=1e-6)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_far_attribution_term_gradient_matches_finite_differences(data):
    """d/dθ Σ d_e(A(x), A(x̃)) by double backpropagation agrees with central differences (float64)."""
    recipe = recipes.get("far")
    model = network(data, seed=3, dtype=torch.float64).eval()
    x, y = data.train.x[:6], data.train.y[:6]
    chosen, x_adv = recipe.attacked(model, x, y, data, torch.Generator().manual_seed(0))
    x = x[chosen]
    assert (x_adv != x).any()
    params = dict(model.named_parameters())
    term = recipe.attribution_term(model, x, x_adv, y[chosen])
    raw = torch.autograd.grad(term, list(params.values()), allow_unused=True)  # biases of the last layer: unused
    grads = {n: torch.zeros_like(p) if g is None else g for (n, p), g in zip(params.items(), raw)}
    assert all(torch.isfinite(g).all() for g in grads.values())
    total = math.sqrt(sum(float(g.square().sum()) for g in grads.values()))
    assert total > 1e-4
    checked = 0
    for name in ("embedding.weight", "convs.0.0.weight", "convs.2.0.weight", "classifier.weight"):
        flat = grads[name].flatten()
        for index in flat.abs().topk(3).indices.tolist():
            value = params[name].data.view(-1)
            saved, h = value[index].item(), 1e-6
            with torch.no_grad():
                value[index] = saved + h
                up = recipe.attribution_term(model, x, x_adv, y[chosen])
                value[index] = saved - h
                down = recipe.attribution_term(model, x, x_adv, y[chosen])
                value[index] = saved
            numeric = (up - down).item() / (2 * h)
            assert numeric == pytest.approx(flat[index].item(), rel=1e-4, abs=1e-8), (name, index)
            checked += 1
    assert checked == 12


@pytest.mark.parametrize("name", ["text_adversarial", "far"])
def test_fit_runs_and_is_deterministic(name, data):
    recipe = recipes.get(name, epochs=2, batch_size=16)
    first, second = network(data, seed=1), network(data, seed=1)
    torch.manual_seed(7)  # dropout draws from the global RNG (the model cache seeds it before training)
    info = recipe.fit(first, data, seed=4)
    assert info["epochs_run"] == 2 and 0.0 <= info["best_val_accuracy"] <= 1.0 and math.isfinite(info["last_train_loss"])
    torch.manual_seed(7)
    assert recipe.fit(second, data, seed=4) == info
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert not first.training
