"""Text metrics: DARE's attribution distance d_e and estimate r, and the valid-position comparison of PairMetric."""

from __future__ import annotations

import math

import pytest
import torch
from salbench import metrics
from salbench.core.text import Vocabulary, word_mask
from salbench.metrics import dare_estimate
from salbench.metrics.base import Case


def case(attr, attr_adv, valid=None, **extra) -> Case:
    return Case(model=None, explainer=None, x=extra.pop("x", attr), target=None, attr=attr, attr_adv=attr_adv, valid=valid, **extra)


def test_registered_with_category_and_direction():
    for name, modalities in (
        ("attribution_distance", ("image", "volume", "signal", "tabular", "text")), ("dare_estimate", ("text",))
    ):
        entry = metrics.registry.entry(name)
        assert entry.attrs == {
            "category": "robustness", "higher_is_better": False, "modalities": modalities, "requires": (),
            "uses_explainer": True, "needs_attack": True,
        }
        assert entry.factory.needs_attack


# -- d_e ----------------------------------------------------------------------------------------------
def test_attribution_distance_hand_values():
    a = torch.tensor([[1.0, 2.0, 2.0], [1.0, 0.0, 0.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [3.0, 4.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[2.0, 1.0, 2.0], [0.0, 5.0, 0.0], [1.0, 2.0, 3.0], [-2.0, -4.0, -6.0], [4.0, -3.0, 0.0]], dtype=torch.float64)
    got = metrics.get("attribution_distance")(a, b)
    # cos = 8/9, 0, 1 (identical), -1 (opposite), 0 (12 - 12 = 0)
    expected = torch.tensor([(1 - 8 / 9) / 2, 0.5, 0.0, 1.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-15)


def test_attribution_distance_ignores_scale_and_zero_padding():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 6, 9, generator=g, dtype=torch.float64)
    d = metrics.get("attribution_distance")(a, b)
    assert ((d >= 0) & (d <= 1)).all()
    torch.testing.assert_close(metrics.get("attribution_distance")(3 * a, 0.5 * b), d)
    padded = [torch.cat([t, torch.zeros(6, 4, dtype=torch.float64)], 1) for t in (a, b)]
    torch.testing.assert_close(metrics.get("attribution_distance")(*padded), d)
    # and with the words marked valid, non-zero junk beyond them changes nothing
    junk = [torch.cat([t, torch.randn(6, 4, generator=g, dtype=torch.float64)], 1) for t in (a, b)]
    valid = torch.arange(13).expand(6, 13) < 9
    values, _, notes = metrics.get("attribution_distance").evaluate(case(*junk, valid))
    torch.testing.assert_close(values, d)
    assert notes == [None] * 6


def test_attribution_distance_of_a_zero_map_is_nan_with_a_note():
    a = torch.tensor([[0.0, 0.0, 5.0], [1.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    b = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    valid = torch.tensor([[True, True, False], [True, True, True], [True, False, False]])
    values, curves, notes = metrics.get("attribution_distance").evaluate(case(a, b, valid))
    assert curves is None and values.isnan().all()
    assert "A(x) zero" in notes[0] and "A(x')" not in notes[0]  # 5.0 lies outside the valid words
    assert notes[1].startswith("A(x') zero")
    assert notes[2].startswith("A(x) and A(x') zero")
    assert metrics.get("attribution_distance")(a, b).isnan().tolist() == [False, True, True]


# -- valid positions in PairMetric.evaluate --------------------------------------------------------
@pytest.mark.parametrize(
    "name, params",
    [("topk_intersection", {"k": 2}), ("kendall_tau", {}), ("spearman", {}), ("attribution_distance", {})],
)
def test_valid_comparison_equals_comparing_each_truncated_map(name, params):
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([3, 7, 5, 7, 2, 9, 3])
    attr, attr_adv = torch.randn(2, 7, 9, generator=g, dtype=torch.float64)
    valid = torch.arange(9) < lengths[:, None]
    metric = metrics.get(name, **params)
    got = metric.evaluate(case(attr, attr_adv, valid))[0]
    expected = torch.cat([metric(attr[i : i + 1, :n], attr_adv[i : i + 1, :n]) for i, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    assert not torch.allclose(metric.evaluate(case(attr, attr_adv))[0], expected)  # the padding mattered


def test_valid_mask_of_any_shape_uses_its_flat_order():
    attr = torch.tensor([[[4.0, 1.0], [3.0, 9.0]], [[1.0, 2.0], [3.0, 4.0]]])
    attr_adv = torch.tensor([[[4.0, 9.0], [1.0, 3.0]], [[2.0, 1.0], [4.0, 3.0]]])
    valid = torch.tensor([[[True, False], [True, True]], [[True, True], [True, True]]])
    got = metrics.get("kendall_tau").evaluate(case(attr, attr_adv, valid))[0]
    first = metrics.get("kendall_tau")(torch.tensor([[4.0, 3.0, 9.0]]), torch.tensor([[4.0, 1.0, 3.0]]))
    second = metrics.get("kendall_tau")(attr[1:].flatten(1), attr_adv[1:].flatten(1))
    torch.testing.assert_close(got, torch.cat([first, second]))


def test_valid_mask_errors_are_clear():
    attr = torch.randn(3, 4)
    metric = metrics.get("spearman")
    with pytest.raises(TypeError, match="valid must be a bool"):
        metric.evaluate(case(attr, attr, torch.ones(3, 4)))
    with pytest.raises(ValueError, match="valid and attr must have the same shape"):
        metric.evaluate(case(attr, attr, torch.ones(3, 5, dtype=torch.bool)))
    with pytest.raises(ValueError, match=r"no valid position in sample\(s\) \[1\]"):
        metric.evaluate(case(attr, attr, torch.tensor([[True] * 4, [False] * 4, [True] * 4])))
    constant = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 1.0, 2.0], [1.0, 1.0, 1.0, 7.0]])
    valid = torch.tensor([[True] * 4, [True, True, False, False], [True, True, False, False]])
    with pytest.raises(ValueError, match=r"samples \[1, 2\] of the batch \(those with 2 valid positions"):
        metric.evaluate(case(constant, constant, valid))
    values, _, notes = metrics.get("topk_intersection", k=3).evaluate(case(constant, constant, valid))
    assert values[0] == 1 and values[1:].isnan().all() and notes[1] == notes[2] is not None


# -- r ------------------------------------------------------------------------------------------------
def test_dare_estimate_direct_call_hand_values(monkeypatch):
    similarity = torch.tensor([0.5, 0.9, 1.0], dtype=torch.float64)
    monkeypatch.setattr(dare_estimate, "sentence_similarity", lambda a, b, batch_size, device: similarity)
    a = torch.tensor([[1.0, 0.0], [1.0, 2.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 1.0], [-1.0, -2.0], [2.0, 2.0]])
    got = metrics.get("dare_estimate")(a, b, ["x", "y", "z"], ["u", "v", "z"])
    # d_e = 0.5, 1, 0; r = d_e / (1 - s + 1e-7)
    expected = torch.tensor([0.5 / (0.5 + 1e-7), 1 / (0.1 + 1e-7), 0.0], dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-8)  # d_e of parallel maps is 0 up to float64 rounding


def test_dare_estimate_evaluate_decodes_texts_and_uses_valid_words(monkeypatch):
    seen = []

    def similarity(a, b, batch_size, device):
        seen.append((a, b))
        return torch.tensor([0.8, 0.6], dtype=torch.float64)

    monkeypatch.setattr(dare_estimate, "sentence_similarity", similarity)
    vocab = Vocabulary(("<pad>", "<unk>", "heart", "normal", "size", "cardiac", "enlarged"))
    x = vocab.encode(["heart size normal", "heart enlarged"], max_len=4)
    x_adv = vocab.encode(["cardiac size normal", "heart enlarged"], max_len=4)
    attr = torch.tensor([[1.0, 2.0, 2.0, 0.0], [0.0, 0.0, 9.0, 9.0]])  # 9s: beyond the 2 words of text 1
    attr_adv = torch.tensor([[2.0, 1.0, 2.0, 0.0], [3.0, 4.0, 1.0, 1.0]])
    values, curves, notes = metrics.get("dare_estimate").evaluate(
        case(attr, attr_adv, word_mask(x), x=x, x_adv=x_adv, vocabulary=vocab)
    )
    assert seen == [(["heart size normal", "heart enlarged"], ["cardiac size normal", "heart enlarged"])]
    expected = torch.tensor([(1 - 8 / 9) / 2 / (0.2 + 1e-7), math.nan], dtype=torch.float64)
    torch.testing.assert_close(values, expected, equal_nan=True)
    assert notes[0] is None and notes[1].startswith("A(x) zero")


def test_dare_estimate_needs_the_vocabulary_and_an_attack():
    attr = torch.ones(1, 3)
    with pytest.raises(ValueError, match="vocabulary"):
        metrics.get("dare_estimate").evaluate(case(attr, attr, x_adv=attr))
    with pytest.raises(ValueError, match="needs an attack"):
        metrics.get("dare_estimate").evaluate(case(attr, None))
    with pytest.raises(ValueError, match="batch_size"):
        metrics.get("dare_estimate", batch_size=0)


def test_samples_with_fewer_valid_positions_than_the_metric_needs_get_nan_and_a_note():
    import torch
    from salbench.metrics import get
    from salbench.metrics.base import Case

    attr = torch.tensor([[3.0, 2.0, 1.0, 0.0], [1.0, 2.0, 0.0, 0.0]], dtype=torch.float64)
    attr_adv = torch.tensor([[1.0, 2.0, 3.0, 0.0], [2.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    valid = torch.tensor([[True, True, True, False], [True, True, False, False]])
    case = Case(model=None, explainer=None, x=attr, target=torch.zeros(2, dtype=torch.long), attr=attr,
                attr_adv=attr_adv, valid=valid)
    from salbench.metrics.base import MetricOutput

    values, _, notes = MetricOutput(*get("topk_intersection", k=3).evaluate(case))
    assert values[0].item() == 1.0 and torch.isnan(values[1])
    assert notes[0] is None and "2 valid positions" in notes[1] and "fewer than the 3" in notes[1]
    values, _, notes = MetricOutput(*get("kendall_tau").evaluate(case))
    assert values[0].item() == -1.0 and values[1].item() == -1.0 and notes is None


def test_identical_float32_maps_have_d_e_zero_to_float64_rounding():
    import torch
    from salbench.metrics import get

    attr = torch.randn(16, 50, generator=torch.Generator().manual_seed(0))  # float32, as explainers give
    d_e = get("attribution_distance")(attr, attr.clone())
    assert d_e.dtype == torch.float64 and d_e.abs().max() < 1e-15
