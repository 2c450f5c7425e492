"""Word attributions of a text classifier: any explainer applied to the token embeddings, pooled per word."""

from __future__ import annotations

import torch
from salbench.core.text import check_text_input
from salbench.core.validation import check_target
from salbench.explainers.base import Explainer
from torch import Tensor, nn

__all__ = ["WordAttribution"]


class WordAttribution(Explainer):
    """Word attributions: a base explainer on the token embeddings, summed over E, averaged per word.

    The word attributions of DARE (Ivankay, Rigotti, Frossard, "DARE: Towards robust text
    explanations in biomedical and healthcare applications", ACL 2023; authors' code
    IBM/domain-adaptive-attribution-robustness, ``explainers/__init__.py``), there with
    Captum's Saliency, Integrated Gradients and DeepLift on the embeddings. For a text
    tensor x (N, 2, L) (:mod:`salbench.core.text`) and a text classifier with ``embed``
    and ``classify`` (:class:`salbench.models.text_classifier.TextClassifier`):

    1. e = model.embed(x[:, 0]) (N, L, E); the model seen as a function of the embeddings,
       g(e) = model.classify(e, x[:, 0]) (the ids only mark PAD);
    2. token attributions a_t = Σ_k base(g, e, target)_{t,k} (the base explainer on e, summed
       over the embedding dimension);
    2b. for a model whose embeddings are not one row per token but one per subword (a
       pretrained transformer, :class:`salbench.models.huggingface.HuggingFaceClassifier`):
       ``embed`` gives (N, S, E), and the model's ``pool_subwords(a, ids)`` maps the subword
       attributions (N, S) to token attributions (N, L), a_t = the sum over token t's subwords;
    3. word attributions A_j = mean of a_t over the tokens t whose word position x[:, 1, t]
       is j (a word replaced by a phrase of m tokens gets the mean of their m attributions),
       for j < n_words(x); A_j = 0 for j >= n_words(x) (PAD). Output (N, L), indexed by
       word position.

    Baselines: the base explainer's own, applied to the embeddings. For integrated gradients
    (baseline 0) that is the all-zero embedding matrix of the same length with the same PAD
    mask, as in the authors' code (Captum's ``IntegratedGradients`` on the embeddings with
    ``baselines=zeros_like(embeddings)``): f(x) − g(0) is split over the words
    (completeness: for a text of one token per word, Σ_j A_j = f_c(x) − g_c(0)). The other
    common choice, the embedding of PAD at every token (e.g. Captum's
    ``LayerIntegratedGradients`` with a PAD-id baseline), coincides with it for the models of
    :mod:`salbench.models`, whose PAD embedding row is 0 and never trained (``padding_idx``);
    the zero baseline needs nothing model-specific.

    Batching: base explainers evaluate g on R = m·N rows with row r belonging to sample
    r mod N (the layout of ``integrated_gradients``, ``smoothgrad`` and Captum's batched
    methods); g reuses the ids accordingly and rejects any R that is not a multiple of N
    (e.g. an ``internal_batch_size`` that is not a multiple of the batch) rather than mix up
    the samples' PAD masks.

    Differentiable (``create_graph=True``) whenever the base explainer is: the result is then
    differentiable with respect to the model's parameters, embeddings included (robust
    training). Not registered: the grid applies it to every explainer on text data (the text
    modality's explainer adapter, :mod:`salbench.modalities`).

    Args:
        base: the explainer applied to the embeddings.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> from salbench import models
        >>> from salbench.explainers.word_attribution import WordAttribution
        >>> net = models.build("text_cnn", {}, (2, 5), 2, vocab_size=10).eval()
        >>> x = torch.tensor([[[4, 7, 7, 2, 0], [0, 1, 1, 2, -1]]])  # 3 words; word 1 became 2 tokens
        >>> attr = WordAttribution(explainers.get("integrated_gradients", steps=16))(net, x, 1)
        >>> attr.shape, attr[0, 3:].tolist()
        (torch.Size([1, 5]), [0.0, 0.0])
    """

    def __init__(self, base: Explainer):
        if not isinstance(base, Explainer):
            raise TypeError(f"base must be an Explainer (e.g. explainers.get('gradient')), got {type(base).__name__}")
        self.base = base

    @property
    def differentiable(self) -> bool:
        """Whether ``create_graph=True`` is allowed: as for the base explainer."""
        return self.base.differentiable

    @property
    def attack_proxy(self) -> Explainer:
        """Word attributions of the base's proxy (this explainer when the base is its own proxy)."""
        proxy = self.base.attack_proxy
        return self if proxy is self.base else WordAttribution(proxy)

    def __call__(self, model: nn.Module, x: Tensor, target: Tensor | int, *, create_graph: bool = False) -> Tensor:
        if not (callable(getattr(model, "embed", None)) and callable(getattr(model, "classify", None))):
            raise TypeError(
                f"model must be a text classifier with embed(ids) and classify(emb, ids) methods "
                f"(e.g. salbench.models.text_classifier.TextClassifier), got {type(model).__name__}"
            )
        check_text_input(x)
        target = check_target(target, x)
        if create_graph and not self.differentiable:
            raise ValueError(
                f"the base explainer {type(self.base).__name__} is not differentiable; call with create_graph=False"
            )
        return self.attribute(model, x, target, create_graph=create_graph)

    def attribute(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        ids, positions = x[:, 0], x[:, 1]
        emb = model.embed(ids)
        tokens = self.base(_OnEmbeddings(model, ids), emb, target, create_graph=create_graph).sum(-1)
        if callable(getattr(model, "pool_subwords", None)):  # embeddings of subwords: summed per token first
            tokens = model.pool_subwords(tokens, ids)
        real = positions >= 0
        index = positions.clamp(min=0)  # PAD tokens land on word 0 with weight 0
        sums = torch.zeros_like(tokens).scatter_add(1, index, torch.where(real, tokens, 0.0))
        counts = torch.zeros_like(tokens).scatter_add(1, index, real.to(tokens.dtype))
        return sums / counts.clamp(min=1)


class _OnEmbeddings(nn.Module):
    """The text classifier as a function of its embeddings: emb (m·N, L, E) → classify(emb, ids of row mod N)."""

    def __init__(self, model: nn.Module, ids: Tensor):
        super().__init__()
        self.model = model
        self.ids = ids

    def forward(self, emb: Tensor) -> Tensor:
        n = self.ids.shape[0]
        if emb.shape[0] % n:
            raise ValueError(
                f"the base explainer evaluated the model on {emb.shape[0]} rows, not a multiple of the {n} texts "
                "(row r must belong to text r mod N); make its internal batch size a multiple of the batch size"
            )
        return self.model.classify(emb, self.ids.repeat(emb.shape[0] // n, 1))
