"""Texts with words deleted: the text tensor of each text keeping only some of its words.

ERASER's comprehensiveness and sufficiency (DeYoung et al. 2020) delete tokens from the text
(the model reads a shorter text), rather than masking them. For a text tensor x (N, 2, L)
(:mod:`salbench.core.text`) and a word mask ``keep`` (N, P, L) over word positions,
:func:`keep_words` returns P texts per sample: the tokens of the kept words moved to the
front in order, PAD after, and word positions renumbered 0, 1, ... over the kept words, so
every result is a valid text tensor of the same length L.

Example:
    >>> import torch
    >>> x = torch.tensor([[[5, 6, 6, 7, 0], [0, 1, 1, 2, -1]]])  # 3 words; word 1 is 2 tokens
    >>> keep = torch.tensor([[[True, False, True, False, False]]])
    >>> keep_words(x, keep)[0, 0].tolist()
    [[5, 7, 0, 0, 0], [0, 1, -1, -1, -1]]
"""

from __future__ import annotations

import torch
from salbench.core.text import PAD
from torch import Tensor

__all__ = ["keep_words"]


def keep_words(x: Tensor, keep: Tensor) -> Tensor:
    """(N, P, 2, L): for each sample of ``x`` and each of its P word masks ``keep`` (N, P, L), the
    text of the kept words (see the module docstring). A mask entry at a position past the
    text's words is ignored."""
    n, p, length = keep.shape
    ids, positions = x[:, None, 0].expand(n, p, length), x[:, None, 1].expand(n, p, length)
    real = ids != PAD
    word = positions.clamp(min=0)
    kept_token = real & keep.gather(2, word)
    new_word = keep.long().cumsum(dim=2) - 1  # renumbered position of each kept word
    order = (~kept_token).long().argsort(dim=2, stable=True)  # kept tokens first, in order
    kept_sorted = kept_token.gather(2, order)
    new_ids = torch.where(kept_sorted, ids.gather(2, order), PAD)
    new_positions = torch.where(kept_sorted, new_word.gather(2, word).gather(2, order), -1)
    return torch.stack([new_ids, new_positions], dim=2)
