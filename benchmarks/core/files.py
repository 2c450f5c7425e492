"""The content digest of a data set's files, and the cheap stamp that tells whether they changed.

A file-backed data set (or a model read from files) names the files it reads by *role*, a name that does not depend on
where the data lie (``"data"`` for a single archive, ``"train_images.npy"`` for one of a
folder's arrays, ``"cat/001.png"`` for an image under a folder root). Its content digest is
the SHA-256 over the roles in sorted order, each with its length and bytes: it changes when
a byte, a file's role (e.g. an image moved to another class folder) or the set of files
changes, and not when the data are copied or moved elsewhere. It is what the model cache
keys data on (never a path).

:func:`stamp` (each file's resolved path, size and modification time in ns) is a cheap check
of the files without reading them; :func:`salbench.datasets.load_dataset` keys its in-process
cache on it, so a file rewritten on disk is loaded again, and :func:`content_digest` reuses a
digest only while the stamp is unchanged.

Example:
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     a, b = pathlib.Path(d, "a.bin"), pathlib.Path(d, "b.bin")
    ...     _ = a.write_bytes(b"same"), b.write_bytes(b"same")
    ...     content_digest({"data": a}) == content_digest({"data": b}) != content_digest({"other": a})
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

__all__ = ["Stamp", "stamp", "content_digest", "folder_files"]

Stamp = tuple[tuple[str, str, int, int], ...]
"""What :func:`stamp` returns: (role, resolved path, size, mtime_ns) per file."""

_CHUNK = 1 << 20
_MEMO_SIZE = 64
_memo: dict[Stamp, str] = {}


def stamp(files: Mapping[str, Path]) -> Stamp:
    """(role, resolved path, size, mtime in ns) of every file, in role order: changes when a file is rewritten."""
    out = []
    for role in sorted(files):
        path = Path(files[role]).resolve()
        info = path.stat()
        out.append((role, str(path), info.st_size, info.st_mtime_ns))
    return tuple(out)


def content_digest(files: Mapping[str, Path]) -> str:
    """SHA-256 hex digest of the files' roles and bytes (see the module docstring); their paths do not enter it."""
    key = stamp(files)
    if key in _memo:
        return _memo[key]
    sha = hashlib.sha256()
    for role in sorted(files):
        path = Path(files[role])
        sha.update(f"{role}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                sha.update(chunk)
    if len(_memo) >= _MEMO_SIZE:
        _memo.pop(next(iter(_memo)))
    _memo[key] = sha.hexdigest()
    return _memo[key]


def folder_files(root: Path) -> dict[str, Path]:
    """Every regular file under ``root`` (recursively, hidden ones included), keyed by its POSIX path relative to ``root``."""
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}
