"""Substitutes for the words of a text: the candidate sources of the text attacks.

A candidate source turns a vocabulary (and the training corpus) into a
:class:`~salbench.attacks.candidates.base.CandidateTable`: for each vocabulary word, the phrases that may
replace it, best first. ``salbench.attacks.candidates.get(name, **params).table(vocabulary, corpus)``
builds one (cached in-process); see :mod:`salbench.attacks.candidates.base`.

Built-in sources: ``snomed`` (synonyms from SNOMED CT concept names), ``domain_embedding``
(nearest neighbours in a word2vec model trained on the corpus) and ``generic`` (nearest
neighbours in MiniLM's general-domain token embeddings).
"""

from salbench.core.registry import Registry

registry = Registry("candidate_source", group="salbench.candidate_sources")
register = registry.register
get = registry.get
names = registry.names

from salbench.attacks.candidates import domain_embedding, generic, snomed  # noqa: E402,F401  (registers the built-in sources)
