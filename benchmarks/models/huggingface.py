"""Hugging Face ``transformers`` sequence classifiers from a local directory as salbench text classifiers.

A directory written by ``save_pretrained`` (``config.json``, the weights, the tokenizer's files)
becomes the registered architecture ``huggingface``: :class:`HuggingFaceClassifier` takes
salbench's text tensor (words of the data set's :class:`~salbench.core.text.Vocabulary`, see
:mod:`salbench.core.text`), maps every word to its subword tokens and returns the (N, C) logits.
Word attributions, the text attacks and the text recipes use it as they use the word-level
models: it has ``embed`` and ``classify`` (on the subword embeddings) and ``pool_subwords``,
with which :class:`~salbench.explainers.word_attribution.WordAttribution` sums the subword
attributions of each word.

Loading runs no code from the directory: ``AutoConfig``, ``AutoModelForSequenceClassification``
/ ``AutoModel`` and ``AutoTokenizer`` with ``local_files_only=True`` (nothing is downloaded) and
``trust_remote_code=False`` (only the model classes of the installed ``transformers`` run);
weights from ``*.safetensors`` where the directory has them, else ``pytorch_model.bin`` read
with ``weights_only=True``. :func:`directory_digest` is the directory's content digest for
cache keys (:func:`salbench.models.content_digest` of the architecture ``huggingface``).

Example:
    >>> import pathlib, tempfile, torch, transformers
    >>> from salbench import models
    >>> from salbench.core.text import Vocabulary
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "vocab.txt").write_text("\\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "heart", "large", "##r"]))
    >>> transformers.BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)  # doctest: +ELLIPSIS
    (...)
    >>> config = transformers.BertConfig(vocab_size=7, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
    ...                                  intermediate_size=16, max_position_embeddings=16)
    >>> transformers.BertForSequenceClassification(config).save_pretrained(folder)
    >>> vocab = Vocabulary(("<pad>", "<unk>", "heart", "larger"))
    >>> net = models.build("huggingface", {"directory": str(folder)}, (2, 4), 2, vocabulary=vocab)
    >>> x = vocab.encode(["larger heart"], max_len=4)
    >>> net.subwords(x[:, 0])[0].tolist()  # larger → large ##r; [CLS] and [SEP] are added inside
    [[5, 6, 4]]
    >>> net.eval()(x).shape
    torch.Size([1, 2])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from salbench.core.files import content_digest, folder_files
from salbench.core.optional import require_text_package
from salbench.core.text import PAD, UNK, Vocabulary
from salbench.core.validation import check_positive_int
from salbench.models import check_shape_and_classes, register
from torch import Tensor, nn

__all__ = ["HuggingFaceClassifier", "directory_digest", "load_sequence_classifier"]

Head = Literal["pretrained", "new"]
def directory_digest(directory: str | Path) -> str:
    """SHA-256 (hex) of a directory's content (:func:`salbench.core.files.content_digest` of every
    file below it, by relative path): renaming, editing, adding or removing any file changes it,
    moving or copying the directory does not, so a cache key built from it follows the content.

    Example:
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "config.json").write_text("{}")
        >>> before = directory_digest(folder)
        >>> _ = (folder / "config.json").write_text('{"a": 1}')
        >>> before == directory_digest(folder), len(before)
        (False, 64)
    """
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"model directory {root} does not exist or is not a directory (resolved to {root.resolve()})")
    return content_digest(folder_files(root))


def load_sequence_classifier(directory: str | Path, num_classes: int, head: Head) -> tuple[nn.Module, Any]:
    """The float32 sequence classifier and the tokenizer saved in ``directory``, offline, running no code from it.

    ``head="pretrained"``: the directory's own classifier, loaded whole with
    ``AutoModelForSequenceClassification``; its ``config.num_labels`` must be ``num_classes``
    and every weight must come from the directory (nothing newly initialised).
    ``head="new"``: the encoder (``AutoModel``, e.g. a pretrained BERT or the MiniLM of a
    sentence encoder) with a classification head for ``num_classes`` classes initialised by the
    model class, from torch's global random state (seed it for a reproducible head); the
    encoder's weights must all come from the directory, weights of a head or pretraining head
    stored there are not used.

    Attention runs in ``transformers``' "eager" implementation (softmax of the explicit score
    matrix), not the fused ``scaled_dot_product_attention`` kernels it picks by default:
    robust-training recipes differentiate attributions (gradients of gradients), which the
    fused kernels do not support (PyTorch implements no double backward for them on CPU). The
    logits are the same up to float rounding; eager attention is slower on long texts.

    Raises:
        FileNotFoundError: no such directory, or no ``config.json`` or weights file in it.
        ValueError: ``head`` is not one of the two; a pretrained head of another class count;
            weights missing from the directory (their names listed); a ``transformers``
            loading error (its message, with the directory).
    """
    transformers = require_text_package("transformers", "transformers", "model 'huggingface'")
    root = Path(directory)
    if head not in ("pretrained", "new"):
        raise ValueError(f"head must be 'pretrained' (the directory's classifier) or 'new' (a fresh head), got {head!r}")
    if not (root / "config.json").is_file():
        raise FileNotFoundError(
            f"model directory {root} has no config.json (resolved to {root.resolve()}); give a directory written by "
            "save_pretrained (config, weights and tokenizer)"
        )
    safetensors = any(root.glob("*.safetensors"))
    if not safetensors and not any(root.glob("pytorch_model*.bin")):
        raise FileNotFoundError(f"model directory {root} has no weights: neither *.safetensors nor pytorch_model*.bin")
    offline = {"local_files_only": True, "trust_remote_code": False}
    weights = {**offline, "use_safetensors": safetensors, "weights_only": True, "output_loading_info": True}
    eager = {"attn_implementation": "eager"}  # twice differentiable (robust training); fused SDPA kernels are not
    try:
        config = transformers.AutoConfig.from_pretrained(root, **offline)
        if head == "pretrained":
            if config.num_labels != num_classes:
                raise ValueError(
                    f"model directory {root}: its classifier has {config.num_labels} labels (config.num_labels), the data "
                    f"set has {num_classes} classes; use head = 'new' to train a new head"
                )
            model, info = transformers.AutoModelForSequenceClassification.from_pretrained(root, **weights, **eager)
            _check_loaded(root, info, "its sequence classifier", "; use head = 'new' if the directory holds no head")
        else:
            config = transformers.AutoConfig.from_pretrained(root, num_labels=num_classes, **offline)
            model = transformers.AutoModelForSequenceClassification.from_config(config, trust_remote_code=False, **eager)
            encoder, info = transformers.AutoModel.from_pretrained(root, **weights)
            _check_loaded(root, info, "its encoder", "")
            missing = model.base_model.load_state_dict(encoder.state_dict(), strict=False).missing_keys
            _check_loaded(root, {"missing_keys": missing}, "the classifier's encoder", "")
        tokenizer = transformers.AutoTokenizer.from_pretrained(root, **offline)
    except (OSError, KeyError, TypeError) as err:  # transformers' own errors for unreadable or unknown files
        raise ValueError(f"model directory {root} cannot be loaded with transformers: {err}") from err
    return model.float(), tokenizer


def _check_loaded(root: Path, info: dict, what: str, hint: str) -> None:
    problems = {kind: sorted(map(str, info.get(kind) or ())) for kind in ("missing_keys", "mismatched_keys", "error_msgs")}
    problems = {kind: names for kind, names in problems.items() if names}
    if problems:
        listed = "; ".join(f"{kind}: {names[:12]}" for kind, names in problems.items())
        raise ValueError(f"model directory {root} does not hold all weights of {what} ({listed}){hint}")


@register("huggingface")
class HuggingFaceClassifier(nn.Module):
    """A local Hugging Face sequence classifier on salbench's text tensor, words mapped to subword tokens.

    Loading: :func:`load_sequence_classifier` (offline, no remote code, weights only; ``head``
    says whether the directory's classifier is used or a new one is trained). The model's
    parameters are those of the ``transformers`` model under ``self.model`` (its state dict
    is the model's, prefixed ``model.``); the subword table is a non-persistent buffer, rebuilt
    from the vocabulary and the tokenizer.

    Words → subwords, fixed when the model is built: each vocabulary word w (a lower-case token
    of :func:`salbench.core.text.tokenize`) is tokenised alone, ``tokenizer(w,
    add_special_tokens=False)``; UNK (a word outside the data set's vocabulary) is the
    tokenizer's unknown token. A text's subwords are its tokens' subwords in order, between the
    tokenizer's special tokens (for BERT: [CLS] … [SEP]), with an attention mask over them;
    the sequence is cut after ``max_length`` subwords, specials included (the last words of a
    longer text, or the tail of one word, are not seen by the model and are attributed 0).
    Exactness is checked when the model is built: the subwords of the whole vocabulary
    joined by spaces must be the concatenation of the words' subwords (true for WordPiece and
    SentencePiece-style tokenizers that split at spaces; a byte-level BPE that marks the
    preceding space, such as RoBERTa's or GPT-2's, is rejected), and the logits computed here
    from the subword embeddings of a padded batch must equal the ``transformers`` model's on
    the unpadded ``input_ids`` (rejecting a model that reads padding, e.g. one that classifies
    from the last position). The tokenizer sees the words in lower case, as the vocabulary
    holds them; a cased model thus sees lower-cased text.

    The text as a function of embeddings (what explainers differentiate): :meth:`embed` maps
    the ids (N, L) to the input embeddings of the words' subwords (N, S, E), without the
    special tokens and without the position embeddings, which the model adds itself;
    :meth:`classify` puts the special tokens' embeddings around them (held fixed) and runs the
    model with ``inputs_embeds``. An explainer's baseline therefore replaces only the words'
    subword embeddings (for integrated gradients: zero word embeddings between the real [CLS]
    and [SEP], the usual choice of keeping the special tokens, with zero instead of the
    [PAD] embedding). :meth:`pool_subwords` sums attributions over each token's subwords.

    Word attributions (:class:`~salbench.explainers.word_attribution.WordAttribution`): the sum
    over the embedding dimension and then over the subwords of each word. Common practice
    varies (the sum, the mean, or the first subword of a word); the sum keeps the completeness
    of integrated gradients (Σ over words = f(x) − f(baseline)), which the mean or the first
    subword would break for words split into several subwords.

    Which explainer: the signed gradient summed over the embedding dimension (``gradient``
    with ``absolute=False``, the default) is 0 up to rounding for BERT-family models: they
    layer-normalise word + position + type embeddings, and adding c·(1, …, 1) to a word
    embedding changes nothing, so Σ_k ∂f/∂e_k = 0. Use ``gradient`` with ``absolute = true``
    (Σ_k |∂f/∂e_k|, Captum's ``Saliency`` default, DARE's ranking), gradient × input or
    integrated gradients.

    Departures: the data set's words, not the raw text, are tokenised (punctuation is not
    seen; see :func:`~salbench.core.text.tokenize`); texts that ``transformers`` would pad on
    the left are padded on the right, checked equal by the logit check above.

    Args:
        input_shape: (2, L) of one text tensor; filled in by the harness.
        num_classes: number of classes; filled in by the harness.
        vocabulary: the data set's vocabulary; filled in by the harness.
        directory: a local directory written by ``save_pretrained`` (model and tokenizer).
        head: ``"pretrained"``: the directory's classifier (its number of labels must be the
            data set's class count); ``"new"``: its encoder with a newly initialised head.
        max_length: most subwords per text, special tokens included; None: the model's limit
            (the smaller of ``max_position_embeddings`` and the tokenizer's
            ``model_max_length``).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        vocabulary: Vocabulary,
        directory: str,
        head: Head = "pretrained",
        max_length: int | None = None,
    ):
        super().__init__()
        check_shape_and_classes(input_shape, num_classes, rank=2)
        if input_shape[0] != 2:
            raise ValueError(f"input_shape must be (2, L) for a text tensor (token ids and word positions), got {input_shape}")
        if not isinstance(vocabulary, Vocabulary):
            raise TypeError(f"vocabulary must be a salbench Vocabulary (the data set's), got {type(vocabulary).__name__}")
        if max_length is not None:
            check_positive_int(max_length, "max_length")
        self.model, self.tokenizer = load_sequence_classifier(directory, num_classes, head)
        prefix, suffix = _special_tokens(self.tokenizer)
        if self.tokenizer.pad_token_id is None:
            raise ValueError(f"model directory {directory}: the tokenizer has no pad token, which batches need")
        self.max_length = _max_length(self.model.config, self.tokenizer, max_length, len(prefix) + len(suffix), directory)
        pieces, counts = _subword_table(vocabulary, self.tokenizer, directory)
        self.register_buffer("pieces", pieces, persistent=False)
        self.register_buffer("piece_counts", counts, persistent=False)
        self.register_buffer("prefix", torch.tensor(prefix, dtype=torch.long), persistent=False)
        self.register_buffer("suffix", torch.tensor(suffix, dtype=torch.long), persistent=False)
        self.pad_id = int(self.tokenizer.pad_token_id)
        self._check_against_input_ids(len(vocabulary), directory)
        self.train()

    path_params = ("directory",)  # where the files lie: resolved against a suite's folder, not in cache keys

    @staticmethod
    def content_digest(params: dict[str, Any]) -> str:
        """The content digest of the model's files (:func:`salbench.models.content_digest`): of its directory."""
        return directory_digest(params["directory"])

    @staticmethod
    def given_weights(params: dict[str, Any]) -> bool:
        """With its pretrained head the model is trained (fine-tuning starts from it); with a new
        head it is not (train it, e.g. with ``standard``, which fine-tunes the pretrained encoder)."""
        return params["head"] == "pretrained"

    def subwords(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """The subword ids (N, S) of the texts' words and, for each, the index of its token in ``ids`` (N, L).

        S is the largest number of word subwords of a text after the cut at ``max_length``
        (special tokens excluded). Positions after a text's subwords hold the pad id and token
        index -1.
        """
        counts = self.piece_counts[ids]
        starts = counts.cumsum(1) - counts
        limit = self.max_length - len(self.prefix) - len(self.suffix)
        width = int(torch.clamp(counts.sum(1), max=limit).max())
        piece = torch.arange(self.pieces.shape[1], device=ids.device)
        slot = starts[..., None] + piece  # (N, L, P): where subword p of token t goes
        kept = (piece < counts[..., None]) & (slot < limit)
        row, token, p = kept.nonzero(as_tuple=True)
        out = torch.full((ids.shape[0], width), self.pad_id, dtype=torch.long, device=ids.device)
        owner = torch.full_like(out, -1)
        out[row, slot[row, token, p]] = self.pieces[ids[row, token], p]
        owner[row, slot[row, token, p]] = token
        return out, owner

    def embed(self, ids: Tensor) -> Tensor:
        """Input embeddings (N, S, E) of the subwords of the texts' words (see :meth:`subwords`)."""
        return self.model.get_input_embeddings()(self.subwords(ids)[0])

    def classify(self, emb: Tensor, ids: Tensor) -> Tensor:
        """Logits (N, C) of the word subword embeddings ``emb`` (N, S, E) of the texts ``ids`` (N, L).

        The special tokens' embeddings go around each text's subwords, the pad embedding after
        them, and the attention mask covers the specials and the subwords.
        """
        _, owner = self.subwords(ids)
        if emb.shape[:2] != owner.shape:
            raise ValueError(
                f"emb has shape {tuple(emb.shape)}, but the texts have {owner.shape[1]} subword positions "
                f"(expected ({owner.shape[0]}, {owner.shape[1]}, E)); emb must come from embed(ids)"
            )
        n_prefix, n_suffix = len(self.prefix), len(self.suffix)
        lengths = (owner >= 0).sum(1, keepdim=True)
        position = torch.arange(n_prefix + emb.shape[1] + n_suffix, device=ids.device)[None]  # (1, T)
        is_word = (position >= n_prefix) & (position < n_prefix + lengths)
        # index into [prefix, suffix, pad] for every non-word position
        after = position - n_prefix - lengths
        special = torch.where(
            position < n_prefix, position, torch.where(after < n_suffix, n_prefix + after, n_prefix + n_suffix)
        ).clamp(min=0)
        fixed = self.model.get_input_embeddings()(torch.cat([self.prefix, self.suffix, self.prefix.new_tensor([self.pad_id])]))
        words = nn.functional.pad(emb, (0, 0, n_prefix, n_suffix))
        inputs = torch.where(is_word[..., None], words, fixed.to(emb.dtype)[special])
        mask = (position < n_prefix + lengths + n_suffix).long()
        return self.model(inputs_embeds=inputs, attention_mask=mask).logits

    def pool_subwords(self, attributions: Tensor, ids: Tensor) -> Tensor:
        """Attributions (N, L) per token of ``ids`` (N, L): the sum of the attributions (N, S) of its subwords."""
        _, owner = self.subwords(ids)
        real = owner >= 0
        pooled = torch.zeros(ids.shape, dtype=attributions.dtype, device=attributions.device)
        return pooled.scatter_add(1, owner.clamp(min=0), torch.where(real, attributions, 0.0))

    def forward(self, x: Tensor) -> Tensor:
        ids = x[:, 0]
        return self.classify(self.embed(ids), ids)

    @torch.no_grad()
    def _check_against_input_ids(self, vocab_size: int, directory: str) -> None:
        """The logits of a padded batch of two texts here equal the model's on each text's own ``input_ids``."""
        words = list(range(2, min(vocab_size, 5))) or [UNK]
        ids = torch.full((2, len(words)), PAD, dtype=torch.long)
        ids[0, 0], ids[1] = words[0], torch.tensor(words)
        was_training = self.model.training
        self.model.eval()
        here = self.classify(self.embed(ids), ids)
        subwords, owner = self.subwords(ids)
        direct = torch.cat([
            self.model(input_ids=torch.cat([self.prefix, row[keep], self.suffix])[None]).logits
            for row, keep in zip(subwords, owner >= 0)
        ])
        self.model.train(was_training)
        if not torch.allclose(here, direct, rtol=1e-4, atol=1e-4 * max(1.0, float(direct.abs().max()))):
            raise ValueError(
                f"model directory {directory}: its logits from padded subword embeddings ({here.tolist()}) differ from "
                f"those from the unpadded input_ids ({direct.tolist()}); this model reads padding or positions "
                "(e.g. it classifies from the last token) and is not supported"
            )


def _special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a text's own subwords (e.g. [CLS] and [SEP])."""
    bare = tokenizer("word", add_special_tokens=False)["input_ids"]
    full = tokenizer("word")["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    raise ValueError(f"the tokenizer's special tokens do not surround a text's subwords ({full} around {bare})")


def _max_length(config: Any, tokenizer: Any, requested: int | None, specials: int, directory: str) -> int:
    limits = [getattr(config, "max_position_embeddings", None), tokenizer.model_max_length]
    limit = min(n for n in limits if isinstance(n, int) and 0 < n < 1_000_000)
    if requested is not None and requested > limit:
        raise ValueError(f"max_length must be at most {limit}, the limit of the model in {directory}; got {requested}")
    length = requested if requested is not None else limit
    if length <= specials:
        raise ValueError(f"max_length must exceed the {specials} special tokens the tokenizer adds, got {length}")
    return length


def _subword_table(vocabulary: Vocabulary, tokenizer: Any, directory: str) -> tuple[Tensor, Tensor]:
    """(V, P) subword ids of every vocabulary id (padded with -1; PAD has none, UNK the unknown token) and their counts."""
    if tokenizer.unk_token_id is None:
        raise ValueError(f"model directory {directory}: the tokenizer has no unknown token, which UNK words map to")
    words = list(vocabulary.words[2:])
    split = tokenizer(words, add_special_tokens=False)["input_ids"] if words else []
    empty = [w for w, pieces in zip(words, split) if not pieces]
    if empty:
        raise ValueError(f"the tokenizer of {directory} gives no subword for the vocabulary word(s) {empty[:10]}")
    joined = tokenizer(" ".join(words), add_special_tokens=False, verbose=False)["input_ids"] if words else []
    if joined != [piece for pieces in split for piece in pieces]:
        raise ValueError(
            f"the tokenizer of {directory} splits words differently inside a text than alone (e.g. a byte-level BPE "
            "that marks the preceding space); only tokenizers whose subwords of a word do not depend on its "
            "neighbours are supported"
        )
    table = [[], [tokenizer.unk_token_id], *split]
    counts = torch.tensor([len(pieces) for pieces in table], dtype=torch.long)
    pieces = torch.full((len(table), int(counts.max())), -1, dtype=torch.long)
    for i, row in enumerate(table):
        pieces[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return pieces, counts
