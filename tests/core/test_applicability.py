"""Requirements declared by parameter (ByParameter): resolution, checks at registration, and Offer.unmet."""

from __future__ import annotations

import pytest
from salbench.core.applicability import ByParameter, Offer, check_declarations

NEED = ByParameter("region", {"cam": ("gap_head",), "gradcam": ("conv",)})


def test_by_parameter_resolves_the_value_and_names_what_is_wrong():
    assert NEED.resolve({"region": "cam", "alpha": 0.1}) == ("gap_head",)
    assert NEED.resolve({"region": "gradcam"}) == ("conv",)
    assert NEED.every() == ("gap_head", "conv")
    with pytest.raises(ValueError, match=r"no requirements declared for region='lime'"):
        NEED.resolve({"region": "lime"})
    with pytest.raises(ValueError, match=r"depend on parameter 'region'"):
        NEED.resolve({"alpha": 0.1})


def test_declarations_by_parameter_are_checked_choice_by_choice():
    check_declarations({"modalities": ("image",), "requires": NEED})
    with pytest.raises(ValueError, match="requires must be a collection of names among"):
        check_declarations({"requires": ByParameter("region", {"cam": ("gap_head",), "x": ("wings",)})})
    with pytest.raises(ValueError, match="at least one choice"):
        check_declarations({"requires": ByParameter("region", {})})


def test_unmet_resolves_requirements_on_the_parameters():
    declared = {"modalities": ("image",), "requires": NEED}
    conv_only = Offer(modality="image", model="vgg_like", provides=frozenset({"conv"}), explainer=None)
    assert conv_only.unmet("metric", "selective_pvalue", declared, {"region": "gradcam"}) is None
    why = conv_only.unmet("metric", "selective_pvalue", declared, {"region": "cam"})
    assert why == (
        "metric 'selective_pvalue' (region='cam') needs a global-average-pooling + linear head (logits = linear(spatial "
        "mean of feature maps)) ('gap_head'), which model 'vgg_like' does not declare"
    )
    # without parameters: every requirement any value could need (conservative)
    assert "(with any region) needs" in conv_only.unmet("metric", "selective_pvalue", declared)
    both = Offer(modality="image", model="resnet", provides=frozenset({"conv", "gap_head"}), explainer=None)
    assert both.unmet("metric", "selective_pvalue", declared) is None
    text = Offer(modality="text", model="resnet", provides=frozenset({"conv", "gap_head"}), explainer=None)
    assert text.unmet("metric", "selective_pvalue", declared, {"region": "gradcam"}) == (
        "metric 'selective_pvalue' applies to image data, not text"
    )


@pytest.mark.parametrize("masks, dropped", [(True, False), (None, False), (False, True)])
def test_a_metric_that_needs_masks_is_dropped_only_where_the_data_set_has_none(masks, dropped):
    """masks=None (it depends on the files) keeps the metric: it scores NaN with a note where a file has no masks."""
    offer = Offer(modality="image", model="small_cnn", provides=frozenset(), explainer=None, masks=masks)
    why = offer.unmet("metric", "pointing_game", {"modalities": ("image",), "requires": ("mask",)})
    expected = (
        "metric 'pointing_game' needs ground-truth relevance masks in the data set, which this data set does not "
        "declare (masks = False)"
    )
    assert why == (expected if dropped else None)


def test_masks_must_be_true_false_or_none():
    with pytest.raises(ValueError, match=r"masks must be True, False or None \(depends on the files\); got 'yes'"):
        check_declarations({"masks": "yes"})
