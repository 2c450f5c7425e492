"""The shared base of text classifiers: a token embedding, then a classifier of the embedded tokens."""

from __future__ import annotations

from salbench.core.text import PAD
from salbench.core.validation import check_positive_int
from salbench.models import check_shape_and_classes
from torch import Tensor, nn

__all__ = ["TextClassifier", "token_mask", "cut_after_longest"]


def token_mask(ids: Tensor) -> Tensor:
    """(N, L) bool: True at the real tokens of ``ids`` (N, L), False at PAD."""
    return ids != PAD


def cut_after_longest(emb: Tensor, real: Tensor) -> tuple[Tensor, Tensor]:
    """``emb`` (N, L, E) and the token mask ``real`` (N, L) without the trailing columns that are PAD in every text.

    For a model whose logits do not depend on PAD this changes nothing but the cost (texts are
    often much shorter than L); the gradient at the cut columns is 0, as at any PAD.
    """
    longest = int(real.sum(1).max())
    return emb[:, :longest], real[:, :longest]


class TextClassifier(nn.Module):
    """Base of text classifiers: ``forward(x) = classify(embed(x[:, 0]), x[:, 0])``.

    A text batch is the (N, 2, L) long tensor of :mod:`salbench.core.text` (row 0 the token
    ids, tokens first and PAD after; row 1 the word positions, unused by the model). The model
    is split in two so that explainers can work on the embeddings
    (:class:`salbench.explainers.word_attribution.WordAttribution`):

    - :meth:`embed`: ids (N, L) → embeddings (N, L, E), an ``nn.Embedding`` whose PAD row is
      initialised to 0 and never trained (``padding_idx``);
    - :meth:`classify`: embeddings (N, L, E) and the ids (N, L), used only for the PAD mask
      (:func:`token_mask`) → logits (N, C). Subclasses implement it so that the logits do not
      depend on anything at PAD positions (neither their embeddings nor how many there are).

    Subclasses register with the harness parameters ``input_shape`` (= (2, L)),
    ``num_classes`` and ``vocab_size`` (see :mod:`salbench.models`). The models accept any
    length L, not only the one of ``input_shape``.

    Args:
        input_shape: (2, L) of one text tensor; filled in by the harness.
        num_classes: number of classes; filled in by the harness.
        vocab_size: number of token ids (PAD and UNK included), >= 3; filled in by the harness.
        embedding_dim: size E of the token embeddings.
        dropout: probability of the ``dropout`` module that subclasses apply before their
            linear output layer, in [0, 1).
    """

    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, vocab_size: int, embedding_dim: int, dropout: float
    ):
        super().__init__()
        check_shape_and_classes(input_shape, num_classes, rank=2)
        if input_shape[0] != 2:
            raise ValueError(
                f"input_shape must be (2, L) for a text tensor (token ids and word positions), got {input_shape}"
            )
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 3:
            raise ValueError(f"vocab_size must be an integer >= 3 (PAD, UNK and at least one word), got {vocab_size!r}")
        check_positive_int(embedding_dim, "embedding_dim")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD)
        self.dropout = nn.Dropout(dropout)

    def embed(self, ids: Tensor) -> Tensor:
        """Token embeddings (N, L, E) of the ids (N, L)."""
        return self.embedding(ids)

    def classify(self, emb: Tensor, ids: Tensor) -> Tensor:
        """Logits (N, C) of the embedded texts ``emb`` (N, L, E); ``ids`` (N, L) marks PAD."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        ids = x[:, 0]
        return self.classify(self.embed(ids), ids)
