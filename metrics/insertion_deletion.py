"""Insertion and deletion curves and their areas (Petsiuk, Das, Saenko, BMVC 2018, RISE)."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from salbench.core.applicability import CONTINUOUS
from salbench.core.validation import (
    check_fraction,
    check_input,
    check_logits_target,
    check_positive_int,
    check_same_shape,
    check_target,
)
from salbench.metrics import register
from salbench.metrics.base import Case, FaithfulnessMetric
from salbench.metrics.perturbed_scores import auto_batch_size
from salbench.metrics.perturbation import (
    baseline_input,
    check_baseline,
    check_unit,
    default_step,
    resolve_unit,
    step_counts,
    unit_mask_shape,
    unit_scores,
)
from torch import Tensor, nn

__all__ = ["Insertion", "Deletion", "curve_area", "BLOCK_ELEMENTS"]

BLOCK_ELEMENTS = 1 << 18
"""Input elements built at once before they are scored (256 Ki elements, 1 MiB in float32:
about a core's L2 cache, so the model reads them while they are hot), or one model call's
inputs where that is more."""


def curve_area(curve: Tensor, counts: Tensor) -> Tensor:
    """Trapezoidal area (N,) under curves (N, M+1) whose x-coordinates are counts / counts[-1] ∈ [0, 1]."""
    return torch.trapezoid(curve, x=counts.to(curve.dtype) / counts[-1], dim=1)


class _PerturbationCurve(FaithfulnessMetric):
    """Model score on inputs whose top-ranked units come from x (insertion) or from the baseline (deletion).

    Subclasses set ``inserts``. See :class:`Insertion` for the method, parameters and defaults.
    """

    inserts: ClassVar[bool]
    modalities = CONTINUOUS

    def __init__(
        self,
        step: int | None = None,
        fraction: float = 1.0,
        baseline: float | Literal["blur", "mean"] = 0.0,
        blur_sigma: float = 5.0,
        absolute: bool = False,
        unit: Literal["auto", "feature", "pixel"] = "auto",
        output: Literal["probability", "logit"] = "probability",
        batch_size: int | None = None,
    ):
        if step is not None:
            check_positive_int(step, "step")
        check_fraction(fraction, "fraction")
        check_baseline(baseline, blur_sigma)
        check_unit(unit)
        if output not in ("probability", "logit"):
            raise ValueError(f"output must be 'probability' or 'logit', got {output!r}")
        if batch_size is not None:
            check_positive_int(batch_size, "batch_size")
        self.step = step
        self.fraction = fraction
        self.baseline = baseline
        self.blur_sigma = blur_sigma
        self.absolute = absolute
        self.unit = unit
        self.output = output
        self.batch_size = batch_size

    def __call__(self, model: nn.Module, x: Tensor, attr: Tensor, target: Tensor | int) -> Tensor:
        """Area under the curve per sample, (N,)."""
        return self.evaluate_curve(model, x, attr, target)[0]

    def evaluate(self, case: Case) -> tuple[Tensor, Tensor | None]:
        return self.evaluate_curve(case.model, case.x, case.attr, case.target)

    def evaluate_curve(self, model: nn.Module, x: Tensor, attr: Tensor, target: Tensor | int) -> tuple[Tensor, Tensor]:
        """Area (N,) and curve (N, M+1); point m of the curve has counts[m] units perturbed."""
        curve, counts = self.curve(model, x, attr, target)
        return curve_area(curve, counts), curve

    curve_axis = "fraction of features"

    def curve_positions(self, n_points: int) -> Tensor:
        """Point m of M+1 at K·m/M: the schedule of :meth:`curve` (a shorter last step drawn as a full one)."""
        return self.fraction * torch.linspace(0.0, 1.0, n_points, dtype=torch.float64)

    def rows_per_call(self, x: Tensor) -> int:
        """Inputs per model call for the batch ``x``: ``batch_size``, or by default the rule every
        perturbation metric shares (:func:`salbench.metrics.perturbed_scores.auto_batch_size`)."""
        return auto_batch_size(x) if self.batch_size is None else self.batch_size

    def curve(self, model: nn.Module, x: Tensor, attr: Tensor, target: Tensor | int) -> tuple[Tensor, Tensor]:
        """The curve (N, M+1) and the unit counts (M+1,) of its points (c_0 = 0, ..., c_M = n_K).

        Validation happens here, once, before any work. Each unit's rank in its sample's
        descending order is computed once (a scatter of the sort order), as a float of x's
        dtype where that holds every rank exactly; the input for point m keeps from x exactly
        the units of rank < c_m (insertion) or of rank >= c_m (deletion) and takes the rest
        from the baseline: per block of inputs (:meth:`_logits`) one broadcast comparison
        written as weights 0.0 / 1.0 of x's dtype and one ``torch.lerp`` (exact at weights 0
        and 1; 3–4× faster than a bool mask and ``torch.where``), scored in model calls of
        :meth:`rows_per_call` inputs, with no host synchronisation inside the loop.
        """
        check_input(x)
        check_input(attr, "attr")
        check_same_shape(attr, x, ("attr", "x"))
        target = check_target(target, x)
        unit = resolve_unit(self.unit, x)
        scores = unit_scores(attr.detach(), unit, self.absolute)
        n, n_units = scores.shape
        step = default_step(n_units) if self.step is None else self.step
        counts = step_counts(n_units, step, self.fraction, device=x.device)
        order = scores.argsort(dim=1, descending=True, stable=True)
        exact = n_units <= 2 / torch.finfo(x.dtype).eps  # every rank and count an exact integer in x's dtype
        dtype = x.dtype if exact else torch.float64
        ranks = torch.arange(n_units, device=x.device, dtype=dtype).expand(n, n_units)
        rank = torch.empty(n, n_units, device=x.device, dtype=dtype).scatter_(1, order, ranks)
        base = baseline_input(x.detach(), self.baseline, self.blur_sigma)
        logits = self._logits(model, x, base, rank, counts, unit)
        check_logits_target(logits[:, 0], target)
        index = target[:, None, None].expand(n, len(counts), 1)
        chosen = logits.gather(2, index)
        if self.output == "logit":
            return chosen.squeeze(2), counts
        return (logits - chosen).exp().sum(dim=2).reciprocal(), counts  # softmax: p_t = 1 / Σ_c exp(l_c − l_t)

    def _logits(self, model: nn.Module, x: Tensor, base: Tensor, rank: Tensor, counts: Tensor, unit: str) -> Tensor:
        """Logits (N, M+1, classes) of every (sample, point) input.

        The inputs are built point-major — blocks of consecutive points × all samples, or of
        one point × consecutive samples when one point's inputs exceed a block
        (:data:`BLOCK_ELEMENTS`, at least one model call) — so that x and the baseline
        broadcast along the outer (point) dimension and ``torch.lerp`` runs over whole
        contiguous samples; each block is scored in model calls of :meth:`rows_per_call`
        inputs (by default one curve point of every sample per call, as Quantus's
        PixelFlipping calls the model).
        """
        n, n_points = len(x), len(counts)
        rows = self.rows_per_call(x)
        inputs_per_block = max(rows, BLOCK_ELEMENTS // x[0].numel())
        samples_per_block = min(n, inputs_per_block)
        points_per_block = max(1, inputs_per_block // n) if samples_per_block == n else 1
        mask_shape = unit_mask_shape(x, unit)
        from_x_if = torch.lt if self.inserts else torch.ge  # rank vs c_m: top c_m units from x, or the rest
        thresholds = counts.to(rank.dtype)[:, None, None]
        # weights 1.0 where a unit comes from x, else 0.0: one buffer for all blocks (fresh memory
        # costs page faults); [:points, :samples] of it is contiguous, as one of the two is whole
        weights = x.new_empty(min(points_per_block, n_points), samples_per_block, rank.shape[1])
        chunks = []
        with torch.no_grad():
            for p0 in range(0, n_points, points_per_block):
                points = thresholds[p0 : p0 + points_per_block]
                for s0 in range(0, n, samples_per_block):
                    samples = slice(s0, s0 + samples_per_block)
                    ranks = rank[None, samples]
                    from_x = from_x_if(ranks, points, out=weights[: len(points), : ranks.shape[1]])
                    weight = from_x.view(*from_x.shape[:2], *mask_shape)
                    inputs = torch.lerp(base[None, samples], x[None, samples], weight)
                    chunks.extend(model(part) for part in inputs.flatten(0, 1).split(rows))
        return torch.cat(chunks).view(n_points, n, -1).transpose(0, 1)


@register("insertion")
class Insertion(_PerturbationCurve):
    """Area under the insertion curve: target score as the top-ranked units are restored from x (Petsiuk et al. 2018).

    Petsiuk, Das, Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box
    Models", BMVC 2018, §4 (causal metrics); schedule and channel-mean baseline as in ID-ExpO
    (Yoshikawa & Iwata, AISTATS 2024, code yuyay/idexpo).

    Units (features, or positions of signals, images and volumes (N, C, *spatial) with all their
    channels: see :mod:`salbench.metrics.perturbation`) are sorted by attribution, descending (|E| with ``absolute``; ties keep index order). With U
    units, n_K = round(K·U) (K = ``fraction``) and step s, point m = 0..M has c_m = min(m·s, n_K)
    units; the insertion input x_ins,m takes the top c_m units from x and the rest from the
    baseline b; the curve is y_m = p_c(x_ins,m) (softmax probability of the target, or its
    logit with ``output="logit"``). The score is the trapezoidal area over x_m = c_m / n_K:

        AUC = Σ_{m=1..M} (x_m − x_{m−1}) (y_m + y_{m−1}) / 2   ∈ [0, 1] for probabilities.

    This is RISE's ``auc`` (sum − ends/2, over the number of intervals) when s divides n_K; a
    shorter last step gets its true width here. Higher is better. ``evaluate`` returns the
    areas and the curves (N, M+1).

    Departures: ID-ExpO's code averages y_m over m = 1..M (no m = 0 point) and floors K·U and
    n_K / s (dropping a partial last step); RISE's insertion starts from a blurred image
    (kernel 11 px, σ = 5, zero padding), here ``baseline="blur"`` truncates at 3σ and
    replicates edges so that borders do not darken. The model is used as given (put it in
    eval mode first).

    Args:
        step: units per curve point; None = ⌈U / 64⌉ (at most 64 steps over all units, as
            ID-ExpO's n = 64; 784 px → 13, 30 features → 1). The authors use 64 pixels.
        fraction: K, the share of units the curve covers, in (0, 1]; the authors use 0.5.
        baseline: a constant, "mean" (per-sample per-channel mean of x, ID-ExpO's channel
            mean) or "blur" (Gaussian blur of x over its spatial dims: signals, images, volumes).
        blur_sigma: std in pixels of the "blur" baseline (default 5, RISE's σ for 224-px images).
        absolute: rank units by |E| (summed over channels for pixels) instead of E.
        unit: "pixel", "feature" or "auto" (pixels for (N, C, *spatial) inputs of rank 3 to 5, features
            for tables).
        output: "probability" (softmax of the target) or "logit".
        batch_size: inputs per model call; None (default) = a budget of input elements per
            call that depends on the device (:meth:`rows_per_call`): on CPU a small CNN costs
            1.3–1.8× more per input in calls of 1024 than of 64 (cache), a GPU needs large calls.

    Example:
        >>> from salbench import metrics
        >>> import torch
        >>> model = torch.nn.Linear(4, 2)
        >>> x = torch.randn(3, 4); attr = torch.randn(3, 4)
        >>> areas, curves = metrics.get("insertion", step=2).evaluate_curve(model, x, attr, 0)
        >>> areas.shape, curves.shape
        (torch.Size([3]), torch.Size([3, 3]))
    """

    higher_is_better = True
    inserts = True


@register("deletion")
class Deletion(_PerturbationCurve):
    """Area under the deletion curve: target score as the top-ranked units are replaced by a baseline (Petsiuk et al. 2018).

    As :class:`Insertion` (same parameters, schedule, units and area), but the input of point
    m takes the top c_m units from the baseline and the rest from x, so the curve starts at
    p_c(x) and a faithful attribution makes it fall fast. Lower is better.

    Departures: as for :class:`Insertion`; RISE's deletion baseline is 0 (the default here).

    Example:
        >>> from salbench import metrics
        >>> import torch
        >>> model = torch.nn.Linear(4, 2)
        >>> metrics.get("deletion", baseline="mean")(model, torch.randn(3, 4), torch.randn(3, 4), 1).shape
        torch.Size([3])
    """

    higher_is_better = False
    inserts = False
