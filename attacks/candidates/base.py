"""Candidate sources and the tables they build: which phrases may replace a vocabulary word.

A :class:`CandidateSource` ranks substitutes for vocabulary words (:meth:`CandidateSource.rank`,
one method per source); :meth:`CandidateSource.table` applies the filters shared by every source,
keeps the best ``max_candidates`` and returns an immutable :class:`CandidateTable`, cached
in-process by (source with its parameters, vocabulary fingerprint, corpus digest).

The shared filters (what the text attacks rely on, TEXT.md §4):

- only content words get candidates: vocabulary words (id >= 2, so not PAD/UNK) that are not
  stop words (:data:`salbench.core.text.STOP_WORDS`);
- a candidate is a phrase of >= 1 vocabulary word ids (no PAD/UNK), not made only of stop words
  (a single-word candidate is never a stop word), never the word itself; a repeated candidate
  keeps its first (best) place.

:func:`nearest_neighbours` is the cosine nearest-neighbour ranking shared by the embedding
sources (:class:`EmbeddingSource`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType

import torch
from salbench.core.text import PAD, STOP_WORDS, UNK, Vocabulary, check_text_input
from salbench.core.validation import check_positive_int
from torch import Tensor

__all__ = ["Phrase", "CandidateTable", "CandidateSource", "EmbeddingSource", "content_words", "nearest_neighbours"]

Phrase = tuple[int, ...]
"""A substitute: the token ids of one or more vocabulary words."""

_TABLES: dict[tuple[str, str, str], CandidateTable] = {}
_NEIGHBOUR_BLOCK = 1024  # rows of the similarity matrix held at once by nearest_neighbours


def content_words(vocabulary: Vocabulary) -> Tensor:
    """(len(vocabulary),) bool: True at the ids of words that are neither PAD/UNK nor stop words."""
    return torch.tensor([i not in (PAD, UNK) and w not in STOP_WORDS for i, w in enumerate(vocabulary.words)])


def _admissible(phrase: object, word_id: int, vocabulary: Vocabulary) -> bool:
    """``phrase`` may replace ``word_id``: vocabulary word ids, not only stop words, not the word itself."""
    return (
        isinstance(phrase, tuple)
        and len(phrase) >= 1
        and all(isinstance(i, int) and UNK < i < len(vocabulary) for i in phrase)
        and not all(vocabulary.words[i] in STOP_WORDS for i in phrase)
        and phrase != (word_id,)
    )


class CandidateTable(Mapping[int, tuple[Phrase, ...]]):
    """Immutable mapping from a word id to its substitutes, best first (only words that have some).

    Every key is a content word of ``vocabulary`` (not PAD/UNK, not a stop word); every
    substitute is a tuple of >= 1 vocabulary word ids, not only stop words, not the word
    itself, listed once. The constructor checks this and raises ``ValueError`` otherwise.

    Args:
        source: the registered name of the source that built the table.
        vocabulary: the vocabulary whose ids the table holds.
        entries: word id -> substitutes, best first; a word with no substitute is left out.

    Example:
        >>> from salbench.core.text import Vocabulary
        >>> vocab = Vocabulary(("<pad>", "<unk>", "heart", "cardiac", "enlarged", "large"))
        >>> table = CandidateTable("demo", vocab, {4: [(5,), (3, 5)]})
        >>> table.candidates(4), 4 in table, 2 in table, table.phrases("enlarged")
        (((5,), (3, 5)), True, False, ('large', 'cardiac large'))
    """

    def __init__(self, source: str, vocabulary: Vocabulary, entries: Mapping[int, Iterable[Phrase]]):
        if not isinstance(vocabulary, Vocabulary):
            raise TypeError(f"vocabulary must be an salbench.core.text.Vocabulary, got {type(vocabulary).__name__}")
        content = content_words(vocabulary)
        table = {}
        for word_id, phrases in entries.items():
            phrases = tuple(phrases)
            if isinstance(word_id, bool) or not isinstance(word_id, int) or not 0 <= word_id < len(vocabulary):
                raise ValueError(f"entries has key {word_id!r}; keys are word ids in [0, {len(vocabulary)})")
            if not content[word_id]:
                word = vocabulary.words[word_id]
                raise ValueError(f"entries gives candidates to {word!r}, which is not a content word (PAD/UNK/stop word)")
            bad = [p for p in phrases if not _admissible(p, word_id, vocabulary)]
            if bad or not phrases or len(set(phrases)) != len(phrases):
                raise ValueError(
                    f"entries[{word_id}] ({vocabulary.words[word_id]!r}) must be a non-empty list of distinct phrases "
                    f"(tuples of vocabulary word ids, not only stop words, not the word itself); got {phrases[:5]!r}"
                    + (f", inadmissible: {bad[:5]!r}" if bad else "")
                )
            table[word_id] = phrases
        self._source = source
        self._vocabulary = vocabulary
        self._entries = MappingProxyType(table)

    @property
    def source(self) -> str:
        """The registered name of the source that built the table."""
        return self._source

    @property
    def vocabulary(self) -> Vocabulary:
        """The vocabulary whose ids the table holds."""
        return self._vocabulary

    def candidates(self, word_id: int) -> tuple[Phrase, ...]:
        """The substitutes of ``word_id``, best first; () for a word without any."""
        if isinstance(word_id, bool) or not isinstance(word_id, int) or not 0 <= word_id < len(self._vocabulary):
            raise ValueError(f"word_id must be a token id in [0, {len(self._vocabulary)}), got {word_id!r}")
        return self._entries.get(word_id, ())

    def phrases(self, word: str) -> tuple[str, ...]:
        """The substitutes of the vocabulary word ``word`` as text, best first (for reading a table)."""
        if word not in self._vocabulary:
            raise ValueError(f"word {word!r} is not in the vocabulary")
        words = self._vocabulary.words
        return tuple(" ".join(words[i] for i in p) for p in self.candidates(self._vocabulary.index(word)))

    def __getitem__(self, word_id: int) -> tuple[Phrase, ...]:
        return self._entries[word_id]

    def __contains__(self, word_id: object) -> bool:
        return word_id in self._entries

    def __iter__(self) -> Iterator[int]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"CandidateTable(source={self._source!r}, words={len(self)}, vocabulary={self._vocabulary!r})"


class CandidateSource:
    """Base class of candidate sources: ``source.table(vocabulary, corpus)`` -> :class:`CandidateTable`.

    Subclasses implement :meth:`rank` (substitutes per word, best first, before the shared
    filters) and register with ``@salbench.attacks.candidates.register(name)``; their ``__init__`` takes
    ``max_candidates`` and passes it on.

    Args:
        max_candidates: substitutes kept per word (the best ones after filtering), >= 1.
    """

    def __init__(self, max_candidates: int = 10):
        check_positive_int(max_candidates, "max_candidates")
        self.max_candidates = max_candidates

    def rank(self, vocabulary: Vocabulary, corpus: Tensor) -> Mapping[int, Iterable[Phrase]]:
        """Word id -> candidate phrases, best first; the shared filters and the cut come after."""
        raise NotImplementedError

    def table(self, vocabulary: Vocabulary, corpus: Tensor) -> CandidateTable:
        """The table of ``vocabulary`` (``corpus``: the train split's text tensor), built once per process.

        Cached by (``repr(self)``, ``vocabulary.fingerprint()``, SHA-256 of ``corpus``); the cache
        lives as long as the process. :meth:`build` builds without the cache.
        """
        _check_corpus(vocabulary, corpus)
        key = (repr(self), vocabulary.fingerprint(), _digest(corpus))
        if key not in _TABLES:
            _TABLES[key] = self.build(vocabulary, corpus)
        return _TABLES[key]

    def build(self, vocabulary: Vocabulary, corpus: Tensor) -> CandidateTable:
        """A fresh table: :meth:`rank`, then the shared filters, then the best ``max_candidates`` per word."""
        _check_corpus(vocabulary, corpus)
        content = content_words(vocabulary)
        entries: dict[int, list[Phrase]] = {}
        for word_id, phrases in self.rank(vocabulary, corpus).items():
            if not content[word_id]:
                continue
            kept: list[Phrase] = []
            for phrase in phrases:
                if len(kept) == self.max_candidates:
                    break
                if phrase not in kept and _admissible(phrase, word_id, vocabulary):
                    kept.append(phrase)
            if kept:
                entries[word_id] = kept
        return CandidateTable(getattr(type(self), "registered_name", type(self).__name__), vocabulary, entries)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


class EmbeddingSource(CandidateSource):
    """A source whose candidates are a word's nearest neighbours among word vectors (:func:`nearest_neighbours`).

    Subclasses implement :meth:`vectors`.

    Args:
        min_similarity: if given, only neighbours with cosine similarity >= it, in [-1, 1].
        **source: max_candidates of :class:`CandidateSource` (neighbours kept per word).
    """

    def __init__(self, min_similarity: float | None = None, **source):
        super().__init__(**source)
        number = isinstance(min_similarity, (int, float)) and not isinstance(min_similarity, bool)
        if min_similarity is not None and not (number and -1 <= min_similarity <= 1):
            raise ValueError(f"min_similarity must be None or a number in [-1, 1], got {min_similarity!r}")
        self.min_similarity = min_similarity

    def vectors(self, vocabulary: Vocabulary, corpus: Tensor) -> tuple[Tensor, list[int]]:
        """(M, D) word vectors and the M vocabulary ids they belong to (the words that take part)."""
        raise NotImplementedError

    def rank(self, vocabulary: Vocabulary, corpus: Tensor) -> dict[int, list[Phrase]]:
        vectors, word_ids = self.vectors(vocabulary, corpus)
        return nearest_neighbours(vectors, word_ids, vocabulary, self.max_candidates, self.min_similarity)


def nearest_neighbours(
    vectors: Tensor, word_ids: list[int], vocabulary: Vocabulary, k: int, min_similarity: float | None = None
) -> dict[int, list[Phrase]]:
    """Each content word's k nearest other content words by cosine similarity of ``vectors``.

    Rows of ``vectors`` (M, D) belong to the vocabulary ids ``word_ids``; only rows of content
    words (not PAD/UNK, not stop words) take part, as words and as neighbours. A neighbour must
    be of the same token class as the word (both contain a digit, or neither: "5mg" is never
    offered for "pain"), must not be the word itself and, with ``min_similarity``, must have
    cosine >= min_similarity. Neighbours come most similar first; equal similarities in the
    order of ``word_ids`` (a stable sort, so the result is deterministic).
    """
    if vectors.dim() != 2 or vectors.shape[0] != len(word_ids):
        raise ValueError(
            f"vectors must be (M, D) with one row per word id ({len(word_ids)}), got {tuple(vectors.shape)}"
        )
    content = content_words(vocabulary)[torch.tensor(word_ids, dtype=torch.long)]
    ids = [i for i, keep in zip(word_ids, content.tolist()) if keep]
    if not ids:
        return {}
    unit = torch.nn.functional.normalize(vectors[content].float(), dim=1)
    numeric = torch.tensor([any(c.isdigit() for c in vocabulary.words[i]) for i in ids])
    out: dict[int, list[Phrase]] = {}
    for start in range(0, len(ids), _NEIGHBOUR_BLOCK):
        sim = unit[start : start + _NEIGHBOUR_BLOCK] @ unit.T
        rows = torch.arange(sim.shape[0])
        barred = numeric[start : start + len(rows), None] != numeric[None, :]
        barred[rows, rows + start] = True
        if min_similarity is not None:
            barred |= sim < min_similarity
        ordered = sim.masked_fill(barred, -torch.inf).sort(dim=1, descending=True, stable=True)
        for row, (values, cols) in enumerate(zip(ordered.values[:, :k].tolist(), ordered.indices[:, :k].tolist())):
            out[ids[start + row]] = [(ids[c],) for v, c in zip(values, cols) if v != -torch.inf]
    return out


def _check_corpus(vocabulary: Vocabulary, corpus: Tensor) -> None:
    if not isinstance(vocabulary, Vocabulary):
        raise TypeError(f"vocabulary must be an salbench.core.text.Vocabulary, got {type(vocabulary).__name__}")
    check_text_input(corpus, "corpus")
    if corpus[:, 0].max() >= len(vocabulary):
        raise ValueError(
            f"corpus holds token id {corpus[:, 0].max().item()}, outside the vocabulary of {len(vocabulary)} words"
        )


def _digest(corpus: Tensor) -> str:
    """SHA-256 of the corpus tensor's shape and values (part of the table cache key)."""
    data = corpus.detach().to("cpu").contiguous()
    return hashlib.sha256(repr(tuple(data.shape)).encode() + data.numpy().tobytes()).hexdigest()
