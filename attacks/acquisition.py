"""The acquisition attack: a plausible re-acquisition of an image that changes its explanation most."""

from __future__ import annotations

import dataclasses

import torch
from salbench.attacks import register
from salbench.attacks.base import AttackInputs, AttackResult, Bounds
from salbench.attacks.pgd import BorrowedObjective, BoxSpace
from salbench.attacks.profiles import check_channels, image_ranges
from salbench.attacks.threat_model import _check_bounds
from salbench.attacks.transforms import NAMES, NEUTRAL, AcquisitionModel
from salbench.core.validation import check_positive
from torch import Tensor, nn

__all__ = ["AcquisitionAttack", "AcquisitionResult"]


@dataclasses.dataclass
class AcquisitionResult(AttackResult):
    """An :class:`~salbench.attacks.base.AttackResult` with the acquisition parameters of each x_adv.

    Attributes:
        parameters: (N, P), columns in the order of :data:`salbench.attacks.transforms.NAMES`;
            x_adv = T(x; parameters) with the attack's fixed noise draws.
    """

    parameters: Tensor


@register("acquisition")
class AcquisitionAttack(BorrowedObjective):
    """Acquisition attack: plausible exposure, noise, blur, positioning and bias-field changes that move the explanation.

    Where the ε-ball attacks (Ghorbani et al., AAAI 2019) may change every pixel
    independently, this attack may only change *how the image was acquired*: it searches
    the parameters θ of the differentiable acquisition model T(x; θ) of
    :mod:`salbench.attacks.transforms` (rotation and shift, a smooth multiplicative bias field,
    Gaussian blur, Poisson-like and Gaussian noise levels with fixed draws, gamma,
    contrast, brightness, clamp to the valid range), within the plausible ranges of a
    profile (:mod:`salbench.attacks.profiles`), for the x′ = T(x; θ) that maximises the borrowed
    objective (``topk`` or ``mse``, :class:`salbench.attacks.pgd.BorrowedObjective`) while the model
    keeps its label:

        max_θ J(E(T(x; θ))),   θ_p ∈ [low_p, high_p],   argmax f(T(x; θ)) = argmax f(x).

    It is the projected sign ascent of :mod:`salbench.attacks.pgd` in θ (a :class:`BoxSpace`): each
    parameter moves by α·(high_p − low_p)/2·sign(∂J/∂θ_p) per step and is clipped to its
    range; the start is the neutral θ (T(x; θ) = x exactly) or a uniform draw of the ranges;
    a step that changes the label is rejected and the best x′ on the real model is kept.
    The idea follows DARE (Ivankay et al., ACL 2023; METHODS.md §5): a robustness number
    means something to a clinician only if the perturbation is one the domain produces.

    Args:
        profile: the image profile, a key of :data:`salbench.attacks.profiles.IMAGE_PROFILES`
            (``"chest_xray"``: grayscale radiographs; ``"generic"``: any image).
        ranges: overrides, parameter name → [low, high] (e.g. ``{"rotation": [0, 0]}`` fixes
            the rotation); each range must contain the parameter's neutral value.
        foreground: intensity threshold (>= 0) of :func:`salbench.attacks.transforms.foreground_mask`
            on the clean image; outside the mask the image is not changed, so that the
            background cannot carry the attack. None: the whole image.
        objective: ``"topk"`` or ``"mse"``; k: the top-k size (default 50, as ``topk``).
        steps, alpha, surrogate_beta, random_start, seed: see
            :class:`salbench.attacks.pgd.BorrowedObjective`; α is in units of each range's half-width
            (default 2.5/steps). ``seed`` seeds the noise draws and the random start.

    Checks: the profile and the overrides when the attack is built; that the input is an
    image batch with channels the profile models and inside ``bounds`` before any work.
    The result is an :class:`AcquisitionResult` with the parameters of each x′.

    Example:
        >>> from salbench import attacks, explainers
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(144, 2))
        >>> x = torch.rand(2, 1, 8, 8)
        >>> atk = attacks.get("acquisition", k=8, steps=3)
        >>> result = atk(net, explainers.get("gradient"), x, net(x).argmax(1), bounds=(0.0, 1.0))
        >>> bool(result.label_kept.all()), tuple(result.parameters.shape)
        (True, (2, 14))
    """

    modalities = ("image",)

    def __init__(
        self, profile: str = "chest_xray", ranges: dict | None = None, foreground: float | None = None, **borrowed
    ):
        self._ranges = image_ranges(profile, ranges)
        if foreground is not None:
            check_positive(foreground, "foreground", allow_zero=True)
        super().__init__(**borrowed)
        self.profile = profile
        self.ranges = ranges
        self.foreground = foreground

    def search_space(self, model: nn.Module, x: Tensor, bounds: Bounds) -> BoxSpace:
        if x.dim() != 4:
            raise ValueError(f"attack acquisition needs images of shape (N, C, H, W), got x of shape {tuple(x.shape)}")
        check_channels(self.profile, x.shape[1])
        checked = _check_bounds(bounds, x.detach())
        opts = {"dtype": x.dtype, "device": x.device}
        low = torch.tensor([self._ranges[name][0] for name in NAMES], **opts)
        high = torch.tensor([self._ranges[name][1] for name in NAMES], **opts)
        model_of_acquisition = AcquisitionModel(
            x.detach(), max_blur=self._ranges["blur"][1], bounds=checked, foreground=self.foreground, seed=self.seed
        )
        origin = torch.tensor([NEUTRAL[name] for name in NAMES], **opts).expand(x.shape[0], -1).clone()
        return BoxSpace(model, x, origin, low, high, (high - low) / 2, model_of_acquisition)

    def attack(self, model: nn.Module, explainer, x: Tensor, target: Tensor, inputs: AttackInputs) -> AcquisitionResult:
        result, parameters = self.search(model, explainer, x, target, bounds=inputs.bounds)
        return AcquisitionResult(**vars(result), parameters=parameters)
