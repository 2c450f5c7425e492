"""Data sets: synthetic blocks, WDBC, MedMNIST .npz loading, the data directory, fetch, the cache."""

from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path

import numpy as np
import pytest
import salbench.datasets.fetch as fetch_module
import salbench.datasets.medmnist as medmnist_module
import torch
from salbench import datasets
from salbench.core.registry import ParameterError, UnknownNameError
from salbench.datasets import load_dataset
from salbench.datasets.base import DataBundle, Split
from salbench.datasets.data_dir import ENV_VAR, search_dirs

SHARED_PNEUMONIA = Path(__file__).resolve().parents[3] / "shared" / "data" / "pneumoniamnist.npz"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    """No test sees another's cached bundles or the developer's data directory setting."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    datasets._cache.clear()
    yield
    datasets._cache.clear()


def blocks(**params):
    base = {"size": 8, "n_train": 6, "n_val": 4, "n_test": 4}
    return load_dataset("synthetic_blocks", {**base, **params})


# -- synthetic_blocks ---------------------------------------------------------------------------
@pytest.mark.parametrize("size", [8, 16, 32, 64])
def test_blocks_shapes_and_half_size_square_masks(size):
    split = blocks(size=size, n_train=10, delta=1.0).train
    assert split.x.shape == (10, 1, size, size) and split.x.dtype == torch.float32
    assert split.mask.shape == split.x.shape and split.mask.dtype == torch.bool
    assert split.y.dtype == torch.long
    for mask, label in zip(split.mask[:, 0], split.y):
        if label == 0:
            assert not mask.any()
            continue
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        # one contiguous (d/2)×(d/2) square, fully inside the image
        assert mask.sum() == (size // 2) ** 2
        assert rows.numel() == cols.numel() == size // 2
        assert rows[-1] - rows[0] == cols[-1] - cols[0] == size // 2 - 1


@pytest.mark.parametrize("n", [10, 11])
def test_blocks_classes_are_balanced_in_every_split(n):
    bundle = blocks(n_train=n, n_val=n, n_test=n)
    for split in (bundle.train, bundle.val, bundle.test):
        counts = torch.bincount(split.y, minlength=2)
        assert counts.sum() == n and abs(int(counts[0] - counts[1])) <= n % 2


def test_blocks_signal_is_delta_on_the_block_and_unit_noise_elsewhere():
    split = blocks(size=8, delta=2.0, n_train=400).train
    inside, outside = split.x[split.mask].double(), split.x[~split.mask].double()
    # 400 samples: 200 × 16 block pixels, ~24 000 others; 5-sigma bands (false alarm < 1e-6)
    assert abs(inside.mean() - 2.0) < 5 / math.sqrt(inside.numel())
    assert abs(outside.mean()) < 5 / math.sqrt(outside.numel())
    assert abs(outside.std() - 1.0) < 5 * math.sqrt(0.5 / outside.numel())
    # x - delta * mask is the noise alone: class 0 and class 1 images share its law
    noise = split.x - 2.0 * split.mask.float()
    m0, m1 = noise[split.y == 0].double().mean(), noise[split.y == 1].double().mean()
    assert abs(m0 - m1) < 5 * math.sqrt(2 / (200 * 64))


def test_blocks_null_data_has_no_mask_and_standard_normal_pixels():
    split = blocks(size=16, delta=0.0, n_train=200).train
    assert not split.mask.any()
    values = split.x.double().flatten()
    assert abs(values.mean()) < 5 / math.sqrt(values.numel())
    assert abs(values.std() - 1) < 5 * math.sqrt(0.5 / values.numel())


def test_blocks_fixed_location_is_centred_and_random_location_covers_every_position():
    fixed = blocks(size=8, location="fixed", block=4, n_train=20).train
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[2:6, 2:6] = True
    for mask in fixed.mask[fixed.y == 1, 0]:
        assert torch.equal(mask, expected)
    rand = blocks(size=8, location="random", block=4, n_train=400).train
    rows = {int(m.any(1).nonzero()[0]) for m in rand.mask[rand.y == 1, 0]}
    cols = {int(m.any(0).nonzero()[0]) for m in rand.mask[rand.y == 1, 0]}
    # 200 draws from 5 positions: each position is missed with probability (4/5)^200 < 1e-19
    assert rows == cols == {0, 1, 2, 3, 4}


def test_blocks_channels_share_the_block():
    split = blocks(channels=3, delta=1.0).train
    assert split.x.shape[1] == 3
    assert torch.equal(split.mask[:, 0], split.mask[:, 1]) and torch.equal(split.mask[:, 0], split.mask[:, 2])


def test_blocks_are_a_function_of_seed_and_test_split_does_not_depend_on_train_size():
    a, b = blocks(seed=3), blocks(seed=3, n_train=8)
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.val.y, b.val.y)
    datasets._cache.clear()
    again = blocks(seed=3)
    assert again is not a and torch.equal(again.train.x, a.train.x)
    assert not torch.equal(blocks(seed=4).test.x, a.test.x)


@pytest.mark.parametrize(
    "params, name",
    [
        ({"size": 3}, "size"),
        ({"delta": -0.5}, "delta"),
        ({"delta": math.nan}, "delta"),
        ({"block": 9}, "block"),
        ({"block": 0}, "block"),
        ({"n_train": 1}, "n_train"),
        ({"channels": 0}, "channels"),
        ({"location": "middle"}, "location"),
        ({"seed": -1}, "seed"),
    ],
)
def test_blocks_bad_parameters_are_named(params, name):
    with pytest.raises(ValueError, match=name):
        blocks(**params)


# -- wdbc ---------------------------------------------------------------------------------------
def test_wdbc_splits_are_stratified_disjoint_and_standardised_on_train():
    bundle = load_dataset("wdbc", {})
    sizes = [len(bundle.train), len(bundle.val), len(bundle.test)]
    assert sum(sizes) == 569 and sizes == [341, 114, 114]
    everything = torch.cat([bundle.train.x, bundle.val.x, bundle.test.x])
    assert torch.unique(everything, dim=0).shape[0] == 569  # disjoint: no row appears twice
    overall = 357 / 569  # benign fraction
    for split in (bundle.train, bundle.val, bundle.test):
        assert abs(split.y.float().mean().item() - overall) <= 1 / len(split)
    train = bundle.train.x.double()
    assert train.mean(0).abs().max() < 1e-5
    assert (train.std(0, correction=0) - 1).abs().max() < 1e-5
    assert (bundle.test.x.double().mean(0).abs() > 1e-3).any()  # test statistics were not used
    lo, hi = bundle.bounds
    every = torch.cat([bundle.train.x, bundle.val.x, bundle.test.x])
    assert torch.equal(lo, every.amin(0)) and torch.equal(hi, every.amax(0))  # every clean sample is valid
    assert bundle.modality == "tabular" and bundle.input_shape == (30,)


def test_wdbc_feature_names_and_labels_follow_sklearn():
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer()
    bundle = load_dataset("wdbc", {"seed": 1})
    assert bundle.feature_names == tuple(raw.feature_names)
    y = torch.cat([bundle.train.y, bundle.val.y, bundle.test.y])
    assert torch.bincount(y).tolist() == np.bincount(raw.target).tolist()


def test_wdbc_seed_changes_the_split():
    assert not torch.equal(load_dataset("wdbc", {"seed": 0}).test.x, load_dataset("wdbc", {"seed": 1}).test.x)


@pytest.mark.parametrize(
    "params, name",
    [({"val_fraction": 0.0}, "val_fraction"), ({"test_fraction": 1.5}, "test_fraction"),
     ({"val_fraction": 0.5, "test_fraction": 0.5}, "val_fraction \\+ test_fraction"), ({"seed": -2}, "seed")],
)
def test_wdbc_bad_parameters_are_named(params, name):
    with pytest.raises(ValueError, match=name):
        load_dataset("wdbc", params)


# -- medmnist .npz ------------------------------------------------------------------------------
def write_npz(path: Path, *, rgb: bool = False, labels_per_image: int = 1, drop: str | None = None,
              dtype=np.uint8, n: tuple[int, int, int] = (6, 4, 4)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n):
        shape = (count, 5, 7, 3) if rgb else (count, 5, 7)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape).astype(dtype)
        labels = np.arange(count * labels_per_image) % 3
        arrays[f"{split}_labels"] = labels.reshape(count, labels_per_image).astype(np.uint8)
    if drop:
        del arrays[drop]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


def test_medmnist_gray_images_scaled_with_channel_dim(tmp_path):
    arrays = write_npz(tmp_path / "tiny.npz")
    bundle = load_dataset("medmnist", {"file": str(tmp_path / "tiny.npz")})
    assert bundle.input_shape == (1, 5, 7) and bundle.num_classes == 3 and bundle.modality == "image"
    expected = torch.from_numpy(arrays["test_images"].astype(np.float32) / 255)[:, None]
    assert torch.allclose(bundle.test.x, expected, atol=1e-7, rtol=0)
    assert bundle.train.y.tolist() == [0, 1, 2, 0, 1, 2]
    lo, hi = bundle.bounds
    assert float(lo) == 0.0 and float(hi) == 1.0
    assert bundle.train.mask is None


def test_medmnist_rgb_images_become_channels_first(tmp_path):
    arrays = write_npz(tmp_path / "rgb.npz", rgb=True)
    bundle = load_dataset("medmnist", {"file": "rgb.npz", "data_dir": str(tmp_path)})
    assert bundle.input_shape == (3, 5, 7)
    images = arrays["val_images"]
    n, i, j, c = 2, 4, 6, 1
    assert bundle.val.x[n, c, i, j].item() == pytest.approx(images[n, i, j, c] / 255)
    assert torch.allclose(bundle.val.x, torch.from_numpy(images.transpose(0, 3, 1, 2) / 255).float())


def test_medmnist_rejects_multi_label_sets(tmp_path):
    write_npz(tmp_path / "chest.npz", labels_per_image=14)
    with pytest.raises(ValueError, match="multi-label"):
        load_dataset("medmnist", {"file": str(tmp_path / "chest.npz")})


def test_medmnist_missing_keys_are_listed(tmp_path):
    write_npz(tmp_path / "broken.npz", drop="val_labels")
    with pytest.raises(ValueError, match="missing key.*val_labels"):
        load_dataset("medmnist", {"file": str(tmp_path / "broken.npz")})


def test_medmnist_rejects_non_uint8_images_and_unreadable_files(tmp_path):
    write_npz(tmp_path / "float.npz", dtype=np.float32)
    with pytest.raises(ValueError, match="uint8"):
        load_dataset("medmnist", {"file": str(tmp_path / "float.npz")})
    (tmp_path / "junk.npz").write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_dataset("medmnist", {"file": str(tmp_path / "junk.npz")})


def test_missing_file_lists_the_places_searched_and_how_to_fetch(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("pneumoniamnist", {"data_dir": str(tmp_path)})
    message = str(err.value)
    assert str(tmp_path / "pneumoniamnist.npz") in message
    assert "salbench data fetch pneumoniamnist" in message
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("medmnist", {"file": "nosuch.npz"})
    for directory in search_dirs():
        assert str(directory / "nosuch.npz") in str(err.value)
    assert "medmnist.com" in str(err.value)


def test_data_directory_env_var_and_shared_data_relative_to_cwd(tmp_path, monkeypatch):
    write_npz(tmp_path / "env" / "a.npz")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert load_dataset("medmnist", {"file": "a.npz"}).input_shape == (1, 5, 7)
    monkeypatch.delenv(ENV_VAR)
    write_npz(tmp_path / "shared" / "data" / "b.npz", rgb=True)
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    assert search_dirs()[0] == Path.cwd() / ".." / "shared" / "data"
    assert load_dataset("medmnist", {"file": "b.npz"}).input_shape == (3, 5, 7)


def test_explicit_data_dir_is_the_only_place_searched(tmp_path, monkeypatch):
    write_npz(tmp_path / "shared" / "data" / "c.npz")
    (tmp_path / "repo").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    with pytest.raises(FileNotFoundError, match="elsewhere"):
        load_dataset("medmnist", {"file": "c.npz", "data_dir": str(tmp_path / "elsewhere")})


def test_a_path_with_a_data_dir_is_ambiguous(tmp_path):
    write_npz(tmp_path / "d.npz")
    with pytest.raises(ValueError, match="data_dir"):
        load_dataset("medmnist", {"file": str(tmp_path / "d.npz"), "data_dir": str(tmp_path)})


@pytest.mark.skipif(not SHARED_PNEUMONIA.exists(), reason=f"real PneumoniaMNIST not present at {SHARED_PNEUMONIA}")
def test_real_pneumoniamnist_from_shared_data():
    bundle = load_dataset("pneumoniamnist", {"data_dir": str(SHARED_PNEUMONIA.parent)})
    assert bundle.train.x.shape == (2428, 1, 28, 28) and len(bundle.val) == 270 and len(bundle.test) == 468
    assert bundle.num_classes == 2
    assert torch.bincount(bundle.train.y).tolist() == [1214, 1214]
    assert 0.0 <= bundle.train.x.min() and bundle.train.x.max() <= 1.0


# -- load_dataset cache and errors --------------------------------------------------------------
def test_load_dataset_caches_by_validated_params(tmp_path, monkeypatch):
    write_npz(tmp_path / "e.npz")
    reads = []
    real_load = np.load
    monkeypatch.setattr(medmnist_module.np, "load", lambda *a, **k: reads.append(a) or real_load(*a, **k))
    first = load_dataset("medmnist", {"file": "e.npz", "data_dir": str(tmp_path)})
    second = load_dataset("medmnist", {"data_dir": str(tmp_path), "file": "e.npz"})
    assert second is first and len(reads) == 1
    assert blocks(delta=2) is blocks(delta=2.0, channels=1)  # int coerced to float, default given explicitly


def test_load_dataset_cache_is_bounded_least_recently_used():
    loaded = [blocks(seed=seed) for seed in range(datasets.CACHE_SIZE)]
    assert blocks(seed=0) is loaded[0]  # still cached; now the most recently used
    blocks(seed=datasets.CACHE_SIZE)  # evicts seed 1, the least recently used
    assert len(datasets._cache) == datasets.CACHE_SIZE
    assert blocks(seed=0) is loaded[0]
    reloaded = blocks(seed=1)
    assert reloaded is not loaded[1] and torch.equal(reloaded.train.x, loaded[1].train.x)


def test_unknown_dataset_and_parameter_are_clear_errors():
    with pytest.raises(UnknownNameError, match="wdbc"):
        load_dataset("wdcb", {})
    with pytest.raises(ParameterError, match="unknown parameter 'sise'"):
        load_dataset("synthetic_blocks", {"sise": 8})


def test_databundle_checks_consistency():
    x, y = torch.zeros(4, 3), torch.tensor([0, 1, 0, 1])
    split = Split(x, y)
    with pytest.raises(ValueError, match="input shape"):
        DataBundle(split, Split(torch.zeros(2, 4), y[:2]), split, num_classes=2, modality="tabular")
    with pytest.raises(ValueError, match="labels"):
        DataBundle(split, split, Split(x, torch.tensor([0, 1, 2, 1])), num_classes=2, modality="tabular")
    with pytest.raises(TypeError, match="mask"):
        Split(x, y, mask=torch.zeros(4, 3))
    with pytest.raises(TypeError, match="float32"):
        Split(x.double(), y)
    with pytest.raises(ValueError, match="feature_names"):
        DataBundle(split, split, split, num_classes=2, modality="tabular", feature_names=("a", "b"))


# -- fetch (network mocked) ---------------------------------------------------------------------
PAYLOAD = b"official npz bytes" * 1000


def fake_source(monkeypatch, payload: bytes = PAYLOAD):
    calls = []

    def urlopen(url, timeout):
        calls.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(fetch_module, "urlopen", urlopen)
    source = fetch_module.Source("https://example.org/x.npz", "pneumoniamnist.npz", hashlib.md5(PAYLOAD).hexdigest())
    monkeypatch.setitem(fetch_module.SOURCES, "pneumoniamnist", source)
    return calls


def test_fetch_downloads_checks_md5_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    calls = fake_source(monkeypatch)
    path = fetch_module.fetch("pneumoniamnist", tmp_path / "new")
    assert path == tmp_path / "new" / "pneumoniamnist.npz" and path.read_bytes() == PAYLOAD
    assert calls == ["https://example.org/x.npz"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["pneumoniamnist.npz"]
    assert fetch_module.fetch("pneumoniamnist", tmp_path / "new") == path and len(calls) == 1  # present: no download


def test_fetch_rejects_a_corrupt_download_and_writes_nothing(tmp_path, monkeypatch):
    fake_source(monkeypatch, payload=PAYLOAD[:-1])
    with pytest.raises(ValueError, match="MD5"):
        fetch_module.fetch("pneumoniamnist", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_fetch_never_overwrites_a_different_file(tmp_path, monkeypatch):
    calls = fake_source(monkeypatch)
    (tmp_path / "pneumoniamnist.npz").write_bytes(b"a local subset")
    with pytest.raises(ValueError, match="not the official"):
        fetch_module.fetch("pneumoniamnist", tmp_path)
    assert (tmp_path / "pneumoniamnist.npz").read_bytes() == b"a local subset" and calls == []


def test_fetch_unknown_name_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="pneumoniamnist"):
        fetch_module.fetch("imagenet", tmp_path)
