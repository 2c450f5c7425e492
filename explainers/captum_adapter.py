"""Any Captum attribution method, by name, as a salbench explainer."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from salbench.core.validation import check_logits_target
from salbench.explainers import register
from salbench.explainers.base import Explainer
from torch import Tensor, nn

# Captum's abstract classes: constructible from a model, but without an attribute() of their own.
_ABSTRACT = ("Attribution", "GradientAttribution", "PerturbationAttribution")


def captum_attr() -> Any:
    """The ``captum.attr`` module, or an ImportError saying how to install Captum."""
    try:
        import captum.attr
    except ImportError as err:
        raise ImportError("the 'captum' explainer needs Captum: pip install salbench[captum]") from err
    return captum.attr


def model_only_methods() -> list[str]:
    """Names of the captum.attr classes built from the model alone (the adapter's choices)."""
    attr = captum_attr()
    return sorted(
        name
        for name, obj in vars(attr).items()
        if isinstance(obj, type) and issubclass(obj, attr.Attribution) and name not in _ABSTRACT and _model_only(obj)
    )


def _model_only(cls: type) -> bool:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return (
        bool(params)
        and params[0].name in ("model", "forward_func")
        and all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params[1:])
    )


@register("captum")
class CaptumMethod(Explainer):
    """A Captum attribution method built from the model alone, e.g. captum:DeepLift (Kokhlikyan et al. 2020).

    Kokhlikyan et al. 2020, "Captum: a unified and generic model interpretability library
    for PyTorch", arXiv:2009.07896. ``method`` names a class of ``captum.attr`` whose
    constructor takes only the model (Saliency, DeepLift, GuidedBackprop, Occlusion,
    ShapleyValueSampling, ...); each call runs
    ``captum.attr.<method>(model).attribute(x, target=target, **kwargs)``. The method's
    paper, formula and defaults are Captum's. Captum is imported when the explainer is
    built (``pip install salbench[captum]``). One extra forward pass checks the target's class
    range before Captum runs. Not differentiable (Captum does not keep the
    graph); the result is detached. Captum's KernelShap and Lime draw from torch's global
    generator, one sample after another, with every element a feature: the explainers
    ``kernel_shap`` and ``lime`` (:mod:`salbench.explainers.surrogate`) seed them per sample,
    perturb patches and batch KernelSHAP across samples.

    Args:
        method: the captum.attr class name; ``captum:Name`` sets it in a config.
        kwargs: extra keyword arguments of ``attribute`` (not ``inputs``/``target``), e.g.
            ``{"sliding_window_shapes": (1, 4, 4)}`` for Occlusion.

    Example:
        >>> from salbench import explainers
        >>> import torch
        >>> sal = explainers.get("captum:Saliency", kwargs={"abs": False})
        >>> sal(torch.nn.Linear(3, 2), torch.ones(4, 3), 1).shape
        torch.Size([4, 3])
    """

    differentiable = False
    test_params = {"method": "Saliency"}  # cheap parameters for salbench.testing's contract checks

    def __init__(self, method: str, kwargs: dict | None = None):
        attr = captum_attr()
        available = model_only_methods()
        if method not in available:
            raise ValueError(
                f"method={method!r} is not a captum.attr class built from the model alone; "
                f"available: {', '.join(available)}"
            )
        kwargs = dict(kwargs or {})
        reserved = sorted({"inputs", "target"} & set(kwargs))
        if reserved or not all(isinstance(k, str) for k in kwargs):
            raise ValueError(
                f"kwargs must map attribute() argument names other than inputs/target to values, got keys {list(kwargs)}"
            )
        self.method = method
        self.kwargs = kwargs
        self._cls = getattr(attr, method)

    def attribute(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        with torch.no_grad():
            check_logits_target(model(x), target)  # Captum's own error would not name the target
        result = self._cls(model).attribute(x, target=target, **self.kwargs)
        if not isinstance(result, Tensor) or result.shape != x.shape:
            got = tuple(result.shape) if isinstance(result, Tensor) else type(result).__name__
            raise ValueError(
                f"captum.attr.{self.method} returned {got}, expected a tensor of x's shape {tuple(x.shape)}"
            )
        return result.detach()
