"""The threat model shared by every attack: an ε-ball around x, the valid input range, the label.

An attacked x′ is admissible when ‖x′ − x‖ ≤ ε (ℓ∞ or ℓ2, per sample), low ≤ x′ ≤ high, and the
real model predicts the same label on x′ as on x. :class:`ThreatModel` projects onto the first
two, draws uniform points of the ball, gives the steepest-ascent step of its norm, tests the
label in one batched forward pass, and verifies a final result.
"""

from __future__ import annotations

import math
import typing
from typing import Literal

import torch
from salbench.attacks.base import Bounds
from salbench.core.seeding import SampleStreams
from torch import Tensor, nn

__all__ = ["Norm", "NORMS", "ThreatModel", "check_norm", "label_verdict", "predicted_label", "select"]

Norm = Literal["linf", "l2"]
NORMS: tuple[str, ...] = typing.get_args(Norm)

_TINY = 1e-12  # guards divisions by a norm that may be exactly 0


def check_norm(norm: str) -> None:
    """``norm`` is one of :data:`NORMS`."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def label_verdict(kept: Tensor, problems: list[str], attack: str) -> Tensor:
    """Add a changed label to the ``problems`` found in an attack's final result, raise if there
    are any (a bug in the attack: every accepted step was checked), else return ``kept``."""
    if not kept.all():
        problems.append(f"changes the label of sample(s) {(~kept).nonzero().flatten().tolist()}")
    if problems:
        raise RuntimeError(f"bug in attack {attack}: its result {' and '.join(problems)}")
    return kept


@torch.no_grad()
def predicted_label(model: nn.Module, x: Tensor) -> Tensor:
    """The model's predicted class for each sample, (N,), from one batched forward pass."""
    logits = model(x)
    if logits.dim() != 2 or logits.shape[0] != x.shape[0]:
        raise ValueError(f"the model must return logits of shape ({x.shape[0]}, num_classes), got {tuple(logits.shape)}")
    return logits.argmax(dim=1)


def _per_sample(values: Tensor, like: Tensor) -> Tensor:
    """View a per-sample (N,) tensor so that it broadcasts against ``like`` (N, ...)."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def select(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Per sample, ``a`` where the (N,) ``mask`` is True, else ``b``."""
    return torch.where(_per_sample(mask, a), a, b)


def _norms(delta: Tensor, norm: Norm) -> Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(dim=1) if norm == "linf" else flat.norm(dim=1)


def _bound(value: Tensor | float, x: Tensor, name: str) -> Tensor:
    if isinstance(value, bool) or not isinstance(value, (Tensor, int, float)):
        raise TypeError(f"{name} must be a float or a tensor broadcastable to x, got {type(value).__name__}")
    bound = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    try:
        shape = torch.broadcast_shapes(bound.shape, x.shape)
    except RuntimeError:
        shape = None
    if shape != x.shape:
        raise ValueError(f"{name} of shape {tuple(bound.shape)} does not broadcast to x of shape {tuple(x.shape)}")
    if torch.isnan(bound).any():
        raise ValueError(f"{name} contains NaN")
    return bound


def _check_bounds(bounds: Bounds, x: Tensor) -> tuple[Tensor, Tensor] | None:
    if bounds is None:
        return None
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise TypeError(f"bounds must be None or a pair (low, high), got {bounds!r}")
    low, high = _bound(bounds[0], x, "bounds low"), _bound(bounds[1], x, "bounds high")
    if (low > high).any():
        raise ValueError("bounds must satisfy low <= high everywhere")
    outside = ((x < low) | (x > high)).flatten(1).any(dim=1)
    if outside.any():
        raise ValueError(
            f"x lies outside bounds in sample(s) {outside.nonzero().flatten().tolist()}: "
            "the clean input must be in the valid range it is attacked in"
        )
    return low, high


class ThreatModel:
    """The admissible perturbations of a batch x: ε-ball ∩ valid range ∩ unchanged label.

    Args:
        model: the real model; its predicted label on x is the label to keep.
        x: the clean batch (N, ...), the centre of the ball.
        eps: radius of the ball, per sample, in input units.
        norm: ``"linf"`` (max |x′_i − x_i| ≤ ε) or ``"l2"`` (‖x′ − x‖₂ ≤ ε).
        bounds: valid range (low, high), floats or tensors broadcastable to x, or None.

    The projection clips δ = x′ − x to the ball, then x + δ to the range. For ℓ∞ that is the
    exact Euclidean projection onto the intersection; for ℓ2 it is feasible but not always
    the nearest point (clipping to the range only shrinks |δ_i| because x is inside the range).
    """

    def __init__(self, model: nn.Module, x: Tensor, eps: float, norm: Norm, bounds: Bounds):
        check_norm(norm)
        self.model = model
        self.x = x.detach()
        self.eps = eps
        self.norm = norm
        self.bounds = _check_bounds(bounds, self.x)
        self.label = predicted_label(model, self.x)

    def project(self, x_adv: Tensor) -> Tensor:
        """The point of the ball ∩ range for each sample of ``x_adv`` (detached)."""
        delta = x_adv.detach() - self.x
        if self.norm == "linf":
            delta = delta.clamp(-self.eps, self.eps)
        else:
            scale = self.eps / _norms(delta, "l2").clamp_min(self.eps)
            delta = delta * _per_sample(scale, delta)
        projected = self.x + delta
        return projected if self.bounds is None else torch.clamp(projected, *self.bounds)

    def direction(self, grad: Tensor) -> Tensor:
        """Steepest-ascent step of unit norm: sign(g) for ℓ∞, g / ‖g‖₂ per sample for ℓ2 (0 where g = 0)."""
        if self.norm == "linf":
            return grad.sign()
        return grad / _per_sample(_norms(grad, "l2").clamp_min(_TINY), grad)

    def sample(self, streams: SampleStreams) -> Tensor:
        """A point drawn uniformly from each sample's ball, then clipped to the range.

        ℓ∞: δ_i ~ U(−ε, ε) independently. ℓ2: a uniform direction (normalised Gaussian) times
        ε·U^(1/d), d = features per sample, which is uniform in the d-dimensional ball. Each
        sample's δ comes from its own stream of ``streams`` (one per sample of x).
        """
        shape = self.x.shape[1:]
        if self.norm == "linf":
            delta = (2 * streams.rand(shape, like=self.x) - 1) * self.eps
        else:
            gauss = streams.randn(shape, like=self.x)
            d = self.x[0].numel()
            radius = self.eps * streams.rand((), like=self.x) ** (1.0 / d)
            delta = gauss * _per_sample(radius / _norms(gauss, "l2").clamp_min(_TINY), gauss)
        return self.project(self.x + delta)

    def keeps_label(self, x_adv: Tensor) -> Tensor:
        """Per-sample bool (N,): the real model predicts on ``x_adv`` the label it predicts on x."""
        return predicted_label(self.model, x_adv) == self.label

    def verify(self, x_adv: Tensor, attack: str) -> Tensor:
        """Check a final result is admissible for every sample; return ``label_kept`` (all True).

        A violation is a bug in the attack (every accepted step was checked), so it raises.
        """
        slack = self.eps * (1 + 1e-5) + 1e-7 * math.sqrt(self.x[0].numel())  # float rounding of the projection
        problems = []
        if (_norms(x_adv - self.x, self.norm) > slack).any():
            problems.append(f"leaves the {self.norm} ball of radius {self.eps}")
        if self.bounds is not None and ((x_adv < self.bounds[0]) | (x_adv > self.bounds[1])).any():
            problems.append("leaves the bounds")
        return label_verdict(self.keeps_label(x_adv), problems, attack)
