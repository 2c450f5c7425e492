"""ROAD: remove and debias, with noisy linear imputation, MoRF and LeRF (Rong et al. 2022)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from salbench.core.seeding import SampleStreams
from salbench.core.validation import check_positive, check_positive_int
from salbench.metrics import register
from salbench.metrics.linear_imputation import impute
from salbench.metrics.perturbed_scores import (
    PerturbationMetric,
    check_output,
    checked_inputs,
    copy_scores,
    descending_ranks,
)
from torch import Tensor, nn

__all__ = ["RoadMoRF", "RoadLeRF"]

DEFAULT_PERCENTAGES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


class _Road(PerturbationMetric):
    """The target score after the top (MoRF) or bottom (LeRF) fraction p of pixels is imputed, for each p.

    Subclasses set ``most_relevant_first``. See :class:`RoadMoRF` for the method, parameters and defaults.
    """

    most_relevant_first: ClassVar[bool]
    modalities = ("image",)
    test_params = {"percentages": (0.25, 0.5)}

    def __init__(
        self,
        percentages: tuple[float, ...] = DEFAULT_PERCENTAGES,
        noise: float = 0.01,
        output: Literal["probability", "logit"] = "probability",
        tol: float = 1e-6,
        max_iter: int = 2000,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        percentages = tuple(percentages)
        if not percentages or any(not isinstance(p, (int, float)) or not 0 < p < 1 for p in percentages):
            raise ValueError(f"percentages must be a non-empty list of fractions in (0, 1), got {percentages!r}")
        if list(percentages) != sorted(set(percentages)):
            raise ValueError(f"percentages must increase strictly, got {percentages!r}")
        check_positive(noise, "noise", allow_zero=True)
        check_output(output)
        check_positive(tol, "tol")
        check_positive_int(max_iter, "max_iter")
        self.percentages = percentages
        self.noise = noise
        self.output = output
        self.tol = tol
        self.max_iter = max_iter

    curve_axis = "fraction of pixels imputed"

    def curve_positions(self, n_points: int) -> Tensor:
        """The percentages, one curve point each."""
        return torch.tensor(self.percentages, dtype=torch.float64)[:n_points]

    def evaluate_curve(self, model: nn.Module, x: Tensor, attr: Tensor, target: Tensor | int) -> tuple[Tensor, Tensor]:
        """Area (N,) and curve (N, P): the target score with fraction ``percentages[k]`` of pixels imputed."""
        x, attr, target = checked_inputs(x, attr, target)
        if x.dim() != 4:
            raise ValueError(f"ROAD needs image inputs of shape (N, C, H, W), got shape {tuple(x.shape)}")
        n, _, h, w = x.shape
        scores = attr.sum(dim=1).flatten(1)
        rank = descending_ranks(scores if self.most_relevant_first else -scores)
        counts = torch.tensor([int(p * h * w) for p in self.percentages], device=x.device)
        noise = self.noise * SampleStreams(self.seed, x).randn((len(counts), *x.shape[1:]), like=x)

        def build(rows: slice, copies: slice) -> Tensor:
            removed = rank[rows, None, :] < counts[None, copies, None]
            block = removed.shape[:2]
            repeated = x[rows, None].expand(*block, *x.shape[1:]).flatten(0, 1)
            imputed = impute(repeated, removed.reshape(-1, 1, h, w), self.tol, self.max_iter).view(*block, *x.shape[1:])
            return torch.where(removed.view(*block, 1, h, w), imputed + noise[rows, copies], imputed)

        curve = copy_scores(model, build, n, len(counts), target, self.output, self.rows_per_call(x))
        if len(self.percentages) == 1:
            return curve[:, 0], curve
        fractions = torch.tensor(self.percentages, dtype=curve.dtype, device=x.device)
        return torch.trapezoid(curve, x=fractions, dim=1) / (fractions[-1] - fractions[0]), curve


@register("road_morf")
class RoadMoRF(_Road):
    """ROAD, most relevant first: the target score as the most relevant pixels are removed and imputed (Rong et al. 2022).

    Rong, Leemann, Borisov, Kasneci, Kasneci, "A Consistent and Efficient Evaluation Strategy
    for Attribution Methods", ICML 2022 (ROAD: RemOve And Debias). For each fraction p of
    ``percentages``, the ⌊p·H·W⌋ pixels of highest channel-summed attribution (MoRF; ties in
    index order) are removed from every channel and replaced by the noisy linear imputation:
    the solution of the neighbour system of :mod:`salbench.metrics.linear_imputation` plus
    N(0, ``noise``²) per imputed value (per-sample streams, :mod:`salbench.core.seeding`).
    The curve is the target's softmax probability (default) or logit at each p; the value is
    its trapezoidal area over p divided by the span of the percentages (its mean height).
    Lower is better for MoRF (the score should fall fast).

    Departures: the authors (and Quantus's ``ROAD``) report the accuracy of the argmax over
    a data set at each p; a per-sample 0/1 correctness has no gradation, so the curve here is
    the target's probability (the authors' ``road_eval`` also reports the mean probability of
    the originally predicted class: the target when the grid passes predictions), and a data
    set's accuracy curve is the mean over samples of argmax correctness, not computed here.
    Quantus sorts elements, not pixels, and floors p·(C·H·W) over the channels. The linear
    system is solved by conjugate gradients to ``tol`` (the authors use a direct sparse
    solver; the imputations agree with Quantus's port to 1e-9, tests). Images only: the 3×3
    weights are the authors' 2-D neighbourhood.

    Args:
        percentages: increasing fractions p in (0, 1) (default 0.1, ..., 0.9, as the paper's plots).
        noise: std of the noise added to imputed values (default 0.01, the authors').
        output: "probability" or "logit".
        tol: relative tolerance of the conjugate-gradient solve.
        max_iter: most conjugate-gradient steps (an error when exceeded).
        seed: seed of the noise.
        batch_size: inputs per model call and imputations solved at once (None: by the size of
            a sample and the device).

    Example:
        >>> import torch
        >>> from salbench import metrics
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
        >>> x, attr = torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4)
        >>> area, curve = metrics.get("road_morf", percentages=[0.25, 0.5]).evaluate_curve(model, x, attr, 0)
        >>> area.shape, curve.shape
        (torch.Size([2]), torch.Size([2, 2]))
    """

    higher_is_better = False
    most_relevant_first = True


@register("road_lerf")
class RoadLeRF(_Road):
    """ROAD, least relevant first: the target score as the least relevant pixels are removed and imputed (Rong et al. 2022).

    As :class:`RoadMoRF` (same parameters, imputation, curve and area), but the ⌊p·H·W⌋ pixels
    of lowest attribution are removed; higher is better (the score should stay).

    Departure: the authors' ``run_road(morf=False)`` reads p as the fraction *kept* (the top
    ⌊p·H·W⌋ pixels stay, the rest is imputed), so their LeRF at p is this one at 1 − p (up
    to rounding); here p is the fraction removed for both orders, so that MoRF and LeRF share
    an axis. Quantus's ``ROAD`` has MoRF only.

    Example:
        >>> import torch
        >>> from salbench import metrics
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
        >>> metrics.get("road_lerf", noise=0.0)(model, torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4), 1).shape
        torch.Size([2])
    """

    higher_is_better = True
    most_relevant_first = False
