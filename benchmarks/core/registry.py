"""One registry class behind every kind of salbench component.

Explainers, attacks, metrics, data sets, model architectures and training recipes are all
kept in a :class:`Registry`. A component registers where it is defined::

    @explainers.register("smoothgrad")
    class SmoothGrad(Explainer):
        '''SmoothGrad: average gradient over noisy copies of the input (Smilkov et al. 2017).'''
        def __init__(self, n_samples: int = 50, noise: float = 0.15, seed: int = 0): ...

The first docstring line is the component's description; the typed keyword parameters of
``__init__`` (with their defaults) are its parameters. The registry lists them, validates a
config against them (unknown names, wrong types) and builds the component::

    explainers.get("smoothgrad", n_samples=16)

Parameters are declared once, along the class hierarchy. A ``**kwargs`` parameter stands for
the parameters of the ``__init__`` that ``super().__init__`` calls (the next class in the MRO
that defines one), read the same way, recursively; annotated ``ParamsOf[target]`` it stands for
the parameters of ``target`` instead (a wrapper that builds ``target(**kwargs)``). A parameter
the class declares itself overrides the inherited one of that name (its type and default).
The component's parameters are its own, in signature order, then the inherited ones it does
not redeclare, in their own order::

    class Loop:
        def __init__(self, steps: int = 50, seed: int = 0): ...

    @attacks.register("topk")
    class TopK(Loop):
        def __init__(self, k: int = 8, steps: int = 20, **loop):   # k, steps = 20, seed = 0
            super().__init__(steps=steps, **loop)

A name ``family:member`` is shorthand for the component ``family`` with ``member`` as its
first parameter (``captum:DeepLift`` is ``captum`` with ``method="DeepLift"``).

Third-party packages add components through entry points in the group given to the registry
(``salbench.explainers``, ``salbench.attacks``, ...). An entry point names either a component
class (registered under the entry point's name) or a module that registers on import. Entry
points are listed without importing them and loaded on first use.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata
from typing import Any

__all__ = ["Param", "Entry", "ParamsOf", "Registry", "RegistryError", "UnknownNameError", "ParameterError"]

_REQUIRED = inspect.Parameter.empty


class RegistryError(ValueError):
    """Base class of registry errors (a ValueError, so callers may catch either)."""


class UnknownNameError(RegistryError):
    """A component name that is not registered."""


class ParameterError(RegistryError):
    """An unknown, missing or ill-typed component parameter."""


@dataclasses.dataclass(frozen=True)
class Param:
    """One declared parameter of a component."""

    name: str
    annotation: Any
    default: Any = _REQUIRED

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def describe(self) -> str:
        text = f"{self.name}: {_type_name(self.annotation)}"
        return text if self.required else f"{text} = {self.default!r}"


class ParamsOf:
    """Annotation of a ``**kwargs`` parameter that forwards to ``target``: ``**generator: ParamsOf[DecoyGenerator]``.

    The registry reads ``target``'s declared parameters in place of the ``**kwargs`` (for a
    component that builds ``target(**kwargs)`` rather than inheriting from it). For type
    checkers the annotation is ``Any``.

    Example:
        >>> class Inner:
        ...     def __init__(self, size: int = 3): ...
        >>> reg = Registry("widget", group="salbench.test_widgets")
        >>> @reg.register("outer")
        ... class Outer:
        ...     '''Wraps an Inner.'''
        ...     def __init__(self, name: str = "a", **inner: ParamsOf[Inner]):
        ...         self.inner = Inner(**inner)
        >>> [p.describe() for p in reg.entry("outer").params]
        ["name: str = 'a'", 'size: int = 3']
    """

    def __init__(self, target: Callable[..., Any]):
        self.target = target

    def __class_getitem__(cls, target: Callable[..., Any]) -> Any:
        return typing.Annotated[Any, cls(target)]


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered component: its factory, description, parameters and declared attributes."""

    name: str
    factory: Callable[..., Any]
    description: str
    params: tuple[Param, ...]
    attrs: Mapping[str, Any]

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)


class Registry:
    """A named collection of components of one kind.

    Args:
        kind: what the components are, used in messages ("explainer", "metric", ...).
        group: the entry-point group that third-party packages use to add components.
        attributes: class attributes every component must declare (e.g. a metric's
            ``category`` and ``higher_is_better``); they are listed with the component.
        defaults: class attributes a component may declare, with the value of one that does
            not (e.g. a model's ``provides``); listed too.
        check: called with the declared attributes of each component at registration; a
            ValueError it raises becomes a :class:`RegistryError` naming the component.
    """

    def __init__(
        self,
        kind: str,
        group: str,
        attributes: tuple[str, ...] = (),
        defaults: Mapping[str, Any] | None = None,
        check: Callable[[Mapping[str, Any]], None] | None = None,
    ):
        self.kind = kind
        self.group = group
        self.attributes = attributes
        self.defaults = dict(defaults or {})
        self._check = check
        self._entries: dict[str, Entry] = {}
        self._plugins: dict[str, metadata.EntryPoint] | None = None

    # -- registration --------------------------------------------------------------------
    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator that registers a component class (or factory function) under ``name``."""

        def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
            self._add(name, factory)
            return factory

        return decorate

    def _add(self, name: str, factory: Callable[..., Any]) -> None:
        if not name or not isinstance(name, str) or ":" in name:
            raise RegistryError(f"{self.kind} name must be a non-empty string without ':', got {name!r}")
        if name in self._entries and self._entries[name].factory is not factory:
            raise RegistryError(f"{self.kind} {name!r} is already registered by {self._entries[name].factory!r}")
        doc = inspect.getdoc(factory)
        if not doc:
            raise RegistryError(f"{self.kind} {name!r} ({factory!r}) needs a docstring: its first line is the description")
        missing = [a for a in self.attributes if not hasattr(factory, a)]
        if missing:
            raise RegistryError(f"{self.kind} {name!r} must declare class attribute(s) {missing}")
        attrs = {a: getattr(factory, a) for a in self.attributes}
        attrs.update({a: getattr(factory, a, default) for a, default in self.defaults.items()})
        if self._check is not None:
            try:
                self._check(attrs)
            except ValueError as err:
                raise RegistryError(f"{self.kind} {name!r} ({_qualname(factory)}): {err}") from err
        self._entries[name] = Entry(name, factory, doc.splitlines()[0].strip(), _signature_params(factory), attrs)
        if isinstance(factory, type):
            factory.registered_name = name

    # -- third-party components ------------------------------------------------------------
    def _plugin_points(self) -> dict[str, metadata.EntryPoint]:
        if self._plugins is None:
            self._plugins = {ep.name: ep for ep in metadata.entry_points(group=self.group)}
        return self._plugins

    def _load_plugin(self, name: str) -> None:
        point = self._plugin_points().get(name)
        if point is None or name in self._entries:
            return
        loaded = point.load()  # a module registers itself on import; a class is registered here
        if name not in self._entries and callable(loaded) and not isinstance(loaded, types.ModuleType):
            self._add(name, loaded)
        if name not in self._entries:
            raise RegistryError(
                f"entry point {point.value!r} in group {self.group!r} did not register a {self.kind} named {name!r}"
            )

    # -- lookup ------------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Every available name, built-in and from entry points, sorted."""
        return sorted(set(self._entries) | set(self._plugin_points()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.split(":", 1)[0] in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def entry(self, name: str) -> Entry:
        """The registered entry for ``name`` (a ``family:member`` name gives the family's)."""
        if not isinstance(name, str):
            raise UnknownNameError(f"{self.kind} name must be a string, got {type(name).__name__} {name!r}")
        base = name.split(":", 1)[0]
        if base not in self._entries:
            self._load_plugin(base)
        if base not in self._entries:
            available = self.names()
            close = difflib.get_close_matches(base, available, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{hint} Available {self.kind}s: {', '.join(available) or '(none)'}"
            )
        return self._entries[base]

    def validate(self, name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Check ``params`` against the component's declared parameters.

        Returns the full parameter set (given values, type-coerced where the conversion is
        lossless, plus defaults). Raises :class:`ParameterError` naming the bad parameter.
        """
        entry = self.entry(name)
        given = dict(params or {})
        if ":" in name:
            if not entry.params:
                raise ParameterError(f"{self.kind} {entry.name!r} takes no parameters, so {name!r} is not a valid name")
            first = entry.params[0].name
            if first in given:
                raise ParameterError(f"{self.kind} {name!r} names {first!r} twice (in the name and as a parameter)")
            given[first] = name.split(":", 1)[1]
        allowed = {p.name: p for p in entry.params}
        out: dict[str, Any] = {}
        for key, value in given.items():
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=3, cutoff=0.5)
                hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
                raise ParameterError(
                    f"unknown parameter {key!r} for {self.kind} {entry.name!r} ({_qualname(entry.factory)}).{hint} "
                    f"Allowed: {', '.join(p.describe() for p in entry.params) or '(none)'}"
                )
            try:
                out[key] = _coerce(value, allowed[key].annotation)
            except TypeError as err:
                raise ParameterError(
                    f"parameter {key!r} of {self.kind} {entry.name!r}: got {value!r} "
                    f"({type(value).__name__}), expected {_type_name(allowed[key].annotation)}"
                ) from err
        for p in entry.params:
            if p.name not in out:
                if p.required:
                    raise ParameterError(f"{self.kind} {entry.name!r} needs parameter {p.describe()}")
                out[p.name] = p.default
        return out

    def get(self, name: str, **params: Any) -> Any:
        """Build the component ``name`` with ``params`` (validated first)."""
        entry = self.entry(name)
        return entry.factory(**self.validate(name, params))


# -- parameter introspection -------------------------------------------------------------------
def _signature_params(factory: Callable[..., Any]) -> tuple[Param, ...]:
    """The declared parameters of ``factory`` (a class: of its ``__init__``), ``**kwargs`` resolved."""
    if isinstance(factory, type):
        owner = next((c for c in factory.__mro__ if "__init__" in vars(c)), object)
        return _init_params(factory, owner)
    return _function_params(factory, inspect.signature(factory), None, factory)


def _init_params(component: type, owner: type) -> tuple[Param, ...]:
    """The parameters of ``owner.__init__`` (``owner`` in ``component``'s MRO), ``**kwargs`` resolved."""
    if owner is object:
        return ()
    init = vars(owner)["__init__"]
    signature = inspect.signature(init)
    signature = signature.replace(parameters=list(signature.parameters.values())[1:])  # drop self
    return _function_params(init, signature, (component, owner), component)


def _function_params(
    function: Callable[..., Any], signature: inspect.Signature, mro: tuple[type, type] | None, component: Any
) -> tuple[Param, ...]:
    hints = typing.get_type_hints(function, include_extras=True)
    own: list[Param] = []
    inherited: tuple[Param, ...] = ()
    for p in signature.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            raise RegistryError(f"{component!r}: registered components declare keyword parameters, not *{p.name}")
        if p.kind is p.VAR_KEYWORD:
            inherited = _forwarded(hints.get(p.name), mro, component, p.name)
            continue
        if p.name not in hints:
            raise RegistryError(f"{component!r}: parameter {p.name!r} needs a type annotation")
        own.append(Param(p.name, _strip_annotated(hints[p.name]), p.default))
    names = {p.name for p in own}
    return tuple(own) + tuple(p for p in inherited if p.name not in names)


def _forwarded(annotation: Any, mro: tuple[type, type] | None, component: Any, name: str) -> tuple[Param, ...]:
    """The parameters ``**name`` stands for: those of its ``ParamsOf`` target, else of the parent ``__init__``."""
    target = next((m.target for m in getattr(annotation, "__metadata__", ()) if isinstance(m, ParamsOf)), None)
    if target is not None:
        return _signature_params(target)
    if mro is not None:
        component_class, owner = mro
        chain = component_class.__mro__
        parent = next((c for c in chain[chain.index(owner) + 1 :] if "__init__" in vars(c)), object)
        if parent is not object:
            return _init_params(component_class, parent)
    raise RegistryError(
        f"{component!r}: **{name} stands for no declared parameters; it must forward to a parent class "
        f"whose __init__ declares them, or be annotated ParamsOf[target]"
    )


def _strip_annotated(annotation: Any) -> Any:
    return typing.get_args(annotation)[0] if typing.get_origin(annotation) is typing.Annotated else annotation


def _qualname(factory: Callable[..., Any]) -> str:
    return f"{factory.__module__}.{getattr(factory, '__qualname__', factory)}"


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _coerce(value: Any, annotation: Any) -> Any:
    """Return ``value`` as ``annotation`` if it is one (or converts losslessly); else TypeError."""
    if annotation is Any:
        return value
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise TypeError(f"one of {args}")
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _coerce(value, option)
            except TypeError:
                continue
        raise TypeError(annotation)
    if annotation is type(None):
        if value is None:
            return None
        raise TypeError(annotation)
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            raise TypeError(annotation)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise TypeError(annotation)
            items = [_coerce(v, a) for v, a in zip(value, args)]
        else:
            items = [_coerce(v, args[0]) for v in value] if args else list(value)
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise TypeError(annotation)
        return dict(value)
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeError(annotation)
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError(annotation)
    if isinstance(annotation, type):
        if isinstance(value, annotation):
            return value
        raise TypeError(annotation)
    raise TypeError(f"unsupported annotation {annotation!r}")
