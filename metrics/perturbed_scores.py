"""The model's target score on many perturbed copies of each sample, in chunked model calls.

Shared by the perturbation-based faithfulness metrics (faithfulness correlation, monotonicity
correlation, ROAD, IROF, region perturbation, infidelity, sufficiency/comprehensiveness): each
describes its copies by a function that builds the inputs of a block of samples × copies, and
:func:`copy_scores` scores them in model calls of at most ``batch_size`` inputs, as the
insertion/deletion curves do (:mod:`salbench.metrics.insertion_deletion`): blocks of whole
samples × all copies, or consecutive copies of one sample when one sample has more copies
than ``batch_size``.

Example:
    >>> import torch
    >>> model = torch.nn.Linear(3, 2)
    >>> x = torch.randn(4, 3)
    >>> scaled = lambda rows, copies: x[rows, None] * torch.arange(5.0)[copies, None]
    >>> copy_scores(model, scaled, 4, 5, torch.zeros(4, dtype=torch.long), "logit", 6).shape
    torch.Size([4, 5])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from salbench.core.validation import (
    check_input,
    check_logits_target,
    check_positive_int,
    check_same_shape,
    check_seed,
    check_target,
)
from salbench.metrics.base import Case, FaithfulnessMetric, MetricOutput
from torch import Tensor, nn

__all__ = [
    "Output",
    "PerturbationMetric",
    "auto_batch_size",
    "checked_inputs",
    "check_output",
    "copy_scores",
    "masked_copies",
    "descending_ranks",
]

Output = Literal["probability", "logit"]
Build = Callable[[slice, slice], Tensor]


def check_output(output: str) -> None:
    """``output`` is "probability" (softmax of the target class) or "logit"."""
    if output not in ("probability", "logit"):
        raise ValueError(f"output must be 'probability' or 'logit', got {output!r}")


class PerturbationMetric(FaithfulnessMetric):
    """Base of the metrics that score perturbed copies: ``seed`` (of any random draw) and
    ``batch_size`` (inputs per model call; None: :func:`auto_batch_size`) are declared here
    once; a subclass implements :meth:`evaluate_curve` and forwards ``**kwargs`` to this ``__init__``."""

    def __init__(self, seed: int = 0, batch_size: int | None = None):
        check_seed(seed)
        if batch_size is not None:
            check_positive_int(batch_size, "batch_size")
        self.seed = seed
        self.batch_size = batch_size

    def rows_per_call(self, x: Tensor) -> int:
        """Inputs per model call for the batch ``x``: ``batch_size``, or :func:`auto_batch_size`."""
        return auto_batch_size(x) if self.batch_size is None else self.batch_size

    def __call__(self, model: nn.Module, x: Tensor, attr: Tensor, target: Tensor | int) -> Tensor:
        """The values per sample, (N,) (NaN only where :meth:`evaluate` gives a note why)."""
        return MetricOutput(*self.evaluate_curve(model, x, attr, target)).values

    def evaluate(self, case: Case) -> tuple[Tensor, Tensor | None] | MetricOutput:
        return self.evaluate_curve(case.model, case.x, case.attr, case.target)

    def evaluate_curve(
        self, model: nn.Module, x: Tensor, attr: Tensor, target: Tensor | int
    ) -> tuple[Tensor, Tensor | None] | MetricOutput:
        """Values (N,) and curves (N, M) or None, or a :class:`MetricOutput` with notes."""
        raise NotImplementedError


CPU_ELEMENTS_PER_CALL = 1 << 15
"""Input elements per model call on the CPU by default (32 Ki: 41 images of 28×28, 10 of 56×56)."""
CUDA_ELEMENTS_PER_CALL = 1 << 24
"""Input elements per model call on a GPU by default (16 Mi: 111 images of 3×224×224)."""
ROWS_PER_CALL = (32, 4096)
"""The fewest and most inputs per model call by default."""


def auto_batch_size(x: Tensor) -> int:
    """Default inputs per model call for samples like those of ``x``: a budget of input elements
    per call (:data:`CPU_ELEMENTS_PER_CALL`, or :data:`CUDA_ELEMENTS_PER_CALL` on a GPU) over the
    elements of one sample, within :data:`ROWS_PER_CALL`.

    On the CPU a model call costs more per input when its activations outgrow the caches (a
    small CNN on 56×56 images: ≈1.0 ms per image in calls of 8–32 images, 1.6 ms in calls of
    256), so calls stay small there, but not below 32 inputs: a ResNet on 64² and 128² images
    scored in 8-input calls was 1.0× Quantus's PixelFlipping (16-input calls), in 32-input calls
    0.76–0.78× (``python -m salbench.perf.insertion_deletion``); a GPU needs large calls to be busy.

    >>> auto_batch_size(torch.zeros(2, 1, 28, 28)), auto_batch_size(torch.zeros(2, 30)), auto_batch_size(torch.zeros(1, 3, 224, 224))
    (41, 1092, 32)
    """
    budget = CUDA_ELEMENTS_PER_CALL if x.device.type == "cuda" else CPU_ELEMENTS_PER_CALL
    low, high = ROWS_PER_CALL
    return max(low, min(high, budget // x[0].numel()))


def checked_inputs(x: Tensor, attr: Tensor, target: Tensor | int, min_dim: int = 2) -> tuple[Tensor, Tensor, Tensor]:
    """Validate a float input, its attribution (same shape) and target; return them detached, target as (N,) long."""
    check_input(x, min_dim=min_dim)
    check_input(attr, "attr")
    check_same_shape(attr, x, ("attr", "x"))
    return x.detach(), attr.detach(), check_target(target, x)


def copy_scores(
    model: nn.Module, build: Build, n: int, n_copies: int, target: Tensor, output: Output, batch_size: int
) -> Tensor:
    """Target scores (n, n_copies): the softmax probability (or logit) of ``target`` on every copy.

    ``build(rows, copies)`` returns the inputs (len(rows), len(copies), *sample_shape) of the
    samples ``rows`` and copies ``copies`` (both slices). Runs without gradients; the class
    range of ``target`` is checked on the first call's logits.
    """
    samples_per_call = max(1, batch_size // n_copies)
    copies_per_call = min(n_copies, batch_size)
    blocks = []
    with torch.no_grad():
        for s0 in range(0, n, samples_per_call):
            rows = slice(s0, min(n, s0 + samples_per_call))
            parts = []
            for c0 in range(0, n_copies, copies_per_call):
                inputs = build(rows, slice(c0, min(n_copies, c0 + copies_per_call)))
                logits = model(inputs.flatten(0, 1))
                if s0 == 0 and c0 == 0:
                    check_logits_target(logits, target)
                logits = logits.view(*inputs.shape[:2], -1)
                if output == "probability":
                    logits = logits.log_softmax(dim=2)
                score = logits.gather(2, target[rows, None, None].expand(*inputs.shape[:2], 1)).squeeze(2)
                parts.append(score.exp() if output == "probability" else score)
            blocks.append(torch.cat(parts, dim=1))
    return torch.cat(blocks)


def masked_copies(x: Tensor, fill: Tensor, remove: Tensor, mask_shape: tuple[int, ...]) -> Tensor:
    """Copies (n, P, *x.shape[1:]) of ``x`` (n, ...) with the units where ``remove`` (n, P, U) is
    True taken from ``fill`` (broadcastable to (n, P, *x.shape[1:]), e.g. (n, 1, ...)).

    ``mask_shape`` is the shape of one sample's unit mask (:func:`~salbench.metrics.perturbation.unit_mask_shape`).
    """
    n, p = remove.shape[:2]
    return torch.where(remove.view(n, p, *mask_shape), fill, x[:, None])


def descending_ranks(scores: Tensor) -> Tensor:
    """(N, U) long: each unit's 0-based position in its row's descending order; ties keep index order."""
    n, u = scores.shape
    order = scores.argsort(dim=1, descending=True, stable=True)
    return torch.empty_like(order).scatter_(1, order, torch.arange(u, device=scores.device).expand(n, u))
