"""SmoothGrad: the gradient averaged over noisy copies of the input (Smilkov et al. 2017)."""

from __future__ import annotations

from typing import Literal

import torch
from salbench.core.validation import check_positive, check_positive_int
from salbench.explainers import register
from salbench.explainers.base import Explainer, output_gradient
from torch import Tensor, nn


@register("smoothgrad")
class SmoothGrad(Explainer):
    """SmoothGrad: average gradient over Gaussian-noised copies of the input (Smilkov et al. 2017).

    Smilkov, Thorat, Kim, Viégas, Wattenberg 2017, "SmoothGrad: removing noise by adding
    noise", arXiv:1706.03825. For each sample x_i, with g_j = ∂f_c/∂x evaluated at
    x_i + σ_i ε_j, ε_j ~ N(0, I), j = 1..n:

    - ``variant="smoothgrad"``: E = (1/n) Σ_j g_j (the paper's estimator);
    - ``variant="smoothgrad_sq"``: E = (1/n) Σ_j g_j² (SmoothGrad-Squared, Hooker et al. 2019);
    - ``variant="vargrad"``: E = (1/n) Σ_j g_j² − ((1/n) Σ_j g_j)² (Adebayo et al. 2018).

    ``absolute=True`` replaces each g_j by |g_j| first (Captum's ``Saliency`` default).
    The noise level is relative to each sample's own range, as in the paper:
    σ_i = ``noise`` · (max(x_i) − min(x_i)), default 0.15 (the paper recommends 10–20%),
    n = 50 (the paper's default). σ_i is part of the computed function: with
    ``create_graph=True`` the attribution is differentiated through it as well.

    Reproducibility: ε_1..ε_n, each of the shape of one sample, are drawn in that order from a
    CPU ``torch.Generator`` seeded with ``seed``, in x's dtype, then moved to x's device, and
    every sample of the batch gets the same ε_j (scaled by its own σ_i). A sample therefore
    gets the same noise on every device, for every ``batch_size`` and whatever the other
    samples of its batch; each call starts from the seed again. Why not a stream per sample
    seeded by its content (:mod:`salbench.core.seeding`, as the attacks draw): the noise
    would change with every change of x, so E would not be a differentiable function of x,
    and an attacked x′ would be explained with other noise than x, the Monte Carlo error
    counting as a change of the explanation; with shared ε_j, E(x) and E(x′) use common
    random numbers.

    Batching: the N samples × n copies are evaluated together, ``batch_size`` copies (each
    a whole batch of N noisy inputs) per forward/backward pass; None evaluates all n copies
    in one pass. Matches Captum's ``NoiseTunnel(Saliency)`` when given the same noise
    (Captum's ``stdevs`` is one absolute σ for all samples; here σ is per sample).

    Args:
        n_samples: number of noisy copies n per sample, >= 1.
        noise: σ as a fraction of each sample's value range, >= 0.
        seed: seed of the noise generator.
        batch_size: noise copies per forward/backward pass (>= 1), or None for all.
        variant: how the noisy gradients are combined (above).
        absolute: take |g_j| before combining.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
        >>> sg = explainers.get("smoothgrad", n_samples=8, seed=1)
        >>> sg(model, torch.randn(5, 3), 1).shape
        torch.Size([5, 3])
    """

    def __init__(
        self,
        n_samples: int = 50,
        noise: float = 0.15,
        seed: int = 0,
        batch_size: int | None = None,
        variant: Literal["smoothgrad", "smoothgrad_sq", "vargrad"] = "smoothgrad",
        absolute: bool = False,
    ):
        check_positive_int(n_samples, "n_samples")
        check_positive(noise, "noise", allow_zero=True)
        if batch_size is not None:
            check_positive_int(batch_size, "batch_size")
        if variant not in ("smoothgrad", "smoothgrad_sq", "vargrad"):
            raise ValueError(f"variant must be 'smoothgrad', 'smoothgrad_sq' or 'vargrad', got {variant!r}")
        self.n_samples = n_samples
        self.noise = noise
        self.seed = seed
        self.batch_size = batch_size
        self.variant = variant
        self.absolute = absolute

    def attribute(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        flat = x.flatten(1)
        sigma = (self.noise * (flat.amax(1) - flat.amin(1))).view(-1, *[1] * (x.dim() - 1))
        generator = torch.Generator().manual_seed(self.seed)
        per_pass = self.batch_size or self.n_samples
        total = total_sq = torch.zeros((), dtype=x.dtype, device=x.device)
        for start in range(0, self.n_samples, per_pass):
            copies = min(per_pass, self.n_samples - start)
            eps = torch.stack([torch.randn(x.shape[1:], generator=generator, dtype=x.dtype) for _ in range(copies)])
            noisy = (x + sigma * eps.to(x.device)[:, None]).flatten(0, 1)  # row j·N + i: copy j of sample i
            grad, _ = output_gradient(model, noisy, target.repeat(copies), create_graph=create_graph)
            grad = grad.view(copies, *x.shape)
            grad = grad.abs() if self.absolute else grad
            total = total + grad.sum(0)
            if self.variant != "smoothgrad":
                total_sq = total_sq + grad.square().sum(0)
        mean, mean_sq = total / self.n_samples, total_sq / self.n_samples
        if self.variant == "smoothgrad":
            return mean
        return mean_sq if self.variant == "smoothgrad_sq" else mean_sq - mean.square()
