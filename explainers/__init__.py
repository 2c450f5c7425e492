"""Saliency methods (feature attributions) for PyTorch models.

``explainers.get(name, **params)`` builds one; ``explainer(model, x, target)`` returns an
attribution of the shape of ``x``. See :class:`salbench.explainers.base.Explainer`.
"""

from salbench.core.applicability import check_declarations
from salbench.core.registry import Registry

registry = Registry(
    "explainer", group="salbench.explainers", attributes=("modalities", "requires"), check=check_declarations
)
register = registry.register
get = registry.get
names = registry.names

from salbench.explainers import (  # noqa: E402,F401  (registers the built-in explainers)
    cam,
    captum_adapter,
    decoy,
    deeplift,
    eigencam,
    gradcam,
    gradcam_plusplus,
    gradient,
    gradient_shap,
    gradient_x_input,
    guided_backprop,
    hirescam,
    integrated_gradients,
    layercam,
    loss_gradient,
    lrp,
    occlusion,
    random_control,
    rise,
    scorecam,
    smoothgrad,
    surrogate,
    xgradcam,
    zennit_adapter,
)
