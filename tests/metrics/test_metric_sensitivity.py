"""Sensitivity ‖E(x) − E(x′)‖₂ / ‖x − x′‖₂, including unchanged samples."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from salbench import metrics
from salbench.metrics.base import Case


def test_declared_direction():
    entry = metrics.registry.entry("sensitivity")
    assert entry.attrs == {
        "category": "robustness", "higher_is_better": False, "modalities": ("image", "volume", "signal", "tabular"),
        "requires": (), "uses_explainer": True, "needs_attack": True,
    }
    assert metrics.get("sensitivity").needs_attack


def test_hand_worked_values_and_unchanged_sample():
    x = torch.zeros(3, 2, 2)
    x_adv = x.clone()
    x_adv[0, 0, 0], x_adv[0, 1, 1] = 3.0, 4.0   # ‖dx‖ = 5
    x_adv[1, 0, 1] = 0.5                        # ‖dx‖ = 0.5; sample 2 unchanged
    attr = torch.ones(3, 2, 2)
    attr_adv = attr.clone()
    attr_adv[0] += 0.5                          # ‖dE‖ = 1
    attr_adv[1, 1, 0] = 3.0                     # ‖dE‖ = 2
    got = metrics.get("sensitivity")(x, x_adv, attr, attr_adv)
    assert got.tolist() == pytest.approx([0.2, 4.0, 0.0])


def test_unchanged_input_with_changed_attribution_is_an_error():
    x = torch.randn(2, 4)
    attr_adv = torch.zeros(2, 4)
    attr_adv[1, 0] = 1e-6
    with pytest.raises(ValueError, match=r"x_adv equals x but attr_adv differs .* sample\(s\) \[1\]"):
        metrics.get("sensitivity")(x, x.clone(), torch.zeros(2, 4), attr_adv)


@settings(max_examples=40, deadline=None)
@given(st.floats(1e-3, 1e3), st.integers(0, 2**16))
def test_ratio_is_invariant_to_scaling_a_linear_change(t, seed):
    gen = torch.Generator().manual_seed(seed)
    x, d, attr, v = (torch.randn(4, 7, generator=gen, dtype=torch.float64) for _ in range(4))
    got = metrics.get("sensitivity")(x, x + t * d, attr, attr + t * v)
    assert got.tolist() == pytest.approx((v.norm(dim=1) / d.norm(dim=1)).tolist(), rel=1e-9)


def test_evaluate_uses_the_case_and_needs_an_attack():
    x = torch.zeros(1, 2)
    case = Case(model=None, explainer=None, x=x, target=torch.zeros(1, dtype=torch.long), attr=x,
                x_adv=torch.tensor([[0.0, 2.0]]), attr_adv=torch.tensor([[1.0, 0.0]]))
    values, curves = metrics.get("sensitivity").evaluate(case)
    assert values.tolist() == [0.5] and curves is None
    case.attr_adv = None
    with pytest.raises(ValueError, match="needs an attack"):
        metrics.get("sensitivity").evaluate(case)


def test_bad_inputs_name_the_argument():
    metric = metrics.get("sensitivity")
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="x and x_adv must have the same shape"):
        metric(x, torch.randn(2, 4), x, x)
    with pytest.raises(ValueError, match="attr_adv and x must have the same shape"):
        metric(x, x + 1, x, torch.randn(2, 4))
    bad = x.clone()
    bad[0, 0] = float("inf")
    with pytest.raises(ValueError, match="x_adv contains 1 NaN or infinite"):
        metric(x, bad, x, x)


@pytest.mark.parametrize("normalize, expected", [("max", (1 / 2 - 1 / 4) / 5), ("l2", None)])
def test_sensitivity_normalised_maps_are_scale_free(normalize, expected):
    x = torch.zeros(1, 2, dtype=torch.float64)
    x_adv = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    attr = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    attr_adv = torch.tensor([[1.0, 4.0]], dtype=torch.float64)
    metric = metrics.get("sensitivity", normalize=normalize)
    value = metric(x, x_adv, attr, attr_adv)
    assert torch.allclose(metric(x, x_adv, 7.0 * attr, 0.5 * attr_adv), value)  # each map's own scale drops out
    if expected is not None:  # max: [0.5, 1] vs [0.25, 1] -> difference 0.25, input change 5
        assert value.item() == pytest.approx(expected)
    else:
        a, b = attr / attr.norm(), attr_adv / attr_adv.norm()
        assert value.item() == pytest.approx(((a - b).norm() / 5).item())
