"""Training recipes: how a model is fitted to a data set (optimiser, schedule, regularisers).

``recipes.get(name, **params)`` builds one; ``recipe.fit(model, data, seed=...)`` trains the
model in place and returns training information. See :class:`salbench.recipes.base.Recipe`.
Fine-tuning recipes (:class:`salbench.recipes.finetuning.FineTuning`) start from the model
another recipe trained; :func:`validate_params` gives their parameters in canonical form.

Example:
    >>> from salbench import recipes
    >>> recipes.validate_params("r2et", {"k": 8, "base": {"epochs": 30}})["base"]["epochs"]
    30
"""

from __future__ import annotations

from typing import Any

from salbench.core.registry import Registry

__all__ = ["registry", "register", "get", "names", "validate_params"]

registry = Registry("recipe", group="salbench.recipes")
register = registry.register
get = registry.get
names = registry.names


def validate_params(name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The recipe's validated parameters (defaults filled in), with a fine-tuning recipe's ``base``
    replaced by the validated parameters of its base recipe, so that equal configurations give
    equal parameters (and equal model-cache keys) however they are written.
    """
    full = registry.validate(name, params)
    base_recipe = getattr(registry.entry(name).factory, "base_recipe", None)
    if base_recipe is not None:
        full["base"] = validate_params(base_recipe, full["base"])
    return full


from salbench.recipes import (  # noqa: E402,F401  (registers the built-in recipes)
    adversarial,
    as_given,
    est_hessian,
    exact_hessian,
    far,
    finetune,
    idexpo,
    r2et,
    softplus,
    ssr,
    standard,
    text_adversarial,
    weight_decay,
)
