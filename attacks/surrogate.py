"""A smooth copy of a ReLU network, to attack gradient explanations through (Ghorbani et al. 2019).

For a ReLU network the gradient of a logit is piecewise constant in x, so the gradient of any
function of a gradient explanation is zero almost everywhere and a gradient-based attack on it
cannot move. Ghorbani et al. (AAAI 2019, §3) attack a copy of the network whose ReLUs are
replaced by softplus, softplus_β(z) = log(1 + exp(β z)) / β (→ ReLU as β → ∞), and evaluate
the result on the real network.
"""

from __future__ import annotations

import copy

from torch import Tensor, nn

__all__ = ["SmoothLeakyReLU", "softplus_surrogate"]


class SmoothLeakyReLU(nn.Module):
    """Smooth LeakyReLU: a·z + (1 − a)·softplus_β(z), equal to LeakyReLU(a) as β → ∞."""

    def __init__(self, negative_slope: float, beta: float):
        super().__init__()
        self.negative_slope = negative_slope
        self.softplus = nn.Softplus(beta=beta)

    def forward(self, z: Tensor) -> Tensor:
        return self.negative_slope * z + (1 - self.negative_slope) * self.softplus(z)


def _smooth(module: nn.Module, beta: float) -> nn.Module | None:
    if isinstance(module, nn.ReLU):
        return nn.Softplus(beta=beta)
    if isinstance(module, nn.LeakyReLU):
        return SmoothLeakyReLU(module.negative_slope, beta)
    return None


_SMOOTH = (nn.Softplus, nn.Tanh, nn.GELU, nn.SiLU, nn.ELU, nn.Sigmoid)


def softplus_surrogate(model: nn.Module, beta: float) -> nn.Module:
    """A deep copy of ``model`` with every ``nn.ReLU`` → ``nn.Softplus(beta)`` and every
    ``nn.LeakyReLU(a)`` → :class:`SmoothLeakyReLU` (a, beta); the weights are shared by value.

    Only activation *modules* can be found: a network that calls ``torch.relu`` or
    ``F.relu`` in its ``forward`` keeps those calls. A network with no ReLU/LeakyReLU module
    but with smooth activation modules (softplus, tanh, GELU, SiLU, ELU, sigmoid: e.g. a model
    trained with the ``softplus`` recipe) is already smooth and is returned as a plain copy, so
    one attack setting serves ReLU and smooth models in the same grid. A network with no
    activation module at all is an error (the surrogate would silently equal a possibly
    piecewise-linear model): pass ``surrogate_beta=None`` to attack the model directly, or
    build the network from ``nn.ReLU`` modules.
    A model that mixes modules and functional calls is smoothed only where it uses modules.

    The copy costs one model's memory per attack call; it is made per call rather than cached
    so that a model whose weights change between calls (training) is never attacked through a
    stale copy.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
        >>> softplus_surrogate(net, beta=10.0)[1]
        Softplus(beta=10.0, threshold=20.0)
    """
    surrogate = copy.deepcopy(model)
    replaced = 0
    for parent in list(surrogate.modules()):
        for name, child in list(parent.named_children()):
            smooth = _smooth(child, beta)
            if smooth is not None:
                setattr(parent, name, smooth)
                replaced += 1
    if replaced == 0 and any(isinstance(m, _SMOOTH) for m in model.modules()):
        return surrogate.requires_grad_(False)  # already smooth (e.g. trained with softplus): nothing to replace
    if replaced == 0:
        raise ValueError(
            f"surrogate_beta={beta} asks for a softplus surrogate, but {type(model).__name__} has no nn.ReLU or "
            "nn.LeakyReLU module to replace (functional relu calls cannot be replaced). Use "
            "surrogate_beta=None to attack the model itself, or build the network from nn.ReLU modules."
        )
    return surrogate.requires_grad_(False)
