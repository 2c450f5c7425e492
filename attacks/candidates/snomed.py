"""Domain synonyms from SNOMED CT concept names, as DICOM PS3.16 lists them (shipped with pydicom)."""

from __future__ import annotations

import functools
import re
from collections import defaultdict

from salbench.attacks.candidates import register
from salbench.attacks.candidates.base import CandidateSource, Phrase
from salbench.core.optional import require_text_package
from salbench.core.text import Vocabulary, tokenize
from torch import Tensor

__all__ = ["Snomed", "snomed_synonyms", "normalise_name", "SEMANTIC_TAGS"]

SEMANTIC_TAGS = frozenset(
    {
        "administration method", "assessment scale", "attribute", "basic dose form", "body structure", "cell",
        "cell structure", "clinical drug", "core metadata concept", "disorder", "disposition", "dose form",
        "environment", "environment / location", "ethnic group", "event", "finding", "foundation metadata concept",
        "geographic location", "inactive concept", "intended site", "life style", "link assertion",
        "medicinal product", "medicinal product form", "metadata", "morphologic abnormality", "namespace concept",
        "navigational concept", "number", "observable entity", "occupation", "organism", "owl metadata concept",
        "person", "physical force", "physical object", "procedure", "product", "product name", "qualifier value",
        "racial group", "record artifact", "regime/therapy", "release characteristic", "religion/philosophy",
        "role", "situation", "social concept", "special concept", "specimen", "staging scale", "state of matter",
        "substance", "supplier", "transformation", "tumor staging", "unit of presentation",
    }
)  # fmt: skip
"""SNOMED CT's semantic tags (the hierarchy in parentheses ending a fully specified name), lower-case."""

_TRAILING_GROUP = re.compile(r"\(([^()]*)\)$")


@register("snomed")
class Snomed(CandidateSource):
    """Synonyms from SNOMED CT: the other names of the concepts that a word names (DICOM PS3.16 via pydicom).

    Where the words come from: SNOMED CT (SNOMED International) concepts as the DICOM standard
    uses them, PS3.16 "Content Mapping Resource" (the coding scheme "SCT" of its context
    groups), in the table pydicom ships as ``pydicom.sr._concepts_dict.concepts["SCT"]``
    (keyword -> {concept code: (code meaning, context groups)}). A concept's names are the
    distinct meanings listed under its code, e.g. "Cardiomegaly" and "Cardiomegaly (disorder)".
    8,152 codes; 3,103 have >= 2 distinct meanings (pydicom 3.0.2).

    Normalisation of a name (:func:`normalise_name`): a trailing SNOMED semantic tag such as
    "(disorder)" or "(body structure)" (:data:`SEMANTIC_TAGS`; other parentheses, e.g. an
    abbreviation "(NAFLD)", are part of the name) and trailing periods are stripped, repeatedly,
    then the name is lower-cased and split into words by
    :func:`salbench.core.text.tokenize`. Concepts left with >= 2 distinct word sequences
    are kept (:func:`snomed_synonyms`).

    Candidates: a vocabulary word w gets the other names of every concept that has a name
    whose words are exactly [w], restricted to names whose words are all vocabulary words,
    not only stop words and not [w] itself (the shared filters of
    :mod:`salbench.attacks.candidates.base`). Multi-word names are allowed: they replace the one word
    by a phrase. A name may contain w itself ("adenosine" -> "adenosine preparation").

    Order (deterministic): single words first, then fewer words first, then alphabetically;
    the first ``max_candidates`` are kept. SNOMED gives no ranking of synonyms, so this order
    prefers the substitutions that change the text least.

    Departure: the DARE paper (Ivankay et al., ACL 2023) draws candidates from a biomedical
    masked language model; this source stands in for it with a curated medical lexicon, which
    satisfies the paper's plausibility requirement (a substitute is a name of the same concept)
    but covers only the words that are whole concept names.

    Args:
        max_candidates: substitutes kept per word, >= 1.

    Example:
        >>> import salbench.attacks.candidates as candidates
        >>> import torch
        >>> from salbench.core.text import Vocabulary
        >>> vocab = Vocabulary(("<pad>", "<unk>", "chest", "thorax", "bilateral", "right", "and", "left"))
        >>> table = candidates.get("snomed").table(vocab, vocab.encode(["chest"], max_len=1))
        >>> table.phrases("chest"), table.phrases("thorax"), table.phrases("bilateral")
        (('thorax',), ('chest',), ('right and left',))
    """

    def rank(self, vocabulary: Vocabulary, corpus: Tensor) -> dict[int, list[Phrase]]:
        others: dict[str, set[tuple[str, ...]]] = defaultdict(set)
        for names in snomed_synonyms():
            for name in names:
                if len(name) == 1 and name[0] in vocabulary:
                    others[name[0]].update(n for n in names if n != name)
        return {
            vocabulary.index(word): [
                tuple(vocabulary.index(t) for t in name) for name in sorted(names, key=lambda n: (len(n), " ".join(n)))
            ]
            for word, names in sorted(others.items())
        }


def normalise_name(meaning: str) -> tuple[str, ...]:
    """The words of a SNOMED concept name without its trailing semantic tag and periods.

    Example:
        >>> normalise_name("Acute ST segment elevation myocardial infarction (disorder)")
        ('acute', 'st', 'segment', 'elevation', 'myocardial', 'infarction')
        >>> normalise_name("Nonalcoholic fatty liver disease (NAFLD)")
        ('nonalcoholic', 'fatty', 'liver', 'disease', 'nafld')
    """
    name, previous = meaning, None
    while name != previous:
        previous = name
        name = name.strip().rstrip(".").rstrip()
        tag = _TRAILING_GROUP.search(name)
        if tag and tag.group(1).strip().lower() in SEMANTIC_TAGS:
            name = name[: tag.start()]
    return tuple(tokenize(name))


@functools.cache
def snomed_synonyms() -> tuple[tuple[tuple[str, ...], ...], ...]:
    """The SNOMED CT concepts of DICOM PS3.16 with >= 2 distinct normalised names, each as its sorted names.

    Concepts in order of their code (as a number); empty names are dropped.
    """
    sr = require_text_package("pydicom.sr._concepts_dict", "pydicom", "candidate source 'snomed'")
    names_by_code: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for entries in sr.concepts["SCT"].values():
        for code, (meaning, _groups) in entries.items():
            name = normalise_name(meaning)
            if name:
                names_by_code[code].add(name)
    by_code = sorted(names_by_code.items(), key=lambda item: int(item[0]))
    return tuple(tuple(sorted(names)) for _code, names in by_code if len(names) >= 2)
