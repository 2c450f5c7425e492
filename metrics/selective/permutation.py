"""Permutation tests of a salient region: the baselines of Miwa et al.'s experiments.

Miwa, Duy & Takeuchi (ICLR 2023) compare their selective p-values with two permutation tests
(authors' code: ``si4dnn/si/util.py``, ``permutation_test_mean`` / ``_abs`` and their ``_2``
variants, reported as ``permutation1`` and ``permutation2`` in their result CSVs). Each redraws
the whole procedure — the saliency map, its region S and the statistic — on permuted data, so
the selection is repeated inside every permutation:

* ``scheme="pixels"`` (permutation1): one random permutation π of the spatial positions is
  applied to x and to the references alike (all channels of a position move together); the
  region is recomputed on x∘π and the statistic on (x∘π, r∘π);
* ``scheme="pooled"`` (permutation2, "mean" and "abs" only): the values of x and of the m
  references are pooled and redealt at random, the first n to x and the rest to the
  references (their mean is used), then region and statistic as above.

The statistic is the raw T = ηᵀY of :mod:`salbench.metrics.selective.region_test` ("back",
"neighbor", "mean", "abs"), not standardised, as in the authors' code; the p-value is two-sided:

    p = (1 + #{b : |T_b| >= |T_obs|}) / (1 + B),

over the B permutations whose region is valid (non-empty, with a non-empty comparison set).
Departure: the authors use #{…}/B, which can be 0 and is slightly anti-conservative; the +1 form
is exactly valid under exchangeability (Phipson & Smyth, "Permutation p-values should never be
zero", 2010). Under H0 with exchangeable pixels (the null images of the paper's experiments)
both schemes are valid; they do not test the same hypothesis as the selective p-value when the
pixels are not exchangeable (e.g. a fixed background).

Randomness: each image's permutations come from a generator seeded by ``seed`` and the image's
bytes (:func:`salbench.core.seeding.sample_seed`), so a value does not depend on the other
images of the batch.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.ReLU()).double()
    >>> x = torch.randn(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> results = permutation_test(net, x, threshold=0.1, permutations=49)
    >>> [0 < r.p_value <= 1 for r in results]
    [True, True]
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from salbench.core.seeding import sample_seed
from salbench.core.validation import check_input, check_positive_int, check_seed
from salbench.metrics.selective.piecewise import LinePropagator
from salbench.metrics.selective.region_test import (
    _capacity,
    _comparison_set,
    _invalid_reasons,
    _lines,
    _observed_region,
    _reference,
    _region_event,
    _RegionEvent,
)
from torch import Tensor, nn

__all__ = ["permutation_test", "PermutationResult", "SCHEMES"]

SCHEMES = ("pixels", "pooled")
"""The permutation schemes (the authors' permutation1 and permutation2)."""


@dataclasses.dataclass(frozen=True)
class PermutationResult:
    """One image's permutation test: ``p_value`` (NaN with a ``reason`` if the observed region is
    invalid), the observed raw statistic, and how many permutations gave a valid region."""

    p_value: float
    statistic: float
    valid_permutations: int
    reason: str | None


def permutation_test(
    saliency_model: nn.Module,
    x: Tensor,
    *,
    x_ref: Tensor | None = None,
    threshold: float,
    statistic: Literal["back", "neighbor", "mean", "abs"] = "back",
    normalize: bool = False,
    inclusive: bool = False,
    neighborhood: int = 1,
    scheme: Literal["pixels", "pooled"] = "pixels",
    permutations: int = 1000,
    seed: int = 0,
) -> list[PermutationResult]:
    """Permutation p-values of the salient regions of a batch of inputs (see the module docstring).

    Args:
        saliency_model, x, x_ref, threshold, statistic, normalize, inclusive, neighborhood: as for
            :func:`~salbench.metrics.selective.salient_region_test` (the same region and statistic).
        scheme: "pixels" (permute positions) or "pooled" (redeal x's and the references' values).
        permutations: B >= 1 permutations per image.
        seed: the seed of every image's generator (mixed with the image's bytes).

    Returns:
        One :class:`PermutationResult` per input, in order.
    """
    check_input(x, "x", min_dim=3)
    check_positive_int(permutations, "permutations")
    check_seed(seed)
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if scheme == "pooled" and statistic not in ("mean", "abs"):
        raise ValueError(f"scheme='pooled' redeals x and its references, so it needs statistic 'mean' or 'abs', got {statistic!r}")
    propagator = LinePropagator(saliency_model)
    event = _region_event(threshold, normalize, inclusive, propagator)
    device = next((p.device for p in saliency_model.parameters()), x.device)
    x = x.detach().to(device=device, dtype=torch.float64)
    ref, n_ref = _reference(x_ref, x, statistic, device)
    refs = None if x_ref is None else x_ref.detach().to(device=device, dtype=torch.float64)
    if refs is not None and refs.dim() == x.dim():
        refs = refs.unsqueeze(1)  # (N, m, C, *S)
    test = _Statistic(propagator, event, statistic, neighborhood, n_ref)
    results = []
    for i in range(x.shape[0]):
        observed, reason = test(x[i : i + 1], None if ref is None else ref[i : i + 1])
        if reason is not None:
            results.append(PermutationResult(float("nan"), float("nan"), 0, reason))
            continue
        generator = torch.Generator(device="cpu").manual_seed(sample_seed(seed, x[i]))
        xs, rs = _permuted(x[i], None if refs is None else refs[i], scheme, permutations, generator)
        values = torch.cat([test.valid(xs[b], None if rs is None else rs[b]) for b in torch.arange(permutations).split(_capacity(x))])
        extreme = int((values.abs() >= abs(observed) * (1 - 1e-12)).sum())
        results.append(PermutationResult((1 + extreme) / (1 + values.numel()), observed, values.numel(), None))
    return results


class _Statistic:
    """The region and the raw statistic T of images, as the selective test defines them."""

    def __init__(self, propagator: LinePropagator, event: _RegionEvent, statistic: str, neighborhood: int, n_ref: int):
        self.propagator, self.event, self.statistic, self.neighborhood, self.n_ref = propagator, event, statistic, neighborhood, n_ref

    def _regions(self, x: Tensor) -> tuple[Tensor, Tensor, list[str | None]]:
        region = _observed_region(self.propagator, self.event, x)
        other = _comparison_set(region.view(x.shape[0], *x.shape[2:]), self.statistic, self.neighborhood)
        return region, other, _invalid_reasons(region, other, self.statistic)

    def __call__(self, x: Tensor, ref: Tensor | None) -> tuple[float, str | None]:
        region, other, (reason,) = self._regions(x)
        if reason is not None:
            return float("nan"), reason
        return float(_lines(self.statistic, x, ref, max(self.n_ref, 1), region, other, 1.0).statistic), None

    def valid(self, x: Tensor, ref: Tensor | None) -> Tensor:
        """T of the images whose region is valid (the others are left out)."""
        region, other, reasons = self._regions(x)
        keep = torch.tensor([r is None for r in reasons], device=x.device)
        if not bool(keep.any()):
            return x.new_zeros(0)
        ref = None if ref is None else ref[keep]
        return _lines(self.statistic, x[keep], ref, max(self.n_ref, 1), region[keep], other[keep], 1.0).statistic


def _permuted(x: Tensor, refs: Tensor | None, scheme: str, count: int, generator: Tensor) -> tuple[Tensor, Tensor | None]:
    """(B, C, *S) permuted copies of x and (B, C, *S) mean references (or None)."""
    if scheme == "pixels":
        positions = x[0].numel()
        order = torch.stack([torch.randperm(positions, generator=generator) for _ in range(count)]).to(x.device)
        xs = x.flatten(1)[:, order].permute(1, 0, 2).reshape(count, *x.shape)
        if refs is None:
            return xs, None
        mean = refs.mean(0).flatten(1)[:, order].permute(1, 0, 2).reshape(count, *x.shape)
        return xs, mean
    pool = torch.cat([x.unsqueeze(0), refs]).flatten()  # x and its m references, every value
    order = torch.stack([torch.randperm(pool.numel(), generator=generator) for _ in range(count)]).to(x.device)
    dealt = pool[order].view(count, 1 + refs.shape[0], *x.shape)
    return dealt[:, 0], dealt[:, 1:].mean(1)
