"""Images and 3-D volumes of any numeric dtype from the user's ``.npz`` archive or folder of ``.npy`` files.

Layout (MedMNIST's, which MedMNIST3D shares): the arrays are named by key, in a ``.npz``
archive (``path`` ends in ``.npz``) or as ``KEY.npy`` files in a folder (any other ``path``):

- splits given: ``train_images``, ``train_labels``, ``val_images``, ``val_labels``,
  ``test_images``, ``test_labels``, and optionally ``train_masks``, ``val_masks``,
  ``test_masks`` (all three or none);
- one pool (``val_fraction`` and ``test_fraction`` given): ``images``, ``labels``, optionally ``masks``.

Images are (N, H, W) (one channel) or (N, C, H, W) (``channels_last``: (N, H, W, C)); volumes
(N, D, H, W) or (N, C, D, H, W) (``channels_last``: (N, D, H, W, C)); any integer or float
dtype. Labels (N,) or (N, 1) integers. Masks are the ground-truth relevant region, 0/1 or bool,
of the image's shape or without its channel axis (then shared by every channel).

Values: ``value_range`` [low, high] declares the range the raw values lie in (e.g. CT in
Hounsfield units [-1000, 3000], uint8 pixels [0, 255]); a value outside it is an error (file,
key, first bad row), never clipped. ``normalize``: ``"none"`` (raw values as float32; bounds
= value_range, or unbounded if none is declared), ``"range"`` ((x − low)/(high − low), in
[0, 1]; bounds (0, 1); needs value_range), ``"zscore"`` ((x − mean)/std per channel, with the
given ``mean`` and ``std`` (one value, or one per channel) or, if None, the train split's
(population std, so nothing of val/test leaks); bounds = value_range in those units, or
unbounded).

Example:
    >>> import tempfile, numpy as np
    >>> rng = np.random.default_rng(0)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     ct = rng.integers(-1000, 3000, size=(20, 6, 6)).astype(np.int16)
    ...     np.savez(f"{d}/ct.npz", images=ct, labels=np.arange(20) % 2)
    ...     bundle = ImageArrays(path=f"{d}/ct.npz", value_range=[-1000, 3000], normalize="range",
    ...                          val_fraction=0.25, test_fraction=0.25).load()
    >>> bundle.input_shape, len(bundle.train), bool(bundle.train.x.min() >= 0 and bundle.train.x.max() <= 1)
    ((1, 6, 6), 10, True)
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from salbench.datasets import register
from salbench.datasets.base import DataBundle, Split
from salbench.datasets.checks import (
    check_count,
    check_finite,
    check_in_range,
    check_num_classes,
    first_bad,
    labels,
    require,
)
from salbench.datasets.user import SPLITS, UserDataset

__all__ = ["ImageArrays", "VolumeArrays"]

Normalize = Literal["none", "range", "zscore"]
Bounds = tuple[torch.Tensor, torch.Tensor] | None


class _Arrays:
    """The named arrays of a ``.npz`` archive or of a folder of ``KEY.npy`` files (no pickles)."""

    def __init__(self, path: Path):
        self.path = path
        if path.is_dir():
            self.files = {p.stem: p for p in sorted(path.glob("*.npy"))}
            self._archive = None
        else:
            try:
                self._archive = np.load(path, allow_pickle=False)
            except (OSError, ValueError, zipfile.BadZipFile) as err:
                raise ValueError(f"{path} is not a readable .npz archive: {err}") from err
            if not hasattr(self._archive, "files"):
                raise ValueError(f"{path} holds a single array; a .npz archive of named arrays is needed")
            self.files = {key: path for key in self._archive.files}

    def where(self, key: str) -> str:
        return f"{self.path}: key {key!r}" if self._archive is not None else str(self.path / f"{key}.npy")

    def __getitem__(self, key: str) -> np.ndarray:
        if self._archive is not None:
            return self._archive[key]
        return np.load(self.files[key], allow_pickle=False)

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()


@register("image_arrays")
class ImageArrays(UserDataset):
    """Images of any numeric dtype from a .npz / folder of .npy (MedMNIST layout), with value range and normalisation.

    See :mod:`salbench.datasets.arrays` for the layout and the value rules.

    Args:
        value_range: [low, high] of the raw values, checked on every value; None: not declared.
        normalize: "none", "range" (to [0, 1]; needs value_range) or "zscore".
        mean, std: for "zscore", one value or one per channel; None: the train split's.
        channels_last: the channel axis is the last one of the stored arrays.
        path, data_dir, num_classes, val_fraction, test_fraction, seed: see
            :class:`~salbench.datasets.user.UserDataset`; ``path`` ending in ``.npz`` is an
            archive, any other a folder of ``.npy`` files.
    """

    modality = "image"
    masks = None  # ``*_masks`` arrays are optional
    spatial_dims = 2

    def __init__(
        self,
        value_range: list[float] | None = None,
        normalize: Normalize = "none",
        mean: list[float] | None = None,
        std: list[float] | None = None,
        channels_last: bool = False,
        **common,
    ):
        super().__init__(**common)
        if normalize not in ("none", "range", "zscore"):
            raise ValueError(f"normalize must be 'none', 'range' or 'zscore', got {normalize!r}")
        if value_range is not None and not (
            len(value_range) == 2 and all(np.isfinite(value_range)) and value_range[0] < value_range[1]
        ):
            raise ValueError(f"value_range must be [low, high] with finite low < high, got {value_range!r}")
        if normalize == "range" and value_range is None:
            raise ValueError("normalize='range' maps value_range to [0, 1], so value_range must be declared")
        if normalize != "zscore" and (mean is not None or std is not None):
            raise ValueError(f"mean and std apply only to normalize='zscore', got normalize={normalize!r}")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither (the train split's)")
        if std is not None and not all(np.isfinite(std) & (np.asarray(std, dtype=float) > 0)):
            raise ValueError(f"std must hold finite numbers > 0, got {std!r}")
        if mean is not None and not all(np.isfinite(mean)):
            raise ValueError(f"mean must hold finite numbers, got {mean!r}")
        self.value_range, self.normalize, self.mean, self.std = value_range, normalize, mean, std
        self.channels_last = channels_last

    def _source(self) -> Path:
        return self.locate_file() if self.path.endswith(".npz") else self.locate_folder()

    def data_files(self) -> dict[str, Path]:
        source = self._source()
        if source.is_dir():
            return {p.name: p for p in sorted(source.glob("*.npy"))}
        return {"data": source}

    def load(self) -> DataBundle:
        arrays = _Arrays(self._source())
        try:
            raw = self._read(arrays)
        finally:
            arrays.close()
        num_classes = check_num_classes(((y, where) for _, y, _, where in raw.values()), self.num_classes)
        x = {name: part[0] for name, part in raw.items()}
        x, bounds = self._normalise(x)
        splits = {name: Split(x=x[name], y=torch.from_numpy(raw[name][1]), mask=raw[name][2]) for name in SPLITS}
        return DataBundle(**splits, num_classes=num_classes, modality=self.modality, bounds=bounds)

    def _read(self, arrays: _Arrays) -> dict[str, tuple[np.ndarray, np.ndarray, torch.Tensor | None, str]]:
        """Per split: checked images (N, C, *spatial), labels, masks (or None) and where the labels are."""
        if self.pooled:
            require(("images", "labels"), arrays.files, str(arrays.path), "key")
            x, y, mask = self._part(arrays, "images", "labels", "masks")
            rows = self.split_pool(y, arrays.where("labels"))
            where = arrays.where("labels")
            return {n: (x[i], y[i], None if mask is None else mask[i], f"{where} (split {n})") for n, i in rows.items()}
        if "images" in arrays.files and "train_images" not in arrays.files:
            raise ValueError(
                f"{arrays.path} holds one pool (key 'images'): give val_fraction and test_fraction to split it"
            )
        require([f"{s}_{part}" for s in SPLITS for part in ("images", "labels")], arrays.files, str(arrays.path), "key")
        with_masks = [s for s in SPLITS if f"{s}_masks" in arrays.files]
        if with_masks and len(with_masks) != len(SPLITS):
            require([f"{s}_masks" for s in SPLITS], arrays.files, str(arrays.path), "key")
        return {
            s: (*self._part(arrays, f"{s}_images", f"{s}_labels", f"{s}_masks"), arrays.where(f"{s}_labels"))
            for s in SPLITS
        }

    def _part(self, arrays: _Arrays, images_key: str, labels_key: str, masks_key: str):
        where = arrays.where(images_key)
        x = arrays[images_key]
        check_finite(x, where)
        if self.value_range is not None:
            check_in_range(x, *self.value_range, where)
        x = self._channels_first(x, where)
        y = labels(arrays[labels_key], arrays.where(labels_key))
        check_count(len(y), len(x), arrays.where(labels_key), where)
        mask = self._mask(arrays[masks_key], x.shape, arrays.where(masks_key), where) if masks_key in arrays.files else None
        return x, y, mask

    def _channels_first(self, x: np.ndarray, where: str) -> np.ndarray:
        s = self.spatial_dims
        if x.ndim == s + 1:
            return x[:, None]
        if x.ndim == s + 2:
            return np.moveaxis(x, -1, 1) if self.channels_last else x
        names = "H, W" if s == 2 else "D, H, W"
        channel = f"(N, {names}, C)" if self.channels_last else f"(N, C, {names})"
        raise ValueError(f"{where} must have shape (N, {names}) or {channel}, got {x.shape}")

    def _mask(self, mask: np.ndarray, shape: tuple[int, ...], where: str, images: str) -> torch.Tensor:
        if mask.ndim == len(shape) and self.channels_last:
            mask = np.moveaxis(mask, -1, 1)
        if mask.ndim == len(shape) - 1:
            mask = mask[:, None]
        fits = mask.ndim == len(shape) and mask.shape[1] in (1, shape[1])
        if not (fits and (mask.shape[0], *mask.shape[2:]) == (shape[0], *shape[2:])):
            raise ValueError(
                f"{where} has shape {mask.shape}, which does not match the images of {images} ({shape} channels first): "
                "a mask has the image's shape, or that shape without the channel axis"
            )
        check_finite(mask, where)
        bad = (mask != 0) & (mask != 1)
        if bad.any():
            value = mask.flat[np.argmax(bad)].item()
            raise ValueError(f"{where} holds {value!r} at {first_bad(bad)}; a mask holds 0/1 or bool")
        return torch.from_numpy(np.broadcast_to(mask != 0, shape).copy())

    def _normalise(self, x: dict[str, np.ndarray]) -> tuple[dict[str, torch.Tensor], Bounds]:
        low, high = self.value_range if self.value_range is not None else (None, None)
        channels = x["train"].shape[1]
        view = (channels,) + (1,) * self.spatial_dims
        if self.normalize == "range":
            shift, scale = np.full(view, low, float), np.full(view, high - low, float)
        elif self.normalize == "zscore":
            shift, scale = self._moments(x["train"], channels, view)
        else:
            shift, scale = np.zeros(view), np.ones(view)
        out = {name: torch.from_numpy(((v - shift) / scale).astype(np.float32)) for name, v in x.items()}
        if low is None:
            return out, None
        bounds = (torch.from_numpy(((low - shift) / scale).astype(np.float32)),
                  torch.from_numpy(((high - shift) / scale).astype(np.float32)))
        return out, bounds

    def _moments(self, train: np.ndarray, channels: int, view: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        if self.mean is None:
            axes = tuple(a for a in range(train.ndim) if a != 1)
            mean, std = train.mean(axis=axes, dtype=np.float64), train.std(axis=axes, dtype=np.float64)
            if (std == 0).any():
                raise ValueError(
                    f"the train images of {self.path} are constant in channel(s) {np.flatnonzero(std == 0).tolist()}, "
                    "so their std is 0 and they cannot be z-scored; give mean and std or another normalize"
                )
            return mean.reshape(view), std.reshape(view)
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, channels):
                raise ValueError(f"{name} has {len(values)} values; give 1 or one per channel ({channels})")
        return (np.broadcast_to(np.asarray(self.mean, float), (channels,)).reshape(view),
                np.broadcast_to(np.asarray(self.std, float), (channels,)).reshape(view))


@register("volume_arrays")
class VolumeArrays(ImageArrays):
    """3-D volumes (N, D, H, W) of any numeric dtype from a .npz / folder of .npy (MedMNIST3D layout).

    :class:`ImageArrays` with one more spatial axis: volumes (N, D, H, W) or (N, C, D, H, W),
    masks likewise; x is (N, C, D, H, W). A MedMNIST3D archive (uint8) loads with
    ``value_range = [0, 255]`` and ``normalize = "range"``.
    """

    modality = "volume"
    spatial_dims = 3
