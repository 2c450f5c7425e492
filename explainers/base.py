"""The explainer interface: ``explainer(model, x, target) -> attribution`` of the shape of ``x``."""

from __future__ import annotations

from typing import ClassVar

import torch
from salbench.core.applicability import MODALITIES
from salbench.core.validation import check_input, check_logits_target, check_target
from torch import Tensor, nn

__all__ = ["Explainer", "output_gradient"]


class Explainer:
    """Base class of saliency methods.

    Subclasses implement :meth:`attribute`; calling the explainer checks the input and the
    target first. All explainers work on a batch (first dimension), return a tensor of the
    same shape as ``x`` on the model's device, and with ``create_graph=True`` keep the graph so
    that the attribution can be differentiated again (attacks, robust training).
    ``differentiable = False`` marks methods for which that is meaningless (e.g. ``random``,
    ``occlusion``); asking them for ``create_graph=True`` is an error.

    ``modalities`` and ``requires`` declare what the method applies to
    (:mod:`salbench.core.applicability`): by default every modality (text through the word
    attribution adapter on the embeddings) and nothing of the model.
    """

    differentiable: ClassVar[bool] = True
    modalities: ClassVar[tuple[str, ...]] = MODALITIES
    requires: ClassVar[tuple[str, ...]] = ()

    def __call__(self, model: nn.Module, x: Tensor, target: Tensor | int, *, create_graph: bool = False) -> Tensor:
        check_input(x)
        target = check_target(target, x)
        if create_graph and not self.differentiable:
            raise ValueError(f"explainer {type(self).__name__} is not differentiable; call it with create_graph=False")
        return self.attribute(model, x, target, create_graph=create_graph)

    def attribute(self, model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> Tensor:
        raise NotImplementedError

    def with_training_data(self, x_train: Tensor, seed: int) -> "Explainer":
        """This explainer with what it draws from the training inputs bound; itself by default.

        The grid runner calls it once per cell with the data set's training inputs and the
        cell's seed, so a method whose parameter refers to the training data (e.g.
        ``expected_gradients`` with ``background = "train"``) gets it without the suite naming a
        tensor.
        """
        return self

    @property
    def attack_proxy(self) -> "Explainer":
        """The explainer that attacks on this one optimise against: itself by default.

        A non-differentiable method built on a differentiable one (e.g. ``decoy`` on
        ``gradient``) returns its base, so an attack on it is a transfer attack from the base
        (the threat model of Lu et al.'s decoy paper); metrics still use this explainer.
        """
        return self

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


def output_gradient(model: nn.Module, x: Tensor, target: Tensor, *, create_graph: bool) -> tuple[Tensor, Tensor]:
    """Gradient of the target logits with respect to ``x``, and the logits.

    d f_c(x) / d x for each sample's own class c, computed in one batched backward pass
    (samples are independent, so the gradient of the summed selected logits is per-sample).
    """
    with torch.enable_grad():
        inputs = x.detach().requires_grad_(True) if not (create_graph and x.requires_grad) else x
        logits = model(inputs)
        check_logits_target(logits, target)
        selected = logits.gather(1, target[:, None]).sum()
        (grad,) = torch.autograd.grad(selected, inputs, create_graph=create_graph)
    return grad, logits
