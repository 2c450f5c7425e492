"""KernelSHAP (batched, Captum's estimator) and LIME (through Captum): local linear surrogates on patches, seeded per sample."""

from __future__ import annotations

import math

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


class _Surrogate(Explainer):
    """Parameters of ``kernel_shap`` and ``lime``: perturbations of patches, seeded by the sample."""

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


def _coalitions(generator: torch.Generator, n: int, m: int) -> Tensor:
    """n coalitions (n, m) bool as Captum's KernelShap draws them: all, none, then |z| = k with
    p(k) ∝ (m − 1)/(k(m − k)) and the k kept features at the top k of m normal draws."""
    rows = [torch.ones(m, dtype=torch.bool), torch.zeros(m, dtype=torch.bool)]
    if n > 2:
        if m < 2:
            raise ValueError(f"kernel_shap needs at least 2 patches to draw more than 2 coalitions; got {m}")
        counts = torch.arange(m, dtype=torch.float)
        probs = torch.tensor(m - 1) / (counts * (m - counts))
        probs[0] = 0.0
        probs = (probs / probs.sum(-1, keepdim=True)).reshape(1, m)  # torch.distributions.Categorical's
    for _ in range(n - 2):
        k = torch.multinomial(probs, 1, True, generator=generator)
        values = torch.randn(1, m, generator=generator)
        rows.append((values > torch.kthvalue(values, m - int(k)).values.item())[0])
    return torch.stack(rows[:n])


def _per_row(target: Tensor, count: int) -> Tensor:
    """(N, count, 1) indices: sample i's target class for each of its ``count`` rows."""
    return target.view(-1, 1, 1).expand(-1, count, 1)


def _weighted_least_squares(z: Tensor, y: Tensor, weights: Tensor) -> Tensor:
    """Slopes φ (N, M) of y ≈ φ_0 + z φ minimising Σ_r w_r (y_r − φ_0 − z_r φ)² per sample, for z (N, R, M),
    y (N, R), w (R,): centred on the weighted means, then the minimum-norm least squares (as
    scikit-learn's LinearRegression with sample weights), in float64 on the CPU."""
    z, y, weights = z.double().cpu(), y.double().cpu(), weights.double()
    total = weights.sum()
    z_mean = (weights[:, None] * z).sum(1, keepdim=True) / total
    y_mean = (weights * y).sum(1, keepdim=True) / total
    root = weights.sqrt()
    design, response = (z - z_mean) * root[:, None], (y - y_mean) * root
    return torch.linalg.lstsq(design, response[..., None], driver="gelsd").solution[..., 0]


@register("kernel_shap")
class KernelShap(_Surrogate):
    """KernelSHAP: Shapley values of the patches from a weighted linear fit to coalitions (Lundberg & Lee 2017).

    Lundberg, Lee 2017, "A unified approach to interpreting model predictions", NeurIPS.
    The sample's interpretable features are patches (``patch``; None: every element);
    a coalition z ∈ {0, 1}^M keeps the patches with z_m = 1 and sets the others to
    ``baseline``. The Shapley values are the slopes φ of the fit g(z) = φ_0 + Σ_m φ_m z_m
    minimising Σ_z π(z)(f_c(x_z) − g(z))² over all coalitions, with the Shapley kernel
    π(z) = (M − 1)/(C(M, |z|)|z|(M − |z|)). Estimated as Captum's ``KernelShap`` does: n
    coalitions, the full and the empty one (weight 10^6, which makes Σ_m φ_m ≈ f_c(x) −
    f_c(baseline)), then coalitions with |z| = k drawn with p(k) ∝ (M − 1)/(k(M − k)) and z
    uniform given k (the top k of M normal draws), weight 1 (the kernel is in the sampling); the
    weighted least-squares fit with intercept (scikit-learn's LinearRegression in Captum; here
    the same minimum-norm solution in float64). Every element of a patch gets the patch's φ_m.
    Defaults: n = 200 coalitions (Captum's 25 is meant for few features).

    Seeds: each sample's coalitions come from its own CPU ``torch.Generator`` seeded by
    (``seed``, the sample's content) (:func:`salbench.core.seeding.sample_seed`), in Captum's
    order of draws, so a sample's map does not depend on its batch or device, and equals Captum's
    ``KernelShap`` on that sample after ``torch.manual_seed(sample_seed(seed, sample))`` (up to
    Captum's float32 coefficients). Batching: unlike Captum, which explains a batch one sample at
    a time, the coalitions of all N samples are evaluated together, ``perturbations_per_eval``
    per sample (N × that many rows) per forward pass (default 8: on a CPU, passes of a few
    hundred rows cost less per row than passes of thousands), and the N fits are one batched
    solve. Not differentiable.

    Args:
        n_samples: coalitions per sample (including the full and the empty one), >= 1.
        patch: patch size per trailing dimension (channels whole), or None for single elements.
        baseline: the value of the patches left out.
        perturbations_per_eval: coalitions per sample per forward pass, >= 1.
        seed: seed combined with each sample's content, >= 0.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> model = torch.nn.Linear(4, 2)
        >>> attr = explainers.get("kernel_shap", n_samples=64)(model, torch.ones(3, 4), 1)
        >>> bool(torch.allclose(attr, model.weight[1].detach().expand(3, 4), atol=1e-4))  # linear: φ = w ⊙ (x − 0)
        True
    """

    def __init__(self, perturbations_per_eval: int = 8, **common):
        super().__init__(perturbations_per_eval=perturbations_per_eval, **common)

    def attribute(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        x = x.detach()
        mask = patch_mask(x.shape[1:], self.patch).flatten()
        n, m = self.n_samples, int(mask.max()) + 1
        z = torch.stack([_coalitions(torch.Generator().manual_seed(sample_seed(self.seed, row)), n, m) for row in x])
        keep = z[..., mask]  # (N, n, elements of a sample): element kept in coalition j of sample i
        y = torch.empty(len(x), n, dtype=x.dtype, device=x.device)
        baseline = torch.tensor(self.baseline, dtype=x.dtype, device=x.device)
        with torch.no_grad():
            for start in range(0, n, self.perturbations_per_eval):
                stop = min(start + self.perturbations_per_eval, n)
                kept = keep[:, start:stop].to(x.device).view(len(x), stop - start, *x.shape[1:])
                logits = model(torch.where(kept, x[:, None], baseline).flatten(0, 1))  # row i·c + j
                if start == 0:
                    check_logits_target(logits, target)
                chosen = logits.view(len(x), stop - start, -1).gather(2, _per_row(target, stop - start))
                y[:, start:stop] = chosen[..., 0]
        weights = torch.ones(n)
        weights[:2] = 1e6  # the full and the empty coalition (Captum's "infinite" weight)
        phi = _weighted_least_squares(z, y, weights)
        return phi[:, mask].view_as(x).to(x)


@register("lime")
class Lime(_Surrogate):
    """LIME: a sparse linear surrogate of f_c on random patch subsets, weighted by their closeness to x (Ribeiro et al. 2016; Captum's).

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

    Batching and seeds: each sample is explained by its own call of Captum's ``Lime`` (as Captum
    does for a batch), ``perturbations_per_eval`` perturbations per forward pass, with torch's
    global generator seeded by (``seed``, the sample's content)
    (:func:`salbench.core.seeding.sample_seed`) inside ``torch.random.fork_rng``: a sample's map
    does not depend on its batch, the caller's random state is left alone, and the map equals
    Captum's on that sample after ``torch.manual_seed(sample_seed(seed, sample))`` with
    ``interpretable_model=SkLearnLasso(alpha)``. Departure from ``kernel_shap``: the perturbations
    of different samples are not packed into one forward pass (Captum draws them and fits the
    Lasso per sample). Not differentiable.

    Args:
        alpha: the Lasso penalty, >= 0 (0: ordinary least squares).
        common: ``n_samples`` (perturbations per sample), ``patch``, ``baseline``,
            ``perturbations_per_eval`` (per forward pass) and ``seed``, as for :class:`KernelShap`.

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
        captum_attr()  # Captum must import: say so when the explainer is built

    def attribute(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        from captum._utils.models.linear_model import SkLearnLasso, SkLearnLinearRegression

        x = x.detach()
        mask = patch_mask(x.shape[1:], self.patch).to(x.device)[None]
        with torch.no_grad():  # the class count from one row; Captum's own error would not name the target
            check_logits_target(model(x[:1]).expand(len(x), -1), target)
        surrogate = SkLearnLasso(alpha=self.alpha) if self.alpha else SkLearnLinearRegression()
        method = captum_attr().Lime(model, interpretable_model=surrogate)
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
