"""The greedy substitution engine (attacks/substitution.py): layout by hand, agreement with a
plain-Python greedy, the constraints every substitution must meet, and errors.

Test doubles: a hand-made vocabulary, a dict-backed candidate table and a tiny text classifier
with ``embed``/``classify``/``forward`` (tanh per token, masked mean, linear), so nothing depends
on the real candidate sources' data.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
from salbench import explainers
from salbench.attacks.substitution import (
    class_loss,
    explanation_distance,
    greedy_substitution,
    substitute,
)
from salbench.core.seeding import SampleStreams
from salbench.core.text import PAD, STOP_WORDS, Vocabulary
from salbench.explainers.word_attribution import WordAttribution
from torch import Tensor, nn

WORDS = (
    "<pad>", "<unk>", "the", "is", "no", "heart", "lung", "normal", "enlarged", "large", "big", "cardiac",
    "enlargement", "clear", "lungs", "acute", "disease", "effusion", "fluid", "pleural", "mild", "slight",
    "opacity", "shadow", "size", "stable", "unchanged", "tumour", "mass", "lesion",
)
VOCAB = Vocabulary(WORDS)
ID = {w: i for i, w in enumerate(WORDS)}


class DictTable:
    """A CandidateTable double: word id -> substitutes (tuples of ids), best first."""

    source = "hand"

    def __init__(self, entries: dict[str, list[str]]):
        self.entries = {ID[w]: tuple(tuple(ID[t] for t in s.split()) for s in subs) for w, subs in entries.items()}

    def candidates(self, word_id: int) -> tuple[tuple[int, ...], ...]:
        return self.entries.get(word_id, ())

    def __contains__(self, word_id: int) -> bool:
        return word_id in self.entries


TABLE = DictTable(
    {
        "enlarged": ["large", "big", "cardiac enlargement"],
        "heart": ["cardiac"],
        "normal": ["stable", "unchanged", "clear"],
        "lung": ["lungs"],
        "effusion": ["fluid", "pleural fluid", "pleural effusion"],
        "mild": ["slight"],
        "opacity": ["shadow", "mass", "lesion", "tumour"],
        "disease": ["lesion", "mass"],
        "acute": ["mild", "slight"],
        "the": ["no"],  # a stop word with candidates: must never be substituted
        "size": ["mild size"],
    }
)


class Tiny(nn.Module):
    """A tiny text classifier: logits = W · mean over real tokens of tanh(V e_t + b)."""

    def __init__(self, vocab_size: int = len(WORDS), dim: int = 6, classes: int = 2, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.embedding = nn.Embedding(vocab_size, dim, padding_idx=PAD)
            self.hidden = nn.Linear(dim, dim)
            self.out = nn.Linear(dim, classes)

    def embed(self, ids: Tensor) -> Tensor:
        return self.embedding(ids)

    def classify(self, emb: Tensor, ids: Tensor) -> Tensor:
        mask = (ids != PAD).unsqueeze(-1).to(emb.dtype)
        return self.out((torch.tanh(self.hidden(emb)) * mask).sum(1) / mask.sum(1))

    def forward(self, x: Tensor) -> Tensor:
        return self.classify(self.embed(x[:, 0]), x[:, 0])


class TokenScore(nn.Module):
    """logit_1 = mean token score, logit_0 = 0: the label flips exactly when the mean crosses 0."""

    def __init__(self, score: dict[str, float]):
        super().__init__()
        self.register_buffer("score", torch.tensor([score.get(w, 0.0) for w in WORDS]))

    def forward(self, x: Tensor) -> Tensor:
        ids = x[:, 0]
        real = (ids != PAD).double()
        mean = (self.score[ids].double() * real).sum(1) / real.sum(1)
        return torch.stack([torch.zeros_like(mean), mean], dim=1)


def encode(*texts: str, length: int = 12) -> Tensor:
    return VOCAB.encode(list(texts), length)


def additive(values: dict[str, float]):
    """Objective: the sum of per-word values over a text's tokens (its greedy is easy to follow by hand)."""
    table = torch.tensor([values.get(w, 0.0) for w in WORDS], dtype=torch.float64)

    def objective(texts: Tensor, rows: Tensor) -> Tensor:
        return table[texts[:, 0]].sum(1)

    return objective


def apply(x: Tensor, substitutions) -> Tensor:
    """Replay substitutions on one text (2, L) by editing its word list: the independent layout."""
    words = {}
    for token in range(x.shape[1]):
        if x[0, token] != PAD:
            words.setdefault(int(x[1, token]), []).append(int(x[0, token]))
    for position, original, new in substitutions:
        assert tuple(words[position]) == original
        words[position] = list(new)
    out = torch.full_like(x, PAD)
    out[1] = -1
    flat = [(i, p) for p in sorted(words) for i in words[p]]
    for token, (i, p) in enumerate(flat):
        out[0, token], out[1, token] = i, p
    return out


# -- layout ----------------------------------------------------------------------------------------


def test_substitute_single_and_multi_word_by_hand():
    x = encode("the heart is enlarged no effusion", length=9)
    # word 3 "enlarged" (token 3) -> "cardiac enlargement": tokens after shift right by one
    multi = substitute(x, torch.tensor([3]), torch.tensor([[ID["cardiac"], ID["enlargement"]]]), torch.tensor([2]))
    assert multi[0].tolist() == [
        [ID["the"], ID["heart"], ID["is"], ID["cardiac"], ID["enlargement"], ID["no"], ID["effusion"], PAD, PAD],
        [0, 1, 2, 3, 3, 4, 5, -1, -1],
    ]
    # a one-word phrase (padded to width 2) changes only its token
    single = substitute(x, torch.tensor([1]), torch.tensor([[ID["cardiac"], PAD]]), torch.tensor([1]))
    expected = x.clone()
    expected[0, 0, 1] = ID["cardiac"]
    assert torch.equal(single, expected)


def test_substitute_after_an_earlier_phrase_keeps_positions():
    x = encode("pleural effusion mild", length=6)
    once = substitute(x, torch.tensor([0]), torch.tensor([[ID["pleural"], ID["fluid"], ID["mild"]]]), torch.tensor([3]))
    assert once[0, 1].tolist() == [0, 0, 0, 1, 2, -1]
    twice = substitute(once, torch.tensor([4]), torch.tensor([[ID["slight"], ID["opacity"], PAD]]), torch.tensor([2]))
    assert twice[0].tolist() == [
        [ID["pleural"], ID["fluid"], ID["mild"], ID["effusion"], ID["slight"], ID["opacity"]],
        [0, 0, 0, 1, 2, 2],
    ]


# -- the greedy against an independent plain-Python greedy ------------------------------------------


def python_greedy(x: Tensor, scores: Tensor, table: DictTable, k: int, rho_max: float, values: dict[str, float]):
    """Per text: word lists, rank, budget ⌊ρn⌋, try the first k fitting candidates, keep the best if it improves."""
    out, made = [], []
    size = x.shape[2]
    for row in range(x.shape[0]):
        ids = [i for i in x[row, 0].tolist() if i != PAD]
        words = [[i] for i in ids]  # original texts: one token per word
        n = len(words)
        budget = math.floor(rho_max * n + 1e-9)
        order = sorted(range(n), key=lambda p: (-float(scores[row, p]), p))
        value = sum(values.get(WORDS[i], 0.0) for i in ids)
        subs = []
        for p in order:
            if len(subs) >= budget:
                break
            word = words[p][0]
            if WORDS[word] in STOP_WORDS or not table.candidates(word):
                continue
            length = sum(len(w) for w in words)
            best = None
            for cand in table.candidates(word)[:k]:
                if length + len(cand) - 1 > size:
                    continue
                new = value - values.get(WORDS[word], 0.0) + sum(values.get(WORDS[i], 0.0) for i in cand)
                if best is None or new > best[0]:
                    best = (new, cand)
            if best is not None and best[0] > value:
                value = best[0]
                subs.append((p, (word,), best[1]))
                words[p] = list(best[1])
        out.append(subs)
        made.append(len(subs))
    return out, made


@pytest.mark.parametrize("k, rho_max, length", [(1, 0.5, 12), (2, 0.3, 12), (5, 1.0, 12), (3, 0.6, 9)])
def test_greedy_agrees_with_plain_python(k, rho_max, length):
    rng = random.Random(k * 100 + length)
    attackable = [w for w in WORDS[2:] if w not in {"<pad>", "<unk>"}]
    texts = [" ".join(rng.choice(attackable) for _ in range(rng.randint(3, 8))) for _ in range(24)]
    x = encode(*texts, length=length)
    values = {w: rng.uniform(-1, 1) for w in WORDS[2:]}
    scores = torch.rand(x.shape[0], length, generator=torch.Generator().manual_seed(k))
    result = greedy_substitution(
        TokenScore({}), x, VOCAB, TABLE, scores, k=k, rho_max=rho_max, objective=additive(values), keep_label=False
    )
    expected, count = python_greedy(x, scores, TABLE, k, rho_max, values)
    assert result.substitutions == expected
    assert result.iterations.tolist() == count
    assert torch.equal(result.success, result.iterations > 0)
    for row in range(x.shape[0]):
        assert torch.equal(result.x_adv[row], apply(x[row], expected[row]))


def test_greedy_by_hand():
    x = encode("heart enlarged mild effusion", length=6)
    values = {"enlarged": 0.0, "large": 0.5, "big": 0.2, "cardiac": 0.4, "enlargement": 0.4, "effusion": 1.0, "fluid": 0.1}
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.8, 0.0, 0.0]])
    # rank: enlarged (0.9), effusion (0.8), mild (0.5), heart (0.1); budget ⌊0.75·4⌋ = 3
    result = greedy_substitution(
        TokenScore({}), x, VOCAB, TABLE, scores, k=3, rho_max=0.75, objective=additive(values), keep_label=False
    )
    # enlarged: "cardiac enlargement" (0.8) beats large (0.5); effusion: every candidate lowers the sum
    # (fluid 0.1; pleural fluid 0.1; pleural effusion 1.0 = no gain); mild -> slight (0 = no gain); heart -> cardiac (+0.4)
    assert result.substitutions == [
        [(1, (ID["enlarged"],), (ID["cardiac"], ID["enlargement"])), (0, (ID["heart"],), (ID["cardiac"],))]
    ]
    assert VOCAB.decode(result.x_adv) == ["cardiac cardiac enlargement mild effusion"]
    assert result.x_adv[0, 1].tolist() == [0, 1, 1, 2, 3, -1]


def test_candidate_that_would_overflow_is_not_applicable():
    x = encode("heart enlarged mild effusion", length=4)  # full: no room for a 2-token phrase
    values = {"cardiac": 5.0, "enlargement": 5.0, "big": 1.0}
    scores = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    result = greedy_substitution(
        TokenScore({}), x, VOCAB, TABLE, scores, k=3, rho_max=0.25, objective=additive(values), keep_label=False
    )
    assert result.substitutions == [[(1, (ID["enlarged"],), (ID["big"],))]]
    roomy = greedy_substitution(
        TokenScore({}), encode("heart enlarged mild effusion", length=5), VOCAB, TABLE, torch.tensor([[0.0, 1, 0, 0, 0]]),
        k=3, rho_max=0.25, objective=additive(values), keep_label=False,
    )
    assert roomy.substitutions == [[(1, (ID["enlarged"],), (ID["cardiac"], ID["enlargement"]))]]


@pytest.mark.parametrize("n, rho_max, budget", [(6, 0.15, 0), (7, 0.15, 1), (20, 0.15, 3), (10, 0.25, 2), (3, 1.0, 3)])
def test_budget_is_floor_of_rho_n_without_minimum(n, rho_max, budget):
    x = encode(" ".join(["opacity"] * n), length=20)
    result = greedy_substitution(
        TokenScore({}), x, VOCAB, TABLE, torch.zeros(1, 20), k=1, rho_max=rho_max, objective=additive({"shadow": 1.0}),
        keep_label=False,
    )
    assert int(result.iterations) == budget
    assert result.substitutions[0] == [(p, (ID["opacity"],), (ID["shadow"],)) for p in range(budget)]


def test_stop_words_and_multi_token_positions_are_never_substituted():
    # "the" has a candidate in the table but is a stop word; word 1 already is a 2-token phrase
    x = substitute(
        encode("the effusion normal the", length=8), torch.tensor([1]), torch.tensor([[ID["pleural"], ID["effusion"]]]),
        torch.tensor([2]),
    )
    values = {"no": 10.0, "fluid": 10.0, "stable": 1.0}
    result = greedy_substitution(
        TokenScore({}), x, VOCAB, TABLE, torch.tensor([[9.0, 8.0, 0.0, 9.0, 0, 0, 0, 0]]), k=5, rho_max=1.0,
        objective=additive(values), keep_label=False,
    )
    assert result.substitutions == [[(2, (ID["normal"],), (ID["stable"],))]]


# -- constraints with a real word attribution (DARE's objective) -------------------------------------


@pytest.fixture(scope="module")
def batch():
    rng = random.Random(0)
    content = ["heart", "enlarged", "normal", "lung", "effusion", "mild", "opacity", "disease", "acute", "size", "lesion"]
    texts = [" ".join(rng.choice(content + ["the", "is", "no"]) for _ in range(rng.randint(5, 14))) for _ in range(32)]
    return encode(*texts, length=16)


@pytest.mark.parametrize("rho_max", [0.15, 0.5])
def test_dare_objective_constraints(batch, rho_max):
    model = Tiny().eval()
    explainer = WordAttribution(explainers.get("gradient"))
    target = model(batch).argmax(1)
    reference = explainer(model, batch, target).detach()
    result = greedy_substitution(
        model, batch, VOCAB, TABLE, reference.abs(), k=2, rho_max=rho_max,
        objective=explanation_distance(model, explainer, reference, target),
    )
    n = (batch[:, 1].amax(1) + 1).double()
    assert result.label_kept.all() and torch.equal(model(result.x_adv).argmax(1), target)
    assert (result.iterations <= torch.floor(rho_max * n + 1e-9)).all()
    assert result.iterations.sum() > 0
    for row, subs in enumerate(result.substitutions):
        assert len({p for p, _, _ in subs}) == len(subs) == int(result.iterations[row])
        for position, (original,), new in subs:
            assert WORDS[original] not in STOP_WORDS
            assert new in TABLE.candidates(original)[:2]
        assert torch.equal(result.x_adv[row], apply(batch[row], subs))
    # each kept substitution raised d_e: the final d_e is positive where something was substituted
    d_e = explanation_distance(model, explainer, reference, target)(result.x_adv, torch.arange(len(batch)))
    assert (d_e[result.success] > 1e-6).all()


def test_label_constraint():
    # "tumour"/"mass"/"lesion" push the label to 1; the texts are class 0 (mean score < 0)
    model = TokenScore({"tumour": 9.0, "mass": 9.0, "lesion": 9.0, "normal": -1.0, "clear": -1.0})
    x = encode("opacity normal clear", "disease normal clear", length=6)
    assert model(x).argmax(1).tolist() == [0, 0]
    values = {"tumour": 3.0, "mass": 2.0, "lesion": 1.0, "shadow": 0.5}
    kept = greedy_substitution(
        model, x, VOCAB, TABLE, torch.tensor([[1.0, 0, 0, 0, 0, 0]] * 2), k=5, rho_max=0.34, objective=additive(values)
    )
    assert kept.substitutions == [[(0, (ID["opacity"],), (ID["shadow"],))], []]
    assert kept.label_kept.all()
    free = greedy_substitution(
        model, x, VOCAB, TABLE, torch.tensor([[1.0, 0, 0, 0, 0, 0]] * 2), k=5, rho_max=0.34, objective=additive(values),
        keep_label=False,
    )
    assert free.substitutions == [[(0, (ID["opacity"],), (ID["tumour"],))], [(0, (ID["disease"],), (ID["mass"],))]]
    assert free.label_kept.tolist() == [False, False]


def test_cross_entropy_objective_only_raises_the_loss():
    model = Tiny(seed=3).eval()
    x = encode("heart enlarged mild effusion opacity", "normal lung acute disease", length=10)
    y = torch.tensor([0, 1])
    before = torch.nn.functional.cross_entropy(model(x), y, reduction="none")
    result = greedy_substitution(
        model, x, VOCAB, TABLE, torch.rand(2, 10, generator=torch.Generator().manual_seed(0)), k=5, rho_max=1.0,
        objective=class_loss(model, y), keep_label=False,
    )
    after = torch.nn.functional.cross_entropy(model(result.x_adv), y, reduction="none")
    assert (after[result.success] > before[result.success]).all()
    assert torch.equal(after[~result.success], before[~result.success])


# -- random mode ---------------------------------------------------------------------------------


def random_run(x: Tensor, seed: int):
    streams = SampleStreams(seed, x)
    scores = streams.rand((x.shape[2],), like=x)
    return greedy_substitution(Tiny().eval(), x, VOCAB, TABLE, scores, k=3, rho_max=0.5, streams=streams)


def test_random_mode_is_seeded_and_uses_the_budget(batch):
    first, again, other = random_run(batch, 0), random_run(batch, 0), random_run(batch, 1)
    assert first.substitutions == again.substitutions and torch.equal(first.x_adv, again.x_adv)
    assert first.substitutions != other.substitutions
    assert first.label_kept.all()
    for row, subs in enumerate(first.substitutions):
        assert all(new in TABLE.candidates(orig)[:3] for _, (orig,), new in subs)
        assert torch.equal(first.x_adv[row], apply(batch[row], subs))
    # random mode accepts any admissible candidate: the budget is spent wherever candidates suffice
    assert (first.iterations > 0).float().mean() > 0.8


def test_random_mode_gives_a_text_the_same_substitutions_in_any_batch(batch):
    """Each text's scores and draws come from its own stream (seed, its tokens)."""
    rows = torch.tensor([7, 0, 3])
    full, part = random_run(batch, 2), random_run(batch[rows], 2)
    assert torch.equal(part.x_adv, full.x_adv[rows]) and part.substitutions == [full.substitutions[int(i)] for i in rows]
    assert (part.iterations > 0).any()


def test_similarity_floor(monkeypatch):
    from salbench.metrics import sentence_similarity

    calls = []

    def same_words(a: list[str], b: list[str]) -> Tensor:
        calls.append(len(a))
        return torch.tensor([len(set(p.split()) & set(q.split())) / len(set(p.split()) | set(q.split())) for p, q in zip(a, b)])

    monkeypatch.setattr(sentence_similarity, "sentence_similarity", same_words)
    x = encode("heart enlarged mild effusion", length=8)
    values = {"cardiac": 2.0, "enlargement": 2.0, "big": 1.0}
    # "cardiac enlargement" shares 3 of 6 distinct words (0.5); "big" 3 of 5 (0.6)
    run = lambda floor: greedy_substitution(  # noqa: E731
        TokenScore({}), x, VOCAB, TABLE, torch.tensor([[0.0, 1.0] + [0.0] * 6]), k=3, rho_max=0.25,
        objective=additive(values), keep_label=False, min_similarity=floor,
    )
    assert run(0.5).substitutions == [[(1, (ID["enlarged"],), (ID["cardiac"], ID["enlargement"]))]]
    assert run(0.55).substitutions == [[(1, (ID["enlarged"],), (ID["big"],))]]
    assert run(0.7).substitutions == [[]]
    assert calls


# -- errors --------------------------------------------------------------------------------------


def test_errors():
    x = encode("heart enlarged mild effusion", length=6)
    scores = torch.zeros(1, 6)
    objective = additive({})
    run = lambda **kw: greedy_substitution(TokenScore({}), **{  # noqa: E731
        "x": x, "vocabulary": VOCAB, "table": TABLE, "scores": scores, "k": 2, "rho_max": 0.5, "objective": objective,
        **kw,
    })
    with pytest.raises(ValueError, match="exactly one of objective"):
        run(streams=SampleStreams(0, x))
    with pytest.raises(ValueError, match="exactly one of objective"):
        run(objective=None)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        run(k=0)
    with pytest.raises(ValueError, match=r"rho_max must lie in \(0, 1\]"):
        run(rho_max=0.0)
    with pytest.raises(ValueError, match=r"min_similarity must lie in \[0, 1\]"):
        run(min_similarity=1.5)
    with pytest.raises(ValueError, match="scores must be a float tensor of shape"):
        run(scores=torch.zeros(1, 5))
    with pytest.raises(ValueError, match="scores must be finite"):
        run(scores=torch.tensor([[math.nan, 0, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        run(vocabulary=Vocabulary(WORDS[:6]))
    with pytest.raises(TypeError, match="long"):
        run(x=x.float())
    with pytest.raises(ValueError, match="one value per candidate"):
        run(objective=lambda texts, rows: torch.zeros(1))
    bad = DictTable({"enlarged": ["enlarged"]})
    with pytest.raises(ValueError, match="differ from the word"):
        run(table=bad)
