"""Decoys: copies of an input changed inside one patch that keep a layer's representation (Lu et al.)."""

from __future__ import annotations

import dataclasses
import math

import torch
from salbench.core.validation import check_input, check_positive, check_positive_int
from salbench.explainers.layers import conv_type, find_layer
from torch import Tensor, nn

__all__ = ["Decoys", "DecoyStats", "DecoyGenerator", "patch_masks", "layer_output"]


@dataclasses.dataclass(frozen=True)
class DecoyStats:
    """Per-sample decoy counts: ``kept`` and ``discarded`` are (N,) long tensors."""

    kept: Tensor
    discarded: Tensor


@dataclasses.dataclass(frozen=True)
class Decoys:
    """The decoys of a batch x of shape (N, C, *spatial), J = 2 × (number of patch masks) per sample.

    Attributes:
        inputs: (N, J, C, *spatial) decoys; a discarded decoy is x itself.
        kept: (N, J) bool, True where the decoy satisfies the layer constraint.
        distance: (N, J) ‖F_ℓ(x̃) − F_ℓ(x)‖_∞ of the returned decoy if kept, else of the
            last (smallest) shrink tried, so it says how far from feasible the decoy stayed.
        masks: (J, *spatial) bool, the patch of each decoy (decoys 2p and 2p + 1 share patch p).
        signs: (J,) the direction s of each decoy: +1 for even j, −1 for odd j.
    """

    inputs: Tensor
    kept: Tensor
    distance: Tensor
    masks: Tensor
    signs: Tensor

    def stats(self) -> DecoyStats:
        kept = self.kept.sum(1)
        return DecoyStats(kept=kept, discarded=self.kept.shape[1] - kept)


def patch_masks(spatial: tuple[int, ...], patch: int, stride: int, device: torch.device | None = None) -> Tensor:
    """(P, *spatial) bool: every window of side ``patch`` along each spatial dimension, row-major by first corner.

    ``spatial`` is (L,) for signals, (H, W) for images, (D, H, W) for volumes. Along each side
    the windows start at 0, stride, 2·stride, … while they fit; if the last one stops short of
    the edge, one more window flush with the edge is added, so every position is covered and
    every window is a full patch × … × patch box.

    Example:
        >>> patch_masks((5,), 2, 2).int().tolist()
        [[1, 1, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1]]
        >>> patch_masks((4, 4, 4), 2, 2).shape
        torch.Size([8, 4, 4, 4])
    """
    masks = torch.ones((1,), dtype=torch.bool, device=device)
    for size in spatial:  # (P_so_far, *sizes_so_far) × (count, size) → (P_so_far · count, *sizes_so_far, size)
        cover = _window_cover(size, patch, stride, device)
        masks = (masks[:, None, ..., None] & cover.view(1, cover.shape[0], *[1] * (masks.dim() - 1), size)).flatten(0, 1)
    return masks


def _window_cover(size: int, patch: int, stride: int, device: torch.device | None) -> Tensor:
    """(count, size) bool: window k covers index i."""
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] + patch < size:
        starts.append(size - patch)
    start = torch.tensor(starts, device=device)[:, None]
    index = torch.arange(size, device=device)
    return (index >= start) & (index < start + patch)


class _LayerReached(Exception):
    """Raised by the forward hook to stop the forward pass once the layer has run."""

    def __init__(self, output: object):
        super().__init__()
        self.output = output


def layer_output(model: nn.Module, layer: nn.Module, name: str, x: Tensor) -> Tensor:
    """F_ℓ(x): the output of ``layer`` (its first call) in ``model(x)``, flattened to (N, units).

    The forward pass stops as soon as the layer has run (a hook raises a private exception),
    so nothing after the layer is computed.
    """
    handle = layer.register_forward_hook(lambda module, args, out: _raise(_LayerReached(out)))
    try:
        model(x)
    except _LayerReached as reached:
        output = reached.output
    else:
        raise ValueError(f"layer {name!r} did not run in the model's forward pass")
    finally:
        handle.remove()
    if not isinstance(output, Tensor) or output.dim() < 1 or output.shape[0] != x.shape[0]:
        shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise ValueError(f"layer {name!r} must output a tensor with the batch first ({x.shape[0]} rows), got {shape}")
    return output.flatten(1)


def _raise(error: Exception) -> None:
    raise error


class DecoyGenerator:
    """Decoys of a batch of signals, images or volumes at a layer ℓ (Lu, Guo, Xing, Noble 2021).

    Lu, Guo, Xing, Noble, "DANCE: Enhancing saliency maps using decoys", ICML 2021,
    arXiv:2002.00526 (earlier titles "Robust saliency maps with decoy-enhanced saliency
    score", "Decoy-enhanced saliency maps"); the authors published no code.
    For each sample x (N, C, *spatial) with 1 to 3 spatial dimensions, each patch mask M (a
    ``patch`` × … × ``patch`` box over all channels — an interval of a signal, a square of an
    image, a cube of a volume — slid with ``stride``; see :func:`patch_masks`) and each sign
    s ∈ {+1, −1}, the decoy x̃
    solves the paper's problem

        maximise ‖((x̃ − x)·s)⁺‖₁  subject to  ‖F_ℓ(x̃) − F_ℓ(x)‖_∞ ≤ ε,
        x̃ = x outside M,  low ≤ x̃ ≤ high (``bounds``),

    where F_ℓ is the output of the module ``layer``. n masks give 2n decoys per sample.

    Solver (all samples × masks × signs at once, ``batch_size`` rows per pass). The paper
    solves a Lagrangian (penalty) relaxation of the layer constraint; here each decoy minimises

        L(x̃) = −Σ_i ((x̃_i − x_i)·s)⁺ + c · Σ_u (|F_ℓ(x̃)_u − F_ℓ(x)_u| − ε)⁺,   c = ``penalty``,

    whose penalty is zero exactly on the feasible set (a hinge on the ∞-norm has the same
    zero set, but the sum gives every violating unit a gradient, not only the largest).
    Start x̃⁰ = Π(x + lr·s·M) (deterministic: nothing here is random), then ``steps`` signed
    gradient steps x̃ ← Π(x̃ − lr·sign(∇L)), Π = keep x outside M and clip to ``bounds``.
    Every iterate (x̃⁰ included) is checked against the constraint in the pass that computes
    its gradient; the decoy is the feasible iterate with the largest objective. A decoy with
    no feasible iterate is shrunk toward x along its last iterate, x + 2^(−b)(x̃ − x) for
    b = 1 … ``backtrack``, taking the first feasible one (the constraint is continuous in
    x̃ and holds at x, so small enough shrinks succeed whenever ε > 0 is not below the
    float error of F_ℓ). A decoy infeasible at every shrink is discarded: it is reported as
    x with ``kept`` False. With ε = 0 and a layer that is injective on the patch (e.g. a
    convolution before its activation) every discarded decoy is exactly x and every kept
    one leaves F_ℓ bitwise unchanged, so it differs from x only below the float error of
    F_ℓ (≈ 1e-15 in float64); where F_ℓ is flat (dead ReLU units) a decoy far from x can
    keep F_ℓ exactly and is kept, as the definition asks.

    Departures from the paper (as far as its text specifies the solver): signed gradient
    steps with a fixed multiplier c and the summed hinge above; the best-feasible-iterate rule
    and the backtracking, which make every kept decoy satisfy the constraint exactly (as
    checked, in the model's dtype) rather than approximately; ε is absolute, in the units
    of F_ℓ. The layer's output is captured by a forward hook that stops the forward pass
    once the layer has run (the first call of a module used twice).

    Args:
        layer: name of the module ℓ (``model.get_submodule``), or "auto" for the last
            convolution of the input's dimension (``nn.Conv1d`` / ``Conv2d`` / ``Conv3d``, before
            its activation).
        eps: tolerance ε >= 0 of the layer constraint, in units of F_ℓ.
        patch: side K >= 1 of the masks (along every spatial dimension).
        stride: step of the sliding mask, in [1, patch]; None means ``patch`` (the masks
            tile the input, overlapping only at the far edges).
        steps: signed gradient steps (>= 1).
        lr: step size, in input units (> 0); also the size of the start x̃⁰ − x.
        penalty: the multiplier c > 0 of the layer penalty.
        backtrack: number of halvings tried for decoys without a feasible iterate (>= 0).
        bounds: the valid input range (low, high), or None for unbounded inputs.
        batch_size: decoy rows (sample × mask × sign) per forward/backward pass (>= 1), or
            None for all at once.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 2))
        >>> x = torch.rand(2, 1, 6, 6)
        >>> decoys = DecoyGenerator(layer="0", eps=0.05, patch=3, bounds=(0.0, 1.0))(net, x)
        >>> decoys.inputs.shape, decoys.kept.shape
        (torch.Size([2, 8, 1, 6, 6]), torch.Size([2, 8]))
    """

    def __init__(
        self,
        layer: str = "auto",
        eps: float = 0.05,
        patch: int = 3,
        stride: int | None = None,
        steps: int = 20,
        lr: float = 0.02,
        penalty: float = 10.0,
        backtrack: int = 10,
        bounds: tuple[float, float] | None = None,
        batch_size: int | None = None,
    ):
        if not isinstance(layer, str) or not layer:
            raise ValueError(f"layer must be a module name (see model.named_modules()) or 'auto', got {layer!r}")
        check_positive(eps, "eps", allow_zero=True)
        check_positive_int(patch, "patch")
        if stride is not None:
            check_positive_int(stride, "stride")
            if stride > patch:
                raise ValueError(f"stride must lie in [1, patch={patch}] so that every pixel is masked, got {stride}")
        check_positive_int(steps, "steps")
        check_positive(lr, "lr")
        check_positive(penalty, "penalty")
        if isinstance(backtrack, bool) or not isinstance(backtrack, int) or backtrack < 0:
            raise ValueError(f"backtrack must be an integer >= 0 (the number of halvings), got {backtrack!r}")
        if bounds is not None:
            _check_bounds(bounds)
        if batch_size is not None:
            check_positive_int(batch_size, "batch_size")
        self.layer, self.eps, self.patch, self.stride = layer, float(eps), patch, stride
        self.steps, self.lr, self.penalty, self.backtrack = steps, float(lr), float(penalty), backtrack
        self.bounds = None if bounds is None else (float(bounds[0]), float(bounds[1]))
        self.batch_size = batch_size

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"

    def __call__(self, model: nn.Module, x: Tensor) -> Decoys:
        """The 2n decoys of every sample of x (N, C, *spatial); see the class docstring."""
        self._check_x(x)
        x = x.detach()
        name, layer = find_layer(model, self.layer, conv_type(x, "decoys") if self.layer == "auto" else nn.Module, "layer")
        masks = patch_masks(x.shape[2:], self.patch, self.stride or self.patch, x.device).repeat_interleave(2, 0)
        signs = torch.tensor([1.0, -1.0], dtype=x.dtype, device=x.device).repeat(masks.shape[0] // 2)
        with torch.no_grad():
            reference = layer_output(model, layer, name, x)
        per_sample = masks.shape[0]
        rows = x.shape[0] * per_sample  # row r: decoy r % per_sample of sample r // per_sample
        per_pass = self.batch_size or rows
        chunks = []
        for start in range(0, rows, per_pass):
            row = torch.arange(start, min(start + per_pass, rows), device=x.device)
            sample, decoy = row // per_sample, row % per_sample
            problem = _Problem(model, layer, name, x[sample], reference[sample], masks[decoy, None], signs[decoy], self)
            chunks.append(problem.solve())
        inputs, kept, distance = (torch.cat(parts).unflatten(0, (x.shape[0], per_sample)) for parts in zip(*chunks))
        return Decoys(inputs=inputs, kept=kept, distance=distance, masks=masks, signs=signs)

    def _check_x(self, x: Tensor) -> None:
        check_input(x)
        conv_type(x, "decoys")  # (N, C, *spatial) with 1 to 3 spatial dimensions
        spatial = tuple(x.shape[2:])
        if self.patch > min(spatial):
            raise ValueError(
                f"patch={self.patch} is larger than the {'×'.join(map(str, spatial))} input; use patch <= {min(spatial)}"
            )
        if self.bounds is not None:
            low, high = self.bounds
            outside = ((x < low) | (x > high)).flatten(1).any(1)
            if outside.any():
                raise ValueError(
                    f"x lies outside bounds {self.bounds} in sample(s) {outside.nonzero().flatten().tolist()}; "
                    "the input must be in the valid range its decoys are drawn from"
                )


def _per_row(values: Tensor, like: Tensor) -> Tensor:
    """(R,) values viewed as (R, 1, …, 1) to broadcast against rows of ``like``."""
    return values.view(-1, *[1] * (like.dim() - 1))


def _check_bounds(bounds: tuple[float, float]) -> None:
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise ValueError(f"bounds must be None or a pair (low, high), got {bounds!r}")
    low, high = bounds
    finite = all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds)
    if not finite or not low < high:
        raise ValueError(f"bounds must be two finite numbers low < high, got {bounds!r}")


class _Problem:
    """One chunk of decoy problems: rows of (x, F_ℓ(x), mask, sign), solved together."""

    def __init__(
        self,
        model: nn.Module,
        layer: nn.Module,
        name: str,
        x: Tensor,
        reference: Tensor,
        mask: Tensor,
        sign: Tensor,
        config: DecoyGenerator,
    ):
        self.model, self.layer, self.name = model, layer, name
        self.x, self.reference, self.mask = x, reference, mask
        self.sign = _per_row(sign, x)
        self.config = config

    def project(self, candidate: Tensor, rows: Tensor | slice = slice(None)) -> Tensor:
        """Π: x outside the mask, clipped to ``bounds`` inside (for the given rows)."""
        if self.config.bounds is not None:
            candidate = candidate.clamp(*self.config.bounds)
        return torch.where(self.mask[rows], candidate, self.x[rows])

    def distance(self, decoy: Tensor, rows: Tensor | slice = slice(None)) -> tuple[Tensor, Tensor]:
        """(‖F_ℓ(x̃) − F_ℓ(x)‖_∞, penalty Σ_u (|ΔF_u| − ε)⁺) per row."""
        gap = (layer_output(self.model, self.layer, self.name, decoy) - self.reference[rows]).abs()
        return gap.amax(1), (gap - self.config.eps).clamp(min=0).sum(1)

    def gain(self, decoy: Tensor) -> Tensor:
        """The objective ‖((x̃ − x)·s)⁺‖₁ per row."""
        return ((decoy - self.x) * self.sign).clamp(min=0).flatten(1).sum(1)

    def solve(self) -> tuple[Tensor, Tensor, Tensor]:
        """(decoys, kept, distance) of the chunk's rows."""
        config = self.config
        decoy = self.project(self.x + config.lr * self.sign)
        best, best_gain = self.x, torch.full((self.x.shape[0],), -1.0, dtype=self.x.dtype, device=self.x.device)
        best_distance = torch.zeros_like(best_gain)
        for step in range(config.steps + 1):
            with torch.enable_grad():
                decoy.requires_grad_(True)
                distance, penalty = self.distance(decoy)
                gain = self.gain(decoy)
                distance, better = distance.detach(), (distance <= config.eps) & (gain.detach() > best_gain)
                best = torch.where(_per_row(better, best), decoy.detach(), best)
                best_gain = torch.where(better, gain.detach(), best_gain)
                best_distance = torch.where(better, distance, best_distance)
                if step == config.steps:
                    break
                (grad,) = torch.autograd.grad((config.penalty * penalty - gain).sum(), decoy)
            decoy = self.project(decoy.detach() - config.lr * grad.sign())
        found = best_gain >= 0
        shrunk, shrunk_ok, shrunk_distance = self.shrink(decoy.detach(), distance, ~found)
        decoys = torch.where(_per_row(found, best), best, shrunk)
        return decoys, found | shrunk_ok, torch.where(found, best_distance, shrunk_distance)

    @torch.no_grad()
    def shrink(self, decoy: Tensor, distance: Tensor, todo: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Backtracking of the rows in ``todo``: x + 2^(−b)(x̃ − x), the first feasible b = 1 … backtrack.

        Returns the decoys (x where no shrink was feasible), which rows succeeded, and the
        distance of the accepted shrink (else of the last one tried, or of x̃ without any).
        """
        result, ok, distance = self.x.clone(), torch.zeros_like(todo), distance.clone()
        rows = todo.nonzero().flatten()
        for b in range(1, self.config.backtrack + 1):
            if rows.numel() == 0:
                break
            trial = self.project(self.x[rows] + (decoy[rows] - self.x[rows]) * 2.0**-b, rows)
            distance[rows] = self.distance(trial, rows)[0]
            accept = distance[rows] <= self.config.eps
            result[rows[accept]] = trial[accept]
            ok[rows[accept]] = True
            rows = rows[~accept]
        return result, ok, distance
