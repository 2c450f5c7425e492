"""Comprehensiveness and sufficiency, AOPC over top-k% bins (DeYoung et al. 2020, ERASER)."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
from salbench.core.applicability import MODALITIES
from salbench.core.text import check_text_input, word_mask
from salbench.core.validation import check_input, check_same_shape, check_target
from salbench.metrics import register
from salbench.metrics.base import Case, MetricOutput
from salbench.metrics.perturbation import check_fill, check_unit, fill_input, resolve_unit, unit_mask_shape, unit_scores
from salbench.metrics.perturbed_scores import PerturbationMetric, copy_scores, descending_ranks, masked_copies
from salbench.metrics.word_removal import keep_words
from torch import Tensor, nn

__all__ = ["Comprehensiveness", "Sufficiency"]

DEFAULT_BINS = (0.01, 0.05, 0.1, 0.2, 0.5)


class _Eraser(PerturbationMetric):
    """Drop of the target probability when the top-k% units are removed (comprehensiveness) or kept alone (sufficiency).

    Subclasses set ``keeps_rationale``. See :class:`Comprehensiveness` for the method, parameters and defaults.
    """

    keeps_rationale: ClassVar[bool]
    modalities = MODALITIES

    def __init__(
        self,
        bins: tuple[float, ...] = DEFAULT_BINS,
        baseline: float | Literal["mean", "blur", "uniform"] = 0.0,
        blur_sigma: float = 5.0,
        unit: Literal["auto", "feature", "pixel"] = "auto",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        bins = tuple(bins)
        if not bins or any(not isinstance(b, (int, float)) or not 0 < b <= 1 for b in bins):
            raise ValueError(f"bins must be a non-empty list of fractions in (0, 1], got {bins!r}")
        check_fill(baseline, blur_sigma)
        check_unit(unit)
        self.bins = bins
        self.baseline = baseline
        self.blur_sigma = blur_sigma
        self.unit = unit

    def evaluate(self, case: Case) -> MetricOutput:
        return self.evaluate_curve(case.model, case.x, case.attr, case.target, case.valid)

    curve_axis = "share of top features (bins)"

    def curve_positions(self, n_points: int) -> Tensor:
        """The bins, one curve point each."""
        return torch.tensor(self.bins, dtype=torch.float64)[:n_points]

    def evaluate_curve(
        self, model: nn.Module, x: Tensor, attr: Tensor, target: Tensor | int, valid: Tensor | None = None
    ) -> MetricOutput:
        """AOPC (N,), the drops p(x) − p(x_k) per bin (N, len(bins)), and notes (texts left empty).

        ``x`` is a float input, or a text tensor (N, 2, L) with word attributions ``attr`` (N, L)
        and ``valid`` the word positions (default :func:`~salbench.core.text.word_mask`).
        """
        check_input(attr, "attr")
        text = not x.is_floating_point()
        if text:
            check_text_input(x)
            valid = word_mask(x) if valid is None else valid
            check_same_shape(attr, valid, ("attr", "valid"))
            check_same_shape(attr, x[:, 0], ("attr", "x's word positions"))
        else:
            check_input(x)
            check_same_shape(attr, x, ("attr", "x"))
        target = check_target(target, x)
        x = x.detach()
        if text:
            scores = attr.detach().masked_fill(~valid, float("-inf"))
            n_units = valid.sum(dim=1, keepdim=True)
        else:
            unit = resolve_unit(self.unit, x)
            scores = unit_scores(attr.detach(), unit, absolute=False)
            n_units = torch.full((len(x), 1), scores.shape[1], device=x.device)
        fractions = torch.tensor(self.bins, dtype=torch.float64, device=x.device)
        counts = (fractions * n_units + 0.5).floor().long().clamp(min=1)  # (N, B): units of each bin's rationale
        in_rationale = descending_ranks(scores)[:, None, :] < counts[:, :, None]
        removed = ~in_rationale if self.keeps_rationale else in_rationale
        removed = torch.cat([torch.zeros_like(removed[:, :1]), removed], dim=1)  # copy 0: x itself
        if text:
            kept = ~removed & valid[:, None]
            empty = ~kept.any(dim=2)
            kept[empty] = valid[empty.nonzero()[:, 0]]  # scored as x, reported NaN below
            texts = keep_words(x, kept)

            def build(rows: slice, copies: slice) -> Tensor:
                return texts[rows, copies]
        else:
            fill = fill_input(x, self.baseline, self.blur_sigma, self.seed)[:, None]
            mask_shape = unit_mask_shape(x, unit)

            def build(rows: slice, copies: slice) -> Tensor:
                return masked_copies(x[rows], fill[rows], removed[rows, copies], mask_shape)

        probs = copy_scores(model, build, len(x), removed.shape[1], target, "probability", self.rows_per_call(x))
        curve = probs[:, :1] - probs[:, 1:]
        if text:
            curve = curve.masked_fill(empty[:, 1:], math.nan)
        values = curve.sum(dim=1) / (len(self.bins) + 1)
        if not text or not empty.any():
            return MetricOutput(values, curve, None)
        missing = empty.any(dim=1)
        notes = [
            f"a text of {int(n)} word(s) has no word left when its top {self._bins_text(row)} are "
            f"{'kept' if self.keeps_rationale else 'removed'}"
            if m
            else None
            for n, m, row in zip(n_units.flatten().tolist(), missing.tolist(), empty[:, 1:].tolist())
        ]
        return MetricOutput(values, curve, notes)

    def _bins_text(self, empty_bins: list[bool]) -> str:
        return ", ".join(f"{b:.0%}" for b, e in zip(self.bins, empty_bins) if e)


@register("comprehensiveness")
class Comprehensiveness(_Eraser):
    """AOPC of the drop in the target probability when the top-k% units are removed, over bins of k (DeYoung et al. 2020, ERASER).

    DeYoung, Jain, Rajani, Lehman, Xiong, Socher, Wallace, "ERASER: A Benchmark to Evaluate
    Rationalized NLP Models", ACL 2020 (faithfulness metrics, AOPC over bins):

        comprehensiveness = 1/(|B|+1) Σ_{k∈B} ( m(x)_j − m(x \\ r_k)_j )

    with r_k the top k% units by attribution (descending; ⌊k·U + ½⌋ units, at least 1, of the
    U units of the sample: the words of a text, pixels of an image, features of a table),
    x \\ r_k the input without them, m(·)_j the softmax probability of the target j, B the
    ``bins`` (1, 5, 10, 20, 50 %) and the |B|+1 the paper's (its k = 0 term is 0). Higher is
    better. ``evaluate`` returns the AOPC and the drops per bin (N, |B|).

    Removing: the words of a text are deleted (:func:`~salbench.metrics.word_removal.keep_words`,
    the model reads the shorter text, as the paper); units of other inputs are replaced by the
    fill (``baseline``). A text left without any word (a 1-word text) gets NaN (value and
    the bins concerned) with a note.
    The paper scores the predicted class; here the cell's target (the grid passes the
    prediction or the label). Quantus has no ERASER metric (its ``Sufficiency`` is Dasgupta et
    al. 2022's, a different quantity).

    Args:
        bins: the fractions k (default 0.01, 0.05, 0.1, 0.2, 0.5).
        baseline: fill of removed units of float inputs: a number (default 0), "mean", "blur"
            or "uniform" (seeded noise).
        blur_sigma: std in pixels of the "blur" fill.
        unit: "auto", "feature" or "pixel" (float inputs).
        seed: seed of the "uniform" fill.
        batch_size: inputs per model call (None: by the size of a sample and the device).

    Example:
        >>> import torch
        >>> from salbench import metrics
        >>> model = torch.nn.Linear(10, 2)
        >>> metrics.get("comprehensiveness")(model, torch.randn(3, 10), torch.randn(3, 10), 0).shape
        torch.Size([3])
    """

    higher_is_better = True
    keeps_rationale = False


@register("sufficiency")
class Sufficiency(_Eraser):
    """AOPC of the drop in the target probability when only the top-k% units are kept, over bins of k (DeYoung et al. 2020, ERASER).

    As :class:`Comprehensiveness` (same parameters, rationales, removal and AOPC), with
    m(x)_j − m(r_k)_j: the input keeps only r_k (the other words deleted, other units set to
    the fill). Lower is better (the rationale alone should keep the prediction).

    Example:
        >>> import torch
        >>> from salbench import metrics
        >>> model = torch.nn.Linear(10, 2)
        >>> metrics.get("sufficiency", bins=[0.5, 1.0])(model, torch.randn(3, 10), torch.randn(3, 10), 0)[:, None].shape
        torch.Size([3, 1])
    """

    higher_is_better = False
    keeps_rationale = True
