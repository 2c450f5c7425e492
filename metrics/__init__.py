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
    dare_estimate,
    insertion_deletion,
    localisation,
    rank_correlation,
    selective_pvalue,
    sensitivity,
    topk_intersection,
)
from salbench.metrics import yeh_sensitivity  # noqa: E402,F401  (max_sensitivity, avg_sensitivity)
from salbench.metrics import local_lipschitz  # noqa: E402,F401
from salbench.metrics import relative_stability  # noqa: E402,F401  (ris, rrs, ros)
from salbench.metrics import continuity  # noqa: E402,F401
from salbench.metrics import parameter_randomisation  # noqa: E402,F401  (sanity check, cascading / independent)
from salbench.metrics import random_logit  # noqa: E402,F401  (sanity check)
