"""The greedy word-substitution engine of the text attacks and text defences (DARE, Ivankay et al., ACL 2023).

Ivankay, Rigotti, Frossard, "DARE: Towards Robust Text Explanations in Biomedical and
Healthcare Applications", ACL 2023; authors' code IBM/domain-adaptive-attribution-robustness
(``attacks/explanationfooler.py`` for the attack on explanations, ``attacks/a2t.py`` for the
attack of adversarial training). One piece of code serves ``dare``, ``random_synonym`` and the
``text_adversarial`` and ``far`` recipes: :func:`greedy_substitution`.

Procedure, per text of the batch (all texts and all their candidates at once, one greedy step
at a time):

1. Rank the word positions by ``scores`` (higher first: the magnitude of the word attribution
   for DARE, a random draw for the random baseline). A position is attackable if it holds one
   token, that token is a vocabulary word (not PAD or UNK), not a stop word
   (:data:`salbench.core.text.STOP_WORDS`) and has at least one candidate in the table;
   other positions are skipped and cost nothing.
2. The budget is ⌊ρ_max · n⌋ substituted words for a text of n words (stop words included in
   n); a text with ρ_max · n < 1 is not attacked.
3. Step r takes the r-th attackable word of each text whose budget is not spent and builds one
   text per candidate: the word's first ``k`` candidates in the table (best first). A phrase of
   m tokens replaces the word's token, later tokens shift by m − 1 and all m tokens carry the
   replaced word's position (:func:`substitute`); a phrase that would push tokens past L is
   not applicable.
4. Admissible candidates: (label constraint) the model predicts on the candidate text the label
   it predicts on the original; (similarity floor) the sentence similarity
   (:func:`salbench.metrics.sentence_similarity.sentence_similarity`) of the decoded candidate and
   original texts is at least ``min_similarity``.
5. Greedy (an ``objective``): the admissible candidate with the largest objective is kept if its
   objective exceeds the best value so far, which starts at the objective of the original text
   (a substitution that does not increase the objective is not made and costs nothing). A
   candidate whose objective is undefined (NaN: d_e of an all-zero attribution map, see
   :mod:`salbench.metrics.attribution_distance`) is not admissible; a text whose own objective is NaN
   gets no substitution.
   Random (no objective): a uniformly random admissible candidate is kept.

What the authors' code does, and where this departs from it:

- Ranking: ``explanationfooler.py`` ranks by captum's ``Saliency`` word attributions (absolute
  gradients summed over the embedding dimension, averaged over the word's tokens), descending;
  ``a2t.py`` by the signed loss gradient summed over the embedding. Here the caller gives the
  scores; ``dare`` ranks by |A(x)| of the explainer under attack (equal to the authors' order
  for the absolute gradient).
- Budget: the authors allow a substitution while ``#substituted + 1 <= ρ_max · n``, i.e.
  ⌊ρ_max · n⌋ words with no minimum of one; the same here (⌊·⌋ with a 1e-9 tolerance against
  float rounding).
- Acceptance: ``if dist > max_dist`` per candidate, ``max_dist`` starting at 0 for the
  explanation distance and at the original loss in ``a2t.py``; here the start is always the
  objective of the original text (≈ 0 for d_e, the original loss for CE). The random baseline
  (``random_synonym=True``) always accepts a random label-keeping candidate, as here.
- Candidates: the authors ask a masked language model at every step (in context, 5·k
  proposals filtered to k whole, non-stop, different words; single tokens only) and filter
  by part of speech; here a static :class:`salbench.attacks.candidates` table gives each word's first
  k candidates, which may be multi-word phrases (e.g. SNOMED CT synonyms).
- Similarity: the authors' attack takes a ``min_sentence_sim`` argument but never uses it; it
  filters on the candidate source's own score. Here the optional floor is on the sentence
  similarity that DARE's robustness estimate uses.
- Label constraint: the label is the model's prediction on the original text, as in the
  authors' code; ``keep_label=False`` drops it (their ``adversarial_preds=True``).

Example:
    >>> import torch
    >>> x = torch.tensor([[[5, 6, 7, 0], [0, 1, 2, -1]]])
    >>> substitute(x, torch.tensor([1]), torch.tensor([[8, 9]]), torch.tensor([2]))[0].tolist()
    [[5, 8, 9, 7], [0, 1, 1, 2]]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from salbench.attacks import candidates
from salbench.attacks.base import AttackInputs, AttackResult, TextAttack
from salbench.core.text import (
    PAD,
    STOP_WORDS,
    UNK,
    Vocabulary,
    check_text_input,
    n_words,
)
from salbench.core.seeding import SampleStreams
from salbench.core.validation import check_fraction, check_positive_int
from salbench.metrics import sentence_similarity as similarity
from salbench.metrics.attribution_distance import AttributionDistance
from torch import Tensor, nn

__all__ = [
    "Objective",
    "SubstitutionResult",
    "Substitution",
    "greedy_substitution",
    "substitute",
    "explanation_distance",
    "class_loss",
    "check_substitution_params",
    "candidate_table",
    "SubstitutionAttack",
]

Objective = Callable[[Tensor, Tensor], Tensor]
"""``objective(texts, rows) -> (M,)``: the value (higher is better for the attacker) of M candidate
texts (M, 2, L), text m being a candidate for sample ``rows[m]`` of the attacked batch."""

Substitution = tuple[int, tuple[int, ...], tuple[int, ...]]
"""(word position, token ids of the original word, token ids of its substitute)."""

_TOLERANCE = 1e-9
_D_E = AttributionDistance()


@dataclasses.dataclass
class SubstitutionResult(AttackResult):
    """An :class:`~salbench.attacks.base.AttackResult` of a word-substitution attack.

    ``iterations`` is the number of substituted words of each text, ``success`` whether it has
    at least one.

    Attributes:
        substitutions: per sample, the substitutions made, in the order they were made.
    """

    substitutions: list[list[Substitution]]


def check_substitution_params(source: str, k: int, rho_max: float, min_similarity: float | None = None) -> None:
    """The parameters every user of the engine shares: a registered candidate source, k in
    [1, the source's ``max_candidates``], rho_max in (0, 1], min_similarity None or in [0, 1]."""
    if not isinstance(source, str) or source not in candidates.registry:
        raise ValueError(f"source must be a registered candidate source, one of {candidates.names()}, got {source!r}")
    check_positive_int(k, "k")
    available = candidates.get(source).max_candidates
    if k > available:
        raise ValueError(
            f"k must be at most {available}, the number of candidates source {source!r} keeps per word; got {k}"
        )
    check_fraction(rho_max, "rho_max")
    if min_similarity is not None:
        check_fraction(min_similarity, "min_similarity", allow_zero=True)


def substitute(x: Tensor, token: Tensor, phrase: Tensor, length: Tensor) -> Tensor:
    """Texts (M, 2, L): in text m of ``x``, the token at index ``token[m]`` replaced by
    ``phrase[m, :length[m]]``.

    Later tokens shift right by ``length[m] − 1``; the phrase's tokens all carry the word
    position of the replaced token. Tokens shifted past L are lost: callers only substitute
    phrases that fit. ``phrase`` is (M, P) (PAD beyond each length), ``length`` in [1, P].
    """
    size = x.shape[2]
    j = torch.arange(size, device=x.device)[None, :]
    start, m = token[:, None], length[:, None]
    source = torch.where(j < start, j, j - m + 1).clamp(0, size - 1)
    out = x.gather(2, source[:, None, :].expand(-1, 2, -1))
    inside = (j >= start) & (j < start + m)
    ids = phrase.gather(1, (j - start).clamp(0, phrase.shape[1] - 1))
    position = x[:, 1].gather(1, token[:, None]).expand(-1, size)
    out[:, 0] = torch.where(inside, ids, out[:, 0])
    out[:, 1] = torch.where(inside, position, out[:, 1])
    return out


@dataclasses.dataclass(frozen=True)
class _Candidates:
    """The first k candidates of every token id of a batch, as tensors.

    ``ids`` (U,) the sorted distinct ids; ``phrases`` (U, k, P) PAD-padded; ``lengths`` (U, k),
    0 where a word has fewer than k candidates (and everywhere for PAD, UNK, stop words and
    words outside the table); ``listed[u][j]`` the same phrase as a tuple.
    """

    ids: Tensor
    phrases: Tensor
    lengths: Tensor
    listed: list[tuple[tuple[int, ...], ...]]

    @classmethod
    def lookup(cls, table, vocabulary: Vocabulary, x: Tensor, k: int) -> _Candidates:
        ids = torch.unique(x[:, 0])
        listed = [_word_candidates(table, vocabulary, word, k) for word in ids.tolist()]
        width = max((len(p) for row in listed for p in row), default=1)
        phrases = torch.full((len(listed), k, width), PAD, dtype=torch.long)
        lengths = torch.zeros(len(listed), k, dtype=torch.long)
        for u, row in enumerate(listed):
            for j, p in enumerate(row):
                phrases[u, j, : len(p)] = torch.tensor(p)
                lengths[u, j] = len(p)
        return cls(ids, phrases.to(x.device), lengths.to(x.device), listed)

    def row(self, token_ids: Tensor) -> Tensor:
        """Row u of each token id (every id of the batch has one)."""
        return torch.searchsorted(self.ids, token_ids.contiguous())


def _word_candidates(table, vocabulary: Vocabulary, word: int, k: int) -> tuple[tuple[int, ...], ...]:
    """The first k candidates of token ``word`` (none for PAD, UNK, stop words), checked."""
    if word in (PAD, UNK) or vocabulary.words[word] in STOP_WORDS or word not in table:
        return ()
    found = tuple(tuple(p) for p in table.candidates(word)[:k])
    for p in found:
        if not p or any(i < 2 or i >= len(vocabulary) for i in p) or p == (word,):
            raise ValueError(
                f"candidate table {getattr(table, 'source', table)!r} gives {vocabulary.words[word]!r} the substitute "
                f"{p!r}; substitutes must be non-empty, made of vocabulary words (ids in [2, {len(vocabulary)})) "
                "and differ from the word"
            )
    return found


def _sole_tokens(x: Tensor) -> Tensor:
    """(N, L) bool: real tokens that are the only token of their word position."""
    pos = x[:, 1]
    edge = torch.ones_like(pos[:, :1], dtype=torch.bool)
    first = torch.cat([edge, pos[:, 1:] != pos[:, :-1]], dim=1)
    last = torch.cat([pos[:, :-1] != pos[:, 1:], edge], dim=1)
    return first & last & (x[:, 0] != PAD)


def _budget(x: Tensor, rho_max: float) -> Tensor:
    """⌊ρ_max · n_words⌋ per text, (N,) long."""
    return torch.floor(n_words(x).double() * rho_max + _TOLERANCE).long()


def _check_scores(scores: Tensor, x: Tensor) -> None:
    if not isinstance(scores, Tensor) or scores.shape != (x.shape[0], x.shape[2]) or not scores.is_floating_point():
        raise ValueError(
            f"scores must be a float tensor of shape (N, L) = {(x.shape[0], x.shape[2])} (one per word position), "
            f"got {getattr(scores, 'dtype', type(scores).__name__)} of shape {tuple(getattr(scores, 'shape', ()))}"
        )
    words = torch.arange(x.shape[2], device=x.device) < n_words(x)[:, None]
    if not torch.isfinite(scores[words]).all():
        raise ValueError("scores must be finite at every word position")


def _evaluate(objective: Objective, texts: Tensor, rows: Tensor) -> Tensor:
    """The objective's (M,) values of the candidate texts, detached; checked for shape."""
    if len(rows) == 0:
        return torch.zeros(0, device=texts.device)
    values = objective(texts, rows)
    if not isinstance(values, Tensor) or values.shape != (len(rows),):
        got = getattr(values, "shape", values)
        raise ValueError(f"objective must return one value per candidate text, shape ({len(rows)},), got {got!r}")
    return values.detach()


@torch.no_grad()
def _predict(model: nn.Module, x: Tensor) -> Tensor:
    return model(x).argmax(1)


def greedy_substitution(
    model: nn.Module,
    x: Tensor,
    vocabulary: Vocabulary,
    table,
    scores: Tensor,
    *,
    k: int,
    rho_max: float,
    objective: Objective | None = None,
    streams: SampleStreams | None = None,
    keep_label: bool = True,
    min_similarity: float | None = None,
) -> SubstitutionResult:
    """Greedy word substitutions of the texts ``x`` (see the module docstring for the procedure).

    Args:
        model: text classifier ``model(x) -> logits`` (its train/eval mode is left as it is).
        x: (N, 2, L) text tensor; every id < ``len(vocabulary)``.
        vocabulary: decodes ids (stop words; texts for the similarity floor).
        table: a candidate table (:mod:`salbench.attacks.candidates`): ``word in table``,
            ``table.candidates(word)`` best first.
        scores: (N, L) priority of each word position, higher first; finite at word positions.
        k: candidates tried per word (the table's first k).
        rho_max: at most ⌊rho_max · n_words⌋ words of a text are substituted, in (0, 1].
        objective: greedy mode: maximised per step (see :data:`Objective`); None: random mode,
            a uniformly random admissible candidate, each text's drawn from its own stream of
            ``streams`` (:class:`salbench.core.seeding.SampleStreams` of x; required then, and
            only then), so that a text's draws do not depend on the other texts of the batch.
        keep_label: admit only candidates on which the model predicts the original label.
        min_similarity: admit only candidates whose sentence similarity to the original text
            is at least this (in [0, 1]); None: no floor.

    Returns:
        a :class:`SubstitutionResult`; ``label_kept`` compares the model's predictions on
        x_adv and x (always True with ``keep_label``).
    """
    check_text_input(x)
    if int(x[:, 0].max()) >= len(vocabulary):
        raise ValueError(f"x holds token id {int(x[:, 0].max())}, outside the vocabulary of {len(vocabulary)} words")
    _check_scores(scores, x)
    check_positive_int(k, "k")
    check_fraction(rho_max, "rho_max")
    if min_similarity is not None:
        check_fraction(min_similarity, "min_similarity", allow_zero=True)
    if (objective is None) == (streams is None):
        raise ValueError(
            "give exactly one of objective (greedy mode) and streams (random mode), "
            f"got objective={objective!r}, streams={streams!r}"
        )
    if streams is not None and len(streams) != x.shape[0]:
        raise ValueError(f"streams must hold one stream per text of x ({x.shape[0]}), got {len(streams)}")
    search = _Search(model, x, vocabulary, _Candidates.lookup(table, vocabulary, x, k), keep_label, min_similarity)
    return search.run(scores, _budget(x, rho_max), objective, streams)


class _Search:
    """State of one greedy search: the current texts, what was substituted, the best values."""

    def __init__(self, model, x, vocabulary, candidates: _Candidates, keep_label: bool, min_similarity: float | None):
        self.model, self.x, self.vocabulary, self.candidates = model, x, vocabulary, candidates
        self.label = _predict(model, x)
        self.keep_label, self.min_similarity = keep_label, min_similarity
        self.original_texts = vocabulary.decode(x) if min_similarity is not None else None

    def run(self, scores: Tensor, budget: Tensor, objective: Objective | None, streams) -> SubstitutionResult:
        x, n = self.x, self.x.shape[0]
        attackable = _sole_tokens(x) & (self.candidates.lengths[self.candidates.row(x[:, 0]), 0] > 0)
        key = torch.where(attackable, scores.gather(1, x[:, 1].clamp(min=0)), -math.inf)
        ranked = x[:, 1].gather(1, key.argsort(dim=1, descending=True, stable=True))
        count = attackable.sum(1)
        x_adv, used = x.clone(), torch.zeros(n, dtype=torch.long, device=x.device)
        best = _evaluate(objective, x, torch.arange(n, device=x.device)) if objective is not None else None
        made: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
        for r in range(int(count.max()) if n else 0):
            active = ((r < count) & (used < budget)).nonzero().squeeze(1)
            if len(active) == 0:
                break
            step = self._step(x_adv, active, ranked[active, r], objective, streams, best)
            if step is None:
                continue
            rows, texts, values, record = step
            x_adv[rows] = texts
            used[rows] += 1
            if best is not None:
                best[rows] = values
            made.append(record)
        label_kept = _predict(self.model, x_adv) == self.label
        return SubstitutionResult(
            x_adv=x_adv, iterations=used, label_kept=label_kept, success=used > 0, substitutions=self._listed(made, n)
        )

    def _step(self, x_adv: Tensor, active: Tensor, position: Tensor, objective, streams, best):
        """Try the candidates of one word of each active text; (rows, new texts, values, record) or None."""
        a, j, u, texts = self._candidate_texts(x_adv[active], position)
        keep = self._admissible(texts, active[a])
        a, j, texts = a[keep], j[keep], texts[keep]
        if objective is None:
            values = streams.rand((), like=x_adv, rows=active[a])  # each text's candidates from its own stream
        else:
            values = _evaluate(objective, texts, active[a])
            defined = ~torch.isnan(values)
            a, j, texts, values = a[defined], j[defined], texts[defined], values[defined]
        # the best (greedy) or the drawn (random) candidate of each active text, as a (text, slot) grid
        shape = (len(active), self.candidates.lengths.shape[1])
        grid = torch.full(shape, -math.inf, dtype=values.dtype, device=x_adv.device).index_put((a, j), values)
        top, choice = grid.max(1)
        has = torch.zeros(len(active), dtype=torch.bool, device=x_adv.device).index_fill(0, a, True)
        take = has if objective is None else has & (top > best[active])
        if not take.any():
            return None
        slot = torch.full(shape, -1, dtype=torch.long, device=x_adv.device)
        slot[a, j] = torch.arange(len(a), device=x_adv.device)
        rows = take.nonzero().squeeze(1)
        record = (active[rows], position[rows], u[rows], choice[rows])
        return active[rows], texts[slot[rows, choice[rows]]], top[rows], record

    def _candidate_texts(self, current: Tensor, position: Tensor):
        """Every applicable candidate of the word at ``position`` of each text of ``current``.

        Returns (a, j, u, texts): candidate text m is text a[m] with the word replaced by its
        j[m]-th candidate; ``u`` is the word's row in the candidates, per text.
        """
        token = (current[:, 1] == position[:, None]).int().argmax(1)
        u = self.candidates.row(current[:, 0].gather(1, token[:, None]).squeeze(1))
        lengths = self.candidates.lengths[u]
        fits = (current[:, 0] != PAD).sum(1, keepdim=True) + lengths - 1 <= current.shape[2]
        a, j = ((lengths > 0) & fits).nonzero(as_tuple=True)
        texts = substitute(current[a], token[a], self.candidates.phrases[u[a], j], lengths[a, j])
        return a, j, u, texts

    def _admissible(self, texts: Tensor, rows: Tensor) -> Tensor:
        """(M,) bool: the candidate texts that pass the label constraint and the similarity floor."""
        keep = torch.ones(len(rows), dtype=torch.bool, device=texts.device)
        if self.keep_label and len(rows):
            keep = _predict(self.model, texts) == self.label[rows]
        if self.min_similarity is not None and keep.any():
            checked = keep.nonzero().squeeze(1)
            originals = [self.original_texts[i] for i in rows[checked].tolist()]
            sim = similarity.sentence_similarity(originals, self.vocabulary.decode(texts[checked]))
            keep[checked] = sim.to(keep.device) >= self.min_similarity
        return keep

    def _listed(self, made, n: int) -> list[list[Substitution]]:
        """Per sample, (position, original ids, substitute ids) in the order made."""
        out: list[list[Substitution]] = [[] for _ in range(n)]
        ids, listed = self.candidates.ids.tolist(), self.candidates.listed
        for rows, positions, u, choice in made:
            for i, p, w, c in zip(rows.tolist(), positions.tolist(), u.tolist(), choice.tolist()):
                out[i].append((p, (ids[w],), listed[w][c]))
        return out


def explanation_distance(model: nn.Module, explainer, reference: Tensor, target: Tensor) -> Objective:
    """Objective d_e(A(x), A(x̃)) = (1 − cos)/2 of the word attributions, A = ``explainer`` at ``target``.

    ``reference`` is A(x) (N, L) of the attacked batch (detached); candidates are explained at
    their sample's target. DARE's objective (Ivankay et al. 2023, eq. of d_e).
    """

    def objective(texts: Tensor, rows: Tensor) -> Tensor:
        return _D_E.compare(reference[rows], explainer(model, texts, target[rows]).detach())

    return objective


def class_loss(model: nn.Module, y: Tensor) -> Objective:
    """Objective CE(f(x̃), y) per candidate: the adversarial-training attack's (``a2t.py``)."""

    @torch.no_grad()
    def objective(texts: Tensor, rows: Tensor) -> Tensor:
        return F.cross_entropy(model(texts), y[rows], reduction="none")

    return objective


def candidate_table(source: str, vocabulary: Vocabulary, corpus: Tensor):
    """The candidate table of ``source`` for ``vocabulary`` with the text tensor ``corpus`` (the
    training texts), built once per process by the source (:mod:`salbench.attacks.candidates`)."""
    return candidates.get(source).table(vocabulary, corpus)


class SubstitutionAttack(TextAttack):
    """Base of the word-substitution attacks: their shared parameters and candidate table.

    Args (every subclass takes them as ``**substitution``; the defaults are DARE's):
        source: registered candidate source (:mod:`salbench.attacks.candidates`); default
            ``"domain_embedding"``.
        k: candidates tried per word, at most the source's ``max_candidates`` (10 by default);
            default 5.
        rho_max: at most ⌊rho_max · n⌋ of a text's n words are substituted, in (0, 1]; default 0.15.
        min_similarity: sentence-similarity floor in [0, 1] (None, the default: none).
    """

    def __init__(
        self, source: str = "domain_embedding", k: int = 5, rho_max: float = 0.15, min_similarity: float | None = None
    ):
        check_substitution_params(source, k, rho_max, min_similarity)
        self.source, self.k, self.rho_max = source, k, float(rho_max)
        self.min_similarity = None if min_similarity is None else float(min_similarity)

    def search(self, model: nn.Module, x: Tensor, inputs: AttackInputs, scores: Tensor, **mode) -> SubstitutionResult:
        """:func:`greedy_substitution` of ``x`` with this attack's settings; ``mode``: objective or streams."""
        table = candidate_table(self.source, inputs.vocabulary, inputs.corpus)
        return greedy_substitution(
            model, x, inputs.vocabulary, table, scores, k=self.k, rho_max=self.rho_max,
            min_similarity=self.min_similarity, **mode,
        )
