"""Expected gradients (Erion et al. 2021) and gradient SHAP (Lundberg & Lee 2017): gradients at random
points between the input and baselines drawn from a background set."""

from __future__ import annotations

import copy
from typing import Literal

import torch
from salbench.core.validation import check_input, check_positive, check_positive_int, check_seed
from salbench.explainers import register
from salbench.explainers.base import Explainer, output_gradient
from torch import Tensor, nn


@register("expected_gradients")
class ExpectedGradients(Explainer):
    """Expected gradients: (x − b) ⊙ ∇f_c at a random point between a background sample b and x, averaged (Erion et al. 2021).

    Erion, Janizek, Sturmfels, Lundberg, Lee 2021, "Improving performance of deep learning
    models with axiomatic attribution priors and expected gradients", Nature Machine
    Intelligence 3. Integrated gradients averaged over baselines b ~ D (the background set)
    and estimated by Monte Carlo over both the baseline and the path position:

        E(x) = E_{b~D, α~U(0,1)} [(x − b) ⊙ ∇f_c(b + α(x − b))]
             ≈ (1/n) Σ_j (x − b_j) ⊙ ∇f_c(b_j + α_j(x − b_j)).

    Completeness holds in expectation: E[Σ_i E_i(x)] = f_c(x) − E_{b~D}[f_c(b)]. Defaults:
    n = 50 draws (the paper uses one draw per training step as a prior, and hundreds for
    explanations); ``background`` a tensor (B, *sample shape) of baselines drawn uniformly,
    the paper's choice being the training data; None stands for the single baseline 0 (the
    estimator is then integrated gradients with random nodes); ``"train"`` stands for
    ``background_size`` (default 100) training inputs drawn without replacement with the cell's
    seed, bound by the grid runner (:meth:`with_training_data`; in a direct call, pass a tensor).
    The background's rows must have the shape of a sample; they are moved to x's device and dtype.

    Reproducibility: α_1..α_n (U[0, 1)), then the background rows k_1..k_n (uniform), then (for
    gradient SHAP) the noise ε_1..ε_n (standard normal, each of the shape of one sample) are
    drawn from a CPU ``torch.Generator`` seeded with ``seed`` at every call, in x's dtype, and
    every sample of the batch gets the same draws: common random numbers, as in ``smoothgrad``
    (whose docstring gives the reasons). So a sample's map is the same on every device, for every
    ``batch_size`` and whatever the rest of its batch, and it is a differentiable function of x
    (``create_graph=True``). Departure: the draws are not per sample (not
    :mod:`salbench.core.seeding`), which would make E(x) discontinuous in x.

    Batching: the n draws × N samples are evaluated ``batch_size`` draws (each a whole batch of N
    points) per forward/backward pass; None evaluates all n in one pass.

    Args:
        n_samples: number of draws n, >= 1.
        background: the baselines (B, *sample shape), None for the baseline 0, or "train" for
            ``background_size`` training inputs (bound by the grid runner).
        background_size: how many training inputs ``"train"`` draws, >= 1.
        seed: seed of the generator, >= 0.
        batch_size: draws per forward/backward pass (>= 1), or None for all.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> model = torch.nn.Linear(3, 2)
        >>> background = torch.randn(10, 3)
        >>> attr = explainers.get("expected_gradients", background=background)(model, torch.ones(4, 3), 1)
        >>> attr.shape  # for a linear model, w_c ⊙ (x − mean of the drawn baselines)
        torch.Size([4, 3])
    """

    test_params = {"n_samples": 4}  # cheap parameters for salbench.testing's contract checks
    stdev = 0.0  # the noise added to x: none (gradient SHAP sets it)

    def __init__(
        self,
        n_samples: int = 50,
        background: Tensor | Literal["train"] | None = None,
        background_size: int = 100,
        seed: int = 0,
        batch_size: int | None = None,
    ):
        check_positive_int(n_samples, "n_samples")
        if background is not None and not isinstance(background, str):  # the registry checked the literal
            check_input(background, "background", min_dim=1)
        check_positive_int(background_size, "background_size")
        check_seed(seed)
        if batch_size is not None:
            check_positive_int(batch_size, "batch_size")
        self.n_samples = n_samples
        self.background = background
        self.background_size = background_size
        self.seed = seed
        self.batch_size = batch_size

    def with_training_data(self, x_train: Tensor, seed: int) -> "ExpectedGradients":
        """A copy whose ``"train"`` background is ``background_size`` rows of ``x_train`` drawn
        without replacement by a generator seeded with ``seed`` (all rows if there are fewer);
        itself if the background is not ``"train"``."""
        if not isinstance(self.background, str):
            return self
        generator = torch.Generator().manual_seed(seed)
        rows = torch.randperm(len(x_train), generator=generator)[: self.background_size]
        bound = copy.copy(self)
        bound.background = x_train[rows.sort().values]
        return bound

    def _draws(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor | float]:
        """α (n,), the baselines b_j (n, *sample) and the noise σε_j (n, 1, *sample; 0 without noise), on x's device."""
        if isinstance(self.background, str):
            raise ValueError(
                'background="train" is bound to training inputs by the grid runner (with_training_data); '
                "in a direct call pass the baselines as a tensor"
            )
        background = torch.zeros((1, *x.shape[1:]), dtype=x.dtype) if self.background is None else self.background
        if background.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"background rows have shape {tuple(background.shape[1:])}, a sample of x {tuple(x.shape[1:])}; "
                "they must be the same"
            )
        generator = torch.Generator().manual_seed(self.seed)
        alpha = torch.rand(self.n_samples, generator=generator, dtype=x.dtype)
        rows = torch.randint(len(background), (self.n_samples,), generator=generator)
        if not self.stdev:
            return alpha.to(x.device), background[rows].to(x), 0.0
        noise = self.stdev * torch.randn((self.n_samples, 1, *x.shape[1:]), generator=generator, dtype=x.dtype)
        return alpha.to(x.device), background[rows].to(x), noise.to(x.device)

    def attribute(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        x = x if create_graph else x.detach()
        alpha, baselines, noise = self._draws(x)
        per_pass = self.batch_size or self.n_samples
        broadcast = (-1, 1) + (1,) * (x.dim() - 1)
        total = torch.zeros_like(x)
        for start in range(0, self.n_samples, per_pass):
            draws = slice(start, min(start + per_pass, self.n_samples))
            copies = draws.stop - draws.start
            noisy = x + (noise[draws] if self.stdev else 0)  # (copies, N, ...), or x without noise
            delta = noisy - baselines[draws][:, None]  # row j·N + i: draw j of sample i
            points = baselines[draws][:, None] + alpha[draws].view(broadcast) * delta
            grad, _ = output_gradient(model, points.flatten(0, 1), target.repeat(copies), create_graph=create_graph)
            total = total + (delta * grad.view(copies, *x.shape)).sum(0)
        return total / self.n_samples


@register("gradient_shap")
class GradientShap(ExpectedGradients):
    """Gradient SHAP: expected gradients at Gaussian-noised copies of the input (Lundberg & Lee 2017; Captum's GradientShap).

    Lundberg, Lee 2017, "A unified approach to interpreting model predictions", NeurIPS (SHAP
    values); the estimator is Captum's ``GradientShap``: for draw j, x̃_j = x + σ ε_j,
    ε_j ~ N(0, I), a baseline b_j from the background and α_j ~ U(0, 1),

        E(x) ≈ (1/n) Σ_j (x̃_j − b_j) ⊙ ∇f_c(b_j + α_j(x̃_j − b_j)),

    an estimate of the SHAP values of f_c linearised around x (exact in expectation for a
    linear model and independent features). σ = ``stdev`` is absolute, as Captum's ``stdevs``
    (default 0.1 here, Captum's 0; with 0 it is ``expected_gradients``). Draws, batching,
    the background and its default: as :class:`ExpectedGradients`. Completeness in expectation:
    E[Σ_i E_i(x)] = E_ε[f_c(x + σε)] − E_b[f_c(b)]. Matches Captum's ``GradientShap`` when
    given the same draws (Captum takes them from numpy's and torch's global generators).

    Args:
        stdev: standard deviation σ of the noise added to x, >= 0.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> shap = explainers.get("gradient_shap", stdev=0.2, n_samples=8)
        >>> shap(torch.nn.Linear(3, 2), torch.ones(4, 3), 1).shape
        torch.Size([4, 3])
    """

    def __init__(self, stdev: float = 0.1, **sampling):
        check_positive(stdev, "stdev", allow_zero=True)
        super().__init__(**sampling)
        self.stdev = float(stdev)
