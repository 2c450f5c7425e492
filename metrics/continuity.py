"""Continuity of a saliency map along a sequence of translations of the input (Montavon et al. 2018)."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from salbench.core.applicability import SPATIAL
from salbench.core.validation import check_positive_int
from salbench.explainers.base import Explainer
from salbench.metrics import register
from salbench.metrics.base import MetricOutput
from salbench.metrics.neighbourhood import max_over_kept
from salbench.metrics.recompute import RecomputingMetric, explain_rows, notes_where
from torch import Tensor, nn

__all__ = ["Continuity", "translations"]

UNMOVED_NOTE = "no translation changed the input (it is constant along its last axis), so no ratio ‖ΔE‖₁ / ‖Δx‖₂ is defined"


def translations(x: Tensor, shifts: Tensor, fill: Tensor) -> Tensor:
    """(N, K, *x.shape[1:]): x shifted by ``shifts[k]`` positions along its last axis, the
    vacated positions set to ``fill`` (N,) per sample: x′[..., j] = x[..., j − t] where 0 <= j − t < W.

    >>> translations(torch.tensor([[[1.0, 2.0, 3.0]]]), torch.tensor([1, -2]), torch.tensor([0.0]))
    tensor([[[[0., 1., 2.]],
    <BLANKLINE>
             [[3., 0., 0.]]]])
    """
    width = x.shape[-1]
    source = torch.arange(width, device=x.device) - shifts[:, None].to(x.device)  # (K, W)
    inside = (source >= 0) & (source < width)
    moved = x[..., source.clamp(0, width - 1).flatten()].unflatten(-1, source.shape).movedim(-2, 1)
    inside = inside.view(1, len(shifts), *[1] * (x.dim() - 2), width)
    return torch.where(inside, moved, fill.view(-1, *[1] * x.dim()))


@register("continuity")
class Continuity(RecomputingMetric):
    """Largest change of the map per unit change of the input along a sequence of translations (Montavon et al. 2018).

    Montavon, Samek, Müller, "Methods for Interpreting and Understanding Deep Neural
    Networks", Digital Signal Processing 73 (2018), §7.2 "Explanation continuity": an
    explanation should vary little where the input does; its discontinuity is

        C(x) = max_{x′} ‖E(x) − E(x′)‖₁ / ‖x − x′‖₂

    over a sequence of inputs x′ that move continuously away from x; the paper translates a
    digit horizontally. As in Quantus's ``Continuity``: K = ``n_steps`` translations along the
    last axis (width W; the time axis of a signal) by t_k = −W + k·⌊(2W+1)/K⌋ positions,
    k = 1..K, the vacated positions filled with ``fill`` (Quantus's "black": the sample's
    minimum), the map recomputed for the same target. Norms over all non-batch elements; a
    translation that leaves x unchanged (t_k = 0) is left out. Lower is better. Deterministic
    (no draws).

    Departures: Quantus takes |E| and divides each map by its maximum by default
    (``abs=True, normalise=True``) and adds 1e-9 to ‖x − x′‖; the paper uses the raw relevance
    map, as here (``absolute=True`` gives Quantus's |E|). With ``abs=False, normalise=False``
    Quantus's values equal these. Quantus accepts only 2-D images; this works on any input
    with a last spatial axis (signals, images, volumes).

    Args:
        n_steps: K >= 1, at most 2W + 1; None: min(28, 2W + 1) (Quantus's default is 28).
        fill: "min" (each sample's minimum) or a constant.
        absolute: compare |E| instead of E.
        batch_size: translated inputs per explainer call, >= 1.

    Example:
        >>> import torch
        >>> from salbench import explainers, metrics
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 2))
        >>> x = torch.rand(3, 1, 8)  # a linear model's gradient map never changes
        >>> metrics.get("continuity", n_steps=4)(model, explainers.get("gradient"), x, 1)
        tensor([0., 0., 0.])
    """

    category: ClassVar[str] = "robustness"
    higher_is_better = False
    modalities = SPATIAL  # a translation needs a spatial axis
    test_params: ClassVar[dict] = {"n_steps": 5}

    def __init__(self, n_steps: int | None = None, fill: float | Literal["min"] = "min", absolute: bool = False, batch_size: int = 256):
        if n_steps is not None:
            check_positive_int(n_steps, "n_steps")
        if fill != "min" and (isinstance(fill, bool) or not isinstance(fill, (int, float)) or not torch.isfinite(torch.tensor(fill))):
            raise ValueError(f"fill must be 'min' or a finite number, got {fill!r}")
        check_positive_int(batch_size, "batch_size")
        self.n_steps = n_steps
        self.fill = fill
        self.absolute = absolute
        self.batch_size = batch_size

    def shifts(self, width: int) -> Tensor:
        """The K translations t_k = −W + k·⌊(2W+1)/K⌋, k = 1..K, for a last axis of ``width`` positions."""
        n_steps = min(28, 2 * width + 1) if self.n_steps is None else self.n_steps
        if n_steps > 2 * width + 1:
            raise ValueError(f"n_steps must be at most 2W + 1 = {2 * width + 1} for a last axis of W = {width}, got {n_steps}")
        return -width + torch.arange(1, n_steps + 1) * ((2 * width + 1) // n_steps)

    def score(self, model: nn.Module, explainer: Explainer, x: Tensor, target: Tensor, attr: Tensor) -> MetricOutput:
        if x.dim() < 3:
            raise ValueError(f"continuity translates along a spatial axis: x must be (N, C, *spatial), got shape {tuple(x.shape)}")
        fill = x.flatten(1).amin(dim=1) if self.fill == "min" else torch.full((len(x),), float(self.fill), dtype=x.dtype, device=x.device)
        shifts = self.shifts(x.shape[-1])
        moved = translations(x, shifts, fill)
        rows = moved.flatten(0, 1)
        attr_moved = explain_rows(explainer, model, rows, target.repeat_interleave(len(shifts)), self.batch_size).view_as(moved)
        if self.absolute:
            attr, attr_moved = attr.abs(), attr_moved.abs()
        change = (attr[:, None] - attr_moved).flatten(2).abs().sum(dim=2)
        step = (x[:, None] - moved).flatten(2).norm(dim=2)
        kept = step > 0
        values = max_over_kept(change / torch.where(kept, step, 1.0), kept)
        return MetricOutput(values, None, notes_where(values.isnan(), UNMOVED_NOTE))
