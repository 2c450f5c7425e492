"""Metrics of saliency maps: robustness, faithfulness, significance, localisation, complexity,
randomisation (sanity checks).

``metrics.get(name, **params)`` builds one; each returns one value per sample and declares
``category`` and ``higher_is_better``. See :mod:`salbench.metrics.base`.
"""

from salbench.core.applicability import check_declarations
from salbench.core.registry import Registry

registry = Registry(
    "metric",
    group="salbench.metrics",
    attributes=("category", "higher_is_better", "modalities", "requires", "uses_explainer", "needs_attack"),
    check=check_declarations,
)
register = registry.register
get = registry.get
names = registry.names

from salbench.metrics import (  # noqa: E402,F401  (registers the built-in metrics)
    attribution_distance,
    center_of_mass,
    complexity,
    continuity,
    dare_estimate,
    eraser,
    faithfulness_correlation,
    infidelity,
    insertion_deletion,
    irof,
    local_lipschitz,
    localisation,
    monotonicity_correlation,
    parameter_randomisation,
    random_logit,
    rank_correlation,
    region_perturbation,
    relative_stability,
    road,
    selective_pvalue,
    selective_permutation,
    sensitivity,
    topk_intersection,
    yeh_sensitivity,
)
