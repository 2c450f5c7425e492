"""ERASER comprehensiveness and sufficiency (DeYoung et al. 2020): tables, images and texts (word deletion)."""

from __future__ import annotations

import pytest
import torch
from salbench import metrics, models
from salbench.core.text import check_text_input
from salbench.metrics.base import Case
from salbench.metrics.word_removal import keep_words


def two_class_linear(weights: list[float]) -> torch.nn.Linear:
    model = torch.nn.Linear(len(weights), 2, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([weights, [0.0] * len(weights)]))
    return model


def test_comprehensiveness_and_sufficiency_hand_worked_on_a_table():
    # 10 features, bins 10% (1 feature) and 50% (5): p = sigmoid(Σ w x) of class 0 by hand
    w = [1.0, -2.0, 0.5, 3.0, 0.0, 1.5, -1.0, 2.0, 0.25, -0.5]
    model = two_class_linear(w)
    x = torch.ones(1, 10, dtype=torch.float64)
    attr = torch.tensor([w], dtype=torch.float64)  # ranks: 3, 7, 5, 0, 2, 8, 4, 9, 6, 1
    top = [3, 7, 5, 0, 2]
    p = lambda kept: torch.sigmoid(torch.tensor(sum(w[i] for i in kept), dtype=torch.float64))  # noqa: E731
    everything = p(range(10))
    drops_removed = [everything - p(set(range(10)) - set(top[:k])) for k in (1, 5)]
    drops_kept = [everything - p(top[:k]) for k in (1, 5)]
    comp = metrics.get("comprehensiveness", bins=(0.1, 0.5)).evaluate_curve(model, x, attr, 0)
    suff = metrics.get("sufficiency", bins=(0.1, 0.5)).evaluate_curve(model, x, attr, 0)
    torch.testing.assert_close(comp.curves[0], torch.stack(drops_removed))
    torch.testing.assert_close(comp.values[0], sum(drops_removed) / 3)  # the paper's |B| + 1
    torch.testing.assert_close(suff.curves[0], torch.stack(drops_kept))
    torch.testing.assert_close(suff.values[0], sum(drops_kept) / 3)


def test_keeping_everything_is_sufficient_and_a_constant_model_scores_zero():
    x, attr = torch.rand(3, 1, 4, 4, dtype=torch.float64), torch.rand(3, 1, 4, 4, dtype=torch.float64)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).double()
    assert torch.equal(metrics.get("sufficiency", bins=(1.0,))(model, x, attr, 1), torch.zeros(3, dtype=torch.float64))

    class Constant(torch.nn.Module):
        def forward(self, x):
            return torch.ones(len(x), 3, dtype=torch.float64)

    for name in ("comprehensiveness", "sufficiency"):
        assert torch.equal(metrics.get(name)(Constant(), x, attr, 0), torch.zeros(3, dtype=torch.float64))


def test_a_faithful_map_is_more_comprehensive_and_sufficient_than_its_reverse():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 30, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    model = torch.nn.Linear(30, 2).double()
    contribution = (model.weight[0] - model.weight[1]).detach() * x
    comp, suff = metrics.get("comprehensiveness"), metrics.get("sufficiency")
    assert (comp(model, x, contribution, 0) > comp(model, x, -contribution, 0)).all()
    assert (suff(model, x, contribution, 0) < suff(model, x, -contribution, 0)).all()


def test_keep_words_deletes_words_with_all_their_tokens_and_renumbers():
    x = torch.tensor([[[5, 6, 6, 7, 8, 0], [0, 1, 1, 2, 3, -1]]])  # 4 words, word 1 is 2 tokens
    keep = torch.tensor([[[False, True, False, True, True, True], [True, False, True, False, False, False]]])
    texts = keep_words(x, keep)
    assert texts[0, 0].tolist() == [[6, 6, 8, 0, 0, 0], [0, 0, 1, -1, -1, -1]]
    assert texts[0, 1].tolist() == [[5, 7, 0, 0, 0, 0], [0, 1, -1, -1, -1, -1]]
    check_text_input(texts.flatten(0, 1))


def test_text_comprehensiveness_deletes_the_top_words_and_notes_emptied_texts():
    net = models.build("text_cnn", {}, (2, 6), 2, vocab_size=12).eval().double()
    x = torch.tensor(
        [
            [[4, 7, 7, 2, 9, 0], [0, 1, 1, 2, 3, -1]],  # 4 words
            [[5, 0, 0, 0, 0, 0], [0, -1, -1, -1, -1, -1]],  # 1 word
        ]
    )
    attr = torch.tensor([[0.1, 0.9, -0.3, 0.4, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    target = torch.tensor([0, 1])
    case = Case(
        model=net, explainer=None, x=x, target=target, attr=attr, valid=torch.arange(6) < torch.tensor([[4], [1]])
    )
    values, curves, notes = metrics.get("comprehensiveness", bins=(0.25, 0.5)).evaluate(case)
    with torch.no_grad():
        p = lambda t: net(torch.tensor([t])).softmax(1)[0, 0]  # noqa: E731
        full = p([[4, 7, 7, 2, 9, 0], [0, 1, 1, 2, 3, -1]])
        without_1 = p([[4, 2, 9, 0, 0, 0], [0, 1, 2, -1, -1, -1]])  # top 25% of 4 words: word 1 (two tokens)
        without_1_3 = p([[4, 2, 0, 0, 0, 0], [0, 1, -1, -1, -1, -1]])  # top 50%: words 1 and 3
    torch.testing.assert_close(curves[0], torch.stack([full - without_1, full - without_1_3]))
    torch.testing.assert_close(values[0], (2 * full - without_1 - without_1_3) / 3)
    assert torch.isnan(values[1]) and torch.isnan(curves[1]).all()
    assert notes == [None, "a text of 1 word(s) has no word left when its top 25%, 50% are removed"]
    # sufficiency keeps the top word: never empty
    suff = metrics.get("sufficiency", bins=(0.25, 0.5)).evaluate(case)
    assert suff.notes is None and torch.isfinite(suff.values).all()


def test_eraser_bins_are_validated():
    with pytest.raises(ValueError, match="bins must be"):
        metrics.get("comprehensiveness", bins=(0.0, 0.5))
