"""Differentiable image-acquisition transforms, each exactly the identity at its neutral parameters.

The acquisition model of the ``acquisition`` attack (:mod:`salbench.attacks.acquisition`) maps a clean
image x (N, C, H, W) and per-sample parameters θ to what another acquisition of the same
patient could have produced, in the order of the imaging chain:

1. :func:`warp` — patient positioning: rotation about the image centre and translation;
2. :func:`bias_field` — a smooth multiplicative intensity field (X-ray heel effect,
   non-uniform illumination, MRI bias field): x · exp(polynomial of degree 2 in u, v);
3. :func:`gaussian_blur` — the point-spread function (focal spot, detector, slight motion);
4. :func:`quantum_noise` — signal-dependent (Poisson-like) noise, std = level·√x;
5. :func:`gamma` — the detector / display response curve x ↦ x^γ;
6. additive Gaussian (electronic) noise, std = ``noise``;
7. :func:`window` — brightness and contrast (window level and width, exposure);
8. clamp to the valid range: the detector saturates and the stored image is quantised to a
   fixed range, so a value outside it cannot be acquired (not a silent repair: the range is
   part of the model, and no other step is clipped).

The noise terms follow the Poisson–Gaussian model of raw sensor data (Foi, Trimeche,
Katkovnik, Egiazarian, "Practical Poissonian-Gaussian noise modeling and fitting for
single-image raw-data", IEEE TIP 2008): variance a·x + b, here with a = poisson², b = noise².
Their standard-normal draws are fixed for the whole optimisation (the reparameterisation
trick: the image is a deterministic, differentiable function of the noise *levels*).

Exact identity: every step is written so that at its neutral parameters it returns its input
bit for bit (x + 0·(…), x·1, sampling exactly at pixel centres, a unit-impulse kernel), so an
unperturbed parameter never perturbs the image. Each function takes per-sample parameters
of shape (N,) and is differentiable in them (checked by ``torch.autograd.gradcheck`` in the
tests); gradients with respect to the parameters are non-zero at the neutral point, so an
ascent can start from the clean image (blur is parametrised by its *variance* for this
reason: the blurred image is x + (σ²/2)·Δx + O(σ⁴), flat in σ at σ = 0 but not in σ²).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from salbench.core.seeding import SampleStreams
from torch import Tensor
from torch.nn import functional as F

__all__ = [
    "Parameter",
    "PARAMETERS",
    "NAMES",
    "NEUTRAL",
    "BIAS_TERMS",
    "MAX_BLUR",
    "warp",
    "bias_field",
    "discrete_gaussian",
    "gaussian_blur",
    "quantum_noise",
    "gamma",
    "window",
    "foreground_mask",
    "AcquisitionModel",
]

MAX_BLUR = 16.0
"""Largest blur variance (px², σ = 4 px) the kernel series is computed for in float32 without
overflow; more blur than that is a different image, not another acquisition of it."""

SIGNAL_FLOOR = 1e-6
"""Signal below which the quantum-noise std stops falling (√x has an infinite slope at 0): far
below one grey level of an 8-bit image (1/255 ≈ 4e-3) in [0, 1] units."""


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One acquisition parameter: its neutral value, its mathematical domain and its meaning."""

    name: str
    neutral: float
    unit: str
    meaning: str
    minimum: float = -math.inf
    open_minimum: bool = False  # True: values must exceed ``minimum`` strictly
    maximum: float = math.inf

    def allows(self, value: float) -> bool:
        """``value`` lies in the parameter's domain."""
        above = value > self.minimum if self.open_minimum else value >= self.minimum
        return above and value <= self.maximum

    def domain(self) -> str:
        parts = [] if self.minimum == -math.inf else [f"{'>' if self.open_minimum else '>='} {self.minimum:g}"]
        parts += [] if self.maximum == math.inf else [f"<= {self.maximum:g}"]
        return " and ".join(parts) or "any finite number"


BIAS_TERMS = ("bias_x", "bias_y", "bias_xx", "bias_xy", "bias_yy")

PARAMETERS: tuple[Parameter, ...] = (
    Parameter("rotation", 0.0, "degrees", "rotation of the content about the image centre (clockwise on screen)"),
    Parameter("shift_x", 0.0, "fraction of the image width", "translation of the content to the right"),
    Parameter("shift_y", 0.0, "fraction of the image height", "translation of the content downwards"),
    Parameter("bias_x", 0.0, "log-intensity at the right edge", "coefficient of u in the log bias field (u: −1 left, 1 right)"),
    Parameter("bias_y", 0.0, "log-intensity at the bottom edge", "coefficient of v in the log bias field (v: −1 top, 1 bottom)"),
    Parameter("bias_xx", 0.0, "log-intensity", "coefficient of u² in the log bias field"),
    Parameter("bias_xy", 0.0, "log-intensity", "coefficient of u·v in the log bias field"),
    Parameter("bias_yy", 0.0, "log-intensity", "coefficient of v² in the log bias field"),
    Parameter("blur", 0.0, "px² (variance σ²)", "variance of the Gaussian point-spread function", minimum=0.0, maximum=MAX_BLUR),
    Parameter("poisson", 0.0, "√(input units)", "signal-dependent noise: std = poisson·√x", minimum=0.0),
    Parameter("gamma", 1.0, "exponent", "response curve x ↦ x^γ", minimum=0.0, open_minimum=True),
    Parameter("noise", 0.0, "input units", "std of additive Gaussian (electronic) noise", minimum=0.0),
    Parameter("contrast", 1.0, "factor", "contrast about the clean image's mean", minimum=0.0, open_minimum=True),
    Parameter("brightness", 0.0, "input units", "additive intensity offset"),
)
NAMES: tuple[str, ...] = tuple(p.name for p in PARAMETERS)
NEUTRAL: dict[str, float] = {p.name: p.neutral for p in PARAMETERS}


def _per_sample(values: Tensor) -> Tensor:
    """(N,) → (N, 1, 1, 1), to broadcast against images."""
    return values.view(-1, 1, 1, 1)


def _pixel_grid(x: Tensor) -> tuple[Tensor, Tensor, float, float]:
    """Row and column indices (H, W) in x's dtype and the centre (cy, cx) in pixel units."""
    h, w = x.shape[-2:]
    rows = torch.arange(h, dtype=x.dtype, device=x.device)[:, None].expand(h, w)
    cols = torch.arange(w, dtype=x.dtype, device=x.device)[None, :].expand(h, w)
    return rows, cols, (h - 1) / 2, (w - 1) / 2


def _bilinear(x: Tensor, src_y: Tensor, src_x: Tensor) -> Tensor:
    """x (N, C, H, W) sampled at per-sample pixel coordinates (N, H, W), border-replicated.

    Written out (rather than ``grid_sample``) so that sampling exactly at pixel centres gives
    the pixel values bit for bit: the weights are then exactly 1 and 0.
    """
    n, c, h, w = x.shape
    sy, sx = src_y.clamp(0, h - 1), src_x.clamp(0, w - 1)
    y0 = sy.detach().floor().clamp(max=h - 2)
    x0 = sx.detach().floor().clamp(max=w - 2)
    wy, wx = (sy - y0)[:, None], (sx - x0)[:, None]
    flat = x.flatten(2)

    def at(rows: Tensor, cols: Tensor) -> Tensor:
        index = (rows * w + cols).long().flatten(1)[:, None].expand(n, c, h * w)
        return flat.gather(2, index).view(n, c, h, w)

    top = (1 - wx) * at(y0, x0) + wx * at(y0, x0 + 1)
    bottom = (1 - wx) * at(y0 + 1, x0) + wx * at(y0 + 1, x0 + 1)
    return (1 - wy) * top + wy * bottom


def warp(x: Tensor, rotation: Tensor, shift_x: Tensor, shift_y: Tensor) -> Tensor:
    """Rotate the content by ``rotation`` degrees about the centre, then translate it.

    Output pixel p = (row, col) takes the bilinear value of x at c + R(−a)(p − c − t), with
    c the image centre, a the angle (clockwise on screen, rows pointing down) and
    t = (shift_y·H, shift_x·W) pixels; outside the image the border pixel is repeated
    (a shifted patient does not bring black bands into the detector's field). Pixels are
    taken as square. Images need H, W >= 2.
    """
    rows, cols, cy, cx = _pixel_grid(x)
    h, w = x.shape[-2:]
    angle = torch.deg2rad(rotation)[:, None, None]
    cos, sin = angle.cos(), angle.sin()
    dy = rows - cy - (shift_y * h)[:, None, None]
    dx = cols - cx - (shift_x * w)[:, None, None]
    src_x = cx + (cos * dx + sin * dy)
    src_y = cy + (cos * dy - sin * dx)
    return _bilinear(x, src_y, src_x)


def bias_field(x: Tensor, coefficients: Tensor) -> Tensor:
    """x · exp(b_x·u + b_y·v + b_xx·u² + b_xy·u·v + b_yy·v²), u, v ∈ [−1, 1] across the image.

    ``coefficients`` (N, 5) in the order of :data:`BIAS_TERMS`; u runs from −1 (left) to 1
    (right), v from −1 (top) to 1 (bottom). A log-polynomial keeps the field positive and
    smooth (the low-order model of MRI bias-field correction, e.g. Styner et al., IEEE TMI
    2000, "Parametric estimate of intensity inhomogeneities applied to MRI").
    """
    rows, cols, cy, cx = _pixel_grid(x)
    u, v = (cols - cx) / cx, (rows - cy) / cy
    basis = torch.stack([u, v, u * u, u * v, v * v])  # (5, H, W)
    log_field = torch.einsum("nk,khw->nhw", coefficients, basis)
    return x * log_field.exp()[:, None]


def _series_terms(max_variance: float) -> int:
    """Terms m of I_n(t) = Σ_m (t/2)^(2m+n) / (m!(m+n)!) needed for t ≤ max_variance (last term < 1e-12·I_0)."""
    half, m, term = max_variance / 2, 0, 1.0
    while True:
        m += 1
        term *= half * half / (m * m)
        if term < 1e-12:
            return m + 1


def _radius(max_variance: float) -> int:
    """Kernel half-width ⌈5σ⌉ + 1: the discrete Gaussian's mass beyond it is of order 1e-6 or less."""
    return math.ceil(5 * math.sqrt(max_variance)) + 1


def discrete_gaussian(variance: Tensor, radius: int, terms: int) -> Tensor:
    """Lindeberg's discrete Gaussian on −radius..radius, normalised: (N, 2·radius + 1).

    T(n; t) = e^(−t)·I_n(t) (Lindeberg, "Scale-space for discrete signals", IEEE PAMI 1990),
    I_n the modified Bessel function of integer order, is the kernel of the discrete heat
    equation: its variance is exactly t, it is the unit impulse at t = 0 and its first
    derivative in t there is the discrete Laplacian's stencil — unlike the sampled Gaussian,
    whose off-centre weights exp(−n²/2t) are flat at t = 0. The series for I_n is summed to
    ``terms`` terms and the truncated kernel renormalised to sum 1 (e^(−t) cancels).
    """
    half = variance[:, None] / 2
    columns = [torch.ones_like(half)]
    for n in range(1, radius + 1):
        columns.append(columns[-1] * half / n)
    term = torch.cat(columns, dim=1)  # (N, radius + 1): the m = 0 terms (t/2)^n / n!
    order = torch.arange(radius + 1, dtype=term.dtype, device=term.device)
    bessel = term  # I_0 … I_radius, summed term by term (each term stays below e^t: no overflow)
    for m in range(1, terms):
        term = term * half * half / (m * (m + order))
        bessel = bessel + term
    kernel = torch.cat([bessel.flip(1)[:, :-1], bessel], dim=1)
    return kernel / kernel.sum(dim=1, keepdim=True)


def _blur_matrices(kernel: Tensor, size: int) -> Tensor:
    """(N, size, size) matrices applying the kernel along one axis with border replication."""
    radius = kernel.shape[1] // 2
    index = torch.arange(size, device=kernel.device)
    offsets = torch.arange(-radius, radius + 1, device=kernel.device)
    source = (index[:, None] + offsets[None, :]).clamp(0, size - 1)  # (size, 2r+1)
    shifts = F.one_hot(source, size).to(kernel.dtype)  # (size, 2r+1, size)
    return torch.einsum("nk,ikj->nij", kernel, shifts)


def gaussian_blur(x: Tensor, variance: Tensor, max_variance: float | None = None) -> Tensor:
    """Separable blur by the discrete Gaussian of the given variance (px²), border-replicated.

    ``max_variance`` fixes the kernel's support and series length (so that they do not
    depend on the parameter being optimised); None takes the batch's largest variance.
    """
    limit = float(variance.max()) if max_variance is None else max_variance
    radius, terms = _radius(limit), _series_terms(limit)
    kernel = discrete_gaussian(variance, radius, terms)
    h, w = x.shape[-2:]
    rows = torch.einsum("nij,ncjw->nciw", _blur_matrices(kernel, h), x)
    return torch.einsum("nciw,nvw->nciv", rows, _blur_matrices(kernel, w))


def quantum_noise(x: Tensor, level: Tensor, draws: Tensor) -> Tensor:
    """x + level·√max(x, floor)·ε: noise whose variance grows with the signal (Poisson-like).

    ``draws`` ε are fixed standard-normal values of the shape of x; the floor
    (:data:`SIGNAL_FLOOR`) keeps the slope of √x finite at 0.
    """
    return x + _per_sample(level) * x.clamp_min(SIGNAL_FLOOR).sqrt() * draws


def gamma(x: Tensor, exponent: Tensor) -> Tensor:
    """x·|x|^(γ−1): the response curve x^γ on [0, ∞), extended as an odd function below 0.

    Values below 0 occur only through noise; the odd extension keeps the curve monotone and
    finite there. Written as x·exp((γ−1)·log|x|) so that γ = 1 multiplies by exactly 1.
    """
    magnitude = x.abs()
    safe = torch.where(magnitude > 0, magnitude, torch.ones_like(magnitude))
    return x * ((_per_sample(exponent) - 1) * safe.log()).exp()


def window(x: Tensor, contrast: Tensor, brightness: Tensor, centre: Tensor) -> Tensor:
    """x + (contrast − 1)·(x − centre) + brightness: contrast about ``centre``, then an offset.

    ``centre`` (N, C, 1, 1) is the clean image's mean, a constant, so that contrast does not
    shift the mean intensity and the two parameters act separately.
    """
    return x + (_per_sample(contrast) - 1) * (x - centre) + _per_sample(brightness)


def foreground_mask(x: Tensor, threshold: float) -> Tensor:
    """Bool (N, 1, H, W): the channel-mean intensity, averaged over each 3×3 neighbourhood, >= threshold.

    The 3×3 average fills single dark pixels inside the body, so that the mask is the
    region (body, lung fields) rather than a speckle pattern.
    """
    intensity = x.mean(dim=1, keepdim=True)
    return F.avg_pool2d(intensity, 3, stride=1, padding=1, count_include_pad=False) >= threshold


class AcquisitionModel:
    """T(x; θ) for one clean batch x: the acquisition chain with its randomness fixed.

    Fixed at construction, so that T is a deterministic, differentiable function of θ: the
    standard-normal noise draws (each image's from its own CPU ``torch.Generator`` seeded with
    (``seed``, the image's content), first the electronic then the quantum noise, each of the
    image's shape, then moved to x's device — the same on every device and in every batch), the clean image's mean per channel (the contrast
    centre), the blur kernel's support (from ``max_blur``) and the foreground mask.

    Args:
        x: clean images (N, C, H, W) with H, W >= 2.
        max_blur: the largest blur variance that will be asked for (px², <= :data:`MAX_BLUR`).
        bounds: the valid range (low, high) the output is clamped to, tensors broadcastable to
            x, or None for no clamp.
        foreground: threshold of :func:`foreground_mask`; pixels outside the mask keep their
            clean value (the transforms act on the foreground only); None: every pixel.
        seed: seed of the noise draws.

    ``model(theta)`` maps θ (N, P), columns in the order of :data:`NAMES`, to images.
    """

    def __init__(
        self,
        x: Tensor,
        *,
        max_blur: float,
        bounds: tuple[Tensor, Tensor] | None,
        foreground: float | None,
        seed: int,
    ):
        if x.dim() != 4 or min(x.shape[-2:]) < 2:
            raise ValueError(
                f"acquisition transforms act on images of shape (N, C, H, W) with H, W >= 2, got shape {tuple(x.shape)}"
            )
        if not 0 <= max_blur <= MAX_BLUR:
            raise ValueError(f"max_blur must lie in [0, {MAX_BLUR}] px², got {max_blur!r}")
        self.x = x.detach()
        streams = SampleStreams(seed, self.x)
        self.electronic = streams.randn(x.shape[1:], like=x)
        self.quantum = streams.randn(x.shape[1:], like=x)
        self.centre = self.x.mean(dim=(2, 3), keepdim=True)
        self.max_blur = max_blur
        self.bounds = bounds
        self.mask = None if foreground is None else foreground_mask(self.x, foreground)

    def __call__(self, theta: Tensor) -> Tensor:
        if theta.dim() != 2 or theta.shape != (self.x.shape[0], len(NAMES)):
            raise ValueError(f"theta must have shape ({self.x.shape[0]}, {len(NAMES)}) (columns {NAMES}), got {tuple(theta.shape)}")
        p = dict(zip(NAMES, theta.unbind(dim=1)))
        y = warp(self.x, p["rotation"], p["shift_x"], p["shift_y"])
        y = bias_field(y, torch.stack([p[name] for name in BIAS_TERMS], dim=1))
        y = gaussian_blur(y, p["blur"], self.max_blur)
        y = quantum_noise(y, p["poisson"], self.quantum)
        y = gamma(y, p["gamma"])
        y = y + _per_sample(p["noise"]) * self.electronic
        y = window(y, p["contrast"], p["brightness"], self.centre)
        if self.bounds is not None:
            y = torch.clamp(y, *self.bounds)
        return y if self.mask is None else torch.where(self.mask, y, self.x)
