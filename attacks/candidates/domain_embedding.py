"""Domain neighbours: nearest words in a word2vec model trained on the data set's own train texts."""

from __future__ import annotations

import torch
from salbench.attacks.candidates import register
from salbench.attacks.candidates.base import EmbeddingSource
from salbench.core.optional import require_text_package
from salbench.core.text import UNK, Vocabulary
from salbench.core.validation import check_positive_int, check_seed
from torch import Tensor

__all__ = ["DomainEmbedding", "corpus_sentences"]

VECTOR_SIZE = 100
WINDOW = 5


@register("domain_embedding")
class DomainEmbedding(EmbeddingSource):
    """Nearest neighbours in a skip-gram word2vec model trained on the train corpus (Mikolov et al. 2013).

    Where the words come from: the training split of the data set itself. Its text tensor is
    decoded into one word list per text (:func:`corpus_sentences`; PAD and UNK tokens dropped,
    so only vocabulary words remain) and a word2vec model is trained on it with gensim
    (Řehůřek & Sojka, "Software Framework for Topic Modelling with Large Corpora", LREC 2010
    workshop): skip-gram with negative sampling (Mikolov, Chen, Corrado, Dean, "Efficient
    Estimation of Word Representations in Vector Space", 2013; Mikolov et al., "Distributed
    Representations of Words and Phrases and their Compositionality", NeurIPS 2013),
    vector_size 100, window 5, 5 negative samples, frequent-word downsampling 1e-3 (gensim's
    defaults), min_count 1 (the vocabulary's own min_freq already chose the words), one worker
    thread and ``seed``, so the same corpus and seed give the same vectors and table.

    ``epochs`` defaults to 20 rather than gensim's 5: on a corpus of a few thousand short texts
    (~10⁵ tokens; IU X-ray reports, drug reviews) 5 passes leave rare words near their random
    initialisation, and word2vec practice for small corpora is more passes.

    Candidates: a word's nearest other vocabulary words by cosine similarity of the vectors,
    most similar first, keeping only content words (no PAD/UNK, no stop words) of the same token
    class (both containing a digit, or neither), never the word itself, and with
    ``min_similarity`` only those at least that similar (:func:`~salbench.attacks.candidates.base.nearest_neighbours`).

    Departure: the DARE paper (Ivankay et al., ACL 2023) draws candidates from a biomedical
    masked language model. Distributional neighbours in a small domain corpus are a cheaper
    domain source; they include related words that are not synonyms (e.g. "left"/"right"),
    which is why the attacks can add a sentence-similarity floor.

    Args:
        epochs: training passes over the corpus, >= 1.
        seed: word2vec's random seed (initial vectors, negative samples, downsampling), >= 0.
        **embedding: max_candidates, min_similarity of
            :class:`~salbench.attacks.candidates.base.EmbeddingSource`.

    Example:
        >>> import salbench.attacks.candidates as candidates
        >>> from salbench.core.text import Vocabulary, tokenize
        >>> texts = ["the left lung is clear", "the right lung is clear"] * 50
        >>> vocab = Vocabulary.build([tokenize(t) for t in texts], min_freq=1)
        >>> table = candidates.get("domain_embedding", max_candidates=2).table(vocab, vocab.encode(texts, max_len=5))
        >>> len(table.phrases("left"))
        2
    """

    def __init__(self, epochs: int = 20, seed: int = 0, **embedding):
        super().__init__(**embedding)
        check_positive_int(epochs, "epochs")
        check_seed(seed)
        self.epochs = epochs
        self.seed = seed

    def vectors(self, vocabulary: Vocabulary, corpus: Tensor) -> tuple[Tensor, list[int]]:
        models = require_text_package("gensim.models", "gensim", "candidate source 'domain_embedding'")
        sentences = corpus_sentences(vocabulary, corpus)
        model = models.Word2Vec(
            sentences,
            sg=1,
            vector_size=VECTOR_SIZE,
            window=WINDOW,
            min_count=1,
            epochs=self.epochs,
            seed=self.seed,
            workers=1,
        )
        words = sorted(model.wv.key_to_index, key=vocabulary.index)
        return torch.from_numpy(model.wv[words]), [vocabulary.index(w) for w in words]


def corpus_sentences(vocabulary: Vocabulary, corpus: Tensor) -> list[list[str]]:
    """The words of each text of the text tensor ``corpus``, PAD and UNK dropped (texts left empty dropped)."""
    words = vocabulary.words
    sentences = [[words[i] for i in row if i > UNK] for row in corpus[:, 0].tolist()]
    return [s for s in sentences if s]
