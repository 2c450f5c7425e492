"""Faithfulness correlation (Bhatt, Weller, Moura, IJCAI 2020)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from salbench.core.applicability import CONTINUOUS
from salbench.core.seeding import SampleStreams
from salbench.core.validation import check_positive_int
from salbench.metrics import register
from salbench.metrics.base import MetricOutput
from salbench.metrics.perturbation import (
    baseline_input,
    check_baseline,
    check_unit,
    resolve_unit,
    unit_mask_shape,
    unit_scores,
)
from salbench.metrics.perturbed_scores import (
    PerturbationMetric,
    check_output,
    checked_inputs,
    copy_scores,
    masked_copies,
)
from salbench.metrics.ranking import pearson
from torch import Tensor, nn

__all__ = ["FaithfulnessCorrelation", "random_subsets", "undefined_notes"]


@register("faithfulness_correlation")
class FaithfulnessCorrelation(PerturbationMetric):
    """Pearson correlation between the attribution of random feature subsets and the output drop when they are removed (Bhatt et al. 2020).

    Bhatt, Weller, Moura, "Evaluating and Aggregating Feature-based Model Explanations",
    IJCAI 2020 (faithfulness µ_F):

        µ_F(f, g; x) = corr_{S ∈ (d choose |S|)} ( Σ_{i∈S} g(f, x)_i , f(x) − f(x_{[x_S = x̄_S]}) )

    For each sample, ``n_samples`` subsets S of ``subset_size`` units are drawn uniformly
    without replacement (per-sample streams, :mod:`salbench.core.seeding`); x_{[x_S = x̄_S]}
    takes the units of S from the baseline x̄; the correlation is Pearson's over the draws.
    f is the target's logit (``output="logit"``, the default, as Quantus) or probability.
    In [−1, 1]; higher is better. A sample whose output drops are all equal (e.g. a constant
    model) or whose subset sums are all equal (e.g. a constant map) has no correlation (0/0):
    NaN with a note.

    Units as in :mod:`salbench.metrics.perturbation` (features, or pixels of images with
    channel-summed attributions); the attribution is used as given (no |E|, no
    normalisation: Pearson is scale-invariant, so Quantus's default max-normalisation changes
    nothing). Quantus's ``FaithfulnessCorrelation`` draws element indices over all channels
    (its units are features even for images) with NumPy's global generator, and its default
    "black" fill is the minimum over the whole batch; with ``unit="feature"``, a numeric
    baseline (``perturb_baseline=0.0`` there) and the same subsets the two agree (tests).

    Args:
        n_samples: number of random subsets per sample (Quantus's ``nr_runs``, default 100).
        subset_size: units per subset |S| (default 224, Quantus's; must not exceed the units
            of a sample).
        baseline: the value x̄ of removed units: a number, "mean" or "blur"
            (:func:`~salbench.metrics.perturbation.baseline_input`; default 0).
        blur_sigma: std in pixels of the "blur" baseline.
        unit: "auto", "feature" or "pixel".
        output: "logit" or "probability".
        seed: seed of the subsets (:class:`~salbench.metrics.perturbed_scores.PerturbationMetric`).
        batch_size: inputs per model call (None: by the size of a sample and the device).

    Example:
        >>> import torch
        >>> from salbench import metrics
        >>> _ = torch.manual_seed(0)  # the doctest's model and inputs; the metric's draws take their own seed
        >>> model = torch.nn.Linear(5, 2, bias=False)
        >>> x = torch.randn(3, 5)
        >>> attr = model.weight[1].detach() * x  # gradient × input: exact for a linear model
        >>> metrics.get("faithfulness_correlation", n_samples=20, subset_size=2)(model, x, attr, 1)
        tensor([1.0000, 1.0000, 1.0000])
    """

    higher_is_better = True
    modalities = CONTINUOUS
    test_params = {"n_samples": 12, "subset_size": 3}

    def __init__(
        self,
        n_samples: int = 100,
        subset_size: int = 224,
        baseline: float | Literal["blur", "mean"] = 0.0,
        blur_sigma: float = 5.0,
        unit: Literal["auto", "feature", "pixel"] = "auto",
        output: Literal["probability", "logit"] = "logit",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        check_positive_int(n_samples, "n_samples")
        check_positive_int(subset_size, "subset_size")
        check_baseline(baseline, blur_sigma)
        check_unit(unit)
        check_output(output)
        self.n_samples = n_samples
        self.subset_size = subset_size
        self.baseline = baseline
        self.blur_sigma = blur_sigma
        self.unit = unit
        self.output = output

    def check_features(self, n_features: int) -> None:
        if self.subset_size > n_features:
            raise ValueError(f"subset_size must be at most the {n_features} units of a sample, got {self.subset_size}")

    def evaluate_curve(self, model: nn.Module, x: Tensor, attr: Tensor, target: Tensor | int) -> MetricOutput:
        """Correlations (N,), no curve, and notes for the samples where it is undefined."""
        values, drops, sums = self.correlation(model, x, attr, target)
        return MetricOutput(
            values, None, undefined_notes(values, drops, sums, "output drops", "subset attribution sums")
        )

    def correlation(
        self, model: nn.Module, x: Tensor, attr: Tensor, target: Tensor | int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Correlations (N,), output drops (N, n_samples) and subset attribution sums (N, n_samples)."""
        x, attr, target = checked_inputs(x, attr, target)
        unit = resolve_unit(self.unit, x)
        scores = unit_scores(attr, unit, absolute=False)
        self.check_features(scores.shape[1])
        subsets = random_subsets(x, self.n_samples, scores.shape[1], self.subset_size, self.seed)
        remove = torch.zeros(*subsets.shape[:2], scores.shape[1], dtype=torch.bool, device=x.device).scatter_(
            2, subsets, True
        )
        sums = (scores[:, None, :] * remove).sum(dim=2)
        remove = torch.cat([torch.zeros_like(remove[:, :1]), remove], dim=1)  # copy 0: x itself
        base = baseline_input(x, self.baseline, self.blur_sigma)[:, None]
        mask_shape = unit_mask_shape(x, unit)

        def build(rows: slice, copies: slice) -> Tensor:
            return masked_copies(x[rows], base[rows], remove[rows, copies], mask_shape)

        out = copy_scores(model, build, len(x), self.n_samples + 1, target, self.output, self.rows_per_call(x))
        drops = (out[:, :1] - out[:, 1:]).to(sums.dtype)
        return pearson(sums, drops), drops, sums


def random_subsets(x: Tensor, n_samples: int, n_units: int, subset_size: int, seed: int) -> Tensor:
    """(N, n_samples, subset_size) long: per sample of ``x``, ``n_samples`` uniform random subsets of
    ``subset_size`` of its ``n_units`` units (the units of the smallest of U[0, 1) keys drawn per
    sample, :mod:`salbench.core.seeding`), in no particular order within a subset."""
    keys = SampleStreams(seed, x).rand((n_samples, n_units), like=x)
    return keys.topk(subset_size, dim=2, largest=False, sorted=False).indices


def undefined_notes(values: Tensor, a: Tensor, b: Tensor, a_name: str, b_name: str) -> list[str | None] | None:
    """Notes for the samples whose correlation of rows ``a`` and ``b`` is NaN: which of them is constant."""
    missing = torch.isnan(values)
    if not missing.any():
        return None
    flat_a = (a == a[:, :1]).all(1).tolist()
    flat_b = (b == b[:, :1]).all(1).tolist()
    return [
        " and ".join(n for n, c in ((a_name, fa), (b_name, fb)) if c) + " all equal: correlation undefined"
        if m
        else None
        for m, fa, fb in zip(missing.tolist(), flat_a, flat_b)
    ]
