"""The text tensor: how a batch of texts is one long tensor, and the vocabulary that encodes it.

A batch of N texts is one long tensor ``x`` of shape (N, 2, L):

- ``x[:, 0]``: token ids; ``PAD`` (0) pads, ``UNK`` (1) stands for a word outside the
  vocabulary, ids >= 2 are vocabulary words. The tokens of a text come first, PAD after.
- ``x[:, 1]``: the word position of each token: the index (0-based, in the original text) of the
  word that the token stands for; -1 at PAD. An encoded text has position j at token j; after a
  word i is replaced by a phrase of m tokens, all m tokens carry position i, so positions start
  at 0, never decrease and grow by at most 1 from one token to the next.

Word attributions are indexed by word position: :func:`n_words` is the number of words of each
text and :func:`word_mask` marks the positions that are real words.

Example:
    >>> vocab = Vocabulary.build([tokenize("the heart is normal"), tokenize("the heart is large")], min_freq=1)
    >>> x = vocab.encode(["The heart is enlarged."], max_len=6)
    >>> x[0].tolist()
    [[4, 2, 3, 1, 0, 0], [0, 1, 2, 3, -1, -1]]
    >>> vocab.decode(x), n_words(x).tolist()
    (['the heart is <unk>'], [4])
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch
from salbench.core.validation import check_positive_int
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from torch import Tensor

__all__ = [
    "PAD",
    "UNK",
    "STOP_WORDS",
    "tokenize",
    "Vocabulary",
    "n_words",
    "word_mask",
    "check_text_input",
]

PAD: int = 0
"""Token id of padding (after the last token of a text); its word position is -1."""
UNK: int = 1
"""Token id of a word that is not in the vocabulary."""
STOP_WORDS: frozenset[str] = frozenset(ENGLISH_STOP_WORDS)
"""English stop words (scikit-learn's list of 318 words), never attacked or offered as substitutes."""

_SPECIALS = ("<pad>", "<unk>")
# A word: letters or digits (Unicode), with single inner hyphens or apostrophes ("x-ray", "don't").
_WORD = re.compile(r"[^\W_]+(?:['-][^\W_]+)*")


def tokenize(text: str) -> list[str]:
    """The lower-cased words of ``text``: runs of letters/digits, inner ``-`` or ``'`` kept.

    Everything else (spaces, punctuation, underscores, leading or trailing hyphens and
    apostrophes) separates words and is dropped. Deliberately simple and dependency-free, so
    that the same text always gives the same words.

    Example:
        >>> tokenize("No acute cardio-pulmonary disease; the patient's T8 (2x) -- OK.")
        ['no', 'acute', 'cardio-pulmonary', 'disease', 'the', "patient's", 't8', '2x', 'ok']
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Vocabulary:
    """An immutable word list: ``words[i]`` is the word of token id i; ids 0 and 1 are PAD and UNK.

    ``words[0] == "<pad>"``, ``words[1] == "<unk>"``; every other word is one token as
    :func:`tokenize` produces it (so that decoding and re-encoding give the same ids), and no
    word appears twice. Build one from tokenised texts with :meth:`build`.

    Example:
        >>> vocab = Vocabulary(("<pad>", "<unk>", "heart", "normal"))
        >>> len(vocab), vocab.index("normal"), vocab.index("lung"), vocab.phrase("Normal heart")
        (4, 3, 1, (3, 2))
    """

    words: tuple[str, ...]
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.words, tuple) or tuple(self.words[:2]) != _SPECIALS:
            raise ValueError(f"words must be a tuple starting with {_SPECIALS}, got {_head(self.words)}")
        for i, word in enumerate(self.words[2:], start=2):
            if not isinstance(word, str) or tokenize(word) != [word]:
                raise ValueError(
                    f"words[{i}] = {word!r} is not a single lower-case token as tokenize() produces; "
                    "vocabulary words must be tokens"
                )
        ids = {word: i for i, word in enumerate(self.words)}
        if len(ids) != len(self.words):
            dupes = sorted(w for w, c in Counter(self.words).items() if c > 1)
            raise ValueError(f"words must be unique; repeated: {dupes[:10]}")
        object.__setattr__(self, "_ids", ids)

    @classmethod
    def build(cls, texts: Iterable[Sequence[str]], *, min_freq: int = 2, max_size: int | None = None) -> Vocabulary:
        """The vocabulary of tokenised ``texts``: words seen at least ``min_freq`` times.

        Words are ordered by frequency (descending), ties alphabetically, so the same texts
        always give the same ids. ``max_size`` (>= 2) caps ``len(vocabulary)``, PAD and UNK
        included: the most frequent words are kept.

        Args:
            texts: one sequence of tokens (e.g. ``tokenize(text)``) per text; not raw strings.
            min_freq: minimum number of occurrences (over all texts) of a kept word, >= 1.
            max_size: maximum size of the vocabulary including PAD and UNK, or None for no cap.
        """
        check_positive_int(min_freq, "min_freq")
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 2):
            raise ValueError(f"max_size must be None or an integer >= 2 (PAD and UNK included), got {max_size!r}")
        counts: Counter[str] = Counter()
        for i, tokens in enumerate(texts):
            if isinstance(tokens, str) or not isinstance(tokens, Sequence):
                raise TypeError(
                    f"texts[{i}] must be a sequence of tokens (e.g. tokenize(text)), got {type(tokens).__name__}"
                )
            counts.update(tokens)
        ranked = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
        if max_size is not None:
            ranked = ranked[: max_size - len(_SPECIALS)]
        return cls(_SPECIALS + tuple(ranked))

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self._ids

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)}, fingerprint={self.fingerprint()[:12]!r})"

    def index(self, word: str) -> int:
        """The token id of ``word``; ``UNK`` if it is not in the vocabulary."""
        return self._ids.get(word, UNK)

    def phrase(self, text: str) -> tuple[int, ...] | None:
        """The ids of ``tokenize(text)`` if it has >= 1 token and every token is a vocabulary word, else None."""
        tokens = tokenize(text)
        ids = tuple(self._ids.get(t, UNK) for t in tokens)
        if not ids or any(i in (PAD, UNK) for i in ids):
            return None
        return ids

    def encode(self, texts: Sequence[str], max_len: int) -> Tensor:
        """The (N, 2, max_len) text tensor of ``texts`` (see the module docstring).

        Each text is tokenised with :func:`tokenize`; words outside the vocabulary become UNK.
        A text of more than ``max_len`` words is truncated to its first ``max_len`` words (the
        loaders choose ``max_len`` to cover most texts and document how many are cut).

        Raises:
            TypeError: ``texts`` is a single str or holds a non-str.
            ValueError: ``texts`` is empty, or a text has no word (its index is named).
        """
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise TypeError(f"texts must be a sequence of str, got {type(texts).__name__}")
        if len(texts) == 0:
            raise ValueError("texts is empty; encode needs at least one text")
        check_positive_int(max_len, "max_len")
        x = torch.full((len(texts), 2, max_len), -1, dtype=torch.long)
        x[:, 0] = PAD
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{row}] must be a str, got {type(text).__name__}")
            ids = [self._ids.get(t, UNK) for t in tokenize(text)[:max_len]]
            if not ids:
                raise ValueError(f"texts[{row}] = {text!r} has no word (letters or digits); every text needs >= 1")
            x[row, 0, : len(ids)] = torch.tensor(ids)
            x[row, 1, : len(ids)] = torch.arange(len(ids))
        return x

    def decode(self, x: Tensor) -> list[str]:
        """One string per text of the text tensor ``x``: its tokens' words joined by spaces, PAD dropped.

        UNK decodes to ``"<unk>"``; a phrase substituted for a word decodes to its words.
        """
        self._check_ids(x)
        return [" ".join(self.words[i] for i in row if i != PAD) for row in x[:, 0].tolist()]

    def words_by_position(self, x: Tensor) -> list[list[str]]:
        """For each text of ``x``, L strings: the word(s) at word position j, ``""`` for j >= n_words.

        A phrase substituted for one word gives its words joined by spaces at that position, so
        entry j lines up with word attribution j.

        Example:
            >>> vocab = Vocabulary(("<pad>", "<unk>", "heart", "normal", "size"))
            >>> vocab.words_by_position(torch.tensor([[[3, 2, 4, 0], [0, 1, 1, -1]]]))
            [['normal', 'heart size', '', '']]
        """
        self._check_ids(x)
        length = x.shape[2]
        out = []
        for ids, positions in zip(x[:, 0].tolist(), x[:, 1].tolist()):
            words: list[list[str]] = [[] for _ in range(length)]
            for i, position in zip(ids, positions):
                if i != PAD:
                    words[position].append(self.words[i])
            out.append([" ".join(w) for w in words])
        return out

    def _check_ids(self, x: Tensor) -> None:
        check_text_input(x)
        if x[:, 0].max() >= len(self):
            raise ValueError(
                f"x holds token id {x[:, 0].max().item()}, outside this vocabulary of {len(self)} words"
            )

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the word list in order: equal fingerprints mean equal token ids (cache keys)."""
        return hashlib.sha256(json.dumps(self.words).encode("utf-8")).hexdigest()


def n_words(x: Tensor) -> Tensor:
    """(N,) long: the number of words of each text of the text tensor ``x`` (largest position + 1)."""
    return x[:, 1].amax(1) + 1


def word_mask(x: Tensor) -> Tensor:
    """(N, L) bool: True at word positions j < n_words(x), the positions that word attributions fill."""
    positions = torch.arange(x.shape[2], device=x.device)
    return positions < n_words(x)[:, None]


def check_text_input(x: Tensor, name: str = "x") -> None:
    """``x`` is a valid (N, 2, L) text tensor (see the module docstring); else a clear error.

    Checks: a long tensor, 3-D, ``shape[1] == 2``, N >= 1 and L >= 1; ids >= 0; each text has
    >= 1 token and its tokens come before PAD; position -1 exactly at PAD; positions start at 0
    and step by 0 or 1. Ids are checked against a vocabulary by its users (e.g. :meth:`Vocabulary.decode`).
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype != torch.long:
        raise TypeError(f"{name} must be a long (int64) text tensor of ids and word positions, got dtype {x.dtype}")
    if x.dim() != 3 or x.shape[1] != 2 or x.shape[0] == 0 or x.shape[2] == 0:
        raise ValueError(
            f"{name} must have shape (N, 2, L) with N >= 1 and L >= 1 (row 0: token ids, row 1: word positions), "
            f"got {tuple(x.shape)}"
        )
    ids, pos = x[:, 0], x[:, 1]
    pad = ids == PAD
    real_pairs = ~pad[:, 1:]
    steps = pos[:, 1:] - pos[:, :-1]
    problems = (
        (ids < 0, "has negative token ids; ids are >= 0 (0 = PAD, 1 = UNK)"),
        (pad[:, :1], "has no token (it starts with PAD); every text needs >= 1 word"),
        (pad[:, :-1] & real_pairs, "has a token after PAD; tokens must come first, PAD after"),
        (pad & (pos != -1), "has a word position other than -1 at PAD"),
        ((~pad[:, :1]) & (pos[:, :1] != 0), "does not start at word position 0"),
        (real_pairs & (steps != 0) & (steps != 1), "has word positions that do not step by 0 or 1"),
    )
    for bad, what in problems:
        rows = bad.flatten(1).any(1).nonzero()
        if len(rows):
            raise ValueError(f"{name}: text {rows[0].item()} (of {len(rows)} such) {what}")


def _head(words: object) -> str:
    if isinstance(words, tuple):
        return repr(words[:3]) + ("..." if len(words) > 3 else "")
    return type(words).__name__
