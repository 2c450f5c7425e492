"""Monotonicity correlation (Nguyen & Martínez 2020)."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from salbench.core.applicability import CONTINUOUS
from salbench.core.seeding import SampleStreams
from salbench.core.validation import check_positive_int
from salbench.metrics import register
from salbench.metrics.base import MetricOutput
from salbench.metrics.faithfulness_correlation import undefined_notes
from salbench.metrics.perturbation import check_unit, resolve_unit, unit_mask_shape, unit_scores
from salbench.metrics.perturbed_scores import (
    PerturbationMetric,
    check_output,
    checked_inputs,
    copy_scores,
    masked_copies,
)
from salbench.metrics.ranking import spearman
from torch import Tensor, nn

__all__ = ["MonotonicityCorrelation"]


@register("monotonicity_correlation")
class MonotonicityCorrelation(PerturbationMetric):
    """Spearman correlation between |attribution| and the expected squared output change when a unit is perturbed (Nguyen & Martínez 2020).

    An-phi Nguyen, María Rodríguez Martínez, "On quantitative aspects of model
    interpretability", arXiv:2007.07584 (2020), monotonicity: the rank correlation between the
    attributions' magnitudes and the expected change ("uncertainty") of the model's output
    when the feature is replaced by a draw X_i, here with a squared-error loss (as Quantus):

        v_i = E_{X_i}[ (f(x) − f(x_{−i}, X_i))² ],   monotonicity = ρ_Spearman( |a_i|, v_i )

    over the units i of a sample (features, or pixels of images with channel-summed |E|;
    :mod:`salbench.metrics.perturbation`). The expectation is the mean over ``n_samples``
    draws of the perturbed unit's values X_i, uniform on [``low``, ``high``] per element
    (per-sample streams, :mod:`salbench.core.seeding`); with a numeric ``baseline`` the unit
    is set to that value instead (one deterministic draw, ``n_samples`` is not used). f is the
    target's probability (default) or logit. Ties are ranked by their mean rank. In [−1, 1];
    higher is better. A sample whose v_i are all equal (e.g. a constant model) or whose |a_i|
    are all equal has no rank correlation: NaN with a note.

    Departures of Quantus's ``MonotonicityCorrelation``: it scales v_i by 1/f(x)² (one
    constant per sample, which leaves the ranks unchanged), perturbs elements (channels
    separately) in groups of ``features_in_step`` and draws with NumPy's global generator;
    with ``unit="feature"``, a numeric baseline and ``features_in_step=1`` the two agree
    (tests). The paper's X_i is drawn from the data; here a fixed range (the inputs' domain),
    as in Quantus.

    Cost: U · n_samples forward passes per sample (U units); the uniform draws are held at
    once, n_samples times the batch's size (100 × a 3×224×224 batch of 64: 3.9 GB in float32).

    Args:
        n_samples: draws per unit (default 100, Quantus's ``nr_samples``).
        baseline: "uniform" (draws on [low, high]) or a number.
        low, high: the range of the uniform draws (default [0, 1], Quantus's "uniform").
        unit: "auto", "feature" or "pixel".
        output: "probability" (Quantus's softmax default for this metric) or "logit".
        seed: seed of the draws.
        batch_size: inputs per model call (None: by the size of a sample and the device).

    Example:
        >>> import torch
        >>> from salbench import metrics
        >>> model = torch.nn.Linear(4, 2, bias=False)
        >>> x = torch.randn(2, 4)
        >>> attr = model.weight[0].detach().expand(2, 4)  # |w_i|: v_i = w_i² E[(x_i − X_i)²] for logits
        >>> metrics.get("monotonicity_correlation", n_samples=8, output="logit")(model, x, attr, 0).shape
        torch.Size([2])
    """

    higher_is_better = True
    modalities = CONTINUOUS
    test_params = {"n_samples": 4}

    def __init__(
        self,
        n_samples: int = 100,
        baseline: float | Literal["uniform"] = "uniform",
        low: float = 0.0,
        high: float = 1.0,
        unit: Literal["auto", "feature", "pixel"] = "auto",
        output: Literal["probability", "logit"] = "probability",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        check_positive_int(n_samples, "n_samples")
        numeric = isinstance(baseline, (int, float)) and not isinstance(baseline, bool) and math.isfinite(baseline)
        if not numeric and baseline != "uniform":
            raise ValueError(f"baseline must be 'uniform' or a finite number, got {baseline!r}")
        if not (
            isinstance(low, (int, float))
            and isinstance(high, (int, float))
            and math.isfinite(low)
            and low < high < math.inf
        ):
            raise ValueError(f"low and high must be finite numbers with low < high, got low={low!r}, high={high!r}")
        check_unit(unit)
        check_output(output)
        self.n_samples = n_samples
        self.baseline = baseline
        self.low = low
        self.high = high
        self.unit = unit
        self.output = output

    def evaluate_curve(self, model: nn.Module, x: Tensor, attr: Tensor, target: Tensor | int) -> MetricOutput:
        """Rank correlations (N,), no curve, and notes for the samples where it is undefined."""
        values, changes, scores = self.correlation(model, x, attr, target)
        return MetricOutput(
            values, None, undefined_notes(values, changes, scores, "output changes v_i", "|attributions|")
        )

    def correlation(
        self, model: nn.Module, x: Tensor, attr: Tensor, target: Tensor | int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Correlations (N,), expected squared changes v (N, U) and unit scores |a| (N, U)."""
        x, attr, target = checked_inputs(x, attr, target)
        unit = resolve_unit(self.unit, x)
        scores = unit_scores(attr, unit, absolute=True)
        n, n_units = scores.shape
        if self.baseline == "uniform":
            draws = self.low + (self.high - self.low) * SampleStreams(self.seed, x).rand(
                (self.n_samples, *x.shape[1:]), like=x
            )
        else:
            draws = torch.full_like(x, float(self.baseline))[:, None]
        n_draws = draws.shape[1]
        eye = torch.eye(n_units, dtype=torch.bool, device=x.device)
        mask_shape = unit_mask_shape(x, unit)

        def build(rows: slice, copies: slice) -> Tensor:  # copy c perturbs unit c mod U with draw c div U
            index = torch.arange(copies.start, copies.stop, device=x.device)
            remove = eye[index % n_units].expand(rows.stop - rows.start, -1, -1)
            return masked_copies(x[rows], draws[rows][:, index // n_units], remove, mask_shape)

        original = copy_scores(model, lambda rows, _: x[rows, None], n, 1, target, self.output, self.rows_per_call(x))
        perturbed = copy_scores(model, build, n, n_draws * n_units, target, self.output, self.rows_per_call(x))
        changes = (perturbed.view(n, n_draws, n_units) - original[:, :, None]).square().mean(dim=1).to(scores.dtype)
        return spearman(scores, changes), changes, scores
