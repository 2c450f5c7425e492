"""WordAttribution: a base explainer on the token embeddings, summed over E, averaged per word."""

from __future__ import annotations

import pytest
import torch
from salbench import explainers, models
from salbench.core.text import PAD, n_words, word_mask
from salbench.explainers.word_attribution import WordAttribution
from torch import Tensor, nn
from torch.func import functional_call

ARCHS = ["text_cnn", "text_bigru"]
TINY = {
    "text_cnn": {"embedding_dim": 5, "filters": 3, "widths": (2, 3)},
    "text_bigru": {"embedding_dim": 4, "hidden": 3},
}
VOCAB = 16


def tiny(name: str, length: int = 8, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return models.build(name, TINY[name], (2, length), 3, vocab_size=VOCAB).double().eval()


def random_texts(n: int, length: int, seed: int) -> Tensor:
    """(n, 2, length) text tensor with one token per word, ids in [2, VOCAB), 1..length tokens."""
    generator = torch.Generator().manual_seed(seed)
    n_tokens = torch.randint(1, length + 1, (n, 1), generator=generator)
    slot = torch.arange(length)
    real = slot < n_tokens
    ids = torch.where(real, torch.randint(2, VOCAB, (n, length), generator=generator), PAD)
    return torch.stack([ids, torch.where(real, slot, -1).expand(n, -1)], 1)


def token_gradient(net: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """d f_c / d e summed over E, per token (N, L): the manual autograd computation."""
    emb = net.embed(x[:, 0]).detach().requires_grad_(True)
    logits = net.classify(emb, x[:, 0])
    (grad,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), emb)
    return grad.sum(-1)


# a hand-built batch: text 0 has 3 words, word 1 replaced by a phrase of 2 tokens (positions 0 1 1 2);
# text 1 is an original text of 5 words
PHRASED = torch.tensor(
    [[[4, 7, 9, 3, PAD, PAD], [0, 1, 1, 2, -1, -1]],
     [[5, 6, 2, 8, 11, PAD], [0, 1, 2, 3, 4, -1]]]
)


@pytest.mark.parametrize("name", ARCHS)
def test_gradient_word_attribution_is_the_embedding_gradient_summed_over_e(name):
    net = tiny(name)
    x = random_texts(6, 8, seed=1)
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    attr = WordAttribution(explainers.get("gradient"))(net, x, target)
    assert attr.shape == (6, 8)
    assert torch.allclose(attr, token_gradient(net, x, target), atol=1e-14, rtol=0)


@pytest.mark.parametrize("name", ARCHS)
def test_tokens_of_one_word_are_averaged_and_positions_beyond_n_words_are_zero(name):
    net = tiny(name, length=6)
    target = torch.tensor([1, 2])
    a = token_gradient(net, PHRASED, target)
    attr = WordAttribution(explainers.get("gradient"))(net, PHRASED, target)
    expected = torch.tensor(
        [[a[0, 0], (a[0, 1] + a[0, 2]) / 2, a[0, 3], 0, 0, 0],
         [a[1, 0], a[1, 1], a[1, 2], a[1, 3], a[1, 4], 0]], dtype=torch.float64,
    )
    assert torch.allclose(attr, expected, atol=1e-14, rtol=0)
    assert n_words(PHRASED).tolist() == [3, 5]
    assert torch.equal(attr[~word_mask(PHRASED)], torch.zeros(4, dtype=torch.float64))
    assert (attr[word_mask(PHRASED)] != 0).all()


@pytest.mark.parametrize(
    "name, steps, atol",
    [
        # the BiGRU is smooth along the path: Gauss–Legendre converges fast (error ~1e-16 at 200 steps)
        ("text_bigru", 200, 1e-8),
        # ReLU + max pooling: the path integrand is piecewise constant, so the quadrature error
        # falls only as O(1/steps) (1.1e-3 at 200 steps, 1.6e-4 at 1000 for this model)
        ("text_cnn", 1000, 1e-3),
    ],
)
def test_integrated_gradients_completeness_against_the_zero_embedding(name, steps, atol):
    net = tiny(name)
    x = random_texts(5, 8, seed=2)
    target = torch.tensor([2, 0, 1, 1, 0])
    attr = WordAttribution(explainers.get("integrated_gradients", steps=steps))(net, x, target)
    emb = net.embed(x[:, 0])
    with torch.no_grad():
        gap = net(x) - net.classify(torch.zeros_like(emb), x[:, 0])
    gap = gap.gather(1, target[:, None])[:, 0]
    assert gap.abs().min() > 1e-3  # a gap to explain
    assert torch.allclose(attr.sum(1), gap, atol=atol, rtol=0)


def test_integrated_gradients_batching_must_keep_rows_aligned_with_texts():
    net = tiny("text_bigru")
    x = random_texts(4, 8, seed=3)
    whole = WordAttribution(explainers.get("integrated_gradients", steps=6))(net, x, 1)
    aligned = WordAttribution(explainers.get("integrated_gradients", steps=6, internal_batch_size=8))(net, x, 1)
    assert torch.allclose(aligned, whole, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="not a multiple of the 4 texts"):
        WordAttribution(explainers.get("integrated_gradients", steps=6, internal_batch_size=6))(net, x, 1)


@pytest.mark.parametrize("name", ARCHS)
def test_create_graph_is_differentiable_in_the_model_parameters(name):
    """gradcheck (float64) of the parameters -> word attributions map: double backward through the model."""
    net = tiny(name, length=5)
    x = random_texts(2, 5, seed=4)
    explainer = WordAttribution(explainers.get("gradient"))
    names = [k for k, p in net.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in net.parameters())

    def word_attributions(*values: Tensor) -> Tensor:
        with_params = _Explained(net, explainer, target=torch.tensor([0, 2]))
        return functional_call(with_params, {f"net.{k}": v for k, v in zip(names, values)}, (x,))

    assert torch.autograd.gradcheck(word_attributions, params, fast_mode=True)


class _Explained(nn.Module):
    """x -> the word attributions of ``net`` with create_graph=True (so functional_call can swap its parameters)."""

    def __init__(self, net: nn.Module, explainer: WordAttribution, target: Tensor):
        super().__init__()
        self.net, self.explainer, self.target = net, explainer, target

    def forward(self, x: Tensor) -> Tensor:
        return self.explainer(self.net, x, self.target, create_graph=True)


def test_create_graph_result_trains_the_embeddings():
    net = tiny("text_cnn")
    x = random_texts(3, 8, seed=5)
    attr = WordAttribution(explainers.get("integrated_gradients", steps=4))(net, x, 0, create_graph=True)
    attr.square().sum().backward()
    used = torch.unique(x[:, 0][x[:, 0] != PAD])
    assert (net.embedding.weight.grad[used].abs().sum(1) > 0).all()
    assert net.embedding.weight.grad[PAD].abs().sum() == 0


def test_smoothgrad_base_and_the_attack_proxy():
    net = tiny("text_bigru")
    x = random_texts(3, 8, seed=6)
    smooth = WordAttribution(explainers.get("smoothgrad", n_samples=3, seed=1))
    attr = smooth(net, x, 1)
    assert torch.equal(attr, smooth(net, x, 1))
    assert (attr[~word_mask(x)] == 0).all() and (attr[word_mask(x)] != 0).all()
    assert smooth.attack_proxy is smooth and smooth.differentiable
    decoy = explainers.get("decoy")
    wrapped = WordAttribution(decoy)
    assert not wrapped.differentiable
    assert isinstance(wrapped.attack_proxy, WordAttribution) and wrapped.attack_proxy.base is decoy.attack_proxy


def test_bad_arguments_are_named():
    net = tiny("text_cnn")
    gradient = WordAttribution(explainers.get("gradient"))
    with pytest.raises(TypeError, match="base must be an Explainer"):
        WordAttribution("gradient")
    with pytest.raises(TypeError, match="model must be a text classifier"):
        gradient(nn.Linear(6, 2), PHRASED, 0)
    with pytest.raises(TypeError, match="x must be a long"):
        gradient(net, PHRASED.double(), 0)
    bad = PHRASED.clone()
    bad[0, 1, 2] = 3  # positions jump by 2
    with pytest.raises(ValueError, match="step by 0 or 1"):
        gradient(net, bad, 0)
    with pytest.raises(ValueError, match="target"):
        gradient(net, PHRASED, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="not differentiable"):
        WordAttribution(explainers.get("occlusion"))(net, PHRASED, 0, create_graph=True)
