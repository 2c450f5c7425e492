"""The faithfulness metrics of issue 16 as a family: declarations, and every declared input shape."""

from __future__ import annotations

import pytest
import torch
from salbench import metrics

DECLARED = {
    # name: (higher_is_better, modalities, cheap params)
    "faithfulness_correlation": (True, ("image", "volume", "signal", "tabular"), {"n_samples": 8, "subset_size": 2}),
    "monotonicity_correlation": (True, ("image", "volume", "signal", "tabular"), {"n_samples": 2}),
    "road_morf": (False, ("image",), {"percentages": (0.3, 0.6)}),
    "road_lerf": (True, ("image",), {"percentages": (0.3, 0.6)}),
    "irof": (True, ("image", "volume"), {"n_segments": 4}),
    "infidelity": (False, ("image", "volume", "signal", "tabular"), {"n_samples": 4}),
    "region_perturbation": (True, ("image", "volume", "signal"), {"region": 2}),
    "comprehensiveness": (True, ("image", "volume", "signal", "tabular", "text"), {}),
    "sufficiency": (False, ("image", "volume", "signal", "tabular", "text"), {}),
}
SHAPES = {"tabular": (3, 8), "signal": (3, 2, 8), "image": (3, 2, 6, 6), "volume": (3, 1, 4, 4, 4)}


@pytest.mark.parametrize("name", DECLARED)
def test_declared_category_direction_and_modalities(name):
    higher, modalities, _ = DECLARED[name]
    attrs = metrics.registry.entry(name).attrs
    assert attrs["category"] == "faithfulness" and attrs["higher_is_better"] is higher
    assert attrs["modalities"] == modalities and attrs["uses_explainer"] and not attrs["needs_attack"]


@pytest.mark.parametrize("name", DECLARED)
def test_every_declared_continuous_shape_gives_one_finite_value_per_sample(name):
    _, modalities, params = DECLARED[name]
    for modality, shape in SHAPES.items():
        if modality not in modalities:
            continue
        g = torch.Generator().manual_seed(0)
        x, attr = (
            torch.rand(shape, generator=g, dtype=torch.float64),
            torch.randn(shape, generator=g, dtype=torch.float64),
        )
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(x[0].numel(), 3), torch.nn.Tanh()).double()
        values = metrics.get(name, **params)(model, x, attr, torch.tensor([0, 1, 2]))
        assert values.shape == (3,) and torch.isfinite(values).all(), modality


@pytest.mark.parametrize("name", DECLARED)
def test_model_call_size_does_not_change_the_values(name):
    # 5 inputs per call splits every sample's copies across calls (and puts several samples in
    # none): the chunking of samples × copies must reassemble them in order
    _, modalities, params = DECLARED[name]
    shape = SHAPES["image" if "image" in modalities else "tabular"]
    g = torch.Generator().manual_seed(1)
    x, attr = torch.rand(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(x[0].numel(), 3), torch.nn.Tanh()).double()
    target = torch.tensor([0, 1, 2])
    chunked = metrics.get(name, batch_size=5, **params).evaluate_curve(model, x, attr, target)
    whole = metrics.get(name, batch_size=4096, **params).evaluate_curve(model, x, attr, target)
    for a, b in zip(chunked, whole):
        if a is not None and not isinstance(a, list):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
