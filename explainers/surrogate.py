"""KernelSHAP and LIME through Captum: a local surrogate model fitted per sample, seeded per sample, on patches."""

from __future__ import annotations

import math
from typing import Any

import torch
from salbench.core.applicability import CONTINUOUS
from salbench.core.seeding import sample_seed
from salbench.core.validation import check_logits_target, check_positive, check_positive_int, check_seed
from salbench.explainers import register
from salbench.explainers.base import Explainer
from salbench.explainers.captum_adapter import captum_attr
from torch import Tensor, nn


def patch_mask(shape: torch.Size, patch: tuple[int, ...] | None) -> Tensor:
    """Interpretable feature ids (long, ``shape`` of one sample): patches over the trailing dimensions.

    ``patch`` gives a size per trailing dimension; the leading dimensions (channels) belong
    to the patch whole; patches at the far edge are cut. None: every element is a feature.

    >>> patch_mask(torch.Size([1, 3, 4]), (2, 2))
    tensor([[[0, 0, 1, 1],
             [0, 0, 1, 1],
             [2, 2, 3, 3]]])
    """
    if patch is None:
        return torch.arange(math.prod(shape)).view(shape)
    if len(patch) > len(shape) or any(p > s for p, s in zip(patch, shape[len(shape) - len(patch):])):
        raise ValueError(f"patch {tuple(patch)} does not fit a sample of shape {tuple(shape)}")
    trailing = shape[len(shape) - len(patch):]
    ids = torch.zeros((), dtype=torch.long)
    for k, (size, p) in enumerate(zip(trailing, patch)):
        index = (torch.arange(size) // p).view(size, *[1] * (len(patch) - 1 - k))
        ids = ids * math.ceil(size / p) + index
    return ids.expand(shape).contiguous()


class _CaptumSurrogate(Explainer):
    """Shared loop of ``kernel_shap`` and ``lime``: Captum's method on each sample, seeded by the sample."""

    differentiable = False
    modalities = CONTINUOUS  # perturbations of the input's own features (word ids are no features to blend)
    test_params = {"n_samples": 24}  # cheap parameters for salbench.testing's contract checks

    def __init__(
        self,
        n_samples: int = 200,
        patch: tuple[int, ...] | None = None,
        baseline: float = 0.0,
        perturbations_per_eval: int = 50,
        seed: int = 0,
    ):
        check_positive_int(n_samples, "n_samples")
        if patch is not None:
            if not patch:
                raise ValueError("patch must name a size for at least one trailing dimension, or be None; got ()")
            for p in patch:
                check_positive_int(p, "patch entries")
        if not math.isfinite(baseline):
            raise ValueError(f"baseline must be a finite number, got {baseline!r}")
        check_positive_int(perturbations_per_eval, "perturbations_per_eval")
        check_seed(seed)
        self.n_samples = n_samples
        self.patch = None if patch is None else tuple(patch)
        self.baseline = baseline
        self.perturbations_per_eval = perturbations_per_eval
        self.seed = seed
        captum_attr()  # Captum must import: say so when the explainer is built

    def _captum_method(self, model: nn.Module) -> Any:
        """The Captum attribution object for ``model``."""
        raise NotImplementedError

    def attribute(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        x = x.detach()
        mask = patch_mask(x.shape[1:], self.patch).to(x.device)[None]
        with torch.no_grad():
            check_logits_target(model(x), target)  # Captum's own error would not name the target
        method = self._captum_method(model)
        devices = [x.device] if x.device.type == "cuda" else []
        maps = []
        for row, label in zip(x, target):
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(sample_seed(self.seed, row))
                maps.append(method.attribute(
                    row[None], baselines=self.baseline, target=int(label), feature_mask=mask,
                    n_samples=self.n_samples, perturbations_per_eval=self.perturbations_per_eval,
                ))  # fmt: skip
        return torch.cat(maps).to(x.dtype)


@register("kernel_shap")
class KernelShap(_CaptumSurrogate):
    """KernelSHAP: Shapley values of the patches from a weighted linear fit to coalitions (Lundberg & Lee 2017; via Captum).

    Lundberg, Lee 2017, "A unified approach to interpreting model predictions", NeurIPS.
    The sample's interpretable features are patches (``patch``; None: every element);
    a coalition z ∈ {0, 1}^M keeps the patches with z_m = 1 and sets the others to
    ``baseline``. With n coalitions drawn by Captum (the full and the empty one first, then
    |z| from the Shapley kernel's distribution and z uniform given |z|), the attributions
    are φ of the linear fit g(z) = φ_0 + Σ_m φ_m z_m minimising Σ_z π(z)(f_c(x_z) − g(z))², with
    the Shapley kernel π(z) = (M − 1)/(C(M, |z|)|z|(M − |z|)) (Captum's ``KernelShap``,
    scikit-learn's linear regression); every element of a patch gets the patch's φ_m. Defaults:
    n = 200 coalitions (Captum's 25 is meant for few features), evaluated
    ``perturbations_per_eval`` = 50 per forward pass.

    Batching and seeds: each sample is explained by its own Captum call (one surrogate per
    sample, as Captum does for a batch), with torch's global generator seeded by
    (``seed``, the sample's content) (:func:`salbench.core.seeding.sample_seed`) inside
    ``torch.random.fork_rng``, so a sample's map does not depend on its batch, and the caller's
    random state is left alone. The draws come from Captum (on the CPU; CUDA maps may differ
    from CPU maps where Captum draws on the device). Equal to calling Captum's ``KernelShap`` on
    the sample after ``torch.manual_seed(sample_seed(seed, sample))``. Departure: the
    perturbations of different samples are not packed into one forward pass. Not differentiable.

    Args:
        n_samples: coalitions per sample (including the full and the empty one), >= 1.
        patch: patch size per trailing dimension (channels whole), or None for single elements.
        baseline: the value of the patches left out.
        perturbations_per_eval: coalitions per forward pass, >= 1.
        seed: seed combined with each sample's content, >= 0.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> model = torch.nn.Linear(4, 2)
        >>> attr = explainers.get("kernel_shap", n_samples=64)(model, torch.ones(3, 4), 1)
        >>> bool(torch.allclose(attr, model.weight[1].detach().expand(3, 4), atol=1e-4))  # linear: φ = w ⊙ (x − 0)
        True
    """

    def _captum_method(self, model: nn.Module) -> Any:
        return captum_attr().KernelShap(model)


@register("lime")
class Lime(_CaptumSurrogate):
    """LIME: a sparse linear surrogate of f_c on random patch subsets, weighted by their closeness to x (Ribeiro et al. 2016; via Captum).

    Ribeiro, Singh, Guestrin 2016, ""Why should I trust you?" Explaining the predictions of
    any classifier", KDD. The sample's interpretable features are patches (``patch``;
    None: every element); a perturbation z ∈ {0, 1}^M (each z_m ~ Bernoulli(1/2), Captum's
    default) keeps the patches with z_m = 1 and sets the others to ``baseline``. The
    attributions are the coefficients of the Lasso fit (penalty ``alpha``, default 0.01 as in
    Captum; 0: least squares) of f_c(x_z) on z with weights π(z) = exp(−d(1, z)²/w²), d the cosine distance and w = 1
    (Captum's defaults; the paper uses an exponential kernel on a distance of its choice, K-Lasso
    feature selection and superpixels); every element of a patch gets the patch's coefficient.
    Defaults: n = 200 perturbations, ``perturbations_per_eval`` = 50 per forward pass. Lasso's
    penalty is on the scale of the logits: with logits that vary little between perturbations
    α = 0.01 can set every coefficient to 0 (lower ``alpha`` then).

    Batching, seeds and departures: as :class:`KernelShap` (one Captum ``Lime`` call per sample,
    seeded by the sample's content; equal to calling Captum on the sample after
    ``torch.manual_seed(sample_seed(seed, sample))`` with ``interpretable_model=SkLearnLasso(alpha)``).
    Not differentiable.

    Args:
        alpha: the Lasso penalty, >= 0 (0: ordinary least squares).
        common: ``n_samples`` (perturbations per sample), ``patch``, ``baseline``,
            ``perturbations_per_eval`` and ``seed``, as for :class:`KernelShap`.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> model = torch.nn.Conv2d(1, 2, 4)  # (N, 1, 8, 8) -> 2 × 5 × 5 logits, flattened below
        >>> net = torch.nn.Sequential(model, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        >>> attr = explainers.get("lime", patch=(4, 4), n_samples=32)(net, torch.rand(2, 1, 8, 8), 0)
        >>> attr.shape, int(attr[0].unique().numel()) <= 4  # one value per 4×4 patch
        (torch.Size([2, 1, 8, 8]), True)
    """

    def __init__(self, alpha: float = 0.01, **common):
        check_positive(alpha, "alpha", allow_zero=True)
        super().__init__(**common)
        self.alpha = float(alpha)

    def _captum_method(self, model: nn.Module) -> Any:
        from captum._utils.models.linear_model import SkLearnLasso, SkLearnLinearRegression

        surrogate = SkLearnLasso(alpha=self.alpha) if self.alpha else SkLearnLinearRegression()
        return captum_attr().Lime(model, interpretable_model=surrogate)
