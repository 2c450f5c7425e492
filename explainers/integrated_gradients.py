"""Integrated gradients (Sundararajan, Taly, Yan 2017)."""

from __future__ import annotations

import math
import typing
from typing import Literal

import numpy as np
import torch
from salbench.core.validation import check_positive_int
from salbench.explainers import register
from salbench.explainers.base import Explainer, output_gradient
from torch import Tensor, nn

Method = Literal["gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle"]
METHODS = typing.get_args(Method)


def quadrature(method: str, steps: int) -> tuple[Tensor, Tensor]:
    """Nodes α_k in [0, 1] and weights w_k (float64) of the path integral ∫_0^1 g(α) dα ≈ Σ_k w_k g(α_k).

    Riemann rules use ``steps`` equally spaced nodes and weights 1/steps; the trapezoid rule
    puts nodes on linspace(0, 1, steps) and halves the two end weights, which is Captum's
    convention (the weights sum to 1 − 1/steps, not 1). Gauss–Legendre maps the Legendre
    nodes and weights from [−1, 1] to [0, 1].
    """
    n = steps
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        return torch.from_numpy((nodes + 1) / 2), torch.from_numpy(weights / 2)
    weights = torch.full((n,), 1 / n, dtype=torch.float64)
    if method == "riemann_trapezoid":
        weights[[0, -1]] /= 2
        return torch.linspace(0, 1, n, dtype=torch.float64), weights
    first = {"riemann_left": 0.0, "riemann_middle": 0.5 / n, "riemann_right": 1 / n}[method]
    return first + torch.arange(n, dtype=torch.float64) / n, weights


@register("integrated_gradients")
class IntegratedGradients(Explainer):
    """Integrated gradients: path integral of the gradient from a baseline (Sundararajan et al. 2017).

    Sundararajan, Taly, Yan 2017, "Axiomatic attribution for deep networks", ICML.
    E(x) = (x − b) ⊙ ∫_0^1 ∂f_c(b + α(x − b))/∂x dα
         ≈ (x − b) ⊙ Σ_k w_k ∂f_c(b + α_k(x − b))/∂x,
    with b the constant ``baseline`` (default 0, the paper's black image). Completeness:
    Σ_i E_i(x) ≈ f_c(x) − f_c(b), exactly in the limit of many steps.

    The integral rule is ``method``: "gausslegendre" (default, as in Captum; exact for
    polynomial integrands of degree < 2·steps), or the Riemann rules "riemann_left",
    "riemann_right" (the paper's sum over k/m, k = 1..m), "riemann_middle" and
    "riemann_trapezoid" (Captum's weights: 1/steps with halved ends, which sum to
    1 − 1/steps; kept for agreement with Captum, so its completeness error is O(1/steps)).
    ``steps`` defaults to 50 (Captum's default; the paper uses 20–300).

    Batching: the steps × N interpolated inputs (row k·N + i is node k of sample i) are
    evaluated ``internal_batch_size`` rows per forward/backward pass; None evaluates them all
    in one pass. Departure: only a constant baseline (a float) is supported.

    Args:
        steps: number of integration nodes, >= 1 (>= 2 for the trapezoid rule).
        baseline: the constant value of the baseline input b.
        method: the integration rule.
        internal_batch_size: rows per forward/backward pass (>= 1), or None for all.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
        >>> x = torch.randn(5, 3, dtype=torch.float64)
        >>> attr = explainers.get("integrated_gradients", steps=32)(model, x, 0)
        >>> gap = model(x)[:, 0] - model(torch.zeros_like(x))[:, 0]
        >>> bool(torch.allclose(attr.sum(1), gap, atol=1e-6))
        True
    """

    def __init__(
        self,
        steps: int = 50,
        baseline: float = 0.0,
        method: Method = "gausslegendre",
        internal_batch_size: int | None = None,
    ):
        check_positive_int(steps, "steps")
        if not math.isfinite(baseline):
            raise ValueError(f"baseline must be a finite number, got {baseline!r}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")
        if method == "riemann_trapezoid" and steps < 2:
            raise ValueError(f"steps must be >= 2 for the trapezoid rule, got {steps!r}")
        if internal_batch_size is not None:
            check_positive_int(internal_batch_size, "internal_batch_size")
        self.steps = steps
        self.baseline = baseline
        self.method = method
        self.internal_batch_size = internal_batch_size
        self._nodes, self._weights = quadrature(method, steps)

    def attribute(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        x = x if create_graph else x.detach()
        n = x.shape[0]
        delta = x - self.baseline
        nodes, weights = self._nodes.to(x), self._weights.to(x)
        broadcast = (-1,) + (1,) * (x.dim() - 1)
        rows = self.steps * n
        per_pass = self.internal_batch_size or rows
        total = torch.zeros_like(x)
        for start in range(0, rows, per_pass):
            row = torch.arange(start, min(start + per_pass, rows), device=x.device)
            node, sample = row // n, row % n
            path = self.baseline + nodes[node].view(broadcast) * delta[sample]
            grad, _ = output_gradient(model, path, target[sample], create_graph=create_graph)
            total = total.index_add(0, sample, grad * weights[node].view(broadcast))
        return delta * total
