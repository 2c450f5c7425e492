"""The attack interface: ``attack(model, explainer, x, target, bounds=...) -> AttackResult``.

An attack on an explanation looks for x′ near x (inside an ℓ∞ or ℓ2 ball of radius ε and the
valid input range) whose explanation differs from that of x while the model's predicted label
stays the same. Every sample of the returned x′ keeps its label: a sample for which no
label-preserving step was found is returned unchanged (x′ = x) with ``label_kept`` still True
and ``success`` False.
"""

from __future__ import annotations

import dataclasses

from torch import Tensor, nn

__all__ = ["AttackResult", "Attack", "Bounds"]

Bounds = tuple[Tensor | float, Tensor | float] | None
"""Valid input range: (low, high), each a float or a tensor broadcastable to x; None = unbounded."""


@dataclasses.dataclass
class AttackResult:
    """What an attack returns.

    Attributes:
        x_adv: the attacked inputs, shape of x, detached.
        iterations: per-sample number of accepted (label-preserving) steps, long (N,).
        label_kept: per-sample bool (N,): the real model predicts the same label on x_adv as on x.
        success: per-sample bool (N,): x_adv differs from x (at least one accepted step).
    """

    x_adv: Tensor
    iterations: Tensor
    label_kept: Tensor
    success: Tensor


class Attack:
    """Base class of attacks on explanations; subclasses implement :meth:`attack`.

    The attack optimises against ``explainer.attack_proxy`` (the explainer itself, or for a
    non-differentiable wrapper such as ``decoy`` its differentiable base: a transfer attack).
    """

    def __call__(self, model: nn.Module, explainer, x: Tensor, target: Tensor | int, *, bounds: Bounds = None) -> AttackResult:
        from explainers.validation import check_input, check_target

        check_input(x)
        target = check_target(target, x)
        return self.attack(model, explainer.attack_proxy, x, target, bounds=bounds)

    def attack(self, model: nn.Module, explainer, x: Tensor, target: Tensor, *, bounds: Bounds) -> AttackResult:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"
