"""The metric interface: per-sample scores, each metric declaring its category and direction."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal, NamedTuple

import torch
from salbench.core.applicability import MODALITIES
from salbench.core.text import Vocabulary
from salbench.core.validation import check_input, check_same_shape
from salbench.explainers.base import Explainer
from torch import Tensor, nn

__all__ = ["Case", "Metric", "MetricOutput", "PairMetric", "FaithfulnessMetric", "CATEGORIES"]

CATEGORIES = ("robustness", "faithfulness", "significance", "localisation", "complexity", "randomisation")
"""What a metric measures (the order of the leaderboard's column groups): robustness of the map
to perturbations or attacks; faithfulness to the model; statistical significance of a region;
localisation against ground-truth masks; complexity (how concentrated a map is); randomisation
(sanity checks: how much the map changes when the model's parameters or target are randomised)."""


@dataclasses.dataclass
class Case:
    """Everything a grid cell knows about a batch when it scores it.

    ``explainer`` and ``attr`` are None in a cell without an explainer (for the metrics that
    declare ``uses_explainer = False``).
    ``x_adv``/``attr_adv`` are the attacked input and its attribution (None before an attack);
    ``mask`` is a ground-truth relevance mask where the data set has one; ``reference`` holds
    (N, m, *input_shape) reference images per sample where the data set has them (e.g. the
    "normal" images of a selective test, see :mod:`salbench.metrics.selective_pvalue`).

    For text (:mod:`salbench.core.text`), ``vocabulary`` decodes ``x``/``x_adv`` and
    ``valid`` (bool, the shape of ``attr``) marks the positions that are real features, the
    words of each text (``word_mask(x)``); robustness metrics compare only those
    (:meth:`PairMetric.evaluate`). None elsewhere: every position is a feature.
    """

    model: nn.Module
    explainer: Explainer | None
    x: Tensor
    target: Tensor
    attr: Tensor | None
    x_adv: Tensor | None = None
    attr_adv: Tensor | None = None
    mask: Tensor | None = None
    reference: Tensor | None = None
    vocabulary: Vocabulary | None = None
    valid: Tensor | None = None


class MetricOutput(NamedTuple):
    """What :meth:`Metric.evaluate` may return instead of the plain ``(values, curves)`` pair.

    ``values``: (N,), or (N, len(outputs)) for a metric with :attr:`Metric.outputs`;
    ``curves``: (N, M) or None; ``notes``: None or one entry per sample, a string saying why
    that sample's values are missing (NaN) or None. A value may be NaN only with a note: the
    grid stores the note beside it, so no missing value is silent.
    """

    values: Tensor
    curves: Tensor | None = None
    notes: list[str | None] | None = None


class Metric:
    """Base class of metrics.

    Every metric declares ``category`` (one of :data:`CATEGORIES`) and ``higher_is_better``,
    and returns one value per sample as a tensor of shape (N,). ``evaluate(case)`` is the
    grid runner's uniform entry point (values and optional curves); each subclass also has a
    direct ``__call__`` with the arguments natural to it. ``needs_attack`` metrics compare x
    with an attacked x′; the grid evaluates the others once per explainer, without an attack.

    Applicability (:mod:`salbench.core.applicability`): ``modalities`` (default: all) and
    ``requires`` (default: nothing), as for explainers and attacks, and ``uses_explainer``
    (default True): a metric that ignores the cell's explainer and its attribution (e.g.
    ``selective_pvalue``, which tests the model's own CAM) sets it False, and the grid then
    evaluates it once per data set, model, recipe and seed, in a cell without an explainer
    (``Case.explainer`` and ``Case.attr`` None).

    A metric that reports several numbers per sample names them in ``outputs``; its values
    then have shape (N, len(outputs)) and the grid stores each column as the metric
    ``"<name>.<output>"`` (same category and direction). ``evaluate`` may return a
    :class:`MetricOutput` to attach per-sample notes (why a value is missing).
    """

    category: ClassVar[Literal["robustness", "faithfulness", "significance", "localisation", "complexity", "randomisation"]]
    higher_is_better: ClassVar[bool]
    needs_attack: ClassVar[bool] = False
    outputs: ClassVar[tuple[str, ...]] = ()
    modalities: ClassVar[tuple[str, ...]] = MODALITIES
    requires: ClassVar[tuple[str, ...]] = ()
    uses_explainer: ClassVar[bool] = True

    def evaluate(self, case: Case) -> tuple[Tensor, Tensor | None] | MetricOutput:
        """Per-sample values (N,) (or (N, len(outputs))) and, for curve metrics, the per-sample
        curves (N, M), else None; or a :class:`MetricOutput` that adds per-sample notes."""
        raise NotImplementedError

    curve_axis: ClassVar[str] = "curve point"
    """What the x axis of this metric's curves is (figures label it); see :meth:`curve_positions`."""

    def curve_positions(self, n_points: int) -> Tensor:
        """x positions (n_points,) of this metric's curve points, for figures: 0, 1, ... by
        default; metrics whose curves have a natural axis (fractions of features, layers) say so."""
        return torch.arange(n_points, dtype=torch.float64)

    def check_features(self, n_features: int) -> None:
        """Raise ValueError, naming the parameter, if the metric cannot score maps of
        ``n_features`` features per sample (e.g. top-k with k > n_features); the grid calls it
        before any work. Every metric fits by default."""

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


class PairMetric(Metric):
    """A robustness metric comparing the attribution of x with that of the attacked x′.

    ``metric(attr, attr_adv)`` → (N,). Subclasses implement :meth:`compare`.

    With a ``valid`` mask (``Case.valid``, e.g. the words of texts of different lengths) each
    sample is compared on its own valid positions only, as if its maps held just those
    features in order: :meth:`compare_valid`.
    """

    category: ClassVar[str] = "robustness"
    needs_attack: ClassVar[bool] = True

    def __call__(self, attr: Tensor, attr_adv: Tensor) -> Tensor:
        check_input(attr, "attr")
        check_input(attr_adv, "attr_adv")
        check_same_shape(attr, attr_adv, ("attr", "attr_adv"))
        return self.compare(attr, attr_adv)

    def compare(self, attr: Tensor, attr_adv: Tensor) -> Tensor:
        raise NotImplementedError

    def undefined(self, attr: Tensor, attr_adv: Tensor) -> list[str | None]:
        """Per sample, why this metric is undefined for it (None where it is defined): in a grid
        such a sample gets NaN with that note instead of failing the cell. Default: always defined."""
        return [None] * len(attr)

    def evaluate(self, case: Case) -> tuple[Tensor, Tensor | None] | MetricOutput:
        if case.attr_adv is None:
            raise ValueError(f"metric {type(self).__name__} compares two attributions and needs an attack (attr_adv)")
        if case.valid is None:
            notes = self.undefined(case.attr, case.attr_adv)
            return _where_defined(lambda keep: self(case.attr[keep], case.attr_adv[keep]), notes, case.attr.device)
        _check_valid(case.valid, case.attr, case.attr_adv)
        counts = case.valid.flatten(1).sum(1)
        notes = [
            f"{int(n)} valid positions (words), fewer than the {self.min_positions} this metric compares"
            if n < self.min_positions else None
            for n in counts.tolist()
        ]
        return _where_defined(
            lambda keep: self.compare_valid(case.attr[keep], case.attr_adv[keep], case.valid[keep]), notes, counts.device
        )

    def check_features(self, n_features: int) -> None:
        if n_features < self.min_positions:
            raise ValueError(
                f"{type(self).__name__} compares at least {self.min_positions} features per sample, got {n_features}"
            )

    @property
    def min_positions(self) -> int:
        """Fewest valid positions a sample needs (e.g. k for a top-k metric); a sample of a
        variable-length case (``Case.valid``) with fewer gets NaN and a note, not an error."""
        return 1

    def compare_valid(self, attr: Tensor, attr_adv: Tensor, valid: Tensor) -> Tensor:
        """(N,): each sample's maps compared on the positions where ``valid`` is True.

        The valid entries of a sample, in flat order, form its feature vector; samples with the
        same number of valid positions are compared together in one batch (one call per distinct
        count, not per sample). Errors raised by the comparison name samples within such a
        group; the message says which samples of the batch the group holds.
        """
        _check_valid(valid, attr, attr_adv)
        counts = valid.flatten(1).sum(1)
        rows_seen, values = [], []
        for count in counts.unique().tolist():
            rows = (counts == count).nonzero().flatten()
            keep = valid[rows].flatten(1)
            part, part_adv = (a[rows].flatten(1)[keep].view(len(rows), count) for a in (attr, attr_adv))
            try:
                values.append(self(part, part_adv))
            except ValueError as err:
                raise ValueError(
                    f"samples {rows.tolist()} of the batch (those with {count} valid positions; numbered from 0 "
                    f"in what follows): {err}"
                ) from err
            rows_seen.append(rows)
        out = torch.cat(values)
        return torch.empty_like(out).index_copy_(0, torch.cat(rows_seen), out)


def _check_valid(valid: Tensor, attr: Tensor, attr_adv: Tensor) -> None:
    """``valid`` is a bool mask of the attributions' shape with >= 1 valid position per sample."""
    check_same_shape(valid, attr, ("valid", "attr"))
    check_same_shape(valid, attr_adv, ("valid", "attr_adv"))
    if valid.dtype != torch.bool:
        raise TypeError(f"valid must be a bool tensor (True at real features), got dtype {valid.dtype}")
    empty = ~valid.flatten(1).any(1)
    if empty.any():
        samples = empty.nonzero().flatten().tolist()
        raise ValueError(f"valid has no valid position in sample(s) {samples}; each sample needs >= 1")


class FaithfulnessMetric(Metric):
    """A metric of how well an attribution reflects the model: ``metric(model, x, attr, target)`` → (N,)."""

    category: ClassVar[str] = "faithfulness"

    def __call__(self, model: nn.Module, x: Tensor, attr: Tensor, target: Tensor | int) -> Tensor:
        raise NotImplementedError

    def evaluate(self, case: Case) -> tuple[Tensor, Tensor | None]:
        return self(case.model, case.x, case.attr, case.target), None


def _where_defined(compare, notes: list[str | None], device: torch.device) -> tuple[Tensor, None] | MetricOutput:
    """``compare(keep)`` on the samples without a note; NaN with its note for the others."""
    missing = torch.tensor([n is not None for n in notes], device=device)
    if not missing.any():
        return compare(slice(None)), None
    values = torch.full(missing.shape, float("nan"), dtype=torch.float64, device=device)
    if not missing.all():
        values[~missing] = compare(~missing).double()
    return MetricOutput(values, None, notes)
