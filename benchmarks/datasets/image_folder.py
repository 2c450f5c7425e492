"""A folder of the user's images (PNG, JPEG, ...), read with the Hugging Face ``datasets`` image-folder loader.

Layout (the ``imagefolder`` builder's, nothing downloaded): ``ROOT/<split>/<class>/<file>``
with split folders ``train``, ``val`` (or ``validation``) and ``test``, labels from the class
folder names (sorted: the first name is class 0); or, without split folders,
``ROOT/<class>/<file>`` split here with ``val_fraction`` and ``test_fraction``. Instead of class
folders, a ``metadata.csv`` (or ``.jsonl``) beside the images with a ``file_name`` column and
an integer ``label_column`` gives the labels (the builder's metadata convention).

Images are converted to 8-bit grayscale (``grayscale``) or RGB, resized to ``size`` (H, W) if
given (bilinear; otherwise every image must have the first one's size), and scaled to [0, 1]
(x / 255, float32); bounds (0, 1). Images of 16-bit or float modes are an error (use
:mod:`salbench.datasets.arrays` for them), as is an unreadable file (named).

Example:
    >>> import tempfile, numpy as np
    >>> from PIL import Image
    >>> rng = np.random.default_rng(0)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     for split in ("train", "val", "test"):
    ...         for label in ("normal", "tumour"):
    ...             folder = Path(d, split, label); folder.mkdir(parents=True)
    ...             for i in range(2):
    ...                 Image.fromarray(rng.integers(0, 256, (5, 7), dtype=np.uint8)).save(folder / f"{i}.png")
    ...     bundle = ImageFolder(path=d, grayscale=True).load()
    >>> bundle.input_shape, len(bundle.train), bundle.num_classes
    ((1, 5, 7), 4, 2)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from salbench.datasets import register
from salbench.datasets.base import DataBundle, Split
from salbench.datasets.checks import check_num_classes, labels
from salbench.core.files import folder_files
from salbench.datasets.user import SPLITS, UserDataset

__all__ = ["ImageFolder"]

_BUILDER_SPLITS = {"train": "train", "validation": "val", "test": "test"}
_EIGHT_BIT = ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr")


@register("image_folder")
class ImageFolder(UserDataset):
    """A folder of images (class sub-folders or a metadata.csv) through the ``datasets`` image-folder loader.

    See :mod:`salbench.datasets.image_folder` for the layout and conversions.

    Args:
        size: (H, W) every image is resized to; None: keep the size (all images must share it).
        grayscale: convert to one channel (else RGB, three).
        label_column: the label column of a metadata file (class folders give ``label``).
        path, data_dir, num_classes, val_fraction, test_fraction, seed: see
            :class:`~salbench.datasets.user.UserDataset`; ``path`` is the folder ROOT.
    """

    modality = "image"

    def __init__(self, size: tuple[int, int] | None = None, grayscale: bool = False, label_column: str = "label",
                 **common):
        super().__init__(**common)
        if size is not None and not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size):
            raise ValueError(f"size must be [H, W], two integers >= 1, got {size!r}")
        self.size, self.grayscale, self.label_column = size, grayscale, label_column

    def data_files(self) -> dict[str, Path]:
        return folder_files(self.locate_folder())

    def load(self) -> DataBundle:
        root = self.locate_folder()
        parts, names = self._read(root)
        shape = None if self.size is None else tuple(self.size)
        x, y = {}, {}
        for split, (paths, values, where) in parts.items():
            y[split] = labels(values, where)
            x[split], shape = _decode(paths, shape, self.grayscale, resize=self.size is not None)
        num_classes = check_num_classes(
            ((y[s], parts[s][2]) for s in SPLITS), self.num_classes if self.num_classes is not None else names
        )
        splits = {s: Split(x=x[s], y=torch.from_numpy(y[s])) for s in SPLITS}
        return DataBundle(**splits, num_classes=num_classes, modality="image",
                          bounds=(torch.tensor(0.0), torch.tensor(1.0)))

    def _read(self, root: Path) -> tuple[dict[str, tuple[list[str], np.ndarray, str]], int | None]:
        """Per split: image paths, labels and where the labels come from; the number of class folders (or None)."""
        import datasets  # the Hugging Face library (a dependency); imported here, as it takes a second
        with tempfile.TemporaryDirectory() as cache:
            try:
                loaded = datasets.load_dataset("imagefolder", data_dir=str(root), cache_dir=cache)
            except (ValueError, FileNotFoundError, datasets.exceptions.DatasetGenerationError) as err:
                raise ValueError(f"{root}: the datasets image-folder loader cannot read it: {err}") from err
            found = sorted(loaded)
            unknown = [s for s in found if s not in _BUILDER_SPLITS]
            if unknown:
                raise ValueError(f"{root}: split folder(s) {unknown} are not train, val/validation or test")
            features = loaded[found[0]].features
            if self.label_column not in features:
                raise ValueError(
                    f"{root}: no labels: neither class sub-folders nor a metadata file with column "
                    f"{self.label_column!r} (found columns {sorted(features)})"
                )
            label = features[self.label_column]
            names = len(label.names) if isinstance(label, datasets.ClassLabel) else None
            where = f"{root}: labels ({self.label_column!r})"
            table = {
                _BUILDER_SPLITS[s]: loaded[s].cast_column("image", datasets.Image(decode=False)) for s in found
            }
            parts = {
                s: ([item["path"] for item in t["image"]], np.asarray(t[self.label_column]), f"{where}, split {s}")
                for s, t in table.items()
            }
        if set(parts) == {"train"}:
            if not self.pooled:
                raise ValueError(
                    f"{root} has no split folders (train, val, test): give val_fraction and test_fraction to split it"
                )
            paths, values, _ = parts["train"]
            rows = self.split_pool(labels(values, where), where)
            return {s: ([paths[i] for i in r], values[r], f"{where}, split {s}") for s, r in rows.items()}, names
        self.no_pool(str(root))
        missing = [s for s in SPLITS if s not in parts]
        if missing:
            raise ValueError(f"{root}: missing split folder(s) {missing}; give train, val (or validation) and test")
        return parts, names


def _decode(paths: list[str], shape: tuple[int, int] | None, grayscale: bool,
            resize: bool) -> tuple[torch.Tensor, tuple[int, int]]:
    """The images at ``paths`` as float32 (N, C, H, W) in [0, 1] and their (H, W): resized to ``shape``, or
    checked to have it (None: the first image's)."""
    out = []
    for path in paths:
        try:
            with Image.open(path) as image:
                if image.mode not in _EIGHT_BIT:
                    raise ValueError(
                        f"{path}: image mode {image.mode!r} is not 8-bit; convert it, or load such images with "
                        "image_arrays (any dtype, declared value range)"
                    )
                image = image.convert("L" if grayscale else "RGB")
        except (OSError, UnidentifiedImageError) as err:
            raise ValueError(f"{path} is not a readable image: {err}") from err
        shape = shape or (image.height, image.width)
        if resize:
            image = image.resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
        elif (image.height, image.width) != shape:
            raise ValueError(
                f"{path} is {image.height}×{image.width} (H×W) but the images before it are {shape[0]}×{shape[1]}; "
                "give size = [H, W] to resize every image"
            )
        pixels = np.asarray(image)
        out.append(pixels[None] if grayscale else pixels.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out)).float().div_(255.0), shape
