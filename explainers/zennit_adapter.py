"""Any Zennit LRP composite, by name, as a salbench explainer (where Zennit imports)."""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from salbench.core.applicability import CONTINUOUS
from salbench.core.validation import check_logits_target
from salbench.explainers import register
from salbench.explainers.base import Explainer
from torch import Tensor, nn


def _zennit() -> tuple[types.ModuleType, types.ModuleType]:
    """``zennit.attribution`` and ``zennit.composites``, or an ImportError saying why they do not import."""
    try:
        import zennit.attribution
        import zennit.composites
    except ImportError as err:
        raise ImportError(
            f"the 'zennit' explainer needs the Python package 'zennit' (pip install zennit; its package imports "
            f"torchvision), which could not be imported: {type(err).__name__}: {err}. The native 'lrp' explainer "
            "needs nothing extra"
        ) from err
    return zennit.attribution, zennit.composites


@register("zennit")
class ZennitComposite(Explainer):
    """An LRP composite of Zennit, e.g. zennit:EpsilonPlus (Anders et al. 2021), where Zennit imports.

    Anders, Neumann, Samek, Müller, Lapuschkin 2021, "Software for dataset-wide XAI: from
    local explanations to global insights with Zennit, CoRelAy, and ViRelAy", arXiv:2106.13200.
    ``composite`` names a class of ``zennit.composites`` (EpsilonPlus, EpsilonAlpha2Beta1,
    EpsilonPlusFlat, EpsilonGammaBox, ...), built with ``kwargs`` (e.g. ``{"low": 0.0,
    "high": 1.0}`` for EpsilonGammaBox); each call runs Zennit's ``Gradient`` attributor under
    that composite with the output relevance f_c(x) on the target class (the convention of
    the native ``lrp`` explainer and of Captum's ``LRP``; Zennit's examples start from 1). The
    rules, their defaults and the layers they cover are Zennit's; ``lrp`` with
    ``composite="epsilon_plus"`` is the native counterpart of ``zennit:EpsilonPlus``. Zennit
    registers its hooks for the call and removes them. Not differentiable; the result is
    detached.

    Untested here: Zennit 0.5.1 cannot be imported on the machines this was written on (its
    package ``__init__`` imports torchvision, which is not installed), so building this
    explainer raises an ImportError naming the package and the failed import; only that error
    is tested.

    Args:
        composite: the zennit.composites class name; ``zennit:Name`` sets it in a config.
        kwargs: keyword arguments of the composite's constructor.

    Example:
        >>> from salbench import explainers
        >>> try:
        ...     explainers.get("zennit:EpsilonPlus")
        ... except ImportError as err:
        ...     print("zennit" in str(err))
        ... else:
        ...     print(True)
        True
    """

    differentiable = False
    modalities = CONTINUOUS  # the composites' rules cover layers on the input, not embeddings of ids
    test_params = {"composite": "EpsilonPlus"}  # cheap parameters for salbench.testing's contract checks

    def __init__(self, composite: str, kwargs: dict | None = None):
        attribution, composites = _zennit()
        available = sorted(
            name for name, obj in vars(composites).items()
            if isinstance(obj, type) and issubclass(obj, composites.Composite) and obj.__module__ == composites.__name__
        )  # fmt: skip
        if composite not in available:
            raise ValueError(f"composite={composite!r} is not a zennit.composites class; available: {', '.join(available)}")
        self.composite = composite
        self.kwargs = dict(kwargs or {})
        self._build = lambda: getattr(composites, composite)(**self.kwargs)
        self._attributor = attribution.Gradient

    def attribute(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        with torch.no_grad():
            check_logits_target(model(x), target)  # Zennit's own error would not name the target
        x = x.detach().requires_grad_(True)
        with self._attributor(model=model, composite=self._build()) as attributor:
            _, relevance = attributor(x, lambda out: F.one_hot(target, out.shape[1]).to(out) * out)
        return relevance.detach()
