"""The text tensor and the vocabulary (explainers/text_inputs.py): hand-worked encodings and errors."""

from __future__ import annotations

import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from salbench.core.text import (
    PAD,
    STOP_WORDS,
    UNK,
    Vocabulary,
    check_text_input,
    n_words,
    tokenize,
    word_mask,
)

CORPUS = ["The lungs are clear.", "The heart is normal; lungs clear", "heart size normal", "no effusion"]


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    # counts: the 2, lungs 2, clear 2, heart 2, normal 2, are 1, is 1, size 1, no 1, effusion 1
    return Vocabulary.build([tokenize(t) for t in CORPUS], min_freq=2)


def test_constants():
    assert (PAD, UNK) == (0, 1)
    assert {"the", "is", "no", "and"} <= STOP_WORDS and "heart" not in STOP_WORDS


@pytest.mark.parametrize(
    "text, tokens",
    [
        ("The LUNGS are clear.", ["the", "lungs", "are", "clear"]),
        ("x-ray: 2x3 cm, patient's", ["x-ray", "2x3", "cm", "patient's"]),
        ("-- 'quoted' re-- -lead", ["quoted", "re", "lead"]),
        ("a--b it''s snake_case", ["a", "b", "it", "s", "snake", "case"]),
        ("Ödem café", ["ödem", "café"]),
        ("   ...  ", []),
    ],
)
def test_tokenize(text, tokens):
    assert tokenize(text) == tokens


def test_tokenize_rejects_non_str():
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        tokenize(b"heart")


def test_build_orders_by_frequency_then_alphabetically(vocab):
    assert vocab.words == ("<pad>", "<unk>", "clear", "heart", "lungs", "normal", "the")
    everything = Vocabulary.build([tokenize(t) for t in CORPUS], min_freq=1)
    assert everything.words[2:7] == vocab.words[2:]
    assert everything.words[7:] == ("are", "effusion", "is", "no", "size")


def test_build_is_deterministic_under_reordering():
    texts = [tokenize(t) for t in CORPUS]
    a = Vocabulary.build(texts, min_freq=1)
    b = Vocabulary.build(list(reversed(texts)), min_freq=1)
    assert a == b and a.fingerprint() == b.fingerprint()


def test_build_max_size_counts_specials(vocab):
    capped = Vocabulary.build([tokenize(t) for t in CORPUS], min_freq=1, max_size=4)
    assert capped.words == ("<pad>", "<unk>", "clear", "heart")
    assert Vocabulary.build([["a"]], min_freq=1, max_size=2).words == ("<pad>", "<unk>")


@pytest.mark.parametrize(
    "kwargs, match",
    [({"min_freq": 0}, "min_freq must be an integer >= 1"), ({"max_size": 1}, "max_size must be None or an integer >= 2")],
)
def test_build_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Vocabulary.build([["a"]], **kwargs)


def test_build_rejects_raw_strings():
    with pytest.raises(TypeError, match=r"texts\[1\] must be a sequence of tokens"):
        Vocabulary.build([["heart"], "heart"])


@pytest.mark.parametrize(
    "words, match",
    [
        (("<unk>", "<pad>", "a"), "must be a tuple starting with"),
        (["<pad>", "<unk>"], "must be a tuple starting with"),
        (("<pad>", "<unk>", "Heart"), r"words\[2\] = 'Heart' is not a single lower-case token"),
        (("<pad>", "<unk>", "two words"), "is not a single lower-case token"),
        (("<pad>", "<unk>", "<unk>"), "is not a single lower-case token"),
        (("<pad>", "<unk>", "a", "b", "a"), r"repeated: \['a'\]"),
    ],
)
def test_vocabulary_rejects_bad_words(words, match):
    with pytest.raises(ValueError, match=match):
        Vocabulary(words)


def test_lookup(vocab):
    assert len(vocab) == 7
    assert "heart" in vocab and "effusion" not in vocab
    assert vocab.index("lungs") == 4 and vocab.index("effusion") == UNK
    assert vocab.phrase("Normal heart") == (5, 3)
    assert vocab.phrase("normal effusion") is None  # one token outside the vocabulary
    assert vocab.phrase(" ; ") is None  # no token


def test_encode_hand_worked(vocab):
    x = vocab.encode(["The heart is normal.", "clear"], max_len=5)
    expected = torch.tensor(
        [
            [[6, 3, UNK, 5, PAD], [0, 1, 2, 3, -1]],
            [[2, PAD, PAD, PAD, PAD], [0, -1, -1, -1, -1]],
        ]
    )
    assert x.dtype == torch.long and torch.equal(x, expected)
    assert n_words(x).tolist() == [4, 1]
    assert word_mask(x).tolist() == [[True] * 4 + [False], [True] + [False] * 4]


def test_encode_truncates_to_max_len(vocab):
    x = vocab.encode(["the lungs are clear the heart is normal"], max_len=3)
    assert x.tolist() == [[[6, 4, UNK], [0, 1, 2]]]
    assert vocab.decode(x) == ["the lungs <unk>"]


def test_decode_of_encode_round_trips_in_vocabulary_text(vocab):
    text = "The heart: normal, lungs clear"
    assert vocab.decode(vocab.encode([text, "Clear!"], max_len=8)) == ["the heart normal lungs clear", "clear"]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["clear", "heart", "lungs", "normal", "the"]), min_size=1, max_size=6), min_size=1, max_size=4))
def test_round_trip_property(vocab, words):
    texts = [" ".join(w) for w in words]
    x = vocab.encode(texts, max_len=6)
    check_text_input(x)
    assert vocab.decode(x) == texts
    assert n_words(x).tolist() == [len(w) for w in words]


def test_positions_of_a_substituted_phrase(vocab):
    # "heart normal" with word 0 replaced by the two-token phrase "the heart": positions 0, 0, 1
    x = torch.tensor([[[6, 3, 5, PAD], [0, 0, 1, -1]]])
    check_text_input(x)
    assert n_words(x).tolist() == [2]
    assert word_mask(x).tolist() == [[True, True, False, False]]
    assert vocab.decode(x) == ["the heart normal"]


@pytest.mark.parametrize(
    "texts, error, match",
    [
        (["heart", "  ..."], ValueError, r"texts\[1\] = '  \.\.\.' has no word"),
        (["heart", ""], ValueError, r"texts\[1\] = '' has no word"),
        ([], ValueError, "texts is empty"),
        ("heart", TypeError, "texts must be a sequence of str, got str"),
        (["heart", 3], TypeError, r"texts\[1\] must be a str, got int"),
    ],
)
def test_encode_errors(vocab, texts, error, match):
    with pytest.raises(error, match=match):
        vocab.encode(texts, max_len=4)


def test_encode_rejects_bad_max_len(vocab):
    with pytest.raises(ValueError, match="max_len must be an integer >= 1, got 0"):
        vocab.encode(["heart"], max_len=0)


def test_decode_rejects_ids_outside_the_vocabulary(vocab):
    for method in (vocab.decode, vocab.words_by_position):
        with pytest.raises(ValueError, match="token id 7, outside this vocabulary of 7 words"):
            method(torch.tensor([[[7, 2], [0, 1]]]))


def test_words_by_position_line_up_with_word_positions(vocab):
    x = vocab.encode(["Heart is normal", "clear"], max_len=4)
    assert vocab.words_by_position(x) == [["heart", "<unk>", "normal", ""], ["clear", "", "", ""]]
    substituted = torch.tensor([[[6, 3, 5, PAD], [0, 0, 1, -1]]])  # word 0 replaced by "the heart"
    assert vocab.words_by_position(substituted) == [["the heart", "normal", "", ""]]


def test_vocabulary_is_immutable_hashable_and_pickles(vocab):
    copy = pickle.loads(pickle.dumps(vocab))  # bundles travel to worker processes
    assert copy == vocab and hash(copy) == hash(vocab) and copy.index("normal") == 5
    with pytest.raises(AttributeError):
        vocab.words = ()


def test_fingerprint_depends_on_word_order():
    a = Vocabulary(("<pad>", "<unk>", "a", "b"))
    b = Vocabulary(("<pad>", "<unk>", "b", "a"))
    assert len(a.fingerprint()) == 64 and a.fingerprint() == Vocabulary(a.words).fingerprint()
    assert a.fingerprint() != b.fingerprint()


def _text(ids, pos):
    return torch.tensor([[ids, pos]])


@pytest.mark.parametrize(
    "x, error, match",
    [
        ([[[2, 0], [0, -1]]], TypeError, "must be a torch.Tensor, got list"),
        (torch.tensor([[[2.0, 0.0], [0.0, -1.0]]]), TypeError, "got dtype torch.float32"),
        (torch.tensor([[2, 0], [0, -1]]), ValueError, r"shape \(N, 2, L\).*got \(2, 2\)"),
        (torch.zeros(1, 3, 2, dtype=torch.long), ValueError, r"got \(1, 3, 2\)"),
        (torch.zeros(0, 2, 2, dtype=torch.long), ValueError, r"got \(0, 2, 2\)"),
        (_text([2, -3], [0, 1]), ValueError, "negative token ids"),
        (_text([0, 0], [-1, -1]), ValueError, "text 0 .* has no token"),
        (_text([2, 0, 3], [0, -1, 1]), ValueError, "token after PAD"),
        (_text([2, 0], [0, 1]), ValueError, "position other than -1 at PAD"),
        (_text([2, 3], [1, 2]), ValueError, "does not start at word position 0"),
        (_text([2, 3, 4], [0, 2, 3]), ValueError, "do not step by 0 or 1"),
        (_text([2, 3, 4], [0, 1, 0]), ValueError, "do not step by 0 or 1"),
    ],
)
def test_check_text_input_errors(x, error, match):
    with pytest.raises(error, match=match):
        check_text_input(x, name="x")


def test_check_text_input_names_the_argument_and_row():
    good = [[2, 3], [0, 1]]
    bad = [[2, 3], [0, 5]]
    with pytest.raises(ValueError, match=r"x_adv: text 1 \(of 1 such\)"):
        check_text_input(torch.tensor([good, bad, good]), name="x_adv")
