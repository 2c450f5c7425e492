"""Kim's convolutional network for sentence classification (word embeddings, parallel 1-D convolutions)."""

from __future__ import annotations

import torch
from salbench.core.validation import check_positive_int
from salbench.models import register
from salbench.models.text_classifier import (
    TextClassifier,
    cut_after_longest,
    token_mask,
)
from torch import Tensor, nn

__all__ = ["TextCNN"]


@register("text_cnn")
class TextCNN(TextClassifier):
    """Kim's CNN: parallel Conv1d of several widths with ReLU, max-over-time pooling, dropout, linear.

    Kim 2014, "Convolutional neural networks for sentence classification", EMNLP. With
    e_1 … e_n the embeddings of a text's n real tokens (zero vectors elsewhere), each filter
    of width h computes c_t = ReLU(w · [e_{t−h+1}; …; e_t] + b) and is pooled over time,
    ĉ = max_t c_t; the pooled features of all widths are concatenated, passed through
    dropout and a linear layer: logits = W · dropout([ĉ_1, …, ĉ_m]) + b.

    Padding: as in Kim's code, the sentence is padded with h − 1 zero vectors on both sides
    (a "full" convolution, so a text shorter than a filter still has windows), and PAD
    tokens are zeroed as well. Max-over-time pooling then takes only the windows that hold
    at least one real token (t ≤ n + h − 2), so the logits do not depend on PAD embeddings
    nor on how much PAD follows the text. Gradients at PAD positions are 0. The batch is
    cut after its longest text (PAD-only columns cannot matter).

    Defaults and departures: the paper's CNN-rand/static use E = 300, 100 filters per width
    (3, 4, 5), dropout 0.5 and an l2 max-norm constraint of 3 on the output weights. The
    defaults here are smaller (E = 64, 32 filters per width) so that the model trains on one
    CPU core in about a minute: with the standard recipe, 3,000 texts of up to 128 tokens
    took about 2.3 s per epoch (19 epochs, 45 s, on a synthetic keyword task; the IU X-ray
    reports ran all 50 epochs). The max-norm constraint is left out (the recipes' weight
    decay is the regulariser). Embeddings are learnt from random initialisation (CNN-rand):
    no pretrained word vectors are downloaded.

    Named parts: ``embedding``, ``convs`` (one Sequential(Conv1d, ReLU) per width),
    ``dropout``, ``classifier``.

    Args:
        input_shape: (2, L) of one text tensor; filled in by the harness.
        num_classes: number of classes; filled in by the harness.
        vocab_size: size of the vocabulary (PAD and UNK included); filled in by the harness.
        embedding_dim: size of the token embeddings.
        filters: filters (output channels) per width.
        widths: the filter widths, one convolution each.
        dropout: dropout probability before the linear layer, in [0, 1).

    Example:
        >>> import torch
        >>> net = TextCNN((2, 8), 3, vocab_size=20)
        >>> x = torch.tensor([[[5, 7, 2, 0, 0, 0, 0, 0], [0, 1, 2, -1, -1, -1, -1, -1]]])
        >>> net.eval()(x).shape
        torch.Size([1, 3])
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        vocab_size: int,
        embedding_dim: int = 64,
        filters: int = 32,
        widths: tuple[int, ...] = (3, 4, 5),
        dropout: float = 0.5,
    ):
        super().__init__(input_shape, num_classes, vocab_size, embedding_dim, dropout)
        check_positive_int(filters, "filters")
        if not isinstance(widths, tuple) or not widths:
            raise ValueError(f"widths must be a non-empty tuple of positive ints, got {widths!r}")
        for i, width in enumerate(widths):
            check_positive_int(width, f"widths[{i}]")
        self.widths = widths
        self.convs = nn.ModuleList(
            nn.Sequential(nn.Conv1d(embedding_dim, filters, width, padding=width - 1), nn.ReLU()) for width in widths
        )
        self.classifier = nn.Linear(filters * len(widths), num_classes)

    def classify(self, emb: Tensor, ids: Tensor) -> Tensor:
        emb, real = cut_after_longest(emb, token_mask(ids))
        hidden = torch.where(real[..., None], emb, 0.0).transpose(1, 2)  # (N, E, L), zero at PAD
        n_tokens = real.sum(1, keepdim=True)
        pooled = []
        for width, conv in zip(self.widths, self.convs):
            maps = conv(hidden)  # (N, F, L + width − 1); window t covers tokens t − width + 1 … t
            window = torch.arange(maps.shape[2], device=maps.device)
            holds_a_token = window[None] < n_tokens + width - 1  # (N, L + width − 1)
            pooled.append(maps.masked_fill(~holds_a_token[:, None], float("-inf")).amax(2))
        return self.classifier(self.dropout(torch.cat(pooled, 1)))
