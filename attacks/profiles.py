"""Data-set profiles of the domain-plausible attacks: what another acquisition or measurement may change.

An **image profile** (:class:`ImageProfile`) gives, for acquisition parameters of
:mod:`salbench.attacks.transforms`, the range [low, high] that a different machine, setting or
patient positioning plausibly produces, each with its rationale; a parameter it leaves out
stays at its neutral value. A **table profile** (:class:`TableProfile`) gives, for every
column of a table in order, how far a repeated measurement may move it (a fraction of its
training standard deviation; 0 freezes an immutable feature) and, for integer-valued
features, the grid its values lie on.

Built-in profiles: :data:`IMAGE_PROFILES` (``chest_xray``, ``generic``) and
:data:`TABLE_PROFILES` (``wdbc``). To add one, put it in the dict under its name; it is
checked (:func:`image_ranges`, :func:`check_table_profile`) when an attack is built with it.

The ranges are judgement informed by the physics and the literature cited in each
rationale, not measured on these data sets; every attack takes overrides (``ranges``,
``fractions``) so that a suite can tighten or widen them.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping

from salbench.attacks.transforms import NAMES, NEUTRAL, PARAMETERS

__all__ = [
    "Range",
    "ImageProfile",
    "IMAGE_PROFILES",
    "image_ranges",
    "check_channels",
    "FeatureRule",
    "TableProfile",
    "TABLE_PROFILES",
    "check_table_profile",
    "feature_fractions",
    "WDBC_RELATIVE_ERROR",
    "WDBC_VARIATION",
]


def _unknown(kind: str, name: str, allowed) -> str:
    close = difflib.get_close_matches(name, list(allowed), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    return f"unknown {kind} {name!r}.{hint} Allowed: {', '.join(allowed)}"


def _profile(profiles: Mapping[str, object], name: str, kind: str):
    if name not in profiles:
        raise ValueError(f"profile: {_unknown(f'{kind} profile', name, sorted(profiles))}")
    return profiles[name]


# -- images --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Range:
    """The plausible values [low, high] of one acquisition parameter, and why."""

    low: float
    high: float
    why: str


@dataclasses.dataclass(frozen=True)
class ImageProfile:
    """Plausible acquisition ranges for one kind of image.

    Attributes:
        name: the profile's name.
        description: what images it models.
        channels: the channel counts it applies to (e.g. (1,) for grayscale radiographs);
            None: any.
        ranges: parameter name → :class:`Range`; parameters left out stay neutral.
    """

    name: str
    description: str
    channels: tuple[int, ...] | None
    ranges: Mapping[str, Range]


_POSITIONING = (
    "patient positioning differs between acquisitions by about a centimetre and a few degrees; "
    "on a 35 cm field a 3% shift is 1 cm (0.8 px at 28 px)"
)

CHEST_XRAY = ImageProfile(
    name="chest_xray",
    description="grayscale chest radiographs in [0, 1] (PneumoniaMNIST: 28×28 downsampled from ~1000 px)",
    channels=(1,),
    ranges={
        "brightness": Range(
            -0.05, 0.05,
            "exposure (mAs) and window level differ between machines and post-processing: ±5% of the display range",
        ),
        "contrast": Range(0.9, 1.1, "tube voltage (kVp) and window width change the contrast by about ±10%"),
        "gamma": Range(
            0.85, 1 / 0.85, "detector response and vendor look-up tables differ in their tone curve (γ within ~15%)"
        ),
        "noise": Range(
            0.0, 0.01, "electronic detector noise and 8-bit quantisation (1/255 ≈ 0.004): up to 1% of the range"
        ),
        "poisson": Range(
            0.0, 0.02,
            "quantum mottle: std 0.02·√x is 1.4% at mid-grey, a low-dose upper end (at 28×28 each pixel averages "
            "~10³ detector pixels, so real quantum noise is smaller)",
        ),
        "blur": Range(
            0.0, 0.5, "focal spot, detector PSF and breathing motion blur by well under a pixel at 28×28 (σ ≤ 0.7 px)"
        ),
        "rotation": Range(-5.0, 5.0, _POSITIONING),
        "shift_x": Range(-0.03, 0.03, _POSITIONING),
        "shift_y": Range(-0.03, 0.03, _POSITIONING),
        "bias_x": Range(
            -0.1, 0.1,
            "heel effect: the beam is weaker on the anode side, by of order 10–20% across the field at chest "
            "distances; e^±0.1 is ±10% at the edges (either image axis, by tube orientation)",
        ),
        "bias_y": Range(-0.1, 0.1, "heel effect along the other axis"),
        "bias_xx": Range(
            -0.05, 0.05, "curved falloff towards the field edges (inverse-square law, anti-scatter grid cut-off)"
        ),
        "bias_xy": Range(-0.05, 0.05, "a tilted tube–detector geometry skews the falloff"),
        "bias_yy": Range(-0.05, 0.05, "curved falloff along the other axis"),
    },
)

GENERIC = ImageProfile(
    name="generic",
    description="any image in [0, 1], any number of channels: mild camera-like variation (no dedicated profile)",
    channels=None,
    ranges={
        "brightness": Range(-0.05, 0.05, "exposure / gain: ±5% of the range"),
        "contrast": Range(0.9, 1.1, "contrast ±10%"),
        "gamma": Range(0.9, 1 / 0.9, "tone curve within 10%"),
        "noise": Range(0.0, 0.01, "sensor read noise and 8-bit quantisation: up to 1% of the range"),
        "poisson": Range(0.0, 0.01, "shot noise: std 0.01·√x, 0.7% at mid-grey"),
        "blur": Range(0.0, 0.25, "focus and motion blur well under a pixel (σ ≤ 0.5 px)"),
        "rotation": Range(-3.0, 3.0, "framing differs by a few degrees"),
        "shift_x": Range(-0.02, 0.02, "framing differs by about 2% of the field"),
        "shift_y": Range(-0.02, 0.02, "framing differs by about 2% of the field"),
        "bias_x": Range(-0.05, 0.05, "uneven illumination / vignetting: about 5% across the field"),
        "bias_y": Range(-0.05, 0.05, "uneven illumination along the other axis"),
        "bias_xx": Range(-0.03, 0.03, "vignetting falloff towards the edges"),
        "bias_xy": Range(-0.03, 0.03, "tilted illumination"),
        "bias_yy": Range(-0.03, 0.03, "vignetting falloff along the other axis"),
    },
)

IMAGE_PROFILES: dict[str, ImageProfile] = {p.name: p for p in (CHEST_XRAY, GENERIC)}


def _check_range(name: str, low: object, high: object, where: str) -> tuple[float, float]:
    if name not in NAMES:
        raise ValueError(f"{where}: {_unknown('acquisition parameter', name, NAMES)}")
    parameter = PARAMETERS[NAMES.index(name)]
    for value in (low, high):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{where}: the range of {name!r} must be two finite numbers [low, high], got [{low!r}, {high!r}]")
    if low > high:
        raise ValueError(f"{where}: the range of {name!r} has low > high: [{low}, {high}]")
    if not (parameter.allows(low) and parameter.allows(high)):
        raise ValueError(f"{where}: the range of {name!r} must lie in its domain ({parameter.domain()}), got [{low}, {high}]")
    if not low <= parameter.neutral <= high:
        raise ValueError(
            f"{where}: the range of {name!r} [{low}, {high}] must contain its neutral value {parameter.neutral} "
            "(the unperturbed acquisition must be one of the plausible ones)"
        )
    return float(low), float(high)


def image_ranges(profile: str, overrides: Mapping[str, object] | None = None) -> dict[str, tuple[float, float]]:
    """The checked range (low, high) of every acquisition parameter, in the order of :data:`NAMES`.

    The profile's ranges, replaced by ``overrides`` (parameter name → [low, high]) where
    given; a parameter in neither is fixed at its neutral value (low = high = neutral).
    Raises ValueError for an unknown profile or parameter name, a range that is not two
    finite numbers, low > high, a value outside the parameter's domain (e.g. gamma <= 0) or
    a range that does not contain the neutral value.
    """
    chosen = _profile(IMAGE_PROFILES, profile, "image")
    ranges = {name: (NEUTRAL[name], NEUTRAL[name]) for name in NAMES}
    for name, given in chosen.ranges.items():
        ranges[name] = _check_range(name, given.low, given.high, f"image profile {profile!r}")
    for name, pair in (overrides or {}).items():
        if name not in NAMES:
            raise ValueError(f"ranges: {_unknown('acquisition parameter', name, NAMES)}")
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"ranges[{name!r}] must be a pair [low, high], got {pair!r}")
        ranges[name] = _check_range(name, pair[0], pair[1], "ranges")
    return ranges


def check_channels(profile: str, channels: int) -> None:
    """The image profile applies to images with ``channels`` channels."""
    allowed = _profile(IMAGE_PROFILES, profile, "image").channels
    if allowed is not None and channels not in allowed:
        raise ValueError(
            f"image profile {profile!r} models images with {' or '.join(map(str, allowed))} channel(s), but the "
            f"input has {channels}; use profile 'generic' or a profile for this modality"
        )


# -- tables --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FeatureRule:
    """How far a repeated measurement may move one feature.

    Attributes:
        fraction: the largest move, as a fraction of the feature's training standard
            deviation (>= 0); 0 freezes the feature (immutable: age, sex, a diagnosis code).
        why: the rationale.
        std: the feature's training standard deviation in the units the model sees (> 0);
            1 for standardised data (the default).
        grid: (origin, spacing): the feature's values lie on origin + spacing·ℤ in the
            model's units (an integer-valued raw feature standardised with mean m and std
            s has origin −m/s, spacing 1/s); None for a continuous feature.
    """

    fraction: float
    why: str
    std: float = 1.0
    grid: tuple[float, float] | None = None


@dataclasses.dataclass(frozen=True)
class TableProfile:
    """Per-feature measurement rules for one table, in the table's column order.

    The attack gets only the input tensor, so the rules bind to columns by position;
    ``features`` names each column so that a test can check the order against the data
    set's feature names, and overrides are given by name.
    """

    name: str
    description: str
    features: tuple[tuple[str, FeatureRule], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.features)


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_table_profile(profile: TableProfile) -> None:
    """Names unique and non-empty, fractions finite and >= 0, std > 0, grid spacing > 0."""
    where = f"table profile {profile.name!r}"
    if not profile.features:
        raise ValueError(f"{where} has no features")
    seen: set[str] = set()
    for name, rule in profile.features:
        if not isinstance(name, str) or not name or name in seen:
            raise ValueError(f"{where}: feature names must be unique non-empty strings, got {name!r} twice or empty")
        seen.add(name)
        if not _finite(rule.fraction) or rule.fraction < 0:
            raise ValueError(f"{where}: feature {name!r} has fraction {rule.fraction!r}; it must be a finite number >= 0")
        if not _finite(rule.std) or rule.std <= 0:
            raise ValueError(f"{where}: feature {name!r} has std {rule.std!r}; it must be a finite number > 0")
        if rule.grid is not None:
            ok = isinstance(rule.grid, tuple) and len(rule.grid) == 2 and all(_finite(v) for v in rule.grid)
            if not ok or rule.grid[1] <= 0:
                raise ValueError(
                    f"{where}: feature {name!r} has grid {rule.grid!r}; it must be (origin, spacing) with spacing > 0"
                )


def feature_fractions(
    profile: str | TableProfile, overrides: Mapping[str, object] | None = None
) -> tuple[TableProfile, tuple[float, ...]]:
    """The checked table profile (a name of :data:`TABLE_PROFILES`, or a profile) and each column's fraction,
    with ``overrides`` (name → fraction) applied."""
    chosen = profile if isinstance(profile, TableProfile) else _profile(TABLE_PROFILES, profile, "table")
    profile = chosen.name
    check_table_profile(chosen)
    fractions = {name: rule.fraction for name, rule in chosen.features}
    for name, value in (overrides or {}).items():
        if name not in fractions:
            raise ValueError(f"fractions: {_unknown(f'feature of table profile {profile!r}', name, chosen.names)}")
        if not _finite(value) or value < 0:
            raise ValueError(f"fractions[{name!r}] must be a finite number >= 0 (0 freezes the feature), got {value!r}")
        fractions[name] = float(value)
    return chosen, tuple(fractions[name] for name in chosen.names)


# -- WDBC ------------------------------------------------------------------------------------------
_WDBC_MEASUREMENTS = (
    "radius", "texture", "perimeter", "area", "smoothness",
    "compactness", "concavity", "concave points", "symmetry", "fractal dimension",
)

WDBC_RELATIVE_ERROR: dict[str, float] = {
    "radius": 0.02,
    "perimeter": 0.02,
    "area": 0.04,
    "texture": 0.03,
    "smoothness": 0.05,
    "compactness": 0.05,
    "symmetry": 0.05,
    "fractal dimension": 0.05,
    "concavity": 0.10,
    "concave points": 0.10,
}
"""Relative (per cent of the value) error of each WDBC nucleus measurement on re-imaging and
re-segmentation of the same slide. Size (radius, perimeter) from a traced contour: ~2%; area
∝ radius²: twice that. Texture (grey-level std inside the contour) depends on stain and focus:
~3%. Boundary-shape measures (smoothness, compactness, symmetry, fractal dimension) depend on
the contour's detail: ~5%; concavity and concave points count small indentations that a
snake fit may or may not follow: ~10%. Judgement, not a repeatability study of WDBC."""

WDBC_VARIATION: tuple[float, ...] = (
    0.249, 0.223, 0.264, 0.537, 0.146, 0.506, 0.897, 0.793, 0.151, 0.112,
    0.684, 0.453, 0.705, 1.127, 0.426, 0.702, 0.946, 0.523, 0.402, 0.697,
    0.297, 0.239, 0.313, 0.646, 0.172, 0.618, 0.766, 0.573, 0.213, 0.215,
)
"""Coefficient of variation (std / mean, population std) of each WDBC feature over all 569
tumours, in sklearn's column order (``load_breast_cancer().feature_names``)."""


def _wdbc_features() -> tuple[tuple[str, FeatureRule], ...]:
    names = (
        [f"mean {m}" for m in _WDBC_MEASUREMENTS]
        + [f"{m} error" for m in _WDBC_MEASUREMENTS]
        + [f"worst {m}" for m in _WDBC_MEASUREMENTS]
    )
    features = []
    for name, variation in zip(names, WDBC_VARIATION):
        measurement = name.removeprefix("mean ").removeprefix("worst ").removesuffix(" error")
        error = WDBC_RELATIVE_ERROR[measurement]
        why = (
            f"{measurement}: {error:.0%} relative measurement error / coefficient of variation {variation} "
            f"across tumours = {error / variation:.3f} std"
        )
        features.append((name, FeatureRule(fraction=round(error / variation, 3), why=why)))
    return tuple(features)


WDBC = TableProfile(
    name="wdbc",
    description=(
        "Wisconsin Diagnostic Breast Cancer, standardised with the training split (std 1 per feature). "
        "All 30 features are measured from a digitised image of a fine-needle aspirate: for each of ten "
        "nucleus measurements, the mean over the nuclei outlined, its standard error ('error') and the mean of "
        "the three largest values ('worst'). None is a fixed attribute of the patient, so none is frozen; "
        "a re-imaged or re-segmented slide changes them all. A systematic relative error r of a measurement "
        "in one image (focus, stain, the operator's initial contours) scales its mean, standard error and "
        "worst value alike, so the three share r; in units of the feature's std the move is "
        "r · mean / std = r / CV (CV over the 569 tumours; the training split's std differs from the full "
        "data's by a few per cent). No feature is integer-valued."
    ),
    features=_wdbc_features(),
)

TABLE_PROFILES: dict[str, TableProfile] = {WDBC.name: WDBC}
