"""RISE: the class probability averaged over random smooth masks, weighted by each mask (Petsiuk et al. 2018)."""

from __future__ import annotations

import math

import torch
from salbench.core.applicability import CONTINUOUS
from salbench.core.seeding import SampleStreams
from salbench.core.validation import check_fraction, check_logits_target, check_positive_int, check_seed
from salbench.explainers import register
from salbench.explainers.base import Explainer
from salbench.explainers.layers import resize
from torch import Tensor, nn


@register("rise")
class RISE(Explainer):
    """RISE: E = Σ_j f_c(x ⊙ M_j) M_j / (n p) over n random masks M_j (Petsiuk et al. 2018).

    Petsiuk, Das, Saenko 2018, "RISE: randomized input sampling for explanation of black-box
    models", BMVC. f_c is the softmax probability of the target class (as in the paper), the
    masks M_j are drawn independently, and E[M] = p normalises the Monte Carlo sum:
    E(x) = (1 / (n·p)) Σ_{j=1..n} f_c(x ⊙ M_j) · M_j.

    Masks of a sample with spatial dimensions S (signals (N, C, L), images (N, C, H, W),
    volumes (N, C, D, H, W); masks are shared by the channels): a binary grid of ``cells``
    per dimension, each cell 1 with probability ``p``, is upsampled (linear / bilinear /
    trilinear) to (cells + 1)·⌈S_d / cells⌉ per dimension and cropped to S with a random
    shift in [0, ⌈S_d / cells⌉) per dimension (the paper's smooth masks). On tables (N, F)
    every feature is its own cell: M_j is binary, each feature kept with probability ``p``
    (``cells`` does not apply). Defaults: n = 4000, cells = 7, p = 0.5 (the paper's for
    ResNet-50 on ImageNet). Departure from the authors' code: their upsampling reflects at the
    grid's border, torch's interpolation clamps (the first and last half cell differ
    slightly); the paper draws one set of masks for all images, here every sample draws its
    own (below).

    Randomness: each sample draws from its own stream (:mod:`salbench.core.seeding`,
    seeded by ``seed`` and the sample's bytes), per mask j = 1..n in order: the cells
    (∏ cells uniforms U, a cell is 1 where U < p; tables: F uniforms) then, for spatial data,
    one uniform u per spatial dimension (shift ⌊u · ⌈S_d / cells⌉⌋). So a sample's map does not
    depend on its batch, ``batch_size`` or the device. Not differentiable (the masks change
    with every change of x).

    Batching: a sample's masked inputs are evaluated ``batch_size`` at a time (never mixing
    samples), without gradients; masks are built chunk by chunk.

    Args:
        n_masks: number of masks n per sample, >= 1.
        cells: grid cells per spatial dimension, >= 1.
        p: probability that a cell is kept, in (0, 1].
        seed: seed of the mask streams, >= 0.
        batch_size: masked inputs per forward pass, >= 1.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                       nn.Flatten(), nn.Linear(4, 3))
        >>> rise = explainers.get("rise", n_masks=64, cells=4, seed=1)
        >>> rise(model, torch.randn(2, 3, 8, 8), 1).shape
        torch.Size([2, 3, 8, 8])
    """

    differentiable = False
    modalities = CONTINUOUS
    test_params = {"n_masks": 64}

    def __init__(self, n_masks: int = 4000, cells: int = 7, p: float = 0.5, seed: int = 0, batch_size: int = 256):
        check_positive_int(n_masks, "n_masks")
        check_positive_int(cells, "cells")
        check_fraction(p, "p")
        check_seed(seed)
        check_positive_int(batch_size, "batch_size")
        self.n_masks = n_masks
        self.cells = cells
        self.p = p
        self.seed = seed
        self.batch_size = batch_size

    def attribute(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        if x.dim() > 5:
            raise ValueError(
                f"RISE masks tables (N, F) or inputs (N, C, *spatial) with 1 to 3 spatial dimensions, got shape {tuple(x.shape)}"
            )
        x, spatial = x.detach(), x.dim() > 2
        shape = x.shape[2:] if spatial else x.shape[1:]  # what a mask covers
        draws_per_mask = self.cells ** len(shape) + len(shape) if spatial else shape[0]
        streams = SampleStreams(self.seed, x)
        saliency = torch.zeros((len(x), *shape), dtype=x.dtype, device=x.device)
        with torch.no_grad():
            check_logits_target(model(x[:1]), target)  # the class range, before any masked pass
            for i in range(len(x)):
                row = torch.tensor([i])
                for start in range(0, self.n_masks, self.batch_size):
                    count = min(self.batch_size, self.n_masks - start)
                    draws = streams.rand((count, draws_per_mask), like=x, rows=row)[0]
                    masks = self._masks(draws, shape) if spatial else (draws < self.p).to(x.dtype)
                    masked = x[i] * (masks.unsqueeze(1) if spatial else masks)
                    probability = model(masked).softmax(1)[:, target[i]]
                    saliency[i] += torch.tensordot(probability, masks, dims=1)
        saliency = saliency / (self.n_masks * self.p)
        return saliency.unsqueeze(1).expand(x.shape).contiguous() if spatial else saliency

    def _masks(self, draws: Tensor, shape: torch.Size) -> Tensor:
        """(count, *shape) smooth masks from (count, ∏cells + d) uniforms: the grid, then the shifts."""
        d = len(shape)
        cell = [math.ceil(size / self.cells) for size in shape]
        grid = (draws[:, : self.cells**d] < self.p).to(draws.dtype).view(-1, 1, *[self.cells] * d)
        smooth = resize(grid, tuple((self.cells + 1) * c for c in cell))[:, 0]
        shifts = (draws[:, self.cells**d :] * torch.tensor(cell, dtype=draws.dtype, device=draws.device)).floor().long()
        index = [torch.arange(len(draws), device=draws.device).view(-1, *[1] * d)]
        for k, size in enumerate(shape):
            offsets = torch.arange(size, device=draws.device).view(1, *[1] * k, size, *[1] * (d - 1 - k))
            index.append(shifts[:, k].view(-1, *[1] * d) + offsets)
        return smooth[tuple(index)]
