"""Localisation metrics against ground-truth masks: pointing game, relevance mass / rank accuracy, ROC AUC."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from salbench import metrics
from salbench.metrics.base import Case
from salbench.metrics.localisation import EMPTY_REGION, NO_MASK
from sklearn.metrics import roc_auc_score

NAMES = ("pointing_game", "relevance_mass_accuracy", "relevance_rank_accuracy", "localisation_auc")
SHAPES = {"tabular": (5, 30), "signal": (5, 2, 40), "image": (5, 3, 8, 8), "volume": (5, 2, 4, 5, 6)}


def random_case(shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    attr = torch.randn(shape, generator=gen, dtype=torch.float64)
    region = torch.rand(shape[:1] + shape[2:] if len(shape) > 2 else shape, generator=gen) < 0.3
    region[:, 0] = True  # every sample has a region and (almost surely) positions outside it
    mask = region[:, None].expand(shape).clone() if len(shape) > 2 else region
    return attr, mask


def pooled(attr, mask):
    """The same case as a table of positions: channels summed, the region of any channel."""
    if attr.dim() == 2:
        return attr, mask
    return attr.sum(1).flatten(1), mask.any(1).flatten(1)


# -- hand-worked cases ------------------------------------------------------------------------------
def test_pointing_game_hit_miss_and_tolerance_in_index_distance():
    attr = torch.zeros(1, 1, 5, 5)
    attr[0, 0, 2, 2] = 1.0
    mask = torch.zeros(1, 1, 5, 5, dtype=torch.bool)
    mask[0, 0, 0, 0] = True  # distance from (2, 2): sqrt(8) = 2.83
    values = [metrics.get("pointing_game", tolerance=t)(attr, mask).item() for t in (0, 2.8, 2.83)]
    assert values == [0.0, 0.0, 1.0]
    mask[0, 0, 2, 2] = True
    assert metrics.get("pointing_game")(attr, mask).item() == 1.0


def test_pointing_game_tolerance_on_volumes_and_signals():
    volume = torch.zeros(1, 1, 4, 4, 4)
    volume[0, 0, 3, 3, 3] = 2.0
    region = torch.zeros(1, 1, 4, 4, 4, dtype=torch.bool)
    region[0, 0, 3, 3, 0] = True  # 3 voxels away along the last axis
    assert metrics.get("pointing_game", tolerance=2.9)(volume, region).item() == 0.0
    assert metrics.get("pointing_game", tolerance=3)(volume, region).item() == 1.0
    signal = torch.tensor([[[0.0, 0.0, 0.0, 0.0, 1.0]]])
    region = torch.tensor([[[True, True, True, False, False]]])  # the maximum is 2 steps from the region
    assert [metrics.get("pointing_game", tolerance=t)(signal, region).item() for t in (1, 2)] == [0.0, 1.0]


def test_pointing_game_ties_score_the_share_of_tied_maxima_that_hit():
    attr = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])
    mask = torch.tensor([[True, False, False, False, True]])
    assert metrics.get("pointing_game")(attr, mask).item() == 0.25


def test_relevance_mass_accuracy_pools_channels_before_the_share():
    attr = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # positions: 4 and 6
    mask = torch.tensor([[[True, False], [False, False]]])  # position 0 is in the region via channel 0
    assert metrics.get("relevance_mass_accuracy")(attr, mask).item() == pytest.approx(0.4)
    assert metrics.get("relevance_mass_accuracy", absolute=True)(-attr, mask).item() == pytest.approx(0.4)


def test_relevance_rank_accuracy_counts_the_top_k_in_the_region():
    attr = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    mask = torch.tensor([[True, False, True, False, False, True]])  # K = 3: top-3 are 0, 1, 2 → 2 hits
    assert metrics.get("relevance_rank_accuracy")(attr, mask).item() == pytest.approx(2 / 3)


def test_auc_equals_sklearn_with_ties():
    gen = torch.Generator().manual_seed(3)
    attr = torch.randint(0, 4, (6, 50), generator=gen).double()  # many ties
    mask = torch.rand(6, 50, generator=gen) < 0.4
    ours = metrics.get("localisation_auc")(attr, mask)
    expected = [roc_auc_score(m.numpy(), a.numpy()) for a, m in zip(attr, mask)]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-12)


# -- invariants ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", SHAPES)
@pytest.mark.parametrize("name", NAMES)
def test_every_shape_scores_as_its_table_of_positions(name, kind):
    attr, mask = random_case(SHAPES[kind])
    metric = metrics.get(name)
    torch.testing.assert_close(metric(attr, mask), metric(*pooled(attr, mask)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_the_mask_itself_as_map_scores_1(name):
    _, mask = random_case(SHAPES["image"])
    assert torch.all(metrics.get(name)(mask.double(), mask) == 1)


def test_a_constant_map_scores_chance():
    _, mask = random_case(SHAPES["image"])
    attr = torch.full(mask.shape, 0.7, dtype=torch.float64)
    share = mask.any(1).flatten(1).double().mean(1)
    torch.testing.assert_close(metrics.get("pointing_game")(attr, mask), share)
    torch.testing.assert_close(metrics.get("relevance_mass_accuracy")(attr, mask), share)
    assert torch.all(metrics.get("localisation_auc")(attr, mask) == 0.5)


def test_a_random_map_scores_chance_on_average():
    attr, mask = random_case((400, 1, 10, 10), seed=5)
    share = mask.flatten(1).double().mean(1)
    rank = metrics.get("relevance_rank_accuracy")(attr, mask)
    auc = metrics.get("localisation_auc")(attr, mask)
    assert abs((rank - share).mean()) < 0.02
    assert abs(auc.mean() - 0.5) < 0.02


def test_the_inverted_mask_as_map_scores_0():
    _, mask = random_case(SHAPES["signal"])
    inverted = (~mask).double()
    for name in NAMES:
        assert torch.all(metrics.get(name)(inverted, mask) == 0), name


# -- undefined values carry notes ------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_a_sample_without_region_is_nan_with_a_note(name):
    attr, mask = random_case(SHAPES["image"])
    mask[1] = False
    out = metrics.get(name).score(attr, mask)
    assert math.isnan(out.values[1]) and out.notes[1] == EMPTY_REGION
    assert not torch.isnan(out.values[[0, 2, 3, 4]]).any() and out.notes[0] is None


@pytest.mark.parametrize("name", NAMES)
def test_a_data_set_without_masks_is_nan_with_a_note_for_every_sample(name):
    attr, _ = random_case(SHAPES["tabular"])
    out = metrics.get(name).evaluate(Case(model=None, explainer=None, x=attr, target=torch.zeros(5), attr=attr))
    assert torch.isnan(out.values).all() and out.notes == [NO_MASK] * 5


def test_zero_total_relevance_and_a_full_region_are_nan_with_notes():
    attr, mask = random_case(SHAPES["tabular"])
    attr[0] = 0.0
    mask[2] = True
    mass = metrics.get("relevance_mass_accuracy").score(attr, mask)
    auc = metrics.get("localisation_auc").score(attr, mask)
    assert math.isnan(mass.values[0]) and "total relevance is 0" in mass.notes[0]
    assert math.isnan(auc.values[2]) and "covers every position" in auc.notes[2]
    assert not math.isnan(mass.values[2]) and not math.isnan(auc.values[0])


# -- validation --------------------------------------------------------------------------------------------
def test_inputs_are_checked_naming_the_argument():
    attr, mask = random_case(SHAPES["image"])
    metric = metrics.get("relevance_mass_accuracy")
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        metric(attr, mask.double())
    with pytest.raises(ValueError, match="same shape"):
        metric(attr, mask[:, :1])
    attr[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="attr contains 1 NaN"):
        metric(attr, mask)
    with pytest.raises(ValueError, match="tolerance"):
        metrics.get("pointing_game", tolerance=-1)
    with pytest.raises(ValueError, match="features of a table have no distance"):
        metrics.get("pointing_game", tolerance=1)(*random_case(SHAPES["tabular"]))


# -- agreement with Quantus ------------------------------------------------------------------------------------
@pytest.mark.parametrize("absolute", [False, True])
@pytest.mark.parametrize(
    "name, quantus_name",
    [("pointing_game", "PointingGame"), ("relevance_mass_accuracy", "RelevanceMassAccuracy"),
     ("relevance_rank_accuracy", "RelevanceRankAccuracy"), ("localisation_auc", "AUC")],
)
def test_agrees_with_quantus(name, quantus_name, absolute):
    """Quantus 0.6.0 on the channel-summed map (N, 1, H, W), without its normalisation; our maps
    have 3 channels and are pooled the same way. Continuous random maps: no ties, so the
    definitions coincide (tolerance 1e-10; Quantus's AUC goes through sklearn's roc_curve + auc)."""
    quantus = pytest.importorskip("quantus")
    attr, mask = random_case((6, 3, 8, 8), seed=11)
    region = mask.any(1, keepdim=True).numpy()
    summed = (attr.abs() if absolute else attr).sum(1, keepdim=True).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = getattr(quantus, quantus_name)(normalise=False, abs=False, disable_warnings=True)(
            model=None, x_batch=np.zeros_like(summed), y_batch=np.zeros(6, dtype=int), a_batch=summed,
            s_batch=region.astype(float), channel_first=True,
        )
    ours = metrics.get(name, absolute=absolute)(attr, mask)
    np.testing.assert_allclose(ours.numpy(), np.asarray(reference, dtype=float), rtol=0, atol=1e-10)


def test_synthetic_blocks_masks_class_0_has_no_region_class_1_its_block():
    """The masks the grid passes (``Case.mask`` from ``synthetic_blocks``): a class-0 sample has no
    planted block (NaN with the note), a class-1 sample's block scores 1 as its own map."""
    from salbench.datasets import load_dataset

    test = load_dataset("synthetic_blocks", {"size": 8, "channels": 3, "n_train": 4, "n_val": 2, "n_test": 6}).test
    noise = torch.rand(test.mask.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    attr = test.mask.double() * (1 + noise)  # relevance only inside the block
    case = Case(model=None, explainer=None, x=test.x, target=test.y, attr=attr, mask=test.mask)
    for name in NAMES:
        out = metrics.get(name).evaluate(case)
        empty = test.y == 0
        assert torch.isnan(out.values[empty]).all() and all(out.notes[i] == EMPTY_REGION for i in empty.nonzero().flatten())
        assert torch.all(out.values[~empty] == 1), name
