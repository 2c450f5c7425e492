"""Explanation infidelity (Yeh et al. 2019)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from salbench.core.applicability import CONTINUOUS
from salbench.core.seeding import SampleStreams
from salbench.core.validation import check_positive, check_positive_int
from salbench.metrics import register
from salbench.metrics.perturbed_scores import PerturbationMetric, check_output, checked_inputs, copy_scores
from torch import Tensor, nn

__all__ = ["Infidelity", "perturbations"]


def perturbations(
    x: Tensor, kind: Literal["gaussian", "square"], n_samples: int, noise_std: float, patch: int, seed: int
) -> Tensor:
    """The perturbations I (N, n_samples, *x.shape[1:]) of :class:`Infidelity`, drawn per sample.

    "gaussian": I ~ N(0, noise_std²) per element. "square": I = x ⊙ 1_Q, Q a cube of side
    ``patch`` over the spatial dimensions (all channels) at a uniform random position, so x − I
    is x with Q set to 0.
    """
    streams = SampleStreams(seed, x)
    if kind == "gaussian":
        return noise_std * streams.randn((n_samples, *x.shape[1:]), like=x)
    spatial = x.shape[2:]
    if x.dim() < 3 or any(length < patch for length in spatial):
        raise ValueError(
            f"perturbation='square' needs spatial inputs (N, C, *spatial) with every spatial size >= patch={patch}, "
            f"got shape {tuple(x.shape)}; use perturbation='gaussian'"
        )
    starts = (
        streams.rand((n_samples, len(spatial)), like=x)
        * torch.tensor([n - patch + 1 for n in spatial], device=x.device)
    ).long()
    inside = torch.ones((), dtype=torch.bool, device=x.device)
    for d, length in enumerate(spatial):
        position = torch.arange(length, device=x.device)
        start = starts[..., d].reshape(*starts.shape[:2], *([1] * d))
        inside = inside[..., None] & ((position >= start[..., None]) & (position < start[..., None] + patch))
    return x[:, None] * inside[:, :, None]


@register("infidelity")
class Infidelity(PerturbationMetric):
    """Expected squared error between Iᵀ·E and the output change f(x) − f(x − I) over random perturbations I (Yeh et al. 2019).

    Yeh, Hsieh, Suggala, Inouye, Ravikumar, "On the (In)fidelity and Sensitivity of
    Explanations", NeurIPS 2019, Definition 2.1:

        INFD(Φ, f, x) = E_{I∼µ_I} [ (Iᵀ Φ(f, x) − (f(x) − f(x − I)))² ]

    estimated by the mean over ``n_samples`` draws per sample (per-sample streams,
    :mod:`salbench.core.seeding`; :func:`perturbations`): "gaussian" I ~ N(0, σ²)
    (σ = ``noise_std``), or "square" removal (I = x on a random cube of side ``patch``, 0
    elsewhere; images, volumes, signals). f is the target's logit (default, as Captum's
    forward output) or probability. With ``normalize`` (default, the paper's optimally scaled
    explanation, Captum's ``normalize=True``) Φ is replaced by βΦ with
    β = E[IᵀΦ · Δf] / E[(IᵀΦ)²], the scale minimising the error. Lower is better.

    Agreement: Captum's ``captum.metrics.infidelity`` with a perturbation function returning
    the same I gives the same values (tests); Captum's default is ``normalize=False``.
    Quantus's ``Infidelity`` is a different estimator (it perturbs every patch of a grid in
    turn with a baseline, over several patch sizes, and averages the squared errors), so it is
    not compared.

    Args:
        n_samples: draws per sample (default 50).
        perturbation: "gaussian" or "square".
        noise_std: σ of the Gaussian perturbations (default 0.1).
        patch: side of the square perturbations (default 4).
        normalize: rescale the explanation optimally (β) before the error.
        output: "logit" or "probability".
        seed: seed of the perturbations.
        batch_size: inputs per model call (None: by the size of a sample and the device).

    Example:
        >>> import torch
        >>> from salbench import metrics
        >>> model = torch.nn.Linear(3, 2)
        >>> x = torch.randn(2, 3)
        >>> attr = model.weight[1].detach().expand(2, 3)  # the gradient: exact for a linear model
        >>> metrics.get("infidelity", n_samples=10, normalize=False)(model, x, attr, 1).abs().max() < 1e-10
        tensor(True)
    """

    higher_is_better = False
    modalities = CONTINUOUS
    test_params = {"n_samples": 6}

    def __init__(
        self,
        n_samples: int = 50,
        perturbation: Literal["gaussian", "square"] = "gaussian",
        noise_std: float = 0.1,
        patch: int = 4,
        normalize: bool = True,
        output: Literal["probability", "logit"] = "logit",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        check_positive_int(n_samples, "n_samples")
        if perturbation not in ("gaussian", "square"):
            raise ValueError(f"perturbation must be 'gaussian' or 'square', got {perturbation!r}")
        check_positive(noise_std, "noise_std")
        check_positive_int(patch, "patch")
        if not isinstance(normalize, bool):
            raise TypeError(f"normalize must be True or False, got {normalize!r}")
        check_output(output)
        self.n_samples = n_samples
        self.perturbation = perturbation
        self.noise_std = noise_std
        self.patch = patch
        self.normalize = normalize
        self.output = output

    def evaluate_curve(self, model: nn.Module, x: Tensor, attr: Tensor, target: Tensor | int) -> tuple[Tensor, None]:
        """Infidelity per sample (N,), no curve."""
        x, attr, target = checked_inputs(x, attr, target)
        shifts = perturbations(x, self.perturbation, self.n_samples, self.noise_std, self.patch, self.seed)
        projected = (shifts * attr[:, None]).flatten(2).sum(dim=2)

        def build(rows: slice, copies: slice) -> Tensor:  # copy 0 is x, copy s ≥ 1 is x − I_s
            if copies.start == 0:
                return torch.cat([x[rows, None], x[rows, None] - shifts[rows, : copies.stop - 1]], dim=1)
            return x[rows, None] - shifts[rows, copies.start - 1 : copies.stop - 1]

        scores = copy_scores(model, build, len(x), self.n_samples + 1, target, self.output, self.rows_per_call(x))
        changes = (scores[:, :1] - scores[:, 1:]).to(projected.dtype)
        if self.normalize:
            beta = (projected * changes).sum(dim=1) / projected.square().sum(dim=1)
            projected = torch.nan_to_num(beta)[:, None] * projected  # β = 0/0 → 0 for a zero map (Captum's safe_div)
        return (projected - changes).square().mean(dim=1), None
