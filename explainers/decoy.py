"""Decoy-enhanced saliency: the range of a base explainer's maps over decoys (Lu, Guo, Xing, Noble 2021)."""

from __future__ import annotations

import torch
from salbench import explainers
from salbench.core.applicability import SPATIAL
from salbench.core.registry import ParamsOf
from salbench.explainers import register
from salbench.explainers.base import Explainer
from salbench.explainers.decoys import DecoyGenerator, Decoys, DecoyStats
from torch import Tensor, nn


@register("decoy")
class DecoyEnhanced(Explainer):
    """Decoy-enhanced saliency: per-feature range of a base explainer over decoys of x (Lu et al. 2021).

    Lu, Guo, Xing, Noble, "DANCE: Enhancing saliency maps using decoys", ICML 2021
    (arXiv:2002.00526; also circulated as "Robust saliency maps with decoy-enhanced saliency
    score" and "Decoy-enhanced saliency maps"). No public code exists; this is salbench's
    reference implementation.

    1. Decoys x̃_1 … x̃_J of x at layer ℓ (J = 2 × number of patch masks), by
       :class:`salbench.explainers.decoys.DecoyGenerator` (its parameters are this explainer's
       ``layer`` … ``batch_size``). Decoys that fail the layer constraint are discarded;
       their per-sample count is in :attr:`last_stats` after each call.
    2. The base explainer E (``base``, built by ``explainers.get(base, **base_params)``) on
       every kept decoy, ``batch_size`` decoys per call.
    3. The decoy-enhanced score Z_i = max_j E(x̃_j)_i − min_j E(x̃_j)_i over the kept
       decoys of the sample; with ``include_input`` the input x (the trivial decoy, feasible
       for every mask) joins them. The paper takes the range over its decoys, x not among
       them, so the default is False; then a sample without any kept decoy is an error.
    4. Post-processing, each step switchable, as in the paper's visualisation: the maximum
       over channels (``channel_max``; the (N, 1, *spatial) map is repeated over the channels so
       that the result has the shape of x), winsorisation (``winsorize``: values above the
       per-sample ``percentile``-th percentile, linear interpolation as ``torch.quantile``,
       are set to it) and scaling to [0, 1] (``normalize``: division by the per-sample
       maximum; an all-zero map stays zero).

    Departures from the paper: its absolute value is no step here (a range is never
    negative, so it would change nothing); scaling divides by the maximum rather than
    min–max (Z >= 0, and this keeps Z = 0 as "no variation across decoys"); x may join the
    decoys (``include_input``, off by default).

    Defaults: the base is the gradient, 3×3 patches tiling the image (intervals of 3 for signals, 3³ cubes for volumes), ε = 0.05 at the last
    convolution, 20 signed steps of 0.02 (suited to inputs in [0, 1]; pass ``bounds``).
    With ε = 0 at an injective layer every decoy is x up to float error, so Z ≈ 0.

    Not differentiable: the decoys come out of an iterative optimisation with discrete
    choices (best feasible iterate, backtracking, discarding) and Z is a max − min, so a
    graph through them would not give the derivative of the explanation. Attacks therefore
    optimise against the base explainer (``attack_proxy``): a transfer attack, the threat
    model under which the paper reports robustness; every metric is computed on the decoy maps.

    Randomness: decoy generation is deterministic; a random base explainer (SmoothGrad)
    takes its seed in ``base_params`` (the suite's cell seed does not reach it). SmoothGrad
    restarts its seed at every call and gives every row of a call the same noise draws ε_j
    (scaled by the row's own σ), so every decoy of every sample is smoothed with the same
    ε_1 … ε_n, whatever ``batch_size`` (common random numbers: the range measures how the
    decoys differ, not Monte-Carlo spread), and an attacked x′ sees the same noise as x.

    Args:
        base: name of the registered base explainer E.
        base_params: parameters of the base explainer (None: its defaults).
        include_input: add x to the decoys the range is taken over.
        channel_max: maximum over channels (x must have a channel dimension: (N, C, *spatial)).
        winsorize: clip each map at its ``percentile``-th percentile.
        percentile: the winsorisation percentile, in (0, 100].
        normalize: divide each map by its maximum.
        **generator: layer, eps, patch, stride, steps, lr, penalty, backtrack, bounds,
            batch_size: decoy generation, see :class:`salbench.explainers.decoys.DecoyGenerator`
            (its defaults; the registry lists them as this explainer's parameters).

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 2))
        >>> decoy = explainers.get("decoy", layer="0", bounds=(0.0, 1.0), steps=5)
        >>> attr = decoy(net, torch.rand(2, 1, 6, 6), 1)
        >>> attr.shape, bool(attr.amax() <= 1), decoy.last_stats.kept.tolist()
        (torch.Size([2, 1, 6, 6]), True, [8, 8])
    """

    differentiable = False
    modalities = SPATIAL  # patches over 1 to 3 spatial dimensions
    requires = ("conv",)  # layer "auto": the last Conv1d/2d/3d of the input's dimension

    def __init__(
        self,
        base: str = "gradient",
        base_params: dict | None = None,
        include_input: bool = False,
        channel_max: bool = True,
        winsorize: bool = True,
        percentile: float = 95.0,
        normalize: bool = True,
        **generator: ParamsOf[DecoyGenerator],
    ):
        if isinstance(percentile, bool) or not (isinstance(percentile, (int, float)) and 0 < percentile <= 100):
            raise ValueError(f"percentile must lie in (0, 100], got {percentile!r}")
        self.base = base
        self.base_params = dict(base_params or {})
        self._base = explainers.get(base, **self.base_params)
        self.generator = DecoyGenerator(**generator)
        self.include_input, self.channel_max = include_input, channel_max
        self.winsorize, self.percentile, self.normalize = winsorize, float(percentile), normalize
        self._last_stats: DecoyStats | None = None

    @property
    def attack_proxy(self) -> Explainer:
        """The base explainer: attacks on decoy maps are transfer attacks from it."""
        return self._base

    @property
    def last_stats(self) -> DecoyStats | None:
        """Kept and discarded decoys per sample of the last call (None before the first)."""
        return self._last_stats

    def decoys(self, model: nn.Module, x: Tensor) -> Decoys:
        """The decoys of x (N, C, *spatial) that the explanation is built from."""
        return self.generator(model, x)

    def attribute(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        decoys = self.decoys(model, x)
        self._last_stats = decoys.stats()
        score = self.decoy_range(model, decoys, x, target)
        if self.channel_max:
            score = score.amax(1, keepdim=True)
        flat = score.flatten(1)
        if self.winsorize:
            flat = flat.minimum(torch.quantile(flat, self.percentile / 100, dim=1, keepdim=True))
        if self.normalize:
            top = flat.amax(1, keepdim=True)
            flat = torch.where(top > 0, flat / torch.where(top > 0, top, 1), 0)
        return flat.view(score.shape).expand(x.shape).contiguous()

    def decoy_range(self, model: nn.Module, decoys: Decoys, x: Tensor, target: Tensor) -> Tensor:
        """Z = max_j E(x̃_j) − min_j E(x̃_j) over the kept decoys (and x with ``include_input``)."""
        inputs, kept = decoys.inputs, decoys.kept
        if self.include_input:
            inputs = torch.cat([inputs, x.detach()[:, None]], 1)
            kept = torch.cat([kept, torch.ones_like(kept[:, :1])], 1)
        empty = ~kept.any(1)
        if empty.any():
            raise ValueError(
                f"sample(s) {empty.nonzero().flatten().tolist()} have no decoy that satisfies the layer constraint; "
                "raise eps or backtrack, or set include_input=True to take the range with x included"
            )
        sample = torch.arange(x.shape[0], device=x.device)[:, None].expand(kept.shape)[kept]
        maps = self.base_maps(model, inputs[kept], target[sample])
        fill = torch.full((*kept.shape, *x.shape[1:]), torch.inf, dtype=maps.dtype, device=maps.device)
        high = fill.neg().index_put((kept,), maps).amax(1)
        low = fill.index_put((kept,), maps).amin(1)
        return high - low

    def base_maps(self, model: nn.Module, rows: Tensor, target: Tensor) -> Tensor:
        """E on each row, ``batch_size`` rows per call."""
        per_call = self.generator.batch_size or rows.shape[0]
        parts = [
            self._base(model, rows[i : i + per_call], target[i : i + per_call]).detach()
            for i in range(0, rows.shape[0], per_call)
        ]
        return torch.cat(parts)
