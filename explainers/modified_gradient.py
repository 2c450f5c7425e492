"""Modified-gradient explainers: forward hooks that change layers' backward rules for one call only.

Guided backpropagation, DeepLIFT and LRP all run the model's ordinary forward pass and change
what flows backwards through some layers. Here that is done by forward hooks, registered for
the duration of one call (:func:`forward_hooks`, removed on exit, also when the call raises),
that return a replacement output: the model, its parameters and its modules are never modified.
A replacement keeps the layer's forward value and reroutes the gradient
(:func:`rerouted`). Which layers a method understands is checked at its entry point
(:func:`check_layers`): a model built from other leaf modules is refused with an error naming the
first one. Operations written as functions inside a ``forward`` (``F.relu``, ``x + y``) are no
modules and cannot be seen: they are differentiated plainly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from torch import Tensor, nn

__all__ = ["check_layers", "check_eval_mode", "forward_hooks", "not_inplace", "rerouted"]

Hook = Callable[[nn.Module, tuple[Tensor, ...], Tensor], Tensor | None]


def check_layers(model: nn.Module, supported: tuple[type[nn.Module], ...], method: str) -> None:
    """Every leaf module of ``model`` (one without children) is an instance of ``supported``.

    Raises ValueError naming the first other leaf and listing the supported types.

    >>> check_layers(nn.Sequential(nn.Linear(2, 2), nn.Tanh()), (nn.Linear, nn.ReLU), "lrp")
    Traceback (most recent call last):
    ...
    ValueError: lrp does not support module '1' (Tanh); supported leaf modules: Linear, ReLU
    """
    for name, module in model.named_modules():
        if not any(True for _ in module.children()) and not isinstance(module, supported):
            allowed = ", ".join(t.__name__ for t in supported)
            raise ValueError(
                f"{method} does not support module {name or '(the model)'!r} ({type(module).__name__}); "
                f"supported leaf modules: {allowed}"
            )


def check_eval_mode(model: nn.Module, kinds: tuple[type[nn.Module], ...], method: str) -> None:
    """No module of ``kinds`` (dropout, batch norm: affine per sample only in eval mode) is in training mode.

    >>> check_eval_mode(nn.Sequential(nn.Dropout()), (nn.Dropout,), "lrp")
    Traceback (most recent call last):
    ...
    ValueError: lrp needs Dropout in eval mode; in training mode: '0' (call model.eval())
    """
    training = [name for name, m in model.named_modules() if isinstance(m, kinds) and m.training]
    if training:
        raise ValueError(
            f"{method} needs {', '.join(t.__name__ for t in kinds)} in eval mode; "
            f"in training mode: {', '.join(map(repr, training))} (call model.eval())"
        )


@contextlib.contextmanager
def forward_hooks(model: nn.Module, hook_for: Callable[[nn.Module], Hook | None]) -> Iterator[None]:
    """Register ``hook_for(module)`` as a forward hook on each module it returns a hook for; remove them on exit.

    >>> import torch
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    >>> with forward_hooks(net, lambda m: (lambda mod, inp, out: out * 0) if isinstance(m, nn.ReLU) else None):
    ...     inside = net(torch.ones(1, 2)).abs().sum().item()
    >>> inside, len(net[1]._forward_hooks)
    (0.0, 0)
    """
    handles = []
    try:
        for module in model.modules():
            hook = hook_for(module)
            if hook is not None:
                handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def not_inplace(model: nn.Module) -> Iterator[None]:
    """Run the model's in-place activations (``inplace=True``) out of place; restore the flags on exit.

    A hook needs an activation's input after the activation ran, which an in-place one overwrites.

    >>> net = nn.Sequential(nn.ReLU(inplace=True))
    >>> with not_inplace(net):
    ...     inside = net[0].inplace
    >>> inside, net[0].inplace
    (False, True)
    """
    changed = [m for m in model.modules() if getattr(m, "inplace", False) is True]
    try:
        for module in changed:
            module.inplace = False
        yield
    finally:
        for module in changed:
            module.inplace = True


def rerouted(value: Tensor, carrier: Tensor, scale: Tensor) -> Tensor:
    """A tensor equal to ``value`` whose gradient flows into ``carrier`` multiplied by ``scale``.

    value − carrier·scale is detached, so d out / d carrier = scale (itself detached); the
    forward value is exactly ``value`` up to rounding.

    >>> import torch
    >>> u = torch.tensor([2.0], requires_grad=True)
    >>> out = rerouted(torch.tensor([5.0]), u, torch.tensor([3.0]))
    >>> out.item(), torch.autograd.grad(out.sum(), u)[0].item()
    (5.0, 3.0)
    """
    scale = scale.detach()
    return (value - carrier * scale).detach() + carrier * scale

