"""The text attacks ``dare`` and ``random_synonym`` (attacks/dare.py, attacks/random_synonym.py).

A synthetic radiology-like corpus (label 1 iff the text has a finding word), a small text CNN
trained on it for a second, and a hand-made candidate table (substitutes within a class of
words, plus a few that would flip the label), so the checks do not depend on the real sources'
data; one test runs the real ``domain_embedding`` source on the same corpus.
"""

from __future__ import annotations

import random

import pytest
import torch
from salbench import attacks, explainers, models
from salbench.attacks import substitution
from salbench.attacks.candidates.base import CandidateTable
from salbench.core.text import PAD, STOP_WORDS, n_words
from salbench.datasets.text import build_text_bundle
from salbench.explainers.word_attribution import WordAttribution
from salbench.metrics.attribution_distance import AttributionDistance

LENGTH = 24
NORMAL = ["clear", "normal", "stable", "unremarkable", "intact"]
FINDING = ["effusion", "opacity", "consolidation", "enlarged", "edema"]
NEUTRAL = ["heart", "lungs", "size", "silhouette", "mediastinum", "pleural", "right", "left", "lobe", "chest"]
STOP = ["the", "is", "are", "no", "of", "and"]
SYNONYMS = {  # within a group, plus cross-group substitutes that may change the label
    "clear": ["normal", "unremarkable", "effusion"],
    "normal": ["unremarkable", "clear", "stable"],
    "stable": ["unchanged", "normal"],
    "unremarkable": ["normal", "clear"],
    "effusion": ["pleural effusion", "consolidation", "clear"],
    "opacity": ["consolidation", "edema", "normal"],
    "consolidation": ["opacity", "edema"],
    "enlarged": ["heart size", "edema"],
    "heart": ["silhouette", "mediastinum", "chest"],
    "lungs": ["lobe", "chest", "right lobe"],
    "size": ["silhouette"],
    "right": ["left"],
    "left": ["right"],
    "lobe": ["lungs", "left lobe"],
    "chest": ["lungs", "heart"],
}


def corpus(n: int, rng: random.Random) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    for _ in range(n):
        finding = rng.random() < 0.5
        words = [rng.choice(NEUTRAL + STOP) for _ in range(rng.randint(7, 15))]
        words += rng.sample(FINDING if finding else NORMAL, rng.randint(1, 2))
        rng.shuffle(words)
        texts.append(" ".join(words + ["unchanged"] * (rng.random() < 0.3)))
        labels.append(int(finding))
    return texts, labels


@pytest.fixture(scope="module")
def data():
    rng = random.Random(0)
    splits = {name: corpus(n, rng) for name, n in (("train", 300), ("val", 40), ("test", 64))}
    return build_text_bundle(splits, num_classes=2, max_len=LENGTH, min_freq=1)


@pytest.fixture(scope="module")
def model(data):
    torch.manual_seed(0)
    net = models.build("text_cnn", {"embedding_dim": 16, "filters": 8}, (2, LENGTH), 2, vocab_size=len(data.vocabulary))
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(net(data.train.x), data.train.y).backward()
        optimiser.step()
    net.eval()
    assert (net(data.test.x).argmax(1) == data.test.y).float().mean() > 0.9
    return net


@pytest.fixture(scope="module")
def table(data):
    vocab = data.vocabulary
    entries = {vocab.index(w): [tuple(vocab.index(t) for t in s.split()) for s in subs] for w, subs in SYNONYMS.items()}
    return CandidateTable("hand", vocab, entries)


@pytest.fixture()
def hand_table(monkeypatch, table):
    """The attacks take the hand-made table whatever their source (the source must still be registered)."""
    monkeypatch.setattr(substitution, "candidate_table", lambda source, vocabulary, corpus: table)
    return table


EXPLAINER = WordAttribution(explainers.get("gradient"))


def run(name: str, model, data, **params):
    x, target = data.test.x, model(data.test.x).argmax(1)
    return attacks.get(name, **params)(model, EXPLAINER, x, target, **data.attack_inputs(attacks.registry.entry(name).attrs["inputs"]))


def replay(x: torch.Tensor, subs) -> torch.Tensor:
    """The text (2, L) after the substitutions, rebuilt from its word list."""
    words: dict[int, list[int]] = {}
    for id_, position in x.T.tolist():
        if position >= 0:
            words.setdefault(position, []).append(id_)
    for position, original, new in subs:
        assert tuple(words[position]) == original
        words[position] = list(new)
    flat = [(i, p) for p in sorted(words) for i in words[p]]
    out = torch.tensor([[PAD] * x.shape[1], [-1] * x.shape[1]])
    out[:, : len(flat)] = torch.tensor(flat).T
    return out



def d_e(model, data, x_adv: torch.Tensor) -> torch.Tensor:
    x = data.test.x
    target = model(x).argmax(1)
    return AttributionDistance().compare(EXPLAINER(model, x, target), EXPLAINER(model, x_adv, target))


def test_registered():
    assert {"dare", "random_synonym"} <= set(attacks.names())
    assert [p.name for p in attacks.registry.entry("random_synonym").params] == [
        "seed", "source", "k", "rho_max", "min_similarity",
    ]


@pytest.mark.parametrize("name, params", [("dare", {}), ("dare", {"k": 2, "rho_max": 0.3}), ("random_synonym", {"seed": 4})])
def test_every_substitution_is_from_the_table_and_within_budget(hand_table, model, data, name, params):
    result = run(name, model, data, **params)
    x, vocab = data.test.x, data.vocabulary
    k, rho_max = params.get("k", 5), params.get("rho_max", 0.15)
    assert result.label_kept.all()
    assert torch.equal(model(result.x_adv).argmax(1), model(x).argmax(1))
    assert (result.iterations <= torch.floor(n_words(x).double() * rho_max + 1e-9)).all()
    assert torch.equal(result.success, result.iterations > 0) and result.success.float().mean() > 0.5
    changed = (result.x_adv != x).flatten(1).any(1)
    assert torch.equal(changed, result.success)
    for row, subs in enumerate(result.substitutions):
        assert len(subs) == int(result.iterations[row]) == len({p for p, _, _ in subs})
        for position, (original,), new in subs:
            assert vocab.words[original] not in STOP_WORDS
            assert int(x[row, 0, position]) == original  # original texts: token j is word j
            assert new in hand_table.candidates(original)[:k]
        assert torch.equal(result.x_adv[row], replay(x[row], subs))


def test_label_flipping_candidates_are_rejected(hand_table, model, data):
    """Some table entries cross classes; the label constraint must have rejected at least one."""
    x = data.test.x
    result = run("dare", model, data, rho_max=1.0)
    assert result.label_kept.all()
    label = model(x).argmax(1)
    flips = 0
    for row in range(len(x)):
        for position in range(int(n_words(x[row : row + 1]))):
            original = int(x[row, 0, position])
            for new in hand_table.candidates(original):
                if len(new) == 1:
                    y = x[row : row + 1].clone()
                    y[0, 0, position] = new[0]
                    flips += int(model(y).argmax(1) != label[row])
    assert flips > 0


def test_dare_moves_attributions_more_than_random(hand_table, model, data):
    """DARE maximises d_e greedily, the baseline draws at random: on the 64 test texts (seed 0 for
    the corpus, the model and the baseline) DARE's mean d_e is higher and it wins on most texts."""
    greedy = d_e(model, data, run("dare", model, data, rho_max=0.3).x_adv)
    baseline = d_e(model, data, run("random_synonym", model, data, rho_max=0.3, seed=0).x_adv)
    assert greedy.mean() > 1.5 * baseline.mean()
    assert (greedy >= baseline).float().mean() > 0.75


def test_deterministic(hand_table, model, data):
    assert run("dare", model, data).substitutions == run("dare", model, data).substitutions
    first, again = run("random_synonym", model, data, seed=1), run("random_synonym", model, data, seed=1)
    assert first.substitutions == again.substitutions and torch.equal(first.x_adv, again.x_adv)
    assert run("random_synonym", model, data, seed=2).substitutions != first.substitutions


def test_real_domain_embedding_source(model, data):
    from salbench.attacks import candidates

    result = run("dare", model, data, source="domain_embedding", k=3, rho_max=0.3)
    table = candidates.get("domain_embedding").table(data.vocabulary, data.train.x)
    assert result.label_kept.all() and result.success.any()
    for row, subs in enumerate(result.substitutions):
        assert all(new in table.candidates(original)[:3] for _, (original,), new in subs)
        assert torch.equal(result.x_adv[row], replay(data.test.x[row], subs))


@pytest.mark.slow
def test_similarity_floor_with_minilm(model, data):
    from salbench.metrics.sentence_similarity import sentence_similarity

    x = data.test.x[:16]
    target = model(x).argmax(1)
    result = attacks.get("dare", min_similarity=0.9, rho_max=0.3)(model, EXPLAINER, x, target, vocabulary=data.vocabulary, corpus=data.train.x)
    sim = sentence_similarity(data.vocabulary.decode(x), data.vocabulary.decode(result.x_adv))
    assert (sim[result.success] >= 0.9).all()


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("dare", {"k": 0}, "k must be an integer >= 1"),
        ("dare", {"k": 11}, "k must be at most 10"),
        ("dare", {"rho_max": 0.0}, r"rho_max must lie in \(0, 1\]"),
        ("random_synonym", {"rho_max": 1.5}, r"rho_max must lie in \(0, 1\]"),
        ("dare", {"min_similarity": -0.1}, r"min_similarity must lie in \[0, 1\]"),
        ("dare", {"source": "wordnet"}, "source must be a registered candidate source"),
        ("random_synonym", {"seed": -1}, "seed must be an integer >= 0"),
    ],
)
def test_bad_parameters(name, params, message):
    with pytest.raises(ValueError, match=message):
        attacks.get(name, **params)


def test_needs_text_inputs(model, data):
    attack = attacks.get("dare")
    x = data.test.x[:2]
    text = {"vocabulary": data.vocabulary, "corpus": data.train.x}
    assert attacks.registry.entry("dare").attrs["inputs"] == ("vocabulary", "corpus")
    with pytest.raises(ValueError, match="works on text and needs vocabulary, corpus"):
        attack(model, EXPLAINER, x, 0)
    with pytest.raises(ValueError, match="works on text and needs corpus"):
        attack(model, EXPLAINER, x, 0, vocabulary=data.vocabulary)
    with pytest.raises(ValueError, match="takes vocabulary, corpus besides the batch, not bounds"):
        attack(model, EXPLAINER, x, 0, bounds=(0.0, 1.0), **text)
    with pytest.raises(ValueError, match="not data .an attack input is one of bounds, vocabulary, corpus"):
        attack(model, EXPLAINER, x, 0, data=data)
    with pytest.raises(TypeError, match="long"):
        attack(model, EXPLAINER, x.float(), 0, **text)
