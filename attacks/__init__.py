"""Attacks on explanations that keep the model's prediction.

``attacks.get(name, **params)`` builds one; ``attack(model, explainer, x, target, bounds=...)``
returns an :class:`salbench.attacks.base.AttackResult` (text attacks take ``vocabulary=`` and ``corpus=``
instead of ``bounds``: each attack declares its ``inputs``). See
:mod:`salbench.attacks.base`.
"""

from salbench.attacks.base import check_declarations
from salbench.core.registry import Registry

registry = Registry(
    "attack",
    group="salbench.attacks",
    attributes=("modalities", "requires", "inputs"),
    defaults={"baseline": False},
    check=check_declarations,
)
register = registry.register
get = registry.get
names = registry.names

from salbench.attacks import (  # noqa: E402,F401  (registers the built-in attacks)
    acquisition,
    clinical,
    dare,
    ghorbani,
    r2et,
    random_noise,
    random_synonym,
)
