"""Text architectures (text_cnn, text_bigru): shapes, PAD invariance, agreement with a per-text
computation, training on a keyword task, the harness's vocab_size and the model cache."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from salbench import datasets, models
from salbench.core.registry import ParameterError
from salbench.core.text import PAD, Vocabulary, check_text_input
from salbench.datasets.base import DataBundle, Split
from salbench.model_cache import trained_model
from salbench.recipes.base import evaluate
from salbench.recipes.standard import Standard
from torch import Tensor, nn

ARCHS = ["text_cnn", "text_bigru"]
TINY = {"text_cnn": {"embedding_dim": 6, "filters": 4}, "text_bigru": {"embedding_dim": 6, "hidden": 5}}
VOCAB = 24
KEYWORD = 2  # the token id that makes a text positive in the keyword task


def random_texts(n: int, length: int, generator: torch.Generator, min_tokens: int = 1) -> Tensor:
    """(n, 2, length) text tensor: one token per word, ids in [2, VOCAB), random lengths in [min_tokens, length]."""
    n_tokens = torch.randint(min_tokens, length + 1, (n, 1), generator=generator)
    slot = torch.arange(length)
    real = slot < n_tokens
    ids = torch.where(real, torch.randint(2, VOCAB, (n, length), generator=generator), PAD)
    return torch.stack([ids, torch.where(real, slot, -1).expand(n, -1)], 1)


def keyword_split(n: int, length: int, generator: torch.Generator) -> Split:
    """Texts of filler words (ids >= 3); label 1 texts have the KEYWORD at one random real position."""
    x = random_texts(n, length, generator, min_tokens=3)
    x[:, 0] = torch.where(x[:, 0] == KEYWORD, KEYWORD + 1, x[:, 0])
    y = torch.randint(0, 2, (n,), generator=generator)
    n_tokens = (x[:, 0] != PAD).sum(1)
    where = (torch.rand(n, generator=generator) * n_tokens).long()
    rows = torch.arange(n)[y == 1]
    x[rows, 0, where[y == 1]] = KEYWORD
    return Split(x=x, y=y)


def keyword_bundle(seed: int, n_train: int = 400, length: int = 12) -> DataBundle:
    generator = torch.Generator().manual_seed(seed)
    words = ("<pad>", "<unk>") + tuple(f"w{i}" for i in range(2, VOCAB))
    return DataBundle(
        train=keyword_split(n_train, length, generator), val=keyword_split(100, length, generator),
        test=keyword_split(200, length, generator), num_classes=2, modality="text", vocabulary=Vocabulary(words),
    )


def tiny(name: str, length: int = 8, num_classes: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return models.build(name, TINY[name], (2, length), num_classes, vocab_size=VOCAB).double().eval()


def append_pad(x: Tensor, extra: int) -> Tensor:
    pad = torch.stack([torch.full_like(x[:, 0, :extra], PAD), torch.full_like(x[:, 1, :extra], -1)], 1)
    return torch.cat([x, pad], 2)


# -- shapes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("length", [1, 2, 7, 16])
def test_shapes_for_any_length_including_texts_shorter_than_the_filters(name, length):
    net = models.build(name, {}, (2, length), 4, vocab_size=VOCAB).eval()
    x = random_texts(5, length, torch.Generator().manual_seed(length))
    check_text_input(x)
    assert net.embed(x[:, 0]).shape == (5, length, 64)
    logits = net(x)
    assert logits.shape == (5, 4) and torch.isfinite(logits).all()


# -- PAD never matters ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ARCHS)
def test_appending_pad_does_not_change_the_logits(name):
    net = tiny(name)
    x = random_texts(9, 8, torch.Generator().manual_seed(1))
    logits = net(x)
    for extra in (1, 5, 20):
        assert torch.allclose(net(append_pad(x, extra)), logits, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", ARCHS)
def test_embeddings_at_pad_positions_do_not_change_the_logits_and_get_no_gradient(name):
    net = tiny(name)
    x = random_texts(9, 8, torch.Generator().manual_seed(2))
    ids = x[:, 0]
    pad = (ids == PAD)[..., None]
    assert pad.any()
    emb = net.embed(ids).detach().requires_grad_(True)
    logits = net.classify(emb, ids)
    noise = 10 * torch.randn(emb.shape, dtype=emb.dtype, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(net.classify(emb + noise * pad, ids), logits, atol=1e-12, rtol=0)
    assert not torch.allclose(net.classify(emb + noise * ~pad, ids), logits, atol=1e-3)  # real tokens do matter
    (grad,) = torch.autograd.grad(logits.sum(), emb)
    assert torch.equal(grad * pad, torch.zeros_like(grad)) and (grad * ~pad).abs().sum() > 0


@pytest.mark.parametrize("name", ARCHS)
def test_texts_are_classified_independently_of_the_batch(name):
    net = tiny(name)
    x = random_texts(7, 8, torch.Generator().manual_seed(4))
    alone = torch.cat([net(x[i : i + 1]) for i in range(len(x))])
    assert torch.allclose(net(x), alone, atol=1e-12, rtol=0)


# -- agreement with a per-text computation ---------------------------------------------------
def text_cnn_by_hand(net: nn.Module, ids: Tensor) -> Tensor:
    """Kim's CNN on one text's real tokens: zero-pad by width − 1 on both sides, conv, ReLU, max."""
    emb = net.embedding.weight[ids[ids != PAD]].T[None]  # (1, E, n)
    features = []
    for width, conv in zip(net.widths, net.convs):
        padded = F.pad(emb, (width - 1, width - 1))
        features.append(torch.relu(F.conv1d(padded, conv[0].weight, conv[0].bias)).amax(2))
    return net.classifier(torch.cat(features, 1))


def text_bigru_by_hand(net: nn.Module, ids: Tensor) -> Tensor:
    """Both GRUs over one text's real tokens only (no PAD), the backward one on them flipped; mean, linear."""
    emb = net.embedding.weight[ids[ids != PAD]][None]
    forward, _ = net.gru_forward(emb)
    backward, _ = net.gru_backward(emb.flip(1))
    return net.classifier(torch.cat([forward, backward.flip(1)], 2).mean(1))


@pytest.mark.parametrize("name, by_hand", [("text_cnn", text_cnn_by_hand), ("text_bigru", text_bigru_by_hand)])
def test_logits_equal_a_per_text_computation_on_the_real_tokens(name, by_hand):
    net = tiny(name, length=10)
    x = random_texts(6, 10, torch.Generator().manual_seed(5))
    x[0, :, 1:] = torch.tensor([[PAD], [-1]])  # a one-token text, shorter than every filter
    expected = torch.cat([by_hand(net, x[i, 0]) for i in range(len(x))])
    assert torch.allclose(net(x), expected, atol=1e-12, rtol=0)


def test_text_cnn_relus_are_modules():
    net = tiny("text_cnn")
    x = random_texts(6, 8, torch.Generator().manual_seed(6))
    logits = net(x)
    assert all(isinstance(block[1], nn.ReLU) for block in net.convs)
    for block in net.convs:
        block[1] = nn.Identity()
    assert not torch.allclose(net(x), logits, atol=1e-6)


def test_bigru_supports_double_backward_on_cpu():
    """Gradient explanations trained against (create_graph) differentiate through the GRU twice."""
    net = tiny("text_bigru", length=5, num_classes=2)
    x = random_texts(3, 5, torch.Generator().manual_seed(7))
    emb = net.embed(x[:, 0]).detach().requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda e: net.classify(e, x[:, 0]), (emb,), fast_mode=True)


# -- training ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ARCHS)
def test_trains_well_above_chance_on_a_keyword_task(name):
    data = keyword_bundle(seed=0)
    torch.manual_seed(0)
    net = models.build(name, {"embedding_dim": 16, **({"hidden": 16} if name == "text_bigru" else {})},
                       data.input_shape, data.num_classes, vocab_size=len(data.vocabulary))
    info = Standard(epochs=15, lr=1e-2, batch_size=32, patience=5).fit(net, data, seed=0)
    accuracy, _ = evaluate(net, data.test)
    # balanced labels: a model at chance exceeds 0.8 on 200 texts with probability < 1e-17
    assert accuracy > 0.8, (accuracy, info)


# -- the harness ------------------------------------------------------------------------------
def test_harness_passes_vocab_size_to_text_architectures_only():
    net = models.build("text_bigru", {"hidden": 3}, (2, 16), 3, vocab_size=40)
    assert net.embedding.num_embeddings == 40 and net.embedding.padding_idx == PAD
    assert net.classifier.out_features == 3
    assert models.harness_params("text_cnn") == ("input_shape", "num_classes", "vocab_size")
    assert models.harness_params("mlp") == ("input_shape", "num_classes")
    assert models.validate_params("text_cnn", {"widths": [2, 3]}) == {
        "embedding_dim": 64, "filters": 32, "widths": (2, 3), "dropout": 0.5
    }
    with pytest.raises(ValueError, match="text architecture: build needs vocab_size"):
        models.build("text_cnn", {}, (2, 16), 2)
    with pytest.raises(ValueError, match="not a text architecture and takes no vocab_size"):
        models.build("mlp", {}, (16,), 2, vocab_size=40)
    with pytest.raises(ParameterError, match="vocab_size.*come from the data set"):
        models.validate_params("text_bigru", {"vocab_size": 40})
    with pytest.raises(ParameterError, match="vocab_size"):
        models.build("text_cnn", {}, (2, 16), 2, vocab_size=40.0)


@pytest.mark.parametrize(
    "name, params, shape, vocab, match",
    [
        ("text_cnn", {}, (1, 16), VOCAB, "input_shape must be \\(2, L\\)"),
        ("text_cnn", {}, (2, 4, 4), VOCAB, "input_shape"),
        ("text_cnn", {}, (2, 16), 2, "vocab_size must be an integer >= 3"),
        ("text_cnn", {"widths": ()}, (2, 16), VOCAB, "widths"),
        ("text_cnn", {"widths": (3, 0)}, (2, 16), VOCAB, "widths\\[1\\]"),
        ("text_cnn", {"filters": 0}, (2, 16), VOCAB, "filters"),
        ("text_cnn", {"dropout": 1.0}, (2, 16), VOCAB, "dropout must lie in \\[0, 1\\)"),
        ("text_bigru", {"hidden": 0}, (2, 16), VOCAB, "hidden"),
        ("text_bigru", {"embedding_dim": 0}, (2, 16), VOCAB, "embedding_dim"),
        ("text_bigru", {"dropout": -0.1}, (2, 16), VOCAB, "dropout"),
    ],
)
def test_bad_parameters_are_rejected_by_name(name, params, shape, vocab, match):
    with pytest.raises(ValueError, match=match):
        models.build(name, params, shape, 2, vocab_size=vocab)


# -- the model cache --------------------------------------------------------------------------
@pytest.fixture
def keyword_dataset(monkeypatch):
    """A tiny text data set, registered only for the test (the registry's entries are restored after)."""
    monkeypatch.setattr(datasets.registry, "_entries", dict(datasets.registry._entries))
    datasets._cache.clear()

    @datasets.register("keyword_texts")
    class KeywordTexts(datasets.Dataset):
        """Keyword task: label 1 iff the text holds the keyword."""

        modality = "text"

        def __init__(self, seed: int = 0):
            self.seed = seed

        def load(self) -> DataBundle:
            return keyword_bundle(self.seed, n_train=64)

    yield "keyword_texts"
    datasets._cache.clear()


@pytest.mark.parametrize("name", ARCHS)
def test_model_cache_stores_vocab_size_and_rebuilds_the_same_model(name, keyword_dataset, tmp_path, monkeypatch):
    inputs = (keyword_dataset, {}, name, TINY[name], "standard", {"epochs": 2, "batch_size": 16}, 0)
    net, meta = trained_model(*inputs, cache_dir=tmp_path)
    assert meta["vocab_size"] == VOCAB and meta["input_shape"] == [2, 12]
    assert net.embedding.num_embeddings == VOCAB

    def no_training(*args, **kwargs):
        raise AssertionError("the cached model must be loaded, not trained again")

    monkeypatch.setattr(Standard, "fit", no_training)
    loaded, loaded_meta = trained_model(*inputs, cache_dir=tmp_path)
    assert loaded is not net and loaded_meta == meta
    x = datasets.load_dataset(keyword_dataset).test.x
    assert torch.equal(loaded(x), net(x))
