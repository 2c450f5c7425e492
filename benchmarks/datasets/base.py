"""What a data set loads into: three splits, the number of classes, the valid input range.

Image, volume, signal and tabular inputs are float32 tensors (channel-first: (N, C, H, W),
(N, C, D, H, W), (N, C, L); tables (N, F)), checked against the bundle's modality; text inputs
are long (N, 2, L) text tensors of token ids and word positions (:mod:`salbench.core.text`)
with the bundle's vocabulary.

A :class:`Dataset` is a registered component (typed ``__init__`` parameters) whose :meth:`load`
returns a :class:`DataBundle`. The bundle checks its own consistency when it is built, so a
third-party data set with mismatched shapes or labels fails at load time with a clear error
rather than deep inside a grid cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from salbench.attacks.profiles import TableProfile, check_table_profile
from salbench.core.applicability import MODALITIES
from salbench.core.text import Vocabulary, check_text_input
from salbench.core.files import content_digest
from torch import Tensor

__all__ = ["Split", "DataBundle", "Dataset"]

_SAMPLE_RANK = {
    "image": (3, "(C, H, W)"), "volume": (4, "(C, D, H, W)"), "signal": (2, "(C, L)"), "tabular": (1, "(F,)"),
    "text": (2, "(2, L)"),
}
"""Per modality: the rank of one sample and its shape in words (x is (N, *that))."""


@dataclass(frozen=True)
class Split:
    """One split of a data set.

    Attributes:
        x: float32 inputs, shape (N, *input_shape), N >= 1; for text, a long (N, 2, L) text
            tensor (token ids and word positions, see :mod:`salbench.core.text`).
        y: long class labels, shape (N,).
        mask: bool ground-truth relevant features, shape of ``x`` (synthetic data), else None
            (always None for text).
        reference: float32 reference images, shape (N, m, *input_shape): m >= 1 draws of the
            "normal" input for each sample (for tests against a reference, such as the
            selective p-values of Miwa et al.), else None (always None for text).
    """

    x: Tensor
    y: Tensor
    mask: Tensor | None = None
    reference: Tensor | None = None

    def __post_init__(self) -> None:
        if self.is_text:
            check_text_input(self.x, name="Split.x")
            if self.mask is not None or self.reference is not None:
                raise TypeError("Split.mask and Split.reference must be None for a text split (x is a long text tensor)")
        elif not isinstance(self.x, Tensor) or self.x.dtype != torch.float32 or self.x.dim() < 2:
            raise TypeError(
                f"Split.x must be a float32 tensor of shape (N, *input_shape), or a long (N, 2, L) text tensor, "
                f"got {_describe(self.x)}"
            )
        if self.x.shape[0] == 0:
            raise ValueError("Split.x is empty; every split needs at least one sample")
        if not isinstance(self.y, Tensor) or self.y.dtype != torch.long or self.y.shape != self.x.shape[:1]:
            raise TypeError(f"Split.y must be a long tensor of shape ({self.x.shape[0]},), got {_describe(self.y)}")
        if self.mask is not None and (
            not isinstance(self.mask, Tensor) or self.mask.dtype != torch.bool or self.mask.shape != self.x.shape
        ):
            raise TypeError(
                f"Split.mask must be None or a bool tensor of the shape of x {tuple(self.x.shape)}, "
                f"got {_describe(self.mask)}"
            )
        if self.reference is not None and (
            not isinstance(self.reference, Tensor) or self.reference.dtype != torch.float32
            or self.reference.dim() != self.x.dim() + 1 or self.reference.shape[0] != self.x.shape[0]
            or self.reference.shape[1] < 1 or self.reference.shape[2:] != self.x.shape[1:]
        ):
            raise TypeError(
                f"Split.reference must be None or a float32 tensor of shape ({self.x.shape[0]}, m, "
                f"{', '.join(map(str, self.x.shape[1:]))}) with m >= 1, got {_describe(self.reference)}"
            )

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def is_text(self) -> bool:
        """Whether ``x`` is a text tensor (a long tensor)."""
        return isinstance(self.x, Tensor) and self.x.dtype == torch.long


@dataclass(frozen=True)
class DataBundle:
    """A loaded data set: train/val/test splits and what the harness needs to know about them.

    Attributes:
        train, val, test: the splits; all have the same input shape.
        num_classes: number of classes (>= 2); every label lies in [0, num_classes).
        modality: one of :data:`salbench.core.applicability.MODALITIES`: "image" (x is
            (N, C, H, W)), "volume" (N, C, D, H, W), "signal" (N, C, L), "tabular" (x is (N, F))
            or "text" (x is a long (N, 2, L) text tensor; input_shape is (2, L)).
        bounds: valid input range (low, high), each a tensor broadcastable to one sample
            (``input_shape``); None means unbounded. Attacks project onto it. None for text.
        feature_names: one name per feature for tabular data, else None.
        vocabulary: the vocabulary of the token ids, for and only for text; every id of every
            split is < len(vocabulary).
        table_profile: for tabular data only, the measurement rules of each column (budgets,
            immutable and integer features) that the ``clinical`` attack takes from the data set
            (:class:`salbench.attacks.profiles.TableProfile`; its names are the feature names), else None.

    The tensors are shared by every user of a cached bundle: do not modify them in place.
    """

    train: Split
    val: Split
    test: Split
    num_classes: int
    modality: str
    bounds: tuple[Tensor, Tensor] | None = None
    feature_names: tuple[str, ...] | None = None
    vocabulary: Vocabulary | None = None
    table_profile: TableProfile | None = None

    def __post_init__(self) -> None:
        shape = self.input_shape
        for name in ("val", "test"):
            other = tuple(getattr(self, name).x.shape[1:])
            if other != shape:
                raise ValueError(f"the {name} split has input shape {other} but the train split has {shape}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {self.num_classes!r}")
        for name in ("train", "val", "test"):
            y = getattr(self, name).y
            if y.min() < 0 or y.max() >= self.num_classes:
                raise ValueError(
                    f"the {name} split has labels in [{y.min().item()}, {y.max().item()}], "
                    f"outside [0, {self.num_classes}) for num_classes={self.num_classes}"
                )
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        self._check_text()  # a text tensor where floats belong (or the reverse) first: its shape means nothing then
        if len(shape) != _SAMPLE_RANK[self.modality][0]:
            raise ValueError(
                f"modality {self.modality!r} needs samples of shape {_SAMPLE_RANK[self.modality][1]}, "
                f"but the splits hold samples of shape {shape}"
            )
        if self.bounds is not None:
            self._check_bounds(shape)
        if self.feature_names is not None and len(self.feature_names) != self.train.x[0].numel():
            raise ValueError(
                f"feature_names has {len(self.feature_names)} names for {self.train.x[0].numel()} features"
            )
        if self.table_profile is not None:
            self._check_table_profile()

    def _check_table_profile(self) -> None:
        if not isinstance(self.table_profile, TableProfile) or self.modality != "tabular":
            raise TypeError(
                f"table_profile must be None or a TableProfile of a tabular data set, got {type(self.table_profile).__name__} "
                f"for modality {self.modality!r}"
            )
        check_table_profile(self.table_profile)
        if self.table_profile.names != self.feature_names:
            raise ValueError(
                f"table_profile {self.table_profile.name!r} names the columns {self.table_profile.names}, "
                f"but the data set's feature_names are {self.feature_names}"
            )

    def _check_text(self) -> None:
        text = self.modality == "text"
        for name in ("train", "val", "test"):
            if getattr(self, name).is_text != text:
                raise TypeError(
                    f"the {name} split's x is {_describe(getattr(self, name).x)}; modality {self.modality!r} needs "
                    + ("a long (N, 2, L) text tensor" if text else "a float32 tensor")
                )
        if not text:
            if self.vocabulary is not None:
                raise ValueError(f"vocabulary must be None for modality {self.modality!r} (it is for text only)")
            return
        if not isinstance(self.vocabulary, Vocabulary):
            raise TypeError(f"modality 'text' needs vocabulary, a Vocabulary, got {type(self.vocabulary).__name__}")
        if self.bounds is not None or self.feature_names is not None:
            raise ValueError("bounds and feature_names must be None for modality 'text'")
        for name in ("train", "val", "test"):
            top = getattr(self, name).x[:, 0].max().item()
            if top >= len(self.vocabulary):
                raise ValueError(
                    f"the {name} split holds token id {top}, outside the vocabulary of {len(self.vocabulary)} words"
                )

    def _check_bounds(self, shape: tuple[int, ...]) -> None:
        pair = isinstance(self.bounds, tuple) and len(self.bounds) == 2
        if not (pair and all(isinstance(b, Tensor) for b in self.bounds)):
            raise TypeError(f"bounds must be None or a pair of tensors (low, high), got {self.bounds!r}")
        low, high = self.bounds
        try:
            torch.broadcast_shapes(low.shape, high.shape, shape)
        except RuntimeError as err:
            raise ValueError(
                f"bounds of shapes {tuple(low.shape)} and {tuple(high.shape)} "
                f"do not broadcast to the input shape {shape}"
            ) from err
        if (low > high).any():
            raise ValueError("bounds: low exceeds high for some feature")

    def attack_inputs(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The attack inputs ``names`` (an attack's declared ``inputs``, :class:`salbench.attacks.base.AttackInputs`)
        from this data set: ``bounds``, the text ``vocabulary``, the ``corpus`` (the train split's x),
        the ``table_profile``.

        Example:
            >>> from salbench.datasets import load_dataset
            >>> load_dataset("wdbc").attack_inputs(("bounds",))["bounds"][0].shape
            torch.Size([30])
        """
        available = {
            "bounds": self.bounds, "vocabulary": self.vocabulary, "corpus": self.train.x, "table_profile": self.table_profile,
        }
        unknown = [name for name in names if name not in available]
        if unknown:
            raise ValueError(f"no attack input named {', '.join(unknown)}; a data set provides {', '.join(available)}")
        return {name: available[name] for name in names}

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. (1, 28, 28), (30,) or (2, 128) for text."""
        return tuple(self.train.x.shape[1:])


class Dataset:
    """Base class of data sets: subclasses take typed ``__init__`` parameters and implement :meth:`load`.

    Loading happens through :func:`salbench.datasets.load_dataset`, which validates the
    parameters and caches the bundle in-process. Every data set declares its ``modality`` (one
    of :data:`salbench.core.applicability.MODALITIES`) as a class attribute, so that a suite
    knows which components apply before loading it; the loaded bundle must have it.
    """

    modality: ClassVar[str]
    masks: ClassVar[bool | None] = False
    """Whether its bundles hold ground-truth masks: True (always), False (never) or None (it
    depends on the files); :mod:`salbench.core.applicability` drops the metrics that need masks
    where this is False."""
    location_params: ClassVar[tuple[str, ...]] = ("data_dir",)
    """Parameters that say where the files lie, not what they hold: a cache key leaves them out
    where :meth:`content_digest` stands for the files' content."""

    def load(self) -> DataBundle:
        raise NotImplementedError

    def data_files(self) -> dict[str, Path]:
        """The files :meth:`load` reads, keyed by role (a name independent of where they lie,
        :mod:`salbench.core.files`); empty for a data set that reads no file of the user's.

        Raises FileNotFoundError (naming what was searched) when a file is missing.
        """
        return {}

    def content_digest(self) -> str | None:
        """SHA-256 of the roles and bytes of :meth:`data_files` (never of their paths), None if there are none.

        What a cache keys the data on: it changes when a file's content changes and not when
        the data are moved (:func:`salbench.core.files.content_digest`).
        """
        files = self.data_files()
        return content_digest(files) if files else None

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


def _describe(t: object) -> str:
    if isinstance(t, Tensor):
        return f"a {t.dtype} tensor of shape {tuple(t.shape)}"
    return type(t).__name__
