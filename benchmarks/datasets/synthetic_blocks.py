"""Gaussian noise with a planted block of shifted mean (Miwa, Duy, Takeuchi, ICLR 2023): images, volumes, signals.

One generative model in d = 1, 2 or 3 spatial dimensions: ``synthetic_blocks`` (images
(N, C, d, d)), ``synthetic_volumes`` ((N, C, d, d, d)) and ``synthetic_signals`` ((N, C, L)).
They differ only in ``spatial_dims``, their modality and the default side; every draw is made
by the same code (:meth:`SyntheticBlocks._split`, :func:`block_masks`).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from salbench.core.validation import check_positive, check_positive_int, check_seed
from salbench.datasets import register
from salbench.datasets.base import DataBundle, Dataset, Split
from torch import Tensor

__all__ = ["SyntheticBlocks", "SyntheticVolumes", "SyntheticSignals", "block_masks"]


@register("synthetic_blocks")
class SyntheticBlocks(Dataset):
    """Noise images d×d; class 1 has a square block shifted by +delta (ground-truth masks).

    Generative model (Miwa, Duy & Takeuchi, "Valid P-Value for Deep Learning-driven Salient
    Region", ICLR 2023, §5): every image is X = delta · y · 1_B + ε with ε ~ N(0, I) of shape
    (channels, size, size), label y ∈ {0, 1} and B a ``block`` × ``block`` square (all
    channels) whose top-left corner is uniform over the size − block + 1 positions per axis
    (``location="random"``) or centred at ((size − block) // 2, same) (``location="fixed"``).
    The mask of a sample is 1_B for class 1 and all-False for class 0; with delta = 0 there is
    no signal, so every mask is all-False (null data: X = ε for both classes). Classes are
    balanced: each split holds ⌊n/2⌋ or ⌈n/2⌉ samples of each class, in random order. Inputs
    are unbounded (``bounds`` None).

    The splits are drawn from independent ``torch.Generator`` streams seeded by
    3·seed + {0, 1, 2} (train, val, test), so a split does not change when another split's
    size does, and different seeds never share a stream.

    Selective-inference experiments (Miwa et al. §5; their ``experiment_one_reference``
    scripts) train the classifier once on signal images and then test its CAM region on fresh
    images: pure noise for the false positive rate, images that all carry a block of signal Δ
    for the power. ``test_delta`` sets the signal of the test split alone (None: ``delta``),
    ``test_labels="positive"`` makes every test image class 1 (so each carries the block when
    test_delta > 0, and the grid's target is the class whose CAM the authors test), and
    ``references`` = m adds m reference ("normal") images per test sample, X_ref ~ N(0, I),
    drawn from their own stream (seeded 2^40 + 3·seed + 2) so that no other tensor changes.
    With test_labels="positive" the labels are set after the same draws, so the noise of the
    test images is the same as with "balanced".

    ``task="position"`` (not in the paper) makes the class say *where* the block is rather than
    whether it is there: every sample carries the block (delta > 0), inside the first half of the
    last axis, [0, h) with h = size // 2, for class 0 and inside [h, 2h) for class 1 (its corner
    along that axis uniform over the h − block + 1 positions of its half, or centred in it with
    ``location="fixed"``; the other axes as above). Every sample then has a mask, which is what
    localisation metrics (pointing game, relevance mass) score against. The corners of the last
    axis are drawn after all other draws of the split, so the labels and noise are those of
    ``task="presence"``.

    Departures from the authors' code (``data.py`` of takeuchi-lab/selective_inference_dnn_salient_region):
    they add the signal by redrawing the block from N(Δ, 1), which has the same law as adding Δ
    to N(0, 1) noise. They train their classifier with blocks of side d/4 and test with d/2:
    ``train_block`` sets the side of the training and validation splits' blocks (None: ``block``,
    one side for all splits), so ``block=size // 2, train_block=size // 4`` is their data (their
    training corners range over d − d/4 positions per axis, one fewer than here).

    Args:
        size: image side d (>= 4); the paper uses 8, 16, 32, 64.
        channels: number of image channels.
        delta: mean shift of the block (>= 0); 0 gives null data.
        block: side of the block, in [1, size] ([1, size // 2] with task="position"); None means
            size // 2 (size // 4 with task="position", so that the block moves inside its half).
        train_block: side of the block in the training and validation splits (same range as
            ``block``); None means ``block``.
        location: "random" (uniform per sample) or "fixed" (centred).
        n_train, n_val, n_test: split sizes (each >= 2, so both classes occur).
        seed: seed of the generators.
        references: reference images per test sample (>= 0; 0: the test split has none).
        test_delta: mean shift of the block in the test split (>= 0); None means ``delta``.
        test_labels: "balanced" (both classes, as the other splits) or "positive" (all class 1).
        task: "presence" (class 1 carries the block, the paper's task) or "position" (the class
            says in which half of the last axis the block lies; every sample carries it).

    Example:
        >>> bundle = SyntheticBlocks(size=8, delta=2.0, n_train=4, n_val=2, n_test=2).load()
        >>> bundle.train.x.shape, int(bundle.train.mask[bundle.train.y == 1].sum())
        (torch.Size([4, 1, 8, 8]), 32)
    """

    modality = "image"
    masks = True
    spatial_dims = 2

    def __init__(
        self,
        size: int = 16,
        channels: int = 1,
        delta: float = 2.0,
        block: int | None = None,
        train_block: int | None = None,
        location: Literal["random", "fixed"] = "random",
        n_train: int = 2000,
        n_val: int = 500,
        n_test: int = 500,
        seed: int = 0,
        references: int = 0,
        test_delta: float | None = None,
        test_labels: Literal["balanced", "positive"] = "balanced",
        task: Literal["presence", "position"] = "presence",
    ):
        check_positive_int(size, "size")
        if size < 4:
            raise ValueError(f"size must be an integer >= 4 (the image side d), got {size!r}")
        check_positive_int(channels, "channels")
        check_positive(delta, "delta", allow_zero=True)
        for name, side in (("block", block), ("train_block", train_block)):
            if side is not None:
                check_positive_int(side, name)
                if side > size:
                    raise ValueError(f"{name} must lie in [1, size={size}] (or None for its default), got {side!r}")
        if location not in ("random", "fixed"):
            raise ValueError(f"location must be 'random' or 'fixed', got {location!r}")
        for name, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
            check_positive_int(n, name)
            if n < 2:
                raise ValueError(f"{name} must be an integer >= 2 so that both classes occur, got {n!r}")
        check_seed(seed)
        if isinstance(references, bool) or not isinstance(references, int) or references < 0:
            raise ValueError(f"references must be a non-negative integer (reference images per test sample), got {references!r}")
        if test_delta is not None:
            check_positive(test_delta, "test_delta", allow_zero=True)
        if test_labels not in ("balanced", "positive"):
            raise ValueError(f"test_labels must be 'balanced' or 'positive', got {test_labels!r}")
        if task not in ("presence", "position"):
            raise ValueError(f"task must be 'presence' or 'position', got {task!r}")
        for name, side in (("block", block), ("train_block", train_block)):
            if task == "position" and side is not None and side > size // 2:
                raise ValueError(
                    f"with task='position' the block must fit in half the last axis: {name} in [1, {size // 2}], got {side!r}"
                )
        self.size, self.channels, self.delta = size, channels, float(delta)
        self.task = task
        self.block = (size // 4 if task == "position" else size // 2) if block is None else block
        self.train_block = self.block if train_block is None else train_block
        self.location = location
        self.n_train, self.n_val, self.n_test = n_train, n_val, n_test
        self.seed = seed
        self.references = references
        self.test_delta = None if test_delta is None else float(test_delta)
        self.test_labels = test_labels

    def load(self) -> DataBundle:
        train = self._split(self.n_train, 3 * self.seed, self.delta, self.train_block)
        val = self._split(self.n_val, 3 * self.seed + 1, self.delta, self.train_block)
        test_delta = self.delta if self.test_delta is None else self.test_delta
        test = self._split(self.n_test, 3 * self.seed + 2, test_delta, self.block, self.test_labels == "positive")
        if self.references:
            gen = torch.Generator().manual_seed(2**40 + 3 * self.seed + 2)
            shape = (self.n_test, self.references, self.channels, *self._spatial)
            test = dataclasses.replace(test, reference=torch.randn(shape, generator=gen))
        return DataBundle(train, val, test, num_classes=2, modality=self.modality)

    @property
    def _spatial(self) -> tuple[int, ...]:
        return (self.size,) * self.spatial_dims

    def _split(self, n: int, stream: int, delta: float, block: int, positive: bool = False) -> Split:
        gen = torch.Generator().manual_seed(stream)
        y = (torch.arange(n) % 2)[torch.randperm(n, generator=gen)]
        if positive:
            y = torch.ones_like(y)
        noise = torch.randn(n, self.channels, *self._spatial, generator=gen)
        corners, carries = self._blocks(y, block, gen)
        planted = block_masks(corners, block, self.size) & carries.view(-1, *[1] * self.spatial_dims)
        mask = planted[:, None].expand(-1, self.channels, *self._spatial) & (delta > 0)
        x = noise + delta * mask.float()
        return Split(x=x, y=y, mask=mask.contiguous())

    def _blocks(self, y: Tensor, block: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """First corners (n, d) of the samples' ``block``-sided blocks and which samples carry theirs, drawn from ``gen``."""
        n, d = len(y), self.spatial_dims
        corners = self._starts(self.size - block + 1, (n, d), gen)
        if self.task == "presence":
            return corners, y == 1
        half = self.size // 2
        corners[:, -1] = self._starts(half - block + 1, (n,), gen) + y * half
        return corners, torch.ones_like(y, dtype=torch.bool)

    def _starts(self, span: int, shape: tuple[int, ...], gen: torch.Generator) -> Tensor:
        """Starts among ``span`` positions: uniform (location "random") or the centre one (location "fixed")."""
        if self.location == "random":
            return torch.randint(0, span, shape, generator=gen)
        return torch.full(shape, (span - 1) // 2)


def block_masks(corners: Tensor, block: int, size: int) -> Tensor:
    """Bool masks (n, size, …, size) of ``block``-sided cubes with first corners ``corners`` (n, d).

    d = 1 gives intervals, 2 squares (corners = (row, col)), 3 cubes (depth, row, col).

    Example:
        >>> block_masks(torch.tensor([[1], [3]]), 2, 5).int().tolist()
        [[0, 1, 1, 0, 0], [0, 0, 0, 1, 1]]
        >>> block_masks(torch.tensor([[0, 1, 2]]), 2, 4).sum().item(), block_masks(torch.tensor([[0, 1, 2]]), 2, 4)[0, 1, 2, 3].item()
        (8, True)
    """
    pos = torch.arange(size)
    inside = (pos >= corners[..., None]) & (pos < corners[..., None] + block)  # (n, d, size)
    mask = inside[:, 0]
    for axis in range(1, corners.shape[1]):
        mask = mask[..., None] & inside[:, axis].view(-1, *[1] * axis, size)
    return mask



@register("synthetic_volumes")
class SyntheticVolumes(SyntheticBlocks):
    """Noise volumes d×d×d; class 1 has a cubic block shifted by +delta (ground-truth masks).

    The generative model of :class:`SyntheticBlocks` (Miwa, Duy & Takeuchi, ICLR 2023) in three
    spatial dimensions: X = delta · y · 1_B + ε, ε ~ N(0, I) of shape (channels, size, size,
    size), B a cube of side ``block`` (all channels) with its first corner uniform per axis
    (``location="random"``) or centred (``"fixed"``); masks 1_B for class 1, all-False for
    class 0 or delta = 0; balanced classes; the same seeded streams, references, test_delta and
    test_labels. The class says whether the block is present, as in the paper's images, or with
    ``task="position"`` in which half of the last axis it lies.

    Args:
        size: volume side d (>= 4); default 16 (4096 voxels per channel, MedMNIST3D's 28 is
            the next size up).
        **common: channels, delta, block, train_block, location, n_train, n_val, n_test, seed, references,
            test_delta, test_labels, task: as for :class:`SyntheticBlocks`.

    Example:
        >>> bundle = SyntheticVolumes(size=4, block=2, n_train=4, n_val=2, n_test=2).load()
        >>> bundle.modality, bundle.input_shape, int(bundle.train.mask[bundle.train.y == 1].sum())
        ('volume', (1, 4, 4, 4), 16)
    """

    modality = "volume"
    spatial_dims = 3

    def __init__(self, size: int = 16, **common):
        super().__init__(size=size, **common)


@register("synthetic_signals")
class SyntheticSignals(SyntheticBlocks):
    """Noise signals of length L; class 1 has a bump (an interval of shifted mean) of +delta (ground-truth masks).

    The generative model of :class:`SyntheticBlocks` (Miwa, Duy & Takeuchi, ICLR 2023) in one
    dimension: X = delta · y · 1_B + ε, ε ~ N(0, I) of shape (channels, size), B an interval of
    length ``block`` (all channels) starting uniformly in [0, size − block] (``location="random"``)
    or centred (``"fixed"``); masks 1_B for class 1, all-False for class 0 or delta = 0; balanced
    classes; the same seeded streams, references, test_delta and test_labels. The class says
    whether the bump is present, or with ``task="position"`` in which half of the signal it lies
    (every signal then carries one).

    Args:
        size: signal length L (>= 4); default 128.
        **common: channels, delta, block, train_block, location, n_train, n_val, n_test, seed, references,
            test_delta, test_labels, task: as for :class:`SyntheticBlocks`.

    Example:
        >>> bundle = SyntheticSignals(size=16, block=4, location="fixed", n_train=4, n_val=2, n_test=2).load()
        >>> bundle.modality, bundle.input_shape, bundle.train.mask[bundle.train.y == 1][0, 0].nonzero().flatten().tolist()
        ('signal', (1, 16), [6, 7, 8, 9])
    """

    modality = "signal"
    spatial_dims = 1

    def __init__(self, size: int = 128, **common):
        super().__init__(size=size, **common)
