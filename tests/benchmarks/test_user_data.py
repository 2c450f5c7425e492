"""The user's own data: arrays of any dtype, volumes, image folders, tables, text files; validation
naming file/key/column and row; content digests; the load cache never serving a rewritten file."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from salbench import attacks, datasets, explainers, metrics, models
from salbench.datasets import load_dataset
from salbench.core.text import word_mask
from salbench.explainers.word_attribution import WordAttribution

RNG = np.random.default_rng(0)

pytestmark = pytest.mark.usefixtures("isolated_datasets")


# -- arrays --------------------------------------------------------------------------------------
def ct_arrays(n=(8, 4, 4), shape=(5, 6)) -> dict[str, np.ndarray]:
    """Valid int16 'CT' splits in Hounsfield units, labels alternating 0/1, masks (N, H, W)."""
    out = {}
    for split, count in zip(("train", "val", "test"), n):
        out[f"{split}_images"] = RNG.integers(-1000, 3001, size=(count, *shape)).astype(np.int16)
        out[f"{split}_labels"] = (np.arange(count) % 2).reshape(-1, 1)
        out[f"{split}_masks"] = RNG.integers(0, 2, size=(count, *shape)).astype(np.uint8)
    return out


def save(tmp_path, arrays, name="ct.npz"):
    np.savez(tmp_path / name, **arrays)
    return str(tmp_path / name)


def test_int16_hounsfield_units_scale_from_the_declared_range_to_0_1(tmp_path):
    raw = ct_arrays()
    bundle = load_dataset("image_arrays", {"path": save(tmp_path, raw), "value_range": [-1000, 3000], "normalize": "range"})
    assert bundle.input_shape == (1, 5, 6) and bundle.modality == "image" and bundle.num_classes == 2
    expected = (raw["val_images"].astype(np.float64) + 1000) / 4000
    np.testing.assert_allclose(bundle.val.x[:, 0].numpy(), expected, rtol=1e-6)
    assert bundle.train.y.tolist() == [0, 1] * 4
    assert [b.item() for b in bundle.bounds] == [0.0, 1.0]
    # the (N, H, W) masks are shared by the channel and kept exactly
    assert bundle.test.mask.dtype == torch.bool and bundle.test.mask.shape == bundle.test.x.shape
    assert torch.equal(bundle.test.mask[:, 0], torch.from_numpy(raw["test_masks"] == 1))


def test_zscore_with_the_train_moments_and_bounds_in_those_units(tmp_path):
    raw = {k: (v.astype(np.float64) / 7 if k.endswith("images") else v) for k, v in ct_arrays().items()}
    bundle = load_dataset("image_arrays", {"path": save(tmp_path, raw), "value_range": [-150, 450], "normalize": "zscore"})
    mean, std = raw["train_images"].mean(), raw["train_images"].std()
    assert abs(bundle.train.x.mean().item()) < 1e-5 and abs(bundle.train.x.std(correction=0).item() - 1) < 1e-5
    np.testing.assert_allclose(bundle.test.x[:, 0].numpy(), (raw["test_images"] - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose([b.item() for b in bundle.bounds], [(-150 - mean) / std, (450 - mean) / std], rtol=1e-6)


def test_given_per_channel_mean_and_std_of_channels_last_rgb_and_no_range_means_unbounded(tmp_path):
    raw = {}
    for split, n in (("train", 6), ("val", 2), ("test", 2)):
        raw[f"{split}_images"] = RNG.random((n, 4, 3, 3), dtype=np.float32)
        raw[f"{split}_labels"] = np.arange(n) % 3
    params = {"path": save(tmp_path, raw), "normalize": "zscore", "mean": [0.1, 0.2, 0.3], "std": [1.0, 2.0, 4.0],
              "channels_last": True, "num_classes": 3}
    bundle = load_dataset("image_arrays", params)
    assert bundle.input_shape == (3, 4, 3) and bundle.bounds is None and bundle.num_classes == 3
    for c, (m, s) in enumerate(zip(params["mean"], params["std"])):
        np.testing.assert_allclose(bundle.val.x[:, c].numpy(), (raw["val_images"][..., c] - m) / s, rtol=1e-6)


def test_a_folder_of_npy_files_loads_like_the_npz_and_none_keeps_raw_values(tmp_path):
    raw = ct_arrays()
    folder = tmp_path / "arrays"
    folder.mkdir()
    for key, value in raw.items():
        np.save(folder / f"{key}.npy", value)
    from_npz = load_dataset("image_arrays", {"path": save(tmp_path, raw), "value_range": [-1000, 3000]})
    from_folder = load_dataset("image_arrays", {"path": str(folder), "value_range": [-1000, 3000]})
    assert torch.equal(from_npz.train.x, from_folder.train.x) and torch.equal(from_npz.test.mask, from_folder.test.mask)
    assert torch.equal(from_npz.train.x[:, 0], torch.from_numpy(raw["train_images"].astype(np.float32)))
    assert [b.item() for b in from_npz.bounds] == [-1000.0, 3000.0]


def test_one_pool_is_split_stratified_by_the_fractions(tmp_path):
    images = RNG.random((40, 4, 4))
    labels = np.repeat([0, 1, 2, 3], 10)
    path = save(tmp_path, {"images": images, "labels": labels}, "pool.npz")
    bundle = load_dataset("image_arrays", {"path": path, "val_fraction": 0.2, "test_fraction": 0.2, "seed": 1})
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (24, 8, 8)
    assert torch.bincount(bundle.test.y).tolist() == [2, 2, 2, 2]
    rows = sorted(tuple(r.flatten().tolist()) for s in (bundle.train, bundle.val, bundle.test) for r in s.x)
    assert rows == sorted(tuple(r.astype(np.float32).flatten().tolist()) for r in images)  # a partition


def test_medmnist3d_layout_volumes(tmp_path):
    raw = {}
    for split, n in (("train", 6), ("val", 2), ("test", 2)):
        raw[f"{split}_images"] = RNG.integers(0, 256, size=(n, 3, 4, 5), dtype=np.uint8)
        raw[f"{split}_labels"] = (np.arange(n) % 2).reshape(-1, 1)
    bundle = load_dataset("volume_arrays", {"path": save(tmp_path, raw), "value_range": [0, 255], "normalize": "range"})
    assert bundle.modality == "volume" and bundle.input_shape == (1, 3, 4, 5)
    np.testing.assert_allclose(bundle.train.x[:, 0].numpy(), raw["train_images"] / 255, rtol=1e-6)


def _set(key, value):
    def change(raw):
        raw[key] = value(raw[key]) if callable(value) else value
    return change


def _nan(raw):
    raw["val_images"] = raw["val_images"].astype(np.float32)
    raw["val_images"][2, 1, 3] = np.nan


def _inf(raw):
    raw["test_images"] = raw["test_images"].astype(np.float64)
    raw["test_images"][1, 0, 0] = -np.inf


def _out_of_range(raw):
    raw["train_images"][5, 2, 2] = 3001


def _some_masks(raw):
    del raw["val_masks"]


def _pool_keys(raw):
    for key in list(raw):
        raw[key.split("_", 1)[1]] = raw.pop(key)


@pytest.mark.parametrize(
    "change, error, match",
    [
        (_nan, ValueError, r"ct\.npz: key 'val_images' holds NaN at row 2 \(index \(2, 1, 3\)\)"),
        (_inf, ValueError, r"key 'test_images' holds an infinite value at row 1"),
        (_out_of_range, ValueError, r"key 'train_images' holds 3001 at row 5 .*outside the declared value_range"),
        (_set("train_labels", lambda y: y + 0.5), ValueError, r"key 'train_labels' holds 0\.5 at row 0.*integers"),
        (_set("val_labels", np.array([0, -1, 0, 1])), ValueError, r"key 'val_labels' holds -1 at row 1"),
        (_set("test_labels", np.array([0, 1, 2, 1])), ValueError, r"key 'test_labels' holds label 2 at row 2, outside \[0, 2\)"),
        (_set("val_labels", np.array([0, 1, 0])), ValueError, r"key 'val_labels' has 3 rows but .*key 'val_images' has 4"),
        (_set("train_labels", np.zeros((8, 3))), ValueError, r"key 'train_labels' has shape \(8, 3\).*multi-label"),
        (_set("val_masks", np.zeros((4, 5, 5))), ValueError, r"key 'val_masks' has shape \(4, 1, 5, 5\), which does not match"),
        (_set("test_masks", lambda m: m * 2), ValueError, r"key 'test_masks' holds 2 at row \d+ .*0/1"),
        (_set("train_images", np.array([["a"] * 5] * 8)), ValueError, r"key 'train_images' must hold real numbers"),
        (_set("val_images", np.zeros((4, 5))), ValueError, r"key 'val_images' must have shape \(N, H, W\) or \(N, C, H, W\)"),
        (lambda raw: raw.pop("test_labels"), ValueError, r"ct\.npz: missing key\(s\) 'test_labels'"),
        (_some_masks, ValueError, r"missing key\(s\) 'val_masks'"),
        (_pool_keys, ValueError, r"holds one pool \(key 'images'\): give val_fraction and test_fraction"),
    ],
)
def test_malformed_arrays_fail_naming_file_key_and_row(tmp_path, change, error, match):
    raw = ct_arrays()
    change(raw)
    with pytest.raises(error, match=match):
        load_dataset("image_arrays", {"path": save(tmp_path, raw), "value_range": [-1000, 3000], "num_classes": 2})


def test_a_missing_file_or_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data file .*nope\.npz.* not found; searched: .*nope\.npz"):
        load_dataset("image_arrays", {"path": str(tmp_path / "nope.npz")})
    with pytest.raises(FileNotFoundError, match=r"data folder .*nope.* not found"):
        load_dataset("image_folder", {"path": str(tmp_path / "nope")})


@pytest.mark.parametrize(
    "params, match",
    [
        ({"normalize": "range"}, "value_range must be declared"),
        ({"value_range": [3, 1]}, "finite low < high"),
        ({"mean": [0.0], "std": [1.0]}, "only to normalize='zscore'"),
        ({"normalize": "zscore", "mean": [0.0]}, "both mean and std"),
        ({"val_fraction": 0.2}, "both val_fraction and test_fraction"),
    ],
)
def test_inconsistent_array_parameters_fail_before_reading(params, match):
    with pytest.raises(ValueError, match=match):
        datasets.get("image_arrays", path="never-read.npz", **params)


# -- image folders -------------------------------------------------------------------------------
def write_images(root, split_dirs=("train", "val", "test"), n=2, shape=(5, 7), rgb=False):
    """PNG files ROOT/<split>/<class>/<i>.png; returns {relative path: pixel array}."""
    written = {}
    for split in split_dirs:
        for label in ("normal", "tumour"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = RNG.integers(0, 256, (*shape, 3) if rgb else shape, dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
                written[f"{split}/{label}/{i}.png"] = pixels
    return written


def test_an_image_folder_with_split_and_class_folders(tmp_path):
    written = write_images(tmp_path / "xr")
    bundle = load_dataset("image_folder", {"path": str(tmp_path / "xr"), "grayscale": True})
    assert bundle.input_shape == (1, 5, 7) and bundle.num_classes == 2 and len(bundle.train) == 4
    assert sorted(bundle.test.y.tolist()) == [0, 0, 1, 1]
    expected = {(label, written[f"test/{name}/{i}.png"].astype(np.float32).tobytes())
                for label, name in enumerate(("normal", "tumour")) for i in range(2)}
    got = {(int(y), (x[0] * 255).round().numpy().astype(np.float32).tobytes()) for x, y in zip(bundle.test.x, bundle.test.y)}
    assert got == expected  # each image with its folder's label, values x / 255


def test_an_rgb_folder_with_a_metadata_csv_is_resized_and_pooled(tmp_path):
    root = tmp_path / "skin"
    root.mkdir()
    for i in range(12):
        Image.fromarray(RNG.integers(0, 256, (6 + i % 3, 8, 3), dtype=np.uint8)).save(root / f"{i}.png")
    pd.DataFrame({"file_name": [f"{i}.png" for i in range(12)], "label": [i % 3 for i in range(12)]}).to_csv(
        root / "metadata.csv", index=False)
    bundle = load_dataset("image_folder", {"path": str(root), "size": [4, 5], "val_fraction": 0.25, "test_fraction": 0.25})
    assert bundle.input_shape == (3, 4, 5) and bundle.num_classes == 3
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (6, 3, 3)


def _other_size(root):
    Image.fromarray(np.zeros((6, 7), np.uint8)).save(root / "val" / "normal" / "1.png")


def _corrupt(root):
    (root / "test" / "tumour" / "0.png").write_bytes(b"not a png")


def _sixteen_bit(root):
    Image.fromarray(np.full((5, 7), 40000, np.uint16)).save(root / "train" / "normal" / "0.png")


def _no_test(root):
    shutil.rmtree(root / "test")


@pytest.mark.parametrize(
    "change, match",
    [
        (_other_size, r"val/normal/1\.png is 6×7 \(H×W\) but the images before it are 5×7"),
        (_corrupt, r"test/tumour/0\.png is not a readable image"),
        (_sixteen_bit, r"train/normal/0\.png: image mode 'I;16' is not 8-bit"),
        (_no_test, r"missing split folder\(s\) \['test'\]"),
    ],
)
def test_malformed_image_folders_name_the_file(tmp_path, change, match):
    write_images(tmp_path / "xr")
    change(tmp_path / "xr")
    with pytest.raises(ValueError, match=match):
        load_dataset("image_folder", {"path": str(tmp_path / "xr"), "grayscale": True})


# -- tables --------------------------------------------------------------------------------------
def clinic_frame(n=40) -> pd.DataFrame:
    return pd.DataFrame({
        "age": RNG.integers(20, 90, n),
        "sex": np.arange(n) % 2,
        "bp": RNG.normal(120, 15, n).round(1),
        "label": (np.arange(n) // 2) % 2,
        "split": ["train"] * (n // 2) + ["val"] * (n // 4) + ["test"] * (n - n // 2 - n // 4),
    })


CLINIC = {"split_column": "split", "integer_features": ["age", "sex"], "immutable_features": ["sex"],
          "error_budgets": {"age": 1.0, "bp": 4.0}}


def test_a_csv_table_is_standardised_on_train_with_the_declared_profile(tmp_path):
    frame = clinic_frame()
    frame.to_csv(tmp_path / "clinic.csv", index=False)
    bundle = load_dataset("table", {"path": str(tmp_path / "clinic.csv"), **CLINIC})
    assert bundle.feature_names == ("age", "sex", "bp") and bundle.input_shape == (3,)
    raw = frame[["age", "sex", "bp"]].to_numpy(float)
    mean, std = raw[:20].mean(0), raw[:20].std(0)
    np.testing.assert_allclose(bundle.val.x.numpy(), (raw[20:30] - mean) / std, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bundle.bounds[1].numpy(), ((raw - mean) / std).max(0), rtol=1e-5)
    assert bundle.test.y.tolist() == frame["label"][30:].tolist()
    rules = dict(bundle.table_profile.features)
    assert rules["sex"].fraction == 0.0 and rules["bp"].grid is None
    assert rules["age"].fraction == pytest.approx(1.0 / std[0]) and rules["bp"].fraction == pytest.approx(4.0 / std[2])
    assert rules["age"].grid == pytest.approx((-mean[0] / std[0], 1 / std[0]))


@pytest.mark.parametrize("suffix", [".tsv", ".jsonl", ".parquet"])
def test_tsv_jsonl_and_parquet_tables_load_like_the_csv(tmp_path, suffix):
    frame = clinic_frame()
    frame.to_csv(tmp_path / "t.csv", index=False)
    write = {".tsv": lambda p: frame.to_csv(p, sep="\t", index=False),
             ".jsonl": lambda p: frame.to_json(p, orient="records", lines=True),
             ".parquet": lambda p: frame.to_parquet(p)}
    write[suffix](tmp_path / f"t{suffix}")
    a = load_dataset("table", {"path": str(tmp_path / "t.csv"), **CLINIC})
    b = load_dataset("table", {"path": str(tmp_path / f"t{suffix}"), **CLINIC})
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)


def _cell(column, row, value):
    def change(frame):
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
    return change


@pytest.mark.parametrize(
    "change, params, match",
    [
        (_cell("bp", 7, None), {}, r"clinic\.csv: column 'bp' holds NaN at row 7"),
        (_cell("bp", 3, "high"), {}, r"column 'bp' holds 'high' at row 3; it must hold numbers"),
        (_cell("label", 11, 0.5), {}, r"column 'label' holds 0\.5 at row 11.*integers"),
        (_cell("label", 12, 2), {"num_classes": 2}, r"column 'label' holds label 2 at row 12, outside \[0, 2\)"),
        (_cell("age", 5, 33.5), {}, r"column 'age' holds 33\.5 at row 5; it is declared an integer feature"),
        (_cell("split", 9, "dev"), {}, r"column 'split' holds 'dev' at row 9; a split name must be one of"),
        (lambda f: f.pop("label"), {}, r"clinic\.csv: missing column\(s\) 'label'"),
        (lambda f: f.pop("bp"), {}, r"\(declared features\): missing feature column\(s\) 'bp'"),
        (lambda f: f.__setitem__("bp", 1.0), {}, r"column\(s\) \['bp'\] are constant on the train split"),
        (lambda f: f.__setitem__("weight", 70.0 + np.arange(len(f))), {}, r"every feature needs a budget .*missing: \['weight'\]"),
    ],
)
def test_malformed_tables_fail_naming_column_and_row(tmp_path, change, params, match):
    frame = clinic_frame()
    change(frame)
    frame.to_csv(tmp_path / "clinic.csv", index=False)
    with pytest.raises(ValueError, match=match):
        load_dataset("table", {"path": str(tmp_path / "clinic.csv"), **CLINIC, **params})


def test_table_parameters_are_checked_before_reading():
    with pytest.raises(ValueError, match="exactly one of them"):
        datasets.get("table", path="t.csv")
    with pytest.raises(ValueError, match="immutable and also have an error budget"):
        datasets.get("table", path="t.csv", split_column="s", immutable_features=["a"], error_budgets={"a": 1.0})
    with pytest.raises(ValueError, match=r"error_budgets\['a'\] must be a finite number >= 0"):
        datasets.get("table", path="t.csv", split_column="s", error_budgets={"a": -1.0})


# -- text files ----------------------------------------------------------------------------------
TEXTS = ["clear lungs no effusion", "enlarged heart noted", "clear heart and lungs", "large effusion left"]


def notes_frame(n=20) -> pd.DataFrame:
    return pd.DataFrame({"report": [TEXTS[i % 4] for i in range(n)], "y": [i % 2 for i in range(n)]})


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_a_text_file_builds_the_vocabulary_from_train(tmp_path, suffix):
    frame = notes_frame()
    write = {".csv": lambda p: frame.to_csv(p, index=False), ".tsv": lambda p: frame.to_csv(p, sep="\t", index=False),
             ".jsonl": lambda p: frame.to_json(p, orient="records", lines=True)}
    write[suffix](tmp_path / f"notes{suffix}")
    bundle = load_dataset("text_file", {"path": str(tmp_path / f"notes{suffix}"), "text_column": "report",
                                        "label_column": "y", "max_len": 6, "val_fraction": 0.2, "test_fraction": 0.2})
    assert bundle.modality == "text" and bundle.input_shape == (2, 6) and len(bundle.train) == 12
    decoded = bundle.vocabulary.decode(bundle.test.x)
    assert all(text in TEXTS for text in decoded)  # every word of these texts occurs >= 2 times in train
    assert [TEXTS.index(t) % 2 for t in decoded] == bundle.test.y.tolist()


@pytest.mark.parametrize(
    "change, match",
    [
        (_cell("report", 4, None), r"column 'report' holds nan at row 4; every row needs a text"),
        (_cell("report", 6, "--- !"), r"column 'report' holds '--- !' at row 6; every row needs a text"),
        (_cell("y", 2, "yes"), r"column 'y' holds 'yes' at row 2; it must hold numbers"),
        (lambda f: f.insert(0, "text", f.pop("report")), r"missing column\(s\) 'report'"),
    ],
)
def test_malformed_text_files_fail_naming_column_and_row(tmp_path, change, match):
    frame = notes_frame()
    change(frame)
    frame.to_csv(tmp_path / "notes.csv", index=False)
    with pytest.raises(ValueError, match=match):
        load_dataset("text_file", {"path": str(tmp_path / "notes.csv"), "text_column": "report", "label_column": "y",
                                   "val_fraction": 0.2, "test_fraction": 0.2})


# -- content digest and the load cache -------------------------------------------------------------
def test_the_digest_follows_content_not_path(tmp_path):
    raw = ct_arrays()
    path = save(tmp_path, raw)
    moved = tmp_path / "elsewhere" / "renamed.npz"
    moved.parent.mkdir()
    shutil.copy(path, moved)
    digest = datasets.get("image_arrays", path=path).content_digest()
    assert len(digest) == 64 and datasets.get("image_arrays", path=str(moved)).content_digest() == digest
    raw["test_labels"][0] = 1 - raw["test_labels"][0]
    save(tmp_path, raw)
    assert datasets.get("image_arrays", path=path).content_digest() != digest
    assert datasets.get("wdbc").content_digest() is None


def test_a_folder_digest_changes_when_an_image_moves_to_another_class(tmp_path):
    write_images(tmp_path / "xr")
    shutil.copytree(tmp_path / "xr", tmp_path / "copy")
    digest = datasets.get("image_folder", path=str(tmp_path / "xr")).content_digest()
    assert datasets.get("image_folder", path=str(tmp_path / "copy")).content_digest() == digest
    (tmp_path / "copy" / "train" / "normal" / "0.png").rename(tmp_path / "copy" / "train" / "tumour" / "9.png")
    assert datasets.get("image_folder", path=str(tmp_path / "copy")).content_digest() != digest


def test_a_rewritten_file_is_loaded_again_not_served_from_the_cache(tmp_path):
    frame = clinic_frame()
    frame.to_csv(tmp_path / "clinic.csv", index=False)
    params = {"path": str(tmp_path / "clinic.csv"), **CLINIC}
    first = load_dataset("table", params)
    assert load_dataset("table", params) is first
    frame["label"] = 1 - frame["label"]
    frame.to_csv(tmp_path / "clinic.csv", index=False)
    assert load_dataset("table", params).test.y.tolist() == (1 - first.test.y).tolist()


# -- end to end: each loader's bundle through a model, an explainer and an attack or metric ---------
def _arrays(tmp_path):
    return load_dataset("image_arrays", {"path": save(tmp_path, ct_arrays()), "value_range": [-1000, 3000], "normalize": "range"})


def _volumes(tmp_path):
    raw = {f"{s}_{p}": RNG.integers(0, 256, (4, 3, 4, 4)) if p == "images" else np.arange(4) % 2
           for s in ("train", "val", "test") for p in ("images", "labels")}
    return load_dataset("volume_arrays", {"path": save(tmp_path, raw), "value_range": [0, 255], "normalize": "range"})


def _folder(tmp_path):
    write_images(tmp_path / "xr", rgb=True)
    return load_dataset("image_folder", {"path": str(tmp_path / "xr")})


def _table(tmp_path):
    clinic_frame().to_csv(tmp_path / "clinic.csv", index=False)
    return load_dataset("table", {"path": str(tmp_path / "clinic.csv"), **CLINIC})


@pytest.mark.parametrize("make", [_arrays, _volumes, _folder, _table])
def test_each_continuous_bundle_runs_an_explainer_an_attack_and_a_metric(tmp_path, make):
    bundle = make(tmp_path)
    torch.manual_seed(0)
    model = models.build("mlp", {"hidden": (8,)}, input_shape=bundle.input_shape, num_classes=bundle.num_classes).eval()
    x = bundle.test.x
    target = model(x).argmax(1)
    gradient = explainers.get("gradient")
    attack = attacks.get("random_noise", eps=0.05, n_tries=2)
    result = attack(model, gradient, x, target, **bundle.attack_inputs(attack.inputs))
    low, high = bundle.bounds
    assert bool(((result.x_adv >= low - 1e-6) & (result.x_adv <= high + 1e-6)).all())
    score = metrics.get("spearman")(gradient(model, x, target), gradient(model, result.x_adv, target))
    assert score.shape == (len(x),) and bool(score.isfinite().all())


def test_the_clinical_attack_uses_the_tables_declared_profile(tmp_path):
    bundle = _table(tmp_path)
    torch.manual_seed(0)
    model = models.build("mlp", {"hidden": (8,)}, input_shape=(3,), num_classes=2).eval()
    x = bundle.test.x
    attack = attacks.get("clinical", profile="data", steps=5, k=1)
    result = attack(model, explainers.get("gradient"), x, model(x).argmax(1), **bundle.attack_inputs(attack.inputs))
    rules = dict(bundle.table_profile.features)
    moved = result.x_adv - x
    assert bool((moved[:, 1] == 0).all())  # sex: immutable
    assert bool((moved[:, 2].abs() <= rules["bp"].fraction + 1e-6).all())  # bp: within 4 mmHg
    steps = moved[:, 0] / rules["age"].grid[1]
    assert bool(((steps - steps.round()).abs() < 1e-3).all() and (steps.abs() <= 1 + 1e-3).all())  # age: ±1 year
    with pytest.raises(ValueError, match="which declares none"):
        attack(model, explainers.get("gradient"), x, 0, bounds=bundle.bounds, table_profile=None)


def test_a_text_bundle_runs_through_a_text_model_and_a_word_explainer(tmp_path):
    notes_frame().to_csv(tmp_path / "notes.csv", index=False)
    bundle = load_dataset("text_file", {"path": str(tmp_path / "notes.csv"), "text_column": "report", "label_column": "y",
                                        "max_len": 6, "val_fraction": 0.2, "test_fraction": 0.2})
    torch.manual_seed(0)
    model = models.build("text_cnn", {}, input_shape=bundle.input_shape, num_classes=2,
                         vocab_size=len(bundle.vocabulary)).eval()
    attr = WordAttribution(explainers.get("gradient"))(model, bundle.test.x, 0)
    assert attr.shape == (len(bundle.test), 6) and bool(attr.isfinite().all())
    assert bool((attr[~word_mask(bundle.test.x)] == 0).all())  # no attribution beyond each text's words


def test_registered_names_and_json_round_trip_of_params():
    assert {"image_arrays", "volume_arrays", "image_folder", "table", "text_file"} <= set(datasets.names())
    params = {"path": "x.csv", "split_column": "s", "error_budgets": {"a": 1.0}}
    assert json.loads(json.dumps(datasets.registry.validate("table", params)))["error_budgets"] == {"a": 1.0}


def test_image_arrays_reproduce_the_medmnist_loader_and_both_have_a_content_digest(tmp_path):
    raw = {f"{s}_{p}": RNG.integers(0, 256, (n, 5, 5, 3), dtype=np.uint8) if p == "images" else (np.arange(n) % 2)[:, None]
           for s, n in (("train", 6), ("val", 2), ("test", 2)) for p in ("images", "labels")}
    path = save(tmp_path, raw, "rgbmnist.npz")
    reference = load_dataset("medmnist", {"file": path})
    ours = load_dataset("image_arrays", {"path": path, "value_range": [0, 255], "normalize": "range", "channels_last": True})
    assert torch.equal(reference.train.x, ours.train.x) and torch.equal(reference.test.y, ours.test.y)
    assert datasets.get("medmnist", file=path).content_digest() == datasets.get("image_arrays", path=path).content_digest()
