"""Suites: a TOML grid of data sets × models × recipes × explainers × attacks × seeds.

``load_suite(name_or_path)`` reads ``benchmarks/suites/<name>.toml`` (or a path), validates
every table against the registries of its kind and expands the grid into :class:`Cell` s. All
checks happen here, before any work: unknown names or keys, parameter types, missing fields,
empty grids, bad TOML, metrics that need an attack in a suite without attacks, ``shared``
values that collide with explicit ones, and exclusions that name unknown keys or match nothing.
Each error names the field and the allowed values. What only the data can tell (a data file
that is missing, ``k`` larger than a data set's feature count, a model whose output is not
(N, C) logits) is checked by :func:`check_data`, which the runner calls before any work.

Grid rules:

* A list value expands into the grid (``n_samples = [16, 32]`` gives two explainers), unless the
  parameter's type is itself a sequence (``hidden: tuple[int, ...]``): then only a list of
  lists expands (``hidden = [[64], [32, 32]]``).
* ``shared`` (per data set) sets a value in every explainer, attack and metric of that data
  set's cells that declares the parameter; every shared key must be declared by one of them,
  and a component that also sets the key explicitly is an error.
* The cell seed sets the model's training seed, the choice of evaluation samples and the
  ``seed`` parameter of every explainer and attack that declares one and does not set it
  explicitly (in its table or through ``shared``). Data set parameters, including a data
  set's own ``seed``, are not touched: every seed sees the same data.
* Metrics with ``needs_attack`` are evaluated in the attacked cells; the others once per
  (data set, model, recipe, seed, explainer) in a cell whose attack is None. A metric that
  declares ``uses_explainer = False`` (e.g. ``selective_pvalue``) is evaluated once per
  (data set, model, recipe, seed), in a cell without explainer or attack.
* Declarations decide what applies (:mod:`salbench.core.applicability`): a cell whose data
  set's modality or model (its declared ``provides``) an explainer or attack does not fit, or
  an attack whose ``requires`` the explainer does not meet, is dropped; so is a metric that
  does not fit the cell (the cell keeps the others, and is dropped without any). Each drop is
  listed with its reason in :attr:`Suite.dropped`. A grid that declarations leave empty is an
  error naming the reasons.
* ``samples`` in a ``[[datasets]]`` table overrides the suite's ``samples`` for that data set's
  cells (e.g. fewer samples where each costs more).
* ``select`` (suite option, "correct" by default) picks the evaluation samples among the
  correctly classified test samples or, with "all", among every test sample.
* ``device`` (suite option, ``"cpu"`` by default; ``--device`` overrides it): where models are
  trained and cells run, ``"cpu"``, ``"cuda"``, ``"cuda:<i>"`` or ``"auto"`` (a GPU where torch
  sees one), resolved at load (:mod:`salbench.core.device`) and part of every cell id.
* ``[[exclude]]`` drops the cells that match all of its keys (dataset, model, recipe,
  explainer, attack; attack ``"none"`` names the attack-free cells, explainer ``"none"`` the
  cells without an explainer). Its names are checked against the whole grid, before the
  declarations drop anything.
* ``[[views]]`` declare leaderboard layouts besides the default one (rows, columns, tables and
  what is compared, e.g. defences side by side: :mod:`salbench.views`); their ``metrics`` must
  be metrics of the suite.
* ``plugins = ["my_explainer.py", "my_package.metrics"]`` (top level) names files (relative to
  the suite file) or modules that register components; they are imported before the rest of
  the suite is validated, and by the runner in every worker (:mod:`salbench.plugins`). A
  suite's plugins are code: ``allow_plugins=False`` refuses a suite that names any.

The cell id (:attr:`Cell.id`) is the SHA-256 of the canonical JSON of everything that
determines the cell's records: the full validated parameters (defaults included) of its data
set, model, recipe, explainer, attack and metrics, its seed, the number of samples, ``select``,
the device and dtype, the trained model's key (:func:`salbench.model_cache.model_key`, which
carries the code of the data set, architecture and recipe) and a code fingerprint of the
explainer, attack and metrics (:func:`salbench.core.fingerprint.code_fingerprint`): after an
edit of any of that code, built-in or plug-in, the cell has a new id and is computed again.
``batch_size`` and ``threads`` are execution settings and are not part of it (a value does
not depend on its batch: see :attr:`Cell.id`). The suite's ``config_hash``
covers the suite options and the set of cell ids.

Example:
    >>> suite = load_suite("quickstart")
    >>> suite.cells[0].dataset.name, len(suite.cells) > 1
    ('wdbc', True)
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import sys
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from salbench import attacks, datasets, explainers, metrics, modalities, models, recipes
from salbench.core.applicability import Offer
from salbench.core.device import resolve_device
from salbench.core.fingerprint import code_fingerprint
from salbench.core.hashing import canonical_json, digest
from salbench.core.registry import Registry, RegistryError
from salbench.model_cache import dtype_name, model_key
from salbench.plugins import Plugin, PluginError, import_plugins, resolve_plugins
from salbench.views import View, parse_views

__all__ = [
    "Component",
    "Cell",
    "Suite",
    "SuiteError",
    "load_suite",
    "parse_suite",
    "check_data",
    "suite_names",
    "digest",
    "SUITES_DIR",
]

SUITES_DIR = Path(__file__).parent / "suites"

_TOP_LEVEL = ("suite", "plugins", "datasets", "recipes", "explainers", "attacks", "metrics", "exclude", "views")
_SUITE_OPTIONS = ("name", "description", "samples", "seeds", "batch_size", "threads", "select", "device")
_DATASET_KEYS = ("models", "recipes", "shared", "samples")  # a data set table's keys that are not its parameters
SELECTS = ("correct", "all")
SELECT_DEFAULT = "correct"
DEVICE_DEFAULT = "cpu"  # bitwise reproducible; "auto" takes a GPU where there is one
_EXCLUDE_KEYS = ("dataset", "model", "recipe", "explainer", "attack")
_NO_ATTACK = "none"
_NO_EXPLAINER = "none"


class SuiteError(ValueError):
    """A malformed suite file; the message names the field and what is allowed."""


@dataclasses.dataclass(frozen=True)
class Component:
    """A registered component: its name and its full validated parameters (defaults included)."""

    name: str
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.params}

    @property
    def params_json(self) -> str:
        return canonical_json(self.params)


@dataclasses.dataclass(frozen=True)
class Cell:
    """One grid cell: the unit of work, caching and resumption.

    ``model.params`` leave out ``input_shape`` and ``num_classes``, which the harness takes
    from the data set. ``attack`` is None in the cell that evaluates the attack-free metrics;
    ``explainer`` is None in the cell of the metrics that do not use one.
    ``select`` says which test samples are drawn (see :func:`salbench.runner.select_samples`).
    ``device`` is where the cell runs (a name resolved by :func:`salbench.core.device.resolve_device`:
    ``"cpu"``, ``"cuda"``, ``"cuda:<i>"``) and ``dtype`` torch's default dtype (e.g.
    ``"float32"``); both change numbers, so both are part of :attr:`id`.
    """

    dataset: Component
    model: Component
    recipe: Component
    explainer: Component | None
    attack: Component | None
    metrics: tuple[Component, ...]
    seed: int
    samples: int
    select: str = SELECT_DEFAULT
    device: str = "cpu"
    dtype: str = dataclasses.field(default_factory=dtype_name)

    def to_dict(self) -> dict[str, Any]:
        """The cell as plain data (every field)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key in ("dataset", "model", "recipe", "explainer", "attack"):
            out[key] = out[key].to_dict() if out[key] is not None else None
        out["metrics"] = [m.to_dict() for m in self.metrics]
        return out

    @functools.cached_property
    def model_key(self) -> str:
        """The trained model's cache key (:func:`salbench.model_cache.model_key`: its inputs, device,
        dtype and the code of its data set, architecture and recipe)."""
        return model_key(*self.model_inputs, device=self.device)

    @functools.cached_property
    def code(self) -> str:
        """Code fingerprint of the cell's explainer, attack and metrics and of how an explainer is
        applied to the data set's modality (:func:`salbench.core.fingerprint.code_fingerprint`)."""
        factories = [modalities.modality]
        if self.explainer is not None:
            factories.append(explainers.registry.entry(self.explainer.name).factory)
        if self.attack is not None:
            factories.append(attacks.registry.entry(self.attack.name).factory)
        factories.extend(metrics.registry.entry(m.name).factory for m in self.metrics)
        return code_fingerprint(*factories)

    @functools.cached_property
    def id(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`to_dict` (every component's validated
        parameters, seed, samples, select, device, dtype), :attr:`model_key` (which carries the
        model's code) and :attr:`code`. The suite's ``batch_size`` is not part of it: a value
        does not depend on the batch it is computed in (every component is batch invariant and
        draws its randomness per sample, :mod:`salbench.core.seeding`; the runner's tests check
        that batch sizes 2 and 16 store identical records). ``threads`` is not part of it either."""
        return digest({**self.to_dict(), "model_key": self.model_key, "code": self.code})

    @property
    def attack_name(self) -> str:
        return self.attack.name if self.attack is not None else _NO_ATTACK

    @property
    def explainer_name(self) -> str:
        return self.explainer.name if self.explainer is not None else _NO_EXPLAINER

    @property
    def model_inputs(self) -> tuple[str, dict, str, dict, str, dict, int]:
        """The arguments of :func:`salbench.model_cache.trained_model` (without cache_dir)."""
        return (
            self.dataset.name, self.dataset.params, self.model.name, self.model.params,
            self.recipe.name, self.recipe.params, self.seed,
        )

    def names(self) -> dict[str, str]:
        """The component names that ``[[exclude]]`` matches on."""
        return {
            "dataset": self.dataset.name, "model": self.model.name, "recipe": self.recipe.name,
            "explainer": self.explainer_name, "attack": self.attack_name,
        }

    def describe(self) -> str:
        """A one-line label, e.g. ``wdbc/mlp/standard seed 0: gradient × topk``."""
        return (
            f"{self.dataset.name}/{self.model.name}/{self.recipe.name} seed {self.seed}: "
            f"{self.explainer_name} × {self.attack_name}"
        )


@dataclasses.dataclass(frozen=True)
class Suite:
    """A validated suite: its options, its expanded grid of cells, what the declarations dropped,
    and the plugins it imports (which every worker imports again before it runs a cell).

    ``dropped`` lists (cell description, reason) for every cell, or metric of a cell, that the
    components' declarations rule out (see the module docstring); ``[[exclude]]`` drops are not
    listed (the suite asks for them). ``views`` are the leaderboard views the suite declares
    (``[[views]]``, :mod:`salbench.views`), rendered besides the default one.
    """

    name: str
    description: str
    samples: int
    seeds: tuple[int, ...]
    batch_size: int
    threads: int
    cells: tuple[Cell, ...]
    config_hash: str
    source: str
    select: str = SELECT_DEFAULT
    device: str = DEVICE_DEFAULT
    dropped: tuple[tuple[str, str], ...] = ()
    plugins: tuple[Plugin, ...] = ()
    views: tuple[View, ...] = ()


# -- entry points ------------------------------------------------------------------------------
def suite_names() -> list[str]:
    """Names of the suites shipped in ``benchmarks/suites``."""
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def load_suite(name_or_path: str | Path, *, allow_plugins: bool = True, device: str | None = None) -> Suite:
    """Load, validate and expand a suite: a file path, or the name of a shipped suite.

    Its ``plugins`` are read relative to the suite file; ``allow_plugins=False`` refuses a
    suite that names any (see :func:`parse_suite`); ``device`` overrides the suite's
    ``device`` (see :func:`parse_suite`).
    """
    path = Path(name_or_path)
    if path.suffix != ".toml" and not path.is_file():
        path = SUITES_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise SuiteError(
                f"no suite named {str(name_or_path)!r}: give a path to a .toml file or one of "
                f"{', '.join(suite_names()) or '(none)'}"
            )
    if not path.is_file():
        raise SuiteError(f"suite file {str(path)!r} does not exist")
    return parse_suite(
        path.read_text(encoding="utf-8"), source=str(path), base_dir=path.parent, allow_plugins=allow_plugins, device=device
    )


def parse_suite(
    text: str, source: str = "<string>", *, base_dir: str | Path = ".", allow_plugins: bool = True,
    device: str | None = None,
) -> Suite:
    """Validate and expand the TOML text of a suite; ``source`` names it in errors.

    Plugin files are found relative to ``base_dir`` and imported (in this process) before the
    rest is validated; with ``allow_plugins=False`` a suite that names plugins is an error
    that lists them, raised before anything is imported. ``device`` (e.g. from ``--device``)
    overrides the suite's ``[suite] device`` (default ``"cpu"``); ``"auto"`` is resolved here,
    against this machine.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SuiteError(f"{source}: not valid TOML: {err}") from err
    try:
        plugins = _plugin_entries(data, Path(base_dir), allow_plugins)
        return _build(data, source, plugins, Path(base_dir), device)
    except SuiteError as err:
        raise SuiteError(f"{source}: {err}") from err


def _plugin_entries(data: Mapping[str, Any], base_dir: Path, allow: bool) -> tuple[Plugin, ...]:
    """The suite's ``plugins``, resolved and imported (refused when not ``allow``)."""
    entries = data.get("plugins", [])
    if not isinstance(entries, list):
        _fail("plugins", f"must be a list of .py paths or module names, got {entries!r}")
    if entries and not allow:
        _fail(
            "plugins",
            f"the suite imports code ({', '.join(map(repr, entries))}) and plugins are disabled "
            "(--no-plugins); read those files, then run without --no-plugins",
        )
    try:
        plugins = resolve_plugins(entries, base_dir)
        import_plugins(plugins)
    except PluginError as err:
        raise SuiteError(str(err)) from err
    return plugins


# -- validation helpers ------------------------------------------------------------------------
def _fail(where: str, message: str) -> typing.NoReturn:
    raise SuiteError(f"{where}: {message}")


def _check_keys(table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = [k for k in table if k not in allowed]
    if unknown:
        _fail(where, f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(table: Mapping[str, Any], key: str, default: int | None) -> int:
    value = table.get(key, default)
    if value is None:
        _fail(f"[suite] {key}", "missing; give a positive integer")
    if not _is_int(value) or value < 1:
        _fail(f"[suite] {key}", f"must be a positive integer, got {value!r}")
    return value


def _suite_options(data: Mapping[str, Any], device: str | None) -> dict[str, Any]:
    table = data.get("suite")
    if not isinstance(table, dict):
        _fail("[suite]", "missing table; it needs at least name, samples and seeds")
    _check_keys(table, _SUITE_OPTIONS, "[suite]")
    name = table.get("name")
    if not isinstance(name, str) or not name.strip():
        _fail("[suite] name", f"missing or empty; give a non-empty string, got {name!r}")
    description = table.get("description", "")
    if not isinstance(description, str):
        _fail("[suite] description", f"must be a string, got {description!r}")
    seeds = table.get("seeds")
    if not isinstance(seeds, list) or not seeds or not all(_is_int(s) and s >= 0 for s in seeds):
        _fail("[suite] seeds", f"must be a non-empty list of non-negative integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        _fail("[suite] seeds", f"lists a seed twice: {seeds!r}")
    select = table.get("select", SELECT_DEFAULT)
    if select not in SELECTS:
        _fail("[suite] select", f"must be one of {', '.join(map(repr, SELECTS))}, got {select!r}")
    device = device if device is not None else table.get("device", DEVICE_DEFAULT)
    try:
        device = resolve_device(device, "device (--device or [suite] device)")
    except ValueError as err:
        _fail("[suite] device", str(err))
    return {
        "name": name,
        "description": description,
        "samples": _positive_int(table, "samples", None),
        "seeds": tuple(seeds),
        "batch_size": _positive_int(table, "batch_size", 64),
        "threads": _positive_int(table, "threads", 1),
        "select": select,
        "device": device,
    }


def _tables(data: Mapping[str, Any], key: str, required: bool) -> list[dict[str, Any]]:
    """An array of tables (``[[key]]``), checked to be one."""
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        _fail(key, f"must be an array of tables, written [[{key}]]")
    if required and not value:
        _fail(key, f"missing; the suite needs at least one [[{key}]] table")
    return value


def _entry(registry: Registry, table: Mapping[str, Any], where: str):
    name = table.get("name")
    if not isinstance(name, str):
        _fail(where, f"missing 'name' (a string); available {registry.kind}s: {', '.join(registry.names())}")
    try:
        return registry.entry(name)
    except RegistryError as err:
        _fail(where, str(err))


def _validate(registry: Registry, name: str, params: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Validated parameters (a model's without the input shape and class count, which the data set gives).

    Every component but a model (whose shape comes from the data) is also built once here, so
    that a bad value (a negative ε, an inverted range) fails before any work, not in its cell.
    """
    try:
        if registry is models.registry:
            return models.validate_params(name, params)
        validated = registry.validate(name, params)
    except RegistryError as err:
        _fail(where, str(err))
    try:
        registry.entry(name).factory(**validated)
    except (ValueError, TypeError) as err:
        _fail(where, f"invalid {registry.kind} {name!r}: {err}")
    return validated


def _is_sequence_type(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_sequence_type(a) for a in typing.get_args(annotation))
    return annotation in (tuple, list) or origin in (tuple, list)


def _expand(entry, table: Mapping[str, Any], where: str, skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The explicit parameter sets a component table expands into (not yet validated)."""
    declared = {p.name: p.annotation for p in entry.params}
    axes: dict[str, list[Any]] = {}
    for key, value in table.items():
        if key == "name" or key in skip:
            continue
        as_one = not isinstance(value, list) or (
            _is_sequence_type(declared.get(key)) and not (value and all(isinstance(v, list) for v in value))
        )
        if not as_one and not value:
            _fail(f"{where}.{key}", "an empty list expands into no values; give at least one")
        axes[key] = [value] if as_one else value
    return [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]


def _where(kind: str, index: int, table: Mapping[str, Any]) -> str:
    return f"{kind}[{index}] ({table.get('name')})"


# -- the parts of a grid ----------------------------------------------------------------------
@dataclasses.dataclass
class _Plugin:
    """An explainer, attack or metric table: its registry entry and expanded explicit parameters."""

    registry: Registry
    name: str  # as written: a ``family:member`` name fills the family's first parameter
    entry: Any
    variants: list[dict[str, Any]]
    where: str
    seeded: bool  # takes the cell seed if it declares `seed` (explainers and attacks)

    @property
    def declared(self) -> set[str]:
        return {p.name for p in self.entry.params}

    def components(self, shared: Mapping[str, Any], seed: int, shared_where: str) -> list[Component]:
        """Each variant with the data set's shared values and the cell seed applied, validated."""
        out = []
        for explicit in self.variants:
            clash = sorted(set(explicit) & set(shared))
            if clash:
                _fail(
                    self.where,
                    f"sets {', '.join(clash)} explicitly, but {shared_where} sets it for every component; "
                    "set it in one place",
                )
            params = {k: v for k, v in shared.items() if k in self.declared} | explicit
            if self.seeded and "seed" in self.declared and "seed" not in params:
                params["seed"] = seed
            where = f"{self.where} with {shared_where}" if shared else self.where
            out.append(Component(self.entry.name, _validate(self.registry, self.name, params, where)))
        return out


def _plugins(data: Mapping[str, Any], key: str, registry: Registry, required: bool, seeded: bool) -> list[_Plugin]:
    out = []
    for i, table in enumerate(_tables(data, key, required)):
        where = _where(key, i, table)
        entry = _entry(registry, table, where)
        out.append(_Plugin(registry, table["name"], entry, _expand(entry, table, where), where, seeded))
    return out


def _fixed_components(registry: Registry, table: Mapping[str, Any], where: str, skip=()) -> list[Component]:
    """A data set, model or recipe table expanded and validated (no shared values, no seed)."""
    entry = _entry(registry, table, where)
    return [Component(entry.name, _validate(registry, table["name"], p, where)) for p in _expand(entry, table, where, skip)]


def _component_list(registry: Registry, value: Any, where: str) -> list[Component]:
    if not isinstance(value, list) or not value or not all(isinstance(t, dict) for t in value):
        _fail(where, f"must be a non-empty list of tables such as [{{ name = \"...\" }}]; got {value!r}")
    return [c for i, t in enumerate(value) for c in _fixed_components(registry, t, f"{where}[{i}] ({t.get('name')})")]


def _shared(table: Mapping[str, Any], where: str, plugins: list[_Plugin]) -> dict[str, Any]:
    shared = table.get("shared", {})
    if not isinstance(shared, dict):
        _fail(f"{where}.shared", f"must be a table such as {{ k = 8 }}, got {shared!r}")
    declared = set().union(*(p.declared for p in plugins))
    unused = sorted(set(shared) - declared)
    if unused:
        _fail(
            f"{where}.shared",
            f"{', '.join(unused)} is not a parameter of any explainer, attack or metric of this suite; "
            f"their parameters: {', '.join(sorted(declared))}",
        )
    return shared


def _metric_split(
    metric_plugins: list[_Plugin], attack_plugins: list[_Plugin]
) -> tuple[list[_Plugin], list[_Plugin], list[_Plugin]]:
    """(attack-free metrics, metrics that need an attack, metrics without explainer), checked against
    the attacks listed."""
    independent = [m for m in metric_plugins if not m.entry.attrs["uses_explainer"]]
    both = [m.where for m in independent if m.entry.attrs["needs_attack"]]
    if both:
        _fail(
            "metrics",
            f"{', '.join(both)} declare(s) needs_attack but not uses_explainer; an attack works on an explainer, "
            "so such a metric has no cell",
        )
    needing = [m for m in metric_plugins if m.entry.attrs["needs_attack"]]
    free = [m for m in metric_plugins if m not in needing and m not in independent]
    if needing and not attack_plugins:
        _fail(
            "metrics",
            f"{', '.join(m.where for m in needing)} compare(s) an attacked explanation, but the suite has no "
            f"[[attacks]]; add one (available: {', '.join(attacks.registry.names())}) or remove the metric",
        )
    if attack_plugins and not needing:
        robust = [n for n in metrics.registry.names() if metrics.registry.entry(n).attrs["needs_attack"]]
        _fail(
            "attacks",
            f"no metric of the suite uses an attack; add one that does (one of: {', '.join(robust)}) "
            "or remove the [[attacks]]",
        )
    return free, needing, independent


def _excludes(data: Mapping[str, Any]) -> list[dict[str, str]]:
    out = []
    for i, table in enumerate(_tables(data, "exclude", required=False)):
        where = f"exclude[{i}]"
        _check_keys(table, _EXCLUDE_KEYS, where)
        if not table:
            _fail(where, f"is empty; give one or more of {', '.join(_EXCLUDE_KEYS)}")
        for key, value in table.items():
            if not isinstance(value, str):
                _fail(f"{where}.{key}", f"must be a component name (a string), got {value!r}")
        out.append(dict(table))
    return out


def _check_exclude_names(excludes: list[dict[str, str]], cells: list[Cell]) -> None:
    present: dict[str, set[str]] = {k: set() for k in _EXCLUDE_KEYS}
    for cell in cells:
        for key, name in cell.names().items():
            present[key].add(name)
    for i, rule in enumerate(excludes):
        for key, name in rule.items():
            if name not in present[key]:
                _fail(f"exclude[{i}].{key}", f"{name!r} is not in the suite; its {key}s: {', '.join(sorted(present[key]))}")
        if not any(_matches(rule, cell) for cell in cells):
            _fail(f"exclude[{i}]", f"{rule} matches no cell of the grid; remove it or fix the names")


def _matches(rule: Mapping[str, str], cell: Cell) -> bool:
    names = cell.names()
    return all(names[k] == v for k, v in rule.items())


# -- the grid -----------------------------------------------------------------------------------
@dataclasses.dataclass
class _Plugins:
    """The suite-wide explainer, attack and metric tables."""

    explainers: list[_Plugin]
    attacks: list[_Plugin]
    free_metrics: list[_Plugin]
    attack_metrics: list[_Plugin]
    independent_metrics: list[_Plugin]

    def all(self) -> list[_Plugin]:
        return self.explainers + self.attacks + self.free_metrics + self.attack_metrics + self.independent_metrics


def _build(
    data: Mapping[str, Any], source: str, plugin_modules: tuple[Plugin, ...], base_dir: Path, device: str | None
) -> Suite:
    _check_keys(data, _TOP_LEVEL, "top level")
    options = _suite_options(data, device)
    views = _views(data)
    dataset_tables = _tables(data, "datasets", required=True)
    suite_recipes = _tables(data, "recipes", required=False)
    attack_plugins = _plugins(data, "attacks", attacks.registry, required=False, seeded=True)
    free, attacked, independent = _metric_split(
        _plugins(data, "metrics", metrics.registry, required=True, seeded=False), attack_plugins
    )
    explainer_plugins = _plugins(data, "explainers", explainers.registry, required=bool(free or attacked), seeded=True)
    if explainer_plugins and not (free or attacked):
        _fail(
            "explainers",
            f"no metric of the suite uses an explainer ({', '.join(m.where for m in independent)} do(es) not); "
            "remove the [[explainers]] or add a metric that uses one",
        )
    plugins = _Plugins(explainer_plugins, attack_plugins, free, attacked, independent)
    excludes = _excludes(data)
    cells: list[Cell] = []
    dropped: list[tuple[Cell, str]] = []
    for i, table in enumerate(dataset_tables):
        kept, ruled_out = _dataset_cells(table, _where("datasets", i, table), suite_recipes, plugins, options, base_dir)
        cells += kept
        dropped += ruled_out
    _check_exclude_names(excludes, cells + [cell for cell, _ in dropped])
    if not cells:
        reasons = sorted({reason for _, reason in dropped})
        _fail("grid", "no cell applies: the components' declarations drop every one; " + "; ".join(reasons))
    cells = [c for c in cells if not any(_matches(rule, c) for rule in excludes)]
    if not cells:
        _fail("exclude", "every cell of the grid is excluded; nothing would run")
    _check_unique(cells)
    summary = {k: options[k] for k in ("name", "samples", "seeds", "batch_size", "threads")}
    if options["select"] != SELECT_DEFAULT:  # keeps the hashes of suites without the option
        summary["select"] = options["select"]
    config_hash = digest({"suite": summary, "cells": sorted(c.id for c in cells)})
    described = tuple((cell.describe(), reason) for cell, reason in dropped)
    return Suite(
        cells=tuple(cells), config_hash=config_hash, source=source, dropped=described, plugins=plugin_modules,
        views=views, **options,
    )


def _views(data: Mapping[str, Any]) -> tuple[View, ...]:
    """The suite's ``[[views]]`` (leaderboard layouts), whose ``metrics`` must be metrics of the suite."""
    try:
        views = parse_views(data.get("views", []))
    except ValueError as err:
        raise SuiteError(str(err)) from err
    named = {t["name"] for t in data.get("metrics", []) if isinstance(t, dict) and isinstance(t.get("name"), str)}
    for i, view in enumerate(views):
        unknown = [m for m in view.metrics if m not in named]
        if unknown:
            _fail(f"views[{i}] metrics", f"{unknown} are not metrics of the suite; its metrics: {sorted(map(str, named))}")
    return views


def _dataset_cells(
    table: Mapping[str, Any], where: str, suite_recipes: list, plugins: _Plugins, options: Mapping[str, Any],
    base_dir: Path,
) -> tuple[list[Cell], list[tuple[Cell, str]]]:
    """The cells of one ``[[datasets]]`` table (before exclusions), and those its declarations drop, with why.

    A model's file paths (a checkpoint, a factory file, an archive) are relative to ``base_dir``,
    the suite's folder."""
    dataset_variants = _fixed_components(datasets.registry, table, where, skip=_DATASET_KEYS)
    if "models" not in table:
        _fail(where, "missing 'models': the architectures to train on this data set, e.g. models = [{ name = \"mlp\" }]")
    model_variants = [
        Component(m.name, models.resolve_paths(m.name, m.params, base_dir))
        for m in _component_list(models.registry, table["models"], f"{where}.models")
    ]
    recipe_tables = table.get("recipes", suite_recipes)
    if not recipe_tables:
        _fail(where, "no recipes: give [[recipes]] for the suite or recipes = [{ name = \"standard\" }] here")
    recipe_variants = _component_list(recipes.registry, recipe_tables, f"{where}.recipes")
    shared = _shared(table, where, plugins.all())
    samples = table.get("samples", options["samples"])
    if not _is_int(samples) or samples < 1:
        _fail(f"{where}.samples", f"must be a positive integer (this data set's samples per cell), got {samples!r}")

    def build(group: list[_Plugin], seed: int) -> list[Component]:
        return [c for p in group for c in p.components(shared, seed, f"{where}.shared")]

    grid = _Grid()
    for dataset, model, recipe, seed in itertools.product(dataset_variants, model_variants, recipe_variants, options["seeds"]):
        declared = datasets.registry.entry(dataset.name).attrs
        modality = declared["modality"]
        try:
            provides = models.provides(model.name, model.params)
        except RegistryError as err:
            _fail(f"{where}.models ({model.name})", str(err))
        offer = Offer(modality, model.name, provides, None, declared["masks"])

        def cell(explainer: Component | None, attack: Component | None, group: tuple[Component, ...]) -> Cell:
            return Cell(dataset, model, recipe, explainer, attack, group, seed, samples, options["select"], options["device"])

        free, attacked = tuple(build(plugins.free_metrics, seed)), tuple(build(plugins.attack_metrics, seed))
        independent = tuple(build(plugins.independent_metrics, seed))
        attack_components = build(plugins.attacks, seed)
        if independent:
            grid.add(cell(None, None, independent), offer, None)
        for explainer in build(plugins.explainers, seed):
            with_explainer = dataclasses.replace(offer, explainer=(explainer.name, _differentiable(explainer)))
            unfit = offer.unmet(
                "explainer", explainer.name, explainers.registry.entry(explainer.name).attrs, explainer.params
            )
            if free:
                grid.add(cell(explainer, None, free), with_explainer, unfit)
            for attack in attack_components:
                why = unfit or with_explainer.unmet(
                    "attack", attack.name, attacks.registry.entry(attack.name).attrs, attack.params
                )
                grid.add(cell(explainer, attack, attacked), with_explainer, why)
    return grid.cells, grid.dropped


@dataclasses.dataclass
class _Grid:
    """Cells being expanded: those that apply, and those dropped with the reason."""

    cells: list[Cell] = dataclasses.field(default_factory=list)
    dropped: list[tuple[Cell, str]] = dataclasses.field(default_factory=list)

    def add(self, cell: Cell, offer: Offer, unfit: str | None) -> None:
        """Add ``cell`` unless ``unfit`` (the reason its explainer or attack does not apply); its metrics
        that do not apply are dropped from it, and the cell too if none is left."""
        if unfit is not None:
            self.dropped.append((cell, unfit))
            return
        kept = []
        for metric in cell.metrics:
            why = offer.unmet("metric", metric.name, metrics.registry.entry(metric.name).attrs, metric.params)
            if why is None:
                kept.append(metric)
            else:
                self.dropped.append((cell, why))
        if kept:
            self.cells.append(dataclasses.replace(cell, metrics=tuple(kept)))


@functools.cache
def _proxy_differentiable(name: str, params_json: str) -> bool:
    return bool(explainers.get(name, **json.loads(params_json)).attack_proxy.differentiable)


def _differentiable(explainer: Component) -> bool:
    """Whether the explainer's attack proxy is differentiable (built once per name and parameters)."""
    return _proxy_differentiable(explainer.name, explainer.params_json)


def _check_unique(cells: list[Cell]) -> None:
    seen: set[str] = set()
    for cell in cells:
        metric_keys = [canonical_json(m.to_dict()) for m in cell.metrics]
        if len(set(metric_keys)) != len(metric_keys):
            _fail("metrics", f"the same metric with the same parameters is listed twice (cell {cell.describe()})")
        if cell.id in seen:
            _fail("grid", f"two entries give the same cell ({cell.describe()}, same parameters); remove the repeat")
        seen.add(cell.id)


# -- checks that need the data (run before any work) ------------------------------------------------
def check_data(suite: Suite, cells: Iterable[Cell] | None = None) -> None:
    """Check ``cells`` of ``suite`` (default: all of them) against their data, before any work
    (:func:`salbench.runner.run_suite` calls it with the cells it is about to run, before it
    trains a model): every data set loads (its files exist and parse); every
    model built for it returns float logits (N, C), C = the data set's classes, on a batch of
    two of its test inputs; every attack and metric fits the data set's number of features per
    sample (``check_features``: e.g. ``k`` at most the features). Text data sets, whose feature
    count is each text's length, are not checked for features (a metric gives a NaN and a note
    for a text too short).

    Raises:
        SuiteError: listing every problem found, each naming the data set, the component and
            the field, after the suite's source.
    """
    by_dataset: dict[str, tuple[Component, list[Cell]]] = {}
    for cell in suite.cells if cells is None else cells:
        by_dataset.setdefault(canonical_json(cell.dataset.to_dict()), (cell.dataset, []))[1].append(cell)
    problems = [problem for dataset, group in by_dataset.values() for problem in _data_problems(dataset, group)]
    if problems:
        raise SuiteError(f"{suite.source}: the data rule out part of the grid, before any work:\n  " + "\n  ".join(problems))


def _data_problems(dataset: Component, cells: list[Cell]) -> list[str]:
    """What is wrong with ``cells`` on ``dataset``'s data (see :func:`check_data`); one string each."""
    where = f"data set {dataset.name!r} {dataset.params_json}"
    try:
        data = datasets.load_dataset(dataset.name, dataset.params)
    except Exception as err:  # any failure to load is reported, with its type
        return [f"{where} does not load: {type(err).__name__}: {err}"]
    problems = []
    for model in {canonical_json(c.model.to_dict()): c.model for c in cells}.values():
        problems += _model_problems(model, data, where)
    n_features = None if data.modality == "text" else math.prod(data.input_shape)
    if n_features is not None:
        components = {
            canonical_json([kind, c.to_dict()]): (kind, registry, c)
            for cell in cells
            for kind, registry, group in (("attack", attacks.registry, (cell.attack,)), ("metric", metrics.registry, cell.metrics))
            for c in group
            if c is not None
        }
        for kind, registry, component in components.values():
            try:
                registry.get(component.name, **component.params).check_features(n_features)
            except ValueError as err:
                problems.append(
                    f"{where} has {n_features} features per sample (input shape {tuple(data.input_shape)}): "
                    f"{kind} {component.name!r} does not fit: {err}"
                )
    return problems


def _model_problems(model: Component, data: datasets.DataBundle, where: str) -> list[str]:
    """Model ``model`` built (untrained) for ``data`` must return float logits (N, C) on two test inputs."""
    x = data.test.x[:2]
    shape = (len(x), data.num_classes)
    vocab_size = len(data.vocabulary) if data.vocabulary is not None else None
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            net = models.build(model.name, model.params, data.input_shape, data.num_classes, vocab_size, data.vocabulary)
            out = net.eval()(x)
    except Exception as err:  # a model that cannot be built or run on the data
        return [f"model {model.name!r} {model.params_json} cannot run on {where}: {type(err).__name__}: {err}"]
    if not isinstance(out, torch.Tensor) or not out.is_floating_point() or tuple(out.shape) != shape:
        got = f"shape {tuple(out.shape)}, dtype {out.dtype}" if isinstance(out, torch.Tensor) else type(out).__name__
        return [
            f"model {model.name!r} {model.params_json} returned {got} on a batch of {len(x)} test inputs of {where}; "
            f"a classifier must return float logits (N, C) = {shape}, C = the data set's {data.num_classes} classes"
        ]
    return []
