"""MedMNIST 2D image sets from their official ``.npz`` files (PneumoniaMNIST and any other)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from salbench.datasets import register
from salbench.datasets.base import DataBundle, Dataset, Split
from salbench.datasets.data_dir import ENV_VAR, find_data_file
from salbench.datasets.fetch import SOURCES
from torch import Tensor

__all__ = ["MedMNIST", "PneumoniaMNIST"]

_SPLITS = ("train", "val", "test")
_KEYS = tuple(f"{split}_{part}" for split in _SPLITS for part in ("images", "labels"))


@register("medmnist")
class MedMNIST(Dataset):
    """Any MedMNIST-layout .npz of 2D images with one class label per image.

    Data: MedMNIST v2 (Yang et al., "MedMNIST v2 - A large-scale lightweight benchmark for 2D
    and 3D biomedical image classification", Scientific Data 2023), CC BY 4.0 (DermaMNIST
    CC BY-NC 4.0). The archive holds ``train_images``, ``val_images``, ``test_images`` (uint8,
    (N, H, W) gray or (N, H, W, 3) RGB) and ``train_labels``, ``val_labels``, ``test_labels``
    ((N, 1) or (N,) integers); the official splits are used as they are.

    Images are scaled to [0, 1] (x / 255, float32) and get a channel dimension, (N, 1, H, W) or
    (N, 3, H, W); bounds are (0, 1). num_classes is the largest label + 1. Multi-label sets
    (labels (N, k), k > 1, e.g. ChestMNIST) and 3D volumes are rejected: the harness
    classifies one label per 2D image.

    Where the file is looked for: see :mod:`salbench.datasets.data_dir`. Nothing is
    downloaded here; ``salbench data fetch NAME --data-dir DIR`` downloads the official file.

    Args:
        file: a file name looked up in the data directory (e.g. "bloodmnist.npz"), or a path.
        data_dir: the directory holding the file; None searches ``$SALBENCH_DATA_DIR`` or
            ``../shared/data``.

    Example:
        >>> bundle = MedMNIST(file="pneumoniamnist.npz").load()  # doctest: +SKIP
        >>> bundle.input_shape, bundle.num_classes  # doctest: +SKIP
        ((1, 28, 28), 2)
    """

    modality = "image"

    def __init__(self, file: str, data_dir: str | None = None):
        if not isinstance(file, str) or not file:
            raise ValueError(f"file must be a non-empty file name or path of a .npz archive, got {file!r}")
        self.file, self.data_dir = file, data_dir

    def data_files(self) -> dict[str, Path]:
        return {"data": find_data_file(self.file, self.data_dir, how_to_get=_how_to_get(self.file))}

    def load(self) -> DataBundle:
        path = self.data_files()["data"]
        try:
            archive = np.load(path)
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            raise ValueError(f"{path} is not a readable .npz archive: {err}") from err
        with archive:
            if not hasattr(archive, "files"):
                raise ValueError(f"{path} holds a single array, not a MedMNIST .npz archive with keys {_KEYS}")
            missing = [k for k in _KEYS if k not in archive.files]
            if missing:
                raise ValueError(
                    f"{path} is not in the MedMNIST layout: missing key(s) {missing}; "
                    f"found {sorted(archive.files)}, need {list(_KEYS)}"
                )
            splits = {name: _split(archive, name, path) for name in _SPLITS}
        num_classes = int(max(s.y.max() for s in splits.values())) + 1
        if num_classes < 2:
            raise ValueError(f"{path} has a single class (every label is 0); a classifier needs at least 2")
        bounds = (torch.tensor(0.0), torch.tensor(1.0))
        return DataBundle(**splits, num_classes=num_classes, modality="image", bounds=bounds)


@register("pneumoniamnist")
class PneumoniaMNIST(MedMNIST):
    """PneumoniaMNIST: 28×28 paediatric chest X-rays, normal (0) vs pneumonia (1).

    The :class:`MedMNIST` loader with ``file="pneumoniamnist.npz"``. Source: Kermany et al.,
    Cell 2018, via MedMNIST v2 (official splits 4708/524/624). The copy in ``../shared/data``
    on the development machines is a class-balanced subset (2428/270/468) in the same layout.

    Args:
        data_dir: the directory holding pneumoniamnist.npz; None searches
            ``$SALBENCH_DATA_DIR`` or ``../shared/data``.

    Example:
        >>> PneumoniaMNIST().load().train.x.shape  # doctest: +SKIP
        torch.Size([2428, 1, 28, 28])
    """

    def __init__(self, data_dir: str | None = None):
        super().__init__(file="pneumoniamnist.npz", data_dir=data_dir)


def _split(archive, name: str, path: Path) -> Split:
    x = _images(archive[f"{name}_images"], f"{path}: {name}_images")
    return Split(x=x, y=_labels(archive[f"{name}_labels"], len(x), f"{path}: {name}_labels"))


def _images(images: np.ndarray, where: str) -> Tensor:
    if images.dtype != np.uint8:
        raise ValueError(f"{where} must be uint8 pixel values (MedMNIST layout), got dtype {images.dtype}")
    if images.ndim == 3:
        x = torch.from_numpy(images)[:, None]
    elif images.ndim == 4 and images.shape[-1] == 3:
        x = torch.from_numpy(images).permute(0, 3, 1, 2)
    else:
        raise ValueError(
            f"{where} must have shape (N, H, W) (gray) or (N, H, W, 3) (RGB), got {images.shape}; "
            "MedMNIST3D volumes load with data set 'volume_arrays' (value_range = [0, 255], normalize = 'range')"
        )
    return x.float().div_(255.0).contiguous()


def _labels(labels: np.ndarray, n_images: int, where: str) -> Tensor:
    if labels.ndim == 2 and labels.shape[1] > 1:
        raise ValueError(
            f"{where} has shape {labels.shape}: a multi-label data set (k = {labels.shape[1]} labels per image, "
            "e.g. ChestMNIST); salbench supports one class label per image"
        )
    if labels.ndim not in (1, 2) or labels.shape[0] != n_images:
        raise ValueError(f"{where} must have shape ({n_images}, 1) or ({n_images},), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{where} must hold integer class labels, got dtype {labels.dtype}")
    y = torch.from_numpy(labels.reshape(-1).astype(np.int64))
    if (y < 0).any():
        raise ValueError(f"{where} holds negative labels; class labels must be >= 0")
    return y


def _how_to_get(file: str) -> str:
    stem = Path(file).stem
    where = f"then pass data_dir=DIR or set {ENV_VAR}=DIR (or give file= a path)"
    if stem in SOURCES:
        return f"To get it: run `salbench data fetch {stem} --data-dir DIR` (needs internet), {where}."
    return f"To get it: download it from https://medmnist.com (Zenodo record 10519652) into a directory DIR, {where}."
