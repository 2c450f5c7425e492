"""Training recipes: how a model is fitted to a data set (optimiser, schedule, regularisers).

``recipes.get(name, **params)`` builds one; ``recipe.fit(model, data, seed=...)`` trains the
model in place and returns training information. See :class:`benchmarks.recipes.base.Recipe`.
"""

from benchmarks.registry import Registry

registry = Registry("recipe", group="salbench.recipes")
register = registry.register
get = registry.get
names = registry.names

from benchmarks.recipes import standard  # noqa: E402,F401  (registers the built-in recipes)
