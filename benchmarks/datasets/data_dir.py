"""Where data files are looked for: a ``data_dir`` setting, ``$SALBENCH_DATA_DIR``, or ``../shared/data``.

Resolution of a file name, in order of precedence:

1. the ``data_dir`` parameter, if given;
2. else the environment variable ``SALBENCH_DATA_DIR``, if set;
3. else ``../shared/data`` relative to the current working directory and relative to the
   repository root (the directory above the installed ``salbench`` package), in that order.

An explicit setting (1 or 2) is the only place searched: a file missing there is an error, not
a silent fall-back to another copy (which could be a different version of the data). A ``file``
that contains a directory part (``./x.npz``, ``/data/x.npz``) is a path and is used as is.
"""

from __future__ import annotations

import os
from pathlib import Path

import salbench

__all__ = ["ENV_VAR", "search_dirs", "find_data_file"]

ENV_VAR = "SALBENCH_DATA_DIR"


def search_dirs(data_dir: str | None = None) -> list[Path]:
    """The directories searched for a data file, in order (see the module docstring)."""
    if data_dir is not None:
        return [Path(data_dir).expanduser()]
    if os.environ.get(ENV_VAR):
        return [Path(os.environ[ENV_VAR]).expanduser()]
    repo_root = Path(salbench.__file__).resolve().parent.parent
    candidates = [Path.cwd() / ".." / "shared" / "data", repo_root / ".." / "shared" / "data"]
    unique: list[Path] = []
    for c in candidates:
        if c.resolve() not in [u.resolve() for u in unique]:
            unique.append(c)
    return unique


def find_data_file(file: str, data_dir: str | None = None, *, how_to_get: str, folder: bool = False) -> Path:
    """The path of data file ``file`` (a file name looked up in :func:`search_dirs`, or a path);
    with ``folder``, of a data folder of that name instead.

    Raises:
        ValueError: ``file`` is empty, or is a path while ``data_dir`` is also given.
        FileNotFoundError: the file is in none of the places searched; the message lists them
            and ends with ``how_to_get``.
    """
    if not isinstance(file, str) or not file:
        raise ValueError(f"file must be a non-empty file name or path, got {file!r}")
    path = Path(file).expanduser()
    is_path = path.is_absolute() or len(path.parts) > 1
    if is_path and data_dir is not None:
        raise ValueError(
            f"file={file!r} is a path, so data_dir={data_dir!r} would be ignored; "
            "give either a path in file or a file name with data_dir"
        )
    candidates = [path] if is_path else [d / file for d in search_dirs(data_dir)]
    for candidate in candidates:
        if candidate.is_dir() if folder else candidate.is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    kind = "folder" if folder else "file"
    raise FileNotFoundError(f"data {kind} {file!r} not found; searched: {searched}. {how_to_get}")
