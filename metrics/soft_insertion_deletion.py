"""Differentiable insertion/deletion costs (Yoshikawa & Iwata, AISTATS 2024, ID-ExpO)."""

from __future__ import annotations

from typing import Literal

import torch
from salbench.core.validation import (
    check_fraction,
    check_input,
    check_logits_target,
    check_positive,
    check_positive_int,
    check_same_shape,
    check_target,
)
from salbench.metrics.perturbation import (
    DEFAULT_STEPS,
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

__all__ = ["soft_insertion_deletion"]


def soft_insertion_deletion(
    model: nn.Module,
    x: Tensor,
    attr: Tensor,
    target: Tensor | int,
    *,
    steps: int = DEFAULT_STEPS,
    fraction: float = 0.5,
    temperature: float = 1.0,
    baseline: float | Literal["blur", "mean"] = 0.0,
    blur_sigma: float = 5.0,
    absolute: bool = False,
    unit: Literal["auto", "feature", "pixel"] = "auto",
) -> tuple[Tensor, Tensor]:
    """Soft insertion and deletion costs (c_ins, c_del), each (N,), differentiable in attr and the model.

    Yoshikawa & Iwata, "Explanation-based training with differentiable insertion/deletion
    metric-aware regularizers" (ID-ExpO), AISTATS 2024; authors' code yuyay/idexpo
    (``batch_continuous_insertion_deletion_for_image`` with ``with_softmax=True``,
    ``cdel_calculation="ratio"``).

    The hard masks of insertion/deletion (:class:`salbench.metrics.insertion_deletion.Insertion`) are
    replaced by sigmoids of the attribution so that gradients reach it:

    - ẽ = log-softmax of the unit scores over the units of each sample (units and scores as in
      :mod:`salbench.metrics.perturbation`);
    - the schedule of the exact metrics with step s = ⌈U / steps⌉, points m = 1..M with c_m
      units; threshold t_m = (ẽ₍c_m₎ + ẽ₍c_m+1₎) / 2 between the c_m-th and (c_m+1)-th largest
      values (for c_m = U, half a mean gap below the smallest);
    - σ̄ = mean of the non-zero gaps between consecutive sorted values of ẽ, per sample;
    - α_m = sigmoid(T / σ̄ · (ẽ − t_m)) per unit (≈ 1 for the top c_m units);
    - x_ins,m = α_m x + (1 − α_m) b,  x_del,m = α_m b + (1 − α_m) x  (b the baseline input);
    - c_ins = −mean_m log p_c(x_ins,m),  c_del = mean_m [log p_c(x_del,m) − log p_c(x)].

    Both are costs (lower is better). As T → ∞ the masks become the hard ones (for untied
    scores) and the costs tend to the same expressions on the exact insertion/deletion inputs.
    Thresholds and σ̄ are constants for autograd (computed without gradient, as in the authors'
    code); gradients flow through ẽ inside α and through the model. All N·M soft inputs of each
    kind go through the model in one call (the graph keeps them anyway).

    Departures from the authors' code: σ̄ is per sample (the code takes one mean over the
    whole batch, which makes a sample's cost depend on its batch-mates); s = ⌈U / steps⌉ and
    n_K = round(K·U) with a partial last step (the code floors, and with K = 1 indexes past the
    end); a sample whose scores all tie has no non-zero gap and takes σ̄ = 1 (its thresholds
    then equal the common value, so α = 1/2 at every point whatever σ̄, except at a point that
    covers all units, whose threshold lies σ̄/2 below); inputs of any shape, not only images
    with a per-pixel map.

    Args:
        model: classifier returning logits (N, classes).
        x: inputs, batch first.
        attr: attribution of the shape of x (may require grad).
        target: class per sample (int or (N,) tensor).
        steps: number of steps over all U units (the authors' n; default 64 as in their
            CIFAR-10 configuration).
        fraction: K, the share of units covered, in (0, 1]; default 0.5 as the authors.
        temperature: T > 0; default 1 as the authors.
        baseline: a constant, "mean" (per-sample per-channel mean of x) or "blur" (signals, images, volumes).
        blur_sigma: std in pixels of the "blur" baseline.
        absolute: rank units by |E| instead of E.
        unit: "pixel", "feature" or "auto" (pixels for (N, C, *spatial) inputs of rank 3 to 5, features
            for tables).

    Example:
        >>> import torch
        >>> from salbench.metrics.soft_insertion_deletion import soft_insertion_deletion
        >>> model = torch.nn.Linear(8, 3)
        >>> attr = torch.randn(2, 8, requires_grad=True)
        >>> c_ins, c_del = soft_insertion_deletion(model, torch.randn(2, 8), attr, 0, steps=4)
        >>> (c_ins + c_del).sum().backward(); attr.grad.shape
        torch.Size([2, 8])
    """
    check_input(x)
    check_input(attr, "attr")
    check_same_shape(attr, x, ("attr", "x"))
    target = check_target(target, x)
    check_positive_int(steps, "steps")
    check_fraction(fraction, "fraction")
    check_positive(temperature, "temperature")
    check_baseline(baseline, blur_sigma)
    check_unit(unit)
    unit = resolve_unit(unit, x)

    log_weights = unit_scores(attr, unit, absolute).log_softmax(dim=1)
    n, n_units = log_weights.shape
    counts = step_counts(n_units, default_step(n_units, steps), fraction, device=x.device)[1:]
    thresholds, scale = _thresholds(log_weights.detach(), counts)
    alpha = torch.sigmoid(temperature / scale[:, None, None] * (log_weights[:, None, :] - thresholds[:, :, None]))
    alpha = alpha.reshape(n, len(counts), *unit_mask_shape(x, unit))
    base = baseline_input(x, baseline, blur_sigma)
    inserted = (alpha * x[:, None] + (1 - alpha) * base[:, None]).flatten(0, 1)
    deleted = (alpha * base[:, None] + (1 - alpha) * x[:, None]).flatten(0, 1)

    repeated = target.repeat_interleave(len(counts))
    log_p_ins = _target_log_prob(model(inserted), repeated).view(n, -1)
    log_p_del = _target_log_prob(model(deleted), repeated).view(n, -1)
    log_p_x = _target_log_prob(model(x), target)
    return -log_p_ins.mean(dim=1), log_p_del.mean(dim=1) - log_p_x


def _thresholds(log_weights: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
    """Thresholds (N, M) between the c_m-th and (c_m+1)-th largest values, and σ̄ (N,)."""
    ordered = log_weights.sort(dim=1, descending=True).values
    gaps = ordered[:, :-1] - ordered[:, 1:]
    n_nonzero = (gaps > 0).sum(dim=1)
    scale = torch.where(n_nonzero > 0, gaps.sum(dim=1) / n_nonzero.clamp(min=1), 1.0)
    padded = torch.cat([ordered, ordered[:, -1:] - scale[:, None]], dim=1)
    return (padded[:, counts - 1] + padded[:, counts]) / 2, scale


def _target_log_prob(logits: Tensor, target: Tensor) -> Tensor:
    check_logits_target(logits, target)
    return logits.log_softmax(dim=1).gather(1, target[:, None]).squeeze(1)
