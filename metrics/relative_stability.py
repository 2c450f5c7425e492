"""Relative input, representation and output stability of a saliency map: RIS, RRS, ROS (Agarwal et al. 2022)."""

from __future__ import annotations

from typing import ClassVar

import torch
from salbench.core.validation import check_positive
from salbench.explainers.base import Explainer
from salbench.explainers.layers import find_layer
from salbench.metrics import register
from salbench.metrics.base import MetricOutput
from salbench.metrics.neighbourhood import NeighbourhoodMetric, max_over_kept
from salbench.metrics.recompute import notes_where
from torch import Tensor, nn

__all__ = ["RelativeStability", "relative_norm"]

CHANGED_NOTE = "every draw x′ changed the model's prediction, so no draw is in the neighbourhood the stability maximises over"


def relative_norm(a: Tensor, b: Tensor, eps_min: float) -> Tensor:
    """(N, S): ‖(a − b_s) / a‖₂ for ``a`` (N, ...) and ``b`` (N, S, ...), elementwise division; an
    exact zero of ``a`` divides by ``eps_min`` instead (Quantus's guard).

    >>> relative_norm(torch.tensor([[2.0, 0.0]]), torch.tensor([[[1.0, 0.0], [2.0, 1e-6]]]), 1e-6)
    tensor([[0.5000, 1.0000]])
    """
    ratio = (a[:, None] - b) / torch.where(a == 0, eps_min, a)[:, None]
    return ratio.flatten(2).norm(dim=2)


@register("relative_stability")
class RelativeStability(NeighbourhoodMetric):
    """Relative input, representation and output stability RIS, RRS, ROS over random draws (Agarwal et al. 2022).

    Agarwal, Johnson, Pawelczyk, Krishna, Saxena, Zitnik, Lakkaraju, "Rethinking Stability for
    Attribution-based Explanations", ICLR 2022 PAIR2Struct workshop (arXiv 2203.06877), §3.
    With e_x = E(x) and the relative change ‖(a − b)/a‖ = ‖(a − b) ⊘ a‖₂ (elementwise
    division), over the draws x′ that keep the model's prediction (argmax of the logits):

        RIS(x) = max_{x′} ‖(e_x − e_x′)/e_x‖ / max(‖(x − x′)/x‖, ε_min)
        RRS(x) = max_{x′} ‖(e_x − e_x′)/e_x‖ / max(‖(L_x − L_x′)/L_x‖, ε_min)
        ROS(x) = max_{x′} ‖(e_x − e_x′)/e_x‖ / max(‖h(x) − h(x′)‖, ε_min)

    L is an internal representation (``layer``), h the logits (the change of the output is
    absolute, not relative, as in Quantus and, as we read it, the paper). The three share one
    set of draws x′ = x + δ_s, δ_s ~ U[−r, r]^d (:class:`~salbench.metrics.neighbourhood.NeighbourhoodMetric`),
    one explainer pass and one forward pass over them; values are (N, 3) in the order of
    ``outputs`` (the grid stores ``relative_stability.ris`` etc.). Lower is better. A sample
    whose every draw changes the prediction gets NaN with a note.

    Departures: the paper divides elementwise by e_x, x and L_x without a guard; an exact
    zero there divides by ε_min here, as in Quantus (``RelativeInputStability`` etc.), whose
    values these equal given the same draws when each denominator norm is >= ε_min (Quantus adds
    ε_min only to a zero norm, the paper takes max(·, ε_min)). Quantus returns NaN for a sample
    as soon as one draw changes the prediction (``np.max`` over NaN); the paper maximises over
    the draws that keep it, as here. Quantus's RRS concatenates every layer's output by default;
    the paper uses one hidden representation, here the penultimate one by default.

    Args:
        layer: "auto" (the input of the model's last ``nn.Linear``: the penultimate
            representation) or the name of a submodule whose output (flattened) is L; it must
            run once per forward pass.
        eps_min: ε_min > 0 (Quantus's default 1e-6).
        n_samples, radius, seed, batch_size: the draws
            (:class:`~salbench.metrics.neighbourhood.NeighbourhoodMetric`; 10, 0.02, 0, 256).

    Example:
        >>> import torch
        >>> from salbench import explainers, metrics
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
        >>> values = metrics.get("relative_stability")(model, explainers.get("gradient"), torch.randn(4, 3), 0)
        >>> values.shape
        torch.Size([4, 3])
    """

    outputs: ClassVar[tuple[str, ...]] = ("ris", "rrs", "ros")

    def __init__(self, layer: str = "auto", eps_min: float = 1e-6, **neighbourhood):
        if not isinstance(layer, str) or not layer:
            raise ValueError(f"layer must be 'auto' or the name of a submodule, got {layer!r}")
        check_positive(eps_min, "eps_min")
        super().__init__(**neighbourhood)
        self.layer = layer
        self.eps_min = eps_min

    def score(self, model: nn.Module, explainer: Explainer, x: Tensor, target: Tensor, attr: Tensor) -> MetricOutput:
        neighbours = self.neighbours(x)
        attr_neighbours = self.explain_neighbours(model, explainer, neighbours, target)
        rep, logits = self.forward(model, x)
        rep_n, logits_n = (t.view(*neighbours.shape[:2], -1) for t in self.forward(model, neighbours.flatten(0, 1)))
        kept = logits_n.argmax(dim=2) == logits.argmax(dim=1)[:, None]
        change = relative_norm(attr, attr_neighbours, self.eps_min)
        output_change = (logits[:, None] - logits_n).norm(dim=2)  # absolute, not relative (see the docstring)
        denominators = (relative_norm(x, neighbours, self.eps_min), relative_norm(rep, rep_n, self.eps_min), output_change)
        values = torch.stack([max_over_kept(change / d.clamp_min(self.eps_min), kept) for d in denominators], dim=1)
        return MetricOutput(values, None, notes_where(~kept.any(dim=1), CHANGED_NOTE))

    def forward(self, model: nn.Module, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """The representation L (M, K) and the logits (M, C) of ``inputs`` (M, ...), in calls of
        at most ``batch_size`` rows."""
        auto = self.layer == "auto"
        name, module = find_layer(model, self.layer, nn.Linear if auto else nn.Module, "layer")
        captured: list[Tensor] = []
        hook = module.register_forward_hook(lambda m, args, out: captured.append((args[0] if auto else out).detach()))
        try:
            with torch.no_grad():
                logits = torch.cat([model(inputs[i : i + self.batch_size]) for i in range(0, len(inputs), self.batch_size)])
        finally:
            hook.remove()
        calls = -(-len(inputs) // self.batch_size)
        if len(captured) != calls or not all(isinstance(c, Tensor) for c in captured):
            raise ValueError(f"layer {name!r} must run once per forward pass and give a tensor; it ran {len(captured)} times in {calls} passes")
        return torch.cat([c.flatten(1) for c in captured]), logits
