"""Model-parameter randomisation test, cascading and independent (Adebayo et al. 2018)."""

from __future__ import annotations

import copy
import hashlib
from typing import Literal

import torch
from salbench.core.validation import check_seed
from salbench.explainers.base import Explainer
from salbench.metrics import register
from salbench.metrics.base import MetricOutput
from salbench.metrics.recompute import explain_rows
from salbench.metrics.sanity_check import SanityCheck
from torch import Tensor, nn

__all__ = ["ParameterRandomisation", "parameter_layers", "reinitialise"]


def parameter_layers(model: nn.Module) -> list[str]:
    """Names of the submodules that hold parameters of their own, in ``named_modules`` order
    (bottom to top for a sequential model); each must have ``reset_parameters``.

    >>> parameter_layers(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1)))
    ['0', '2']
    """
    names = [name for name, m in model.named_modules() if next(m.parameters(recurse=False), None) is not None]
    missing = [name or "(the model itself)" for name in names if not hasattr(model.get_submodule(name), "reset_parameters")]
    if missing:
        raise ValueError(
            f"layers {missing} hold parameters but have no reset_parameters(), so they cannot be re-initialised; "
            "parameter randomisation needs every parameter-holding module to define it"
        )
    if not names:
        raise ValueError("the model has no parameters to randomise")
    return names


def reinitialise(module: nn.Module, seed: int, name: str) -> None:
    """Re-initialise ``module``'s own parameters in place by its ``reset_parameters()``, drawn on
    the CPU from a seed of (``seed``, ``name``): the same values on every device, the caller's
    random state untouched."""
    fresh = copy.deepcopy(module).cpu()
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
        fresh.reset_parameters()
    module.load_state_dict(fresh.state_dict())


@register("parameter_randomisation")
class ParameterRandomisation(SanityCheck):
    """Similarity of the map to the map of a model with re-initialised layers (Adebayo et al. 2018).

    Adebayo, Gilmer, Muelly, Goodfellow, Hardt, Kim, "Sanity Checks for Saliency Maps",
    NeurIPS 2018, §3.1 (model parameter randomisation test). The layers are the modules that
    hold parameters, top (output) to bottom; layer l is re-initialised by its own
    ``reset_parameters()`` (PyTorch's default initialisation) with a seed of (``seed``, its
    name), in a deep copy of the model (the model itself is never changed). With E the map of
    the trained model and E_l the map after randomisation step l (same explainer, input, target):

        cascading:   step l randomises the top l layers;    value = s(E, E_L) (all layers random)
        independent: step l randomises layer l alone;       value = (1/L) Σ_l s(E, E_l)

    s is the similarity (``similarity``): Spearman's rank correlation ρ over the features by
    default, or SSIM, of |E| by default (:class:`~salbench.metrics.sanity_check.SanityCheck`).
    The curve (N, L) holds s after each step, top layer first. Lower is better: an explainer
    that passes produces maps unrelated to the randomised model's (s near 0); a map that
    ignores the parameters (e.g. the input itself) gives s = 1. An undefined s (ρ of a constant
    map, e.g. all ReLUs dead) is NaN in the curve; a value that depends on it is NaN with a
    note naming the layers.

    Departures: the paper re-initialises from a truncated normal and reports SSIM, HOG and
    Spearman (with and without absolute values) per layer; here the modules' own initialisers
    and by default Spearman of |E| (Quantus ``MPRT``'s default similarity is Spearman as well, on maps
    normalised by their maximum, which does not change ranks; Quantus seeds every layer with
    the same seed and re-initialises every module that has ``reset_parameters``, including
    those without parameters of their own). The summary of the independent test (the mean) is
    this library's: the paper shows the per-layer values (the curve).

    Args:
        order: "cascading" or "independent".
        seed: seed of the re-initialisation, >= 0.
        similarity, absolute, batch_size: see :class:`~salbench.metrics.sanity_check.SanityCheck`.

    Example:
        >>> import torch
        >>> from salbench import explainers, metrics
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        >>> case = metrics.base.Case(model, explainers.get("gradient"), torch.randn(3, 4), torch.zeros(3, dtype=torch.long), None)
        >>> values, curves, notes = metrics.get("parameter_randomisation").evaluate(case)
        >>> values.shape, curves.shape  # curves: ρ after randomising layer '2', then '0' too
        (torch.Size([3]), torch.Size([3, 2]))
    """

    def __init__(self, order: Literal["cascading", "independent"] = "cascading", seed: int = 0, **check):
        if order not in ("cascading", "independent"):
            raise ValueError(f"order must be 'cascading' or 'independent', got {order!r}")
        check_seed(seed)
        super().__init__(**check)
        self.order = order
        self.seed = seed

    @property
    def curve_axis(self) -> str:
        return "layers randomised, top first" if self.order == "cascading" else "layer randomised, top first"

    def curve_positions(self, n_points: int) -> Tensor:
        """Layer 1 (the top) to L."""
        return torch.arange(1, n_points + 1, dtype=torch.float64)

    def score(self, model: nn.Module, explainer: Explainer, x: Tensor, target: Tensor, attr: Tensor) -> MetricOutput:
        layers = parameter_layers(model)[::-1]
        randomised = copy.deepcopy(model)
        curve = []
        for name in layers:
            module = randomised.get_submodule(name)
            reinitialise(module, self.seed, name)
            curve.append(self.compare(attr, explain_rows(explainer, randomised, x, target, self.batch_size)))
            if self.order == "independent":
                module.load_state_dict(model.get_submodule(name).state_dict())
        curves = torch.stack(curve, dim=1)
        values = curves[:, -1] if self.order == "cascading" else curves.mean(dim=1)
        return MetricOutput(values, curves, self._notes(curves, values, layers))

    def _notes(self, curves: Tensor, values: Tensor, layers: list[str]) -> list[str | None] | None:
        """Per sample with a NaN value: the layers after whose randomisation the similarity was undefined."""
        if not values.isnan().any():
            return None
        return [
            f"the {self.similarity} similarity is undefined (a constant map) after randomising layer(s) "
            f"{[layers[j] for j in row.nonzero().flatten().tolist()]} ({self.order})" if missing else None
            for row, missing in zip(curves.isnan(), values.isnan().tolist())
        ]
