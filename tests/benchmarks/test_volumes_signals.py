"""Volumes (N, C, D, H, W) and signals (N, C, L) end to end: the planted-block data sets, the
dimension-generic small CNN, the training recipes, and a grid of every applicable explainer ×
attack × metric through the runner (tests/benchmarks/suites/volumes_signals.toml), whose
expander must drop the image-, table- and text-only components with their reasons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from salbench import datasets, models, recipes
from salbench.datasets import DataBundle, Split, load_dataset
from salbench.datasets.synthetic_blocks import SyntheticBlocks, SyntheticSignals, SyntheticVolumes, block_masks
from salbench.runner import run_suite
from salbench.store import read_failures, read_records
from salbench.suite import load_suite, parse_suite

SUITE = Path(__file__).parent / "suites" / "volumes_signals.toml"
SETS = {  # data set: (parameters, model) as in the suite
    "synthetic_volumes": ({"size": 8, "block": 4, "delta": 3.0, "n_train": 64, "n_val": 16, "n_test": 16}, "small_cnn3d"),
    "synthetic_signals": ({"size": 32, "block": 8, "delta": 3.0, "n_train": 64, "n_val": 16, "n_test": 16}, "small_cnn1d"),
}
pytestmark = pytest.mark.usefixtures("salbench_cache_dir")


# -- data sets -------------------------------------------------------------------------------------
def drawn_by_hand(n: int, stream: int, channels: int, size: int, dims: int, block: int, delta: float):
    """The documented generative model, drawn step by step in the documented order (labels, noise, corners)."""
    gen = torch.Generator().manual_seed(stream)
    y = (torch.arange(n) % 2)[torch.randperm(n, generator=gen)]
    noise = torch.randn(n, channels, *(size,) * dims, generator=gen)
    corners = torch.randint(0, size - block + 1, (n, dims), generator=gen)
    mask = torch.zeros(n, channels, *(size,) * dims, dtype=torch.bool)
    for i in range(n):
        if y[i] == 1:
            mask[(i, slice(None), *(slice(c, c + block) for c in corners[i].tolist()))] = True
    return noise + delta * mask.float(), y, mask


@pytest.mark.parametrize("factory, dims", [(SyntheticSignals, 1), (SyntheticBlocks, 2), (SyntheticVolumes, 3)])
def test_planted_blocks_follow_the_generative_model_in_every_dimension(factory, dims):
    bundle = factory(size=6, channels=2, block=3, delta=1.5, n_train=8, n_val=4, n_test=6, seed=2).load()
    assert bundle.modality == factory.modality and bundle.input_shape == (2, *(6,) * dims)
    for split, stream in (("train", 6), ("val", 7), ("test", 8)):
        got = getattr(bundle, split)
        x, y, mask = drawn_by_hand(len(got), stream, 2, 6, dims, 3, 1.5)
        assert torch.equal(got.y, y) and torch.equal(got.mask, mask) and torch.equal(got.x, x)
    positives = bundle.train.mask[bundle.train.y == 1]
    assert (positives.flatten(1).sum(1) == 2 * 3**dims).all() and not bundle.train.mask[bundle.train.y == 0].any()


@pytest.mark.parametrize("factory, dims", [(SyntheticSignals, 1), (SyntheticBlocks, 2), (SyntheticVolumes, 3)])
def test_position_task_puts_every_block_in_its_class_half_of_the_last_axis(factory, dims):
    """task="position": the labels and noise of task="presence", every sample carries a block, whose
    corner along the last axis is drawn last: uniform in [0, h − block] + y·h (h = size // 2)."""
    kwargs = dict(size=10, channels=1, block=3, delta=2.0, n_train=12, n_val=4, n_test=4, seed=1)
    presence = factory(**kwargs).load()
    position = factory(task="position", **kwargs).load()
    x, y, mask = position.train.x, position.train.y, position.train.mask
    assert torch.equal(y, presence.train.y)
    noise = presence.train.x - 2.0 * presence.train.mask.float()
    torch.testing.assert_close(x - 2.0 * mask.float(), noise, rtol=0, atol=1e-6)  # the same noise
    gen = torch.Generator().manual_seed(3)
    torch.randperm(12, generator=gen), torch.randn(12, 1, *(10,) * dims, generator=gen)
    corners = torch.randint(0, 8, (12, dims), generator=gen)
    corners[:, -1] = torch.randint(0, 3, (12,), generator=gen) + y * 5
    expected = torch.zeros(12, 1, *(10,) * dims, dtype=torch.bool)
    for i in range(12):
        expected[(i, 0, *(slice(c, c + 3) for c in corners[i].tolist()))] = True
    assert torch.equal(mask, expected)
    along = mask.flatten(1, -2).any(1)  # (n, size): which positions of the last axis the block covers
    assert not along[y == 0, 5:].any() and not along[y == 1, :5].any() and (mask.flatten(1).sum(1) == 3**dims).all()
    with pytest.raises(ValueError, match=r"block must fit in half the last axis: block in \[1, 5\], got 6"):
        factory(task="position", size=10, block=6)
    assert factory(task="position", size=16).block == 4 and factory(size=16).block == 8


def test_volume_and_signal_options_of_synthetic_blocks_carry_over():
    """Fixed (centred) blocks, references of the sample's shape, a null test split, all-positive tests."""
    volumes = SyntheticVolumes(size=6, block=2, location="fixed", n_train=4, n_val=2, n_test=4, references=3,
                               test_delta=0.0, test_labels="positive").load()
    expected = torch.zeros(6, 6, 6, dtype=torch.bool)
    expected[2:4, 2:4, 2:4] = True
    assert all(torch.equal(m[0], expected) for m in volumes.train.mask[volumes.train.y == 1])
    assert volumes.test.reference.shape == (4, 3, 1, 6, 6, 6) and (volumes.test.y == 1).all() and not volumes.test.mask.any()
    assert SyntheticSignals().load().input_shape == (1, 128) and SyntheticVolumes().load().input_shape == (1, 16, 16, 16)


def test_block_masks_in_one_two_and_three_dimensions():
    corners = torch.tensor([[1, 0, 2]])
    cube = block_masks(corners, 2, 4)[0]
    assert cube.shape == (4, 4, 4) and cube.sum() == 8 and bool(cube[1:3, 0:2, 2:4].all())
    square = block_masks(torch.tensor([[0, 2], [3, 3]]), 1, 4)
    assert square.nonzero().tolist() == [[0, 0, 2], [1, 3, 3]]


def test_a_bundle_needs_samples_of_its_modalitys_rank():
    image_like = Split(x=torch.zeros(2, 1, 4, 4), y=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"modality 'volume' needs samples of shape \(C, D, H, W\), but the splits hold samples of shape \(1, 4, 4\)"):
        DataBundle(image_like, image_like, image_like, num_classes=2, modality="volume")
    with pytest.raises(ValueError, match=r"modality 'signal' needs samples of shape \(C, L\)"):
        DataBundle(image_like, image_like, image_like, num_classes=2, modality="signal")
    assert DataBundle(image_like, image_like, image_like, num_classes=2, modality="image").input_shape == (1, 4, 4)


@pytest.mark.parametrize("name", ["synthetic_volumes", "synthetic_signals"])
def test_registered_and_loaded_with_their_declared_modality(name, isolated_datasets):
    params, _ = SETS[name]
    bundle = load_dataset(name, params)
    assert bundle.modality == datasets.registry.entry(name).attrs["modality"] == {"synthetic_volumes": "volume",
                                                                                "synthetic_signals": "signal"}[name]


def test_a_medmnist3d_archive_loads_as_volumes_and_runs_through_the_3d_cnn(tmp_path, isolated_datasets):
    """uint8 (N, D, H, W) volumes in the MedMNIST layout: refused by medmnist (which names volume_arrays),
    loaded by volume_arrays as (N, 1, D, H, W) in [0, 1] with modality "volume"."""
    rng = np.random.default_rng(0)
    arrays = {f"{split}_{part}": (rng.integers(0, 256, (n, 6, 6, 6)) if part == "images" else np.arange(n) % 2).astype(np.uint8)
              for split, n in (("train", 6), ("val", 4), ("test", 4)) for part in ("images", "labels")}
    np.savez(tmp_path / "organ3d.npz", **arrays)
    with pytest.raises(ValueError, match=r"MedMNIST3D volumes load with data set 'volume_arrays'"):
        load_dataset("medmnist", {"file": str(tmp_path / "organ3d.npz")})
    bundle = load_dataset("volume_arrays", {"path": str(tmp_path / "organ3d.npz"), "value_range": [0, 255], "normalize": "range"})
    assert bundle.modality == "volume" and bundle.input_shape == (1, 6, 6, 6)
    torch.testing.assert_close(bundle.test.x[:, 0], torch.from_numpy(arrays["test_images"] / 255).float(), rtol=0, atol=1e-7)
    net = models.build("small_cnn3d", {"channels": (2, 2)}, bundle.input_shape, bundle.num_classes)
    assert net(bundle.test.x).shape == (4, 2)


# -- models and recipes ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["adversarial", "est_hessian", "idexpo", "r2et", "softplus", "standard", "weight_decay"])
@pytest.mark.parametrize("data_name", ["synthetic_volumes", "synthetic_signals"])
def test_every_continuous_training_recipe_trains_a_volume_or_signal_cnn(name, data_name):
    """One epoch of each recipe that trains on images changes the weights and leaves a working model."""
    params, model_name = SETS[data_name]
    data = load_dataset(data_name, params)
    torch.manual_seed(0)
    net = models.build(model_name, {"channels": (4,)}, data.input_shape, data.num_classes)
    before = [p.detach().clone() for p in net.parameters()]
    extra = {"adversarial": {"steps": 2}, "idexpo": {"steps": 4}, "r2et": {"k": 4}, "weight_decay": {"weight_decay": 1e-3}}
    recipes.get(name, epochs=1, **extra.get(name, {})).fit(net, data, seed=0)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    with torch.no_grad():
        logits = net(data.test.x)
    assert logits.shape == (len(data.test), 2) and bool(torch.isfinite(logits).all())


# -- the grid --------------------------------------------------------------------------------------
EXPLAINERS = ("gradient", "gradient_x_input", "integrated_gradients", "smoothgrad", "occlusion", "random", "decoy", "cam", "gradcam")
GRADIENT_ATTACKS = ("topk", "target_region", "mass_center", "mse", "er_attack")
ROBUSTNESS = {"topk_intersection", "spearman", "kendall_tau", "attribution_distance", "center_of_mass_shift", "sensitivity"}


@pytest.fixture(scope="module")
def grid(tmp_path_factory, salbench_cache_dir):
    suite = load_suite(SUITE)
    out = tmp_path_factory.mktemp("volumes_signals")
    summary = run_suite(suite, out, backend="sequential", progress=False)
    return suite, summary, read_records(out), read_failures(out)


def test_every_applicable_explainer_attack_and_metric_runs_on_volumes_and_signals(grid):
    suite, summary, records, failures = grid
    assert failures == [] and summary.failed == 0 and summary.run == len(suite.cells)
    differentiable = {"gradient", "gradient_x_input", "integrated_gradients", "smoothgrad", "decoy", "cam", "gradcam"}
    expected = {(e, a) for e in EXPLAINERS for a in ("none", "random_noise")}
    expected |= {(e, a) for e in differentiable for a in GRADIENT_ATTACKS}  # decoy: attacked through its base
    for dataset in SETS:
        ran = records[records.dataset == dataset]
        assert set(zip(ran.explainer, ran.attack)) == expected, dataset
        for (explainer, attack), cell in ran.groupby(["explainer", "attack"]):
            wanted = {"insertion", "deletion"} if attack == "none" else ROBUSTNESS
            assert set(cell.metric) == wanted and (cell.groupby("metric").size() == 4).all(), (dataset, explainer, attack)
    # a value is missing only where the metric is undefined for that sample (a map of the attacked
    # input that is zero or constant everywhere, e.g. a decoy map no decoy moved: no centre of mass,
    # ordering or direction), and its note says so
    missing = records[records.value.isna()]
    assert missing.note.str.endswith("undefined").all(), missing.note.unique()
    assert len(missing) <= 0.01 * len(records)
    # the models learned the planted block (accuracy on the test split), so the maps explain something
    assert (records.groupby("dataset").clean_accuracy.first() >= 0.8).all()


def test_the_expander_drops_what_does_not_apply_to_volumes_and_signals_and_says_why(grid):
    suite = grid[0]
    reasons = {}
    for description, reason in suite.dropped:
        reasons.setdefault(reason, set()).add(description.split("/")[0])
    for modality, dataset in (("volume", "synthetic_volumes"), ("signal", "synthetic_signals")):
        assert dataset in reasons[f"attack 'acquisition' applies to image data, not {modality}"]
        assert dataset in reasons[f"attack 'clinical' applies to tabular data, not {modality}"]
        assert dataset in reasons[f"metric 'dare_estimate' applies to text data, not {modality}"]
    for explainer in ("occlusion", "random"):
        for attack in GRADIENT_ATTACKS:
            reason = f"attack '{attack}' differentiates the explanation, but explainer '{explainer}' is not differentiable"
            assert reasons[reason] == set(SETS)
    assert not any(c.metrics and any(m.name == "dare_estimate" for m in c.metrics) for c in suite.cells)


def test_selective_pvalues_are_dropped_on_volumes_with_the_reason():
    suite = parse_suite(
        """
        [suite]
        name = "selective_on_volumes"
        samples = 2
        seeds = [0]
        [[datasets]]
        name = "synthetic_volumes"
        size = 8
        models = [{ name = "small_cnn3d" }]
        [[recipes]]
        name = "standard"
        [[explainers]]
        name = "gradient"
        [[metrics]]
        name = "selective_pvalue"
        [[metrics]]
        name = "insertion"
        """,
        source="selective",
    )
    assert suite.dropped == (("synthetic_volumes/small_cnn3d/standard seed 0: none × none",  # its own explainer-free cell
                              "metric 'selective_pvalue' applies to image data, not volume"),)
    assert {m.name for c in suite.cells for m in c.metrics} == {"insertion"}
