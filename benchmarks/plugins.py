"""Suite plugins: Python files or modules that register components, imported in every process.

A suite may name ``plugins = ["my_explainer.py", "my_package.attacks"]``: a path ending in
``.py`` (relative to the suite file) or an importable module name. :func:`resolve_plugins`
checks each entry and reads each file once, in the main process; :func:`import_plugins`
imports them there before the suite is validated (so their components validate like
built-ins) and again in every worker before a cell runs there. A file travels as its source
text, so workers need not share the file system, and it is imported under a stable module
name derived from its path and content (:attr:`Plugin.module`): importing it again in the same
process is a no-op, and two files with the same name in different folders do not collide. A
module plugin must be importable in the workers' environment.

Example:
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "hello.py").write_text("GREETING = 'hi'\\n")
    >>> (plugin,) = resolve_plugins(["hello.py"], folder)
    >>> plugin.module.startswith("salbench_plugin_hello_")
    True
    >>> import_plugins([plugin])[0].GREETING
    'hi'
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import re
import sys
import types
from collections.abc import Iterable
from pathlib import Path

__all__ = ["Plugin", "PluginError", "resolve_plugins", "import_plugins"]

_PREFIX = "salbench_plugin_"  # of the module names of plugin files
_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class PluginError(ValueError):
    """A plugin entry that is not a readable ``.py`` file or an importable module, or that fails on import."""


@dataclasses.dataclass(frozen=True)
class Plugin:
    """One resolved plugin: the entry as written, the module name it is imported under and,
    for a file, its absolute path and source text (None for a module plugin)."""

    entry: str
    module: str
    path: str | None = None
    source: str | None = None

    def describe(self) -> str:
        """``file /abs/path.py`` or ``module name``, as the run reports it."""
        return f"file {self.path}" if self.path is not None else f"module {self.module}"


def resolve_plugins(entries: Iterable[str], base_dir: str | Path, where: str = "plugins") -> tuple[Plugin, ...]:
    """Check the ``plugins`` entries and read each file (relative paths from ``base_dir``).

    An entry ending in ``.py`` is a file, anything else a dotted module name. Errors name the
    entry (``plugins[1]``) and say what is allowed; nothing is imported here.
    """
    out = []
    for i, entry in enumerate(entries):
        at = f"{where}[{i}]"
        if not isinstance(entry, str) or not entry.strip():
            raise PluginError(f"{at}: must be a path to a .py file or a module name (a non-empty string), got {entry!r}")
        if entry.endswith(".py"):
            out.append(_file_plugin(entry, Path(base_dir), at))
        elif (Path(base_dir) / entry).exists() or "/" in entry or "\\" in entry:
            raise PluginError(f"{at}: {entry!r} is a path but not a .py file; a plugin file is Python source ending in .py")
        elif _MODULE_NAME.match(entry):
            out.append(Plugin(entry, entry))
        else:
            raise PluginError(
                f"{at}: {entry!r} is neither a .py file (a path ending in .py) nor a module name (such as my_package.my_module)"
            )
    return tuple(out)


def _file_plugin(entry: str, base_dir: Path, at: str) -> Plugin:
    path = (base_dir / entry).resolve()
    if not path.is_file():
        raise PluginError(f"{at}: plugin file {entry!r} not found (looked for {path})")
    source = path.read_text(encoding="utf-8")
    tag = hashlib.sha256(f"{path}\0{source}".encode()).hexdigest()[:16]
    stem = re.sub(r"\W", "_", path.stem)
    return Plugin(entry, f"{_PREFIX}{stem}_{tag}", str(path), source)


def import_plugins(plugins: Iterable[Plugin], where: str = "plugins") -> list[types.ModuleType]:
    """Import each plugin once per process (a plugin already imported is not run again, nor
    is a file that this process already imported as an ordinary module, e.g. by a test's
    ``import my_explainer``: its components are registered already).

    An import that raises becomes a :class:`PluginError` naming the entry and the cause, and
    leaves no half-imported module behind.
    """
    modules = []
    for i, plugin in enumerate(plugins):
        known = sys.modules.get(plugin.module) or _imported_file(plugin.path)
        if known is not None:
            sys.modules[plugin.module] = known
            modules.append(known)
            continue
        try:
            modules.append(_import_file(plugin) if plugin.source is not None else importlib.import_module(plugin.module))
        except Exception as err:
            raise PluginError(f"{where}[{i}]: importing {plugin.entry!r} failed: {type(err).__name__}: {err}") from err
    return modules


def _imported_file(path: str | None) -> types.ModuleType | None:
    """The ordinary module (not a plugin import, whose name carries the content) of this
    process imported from ``path``, if there is one."""
    if path is None:
        return None
    name = Path(path).name
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if getattr(module, "__name__", "").startswith(_PREFIX) or not (isinstance(file, str) and file.endswith(name)):
            continue
        if str(Path(file).resolve()) == path:
            return module
    return None


def _import_file(plugin: Plugin) -> types.ModuleType:
    spec = importlib.util.spec_from_loader(plugin.module, loader=None, origin=plugin.path)
    module = importlib.util.module_from_spec(spec)
    module.__file__ = plugin.path
    sys.modules[plugin.module] = module  # before running it, as an import does (dataclasses, pickling look it up)
    try:
        exec(compile(plugin.source, plugin.path, "exec"), module.__dict__)
    except BaseException:
        del sys.modules[plugin.module]
        raise
    return module
