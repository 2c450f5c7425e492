"""Download a public data file from its official source: the ONLY code in salbench that downloads.

Called by ``salbench data fetch NAME --data-dir DIR``; never at import, test or default-run time.
The file is streamed to a temporary name in ``DIR``, its MD5 checked against the official one,
and only then renamed to its final name, so an interrupted or corrupted download never leaves
a file that a loader would read.

Sources: MedMNIST v2/v3 (Yang et al., Scientific Data 2023), Zenodo record 10519652, CC BY 4.0;
URLs and MD5 sums as listed in the ``medmnist`` package's ``info.py``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.request import urlopen

__all__ = ["Source", "SOURCES", "fetch"]

_ZENODO = "https://zenodo.org/records/10519652/files"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """Where a data file comes from: its URL, its file name and the MD5 of its official content."""

    url: str
    file: str
    md5: str


def _medmnist(name: str, md5: str) -> Source:
    return Source(f"{_ZENODO}/{name}.npz?download=1", f"{name}.npz", md5)


SOURCES: dict[str, Source] = {
    "pneumoniamnist": _medmnist("pneumoniamnist", "28209eda62fecd6e6a2d98b1501bb15f"),
    "breastmnist": _medmnist("breastmnist", "750601b1f35ba3300ea97c75c52ff8f6"),
    "bloodmnist": _medmnist("bloodmnist", "7053d0359d879ad8a5505303e11de1dc"),
}
"""Data files :func:`fetch` can download, by name."""


def fetch(name: str, data_dir: str | Path) -> Path:
    """Download data file ``name`` into ``data_dir`` (created if needed) and return its path.

    A file already there with the official MD5 is kept (no download). A file there with other
    content is an error: nothing is overwritten. A download whose MD5 differs is an error and
    leaves nothing behind.

    Example:
        >>> fetch("pneumoniamnist", "~/data")  # doctest: +SKIP
        PosixPath('/home/me/data/pneumoniamnist.npz')
    """
    if name not in SOURCES:
        raise ValueError(f"unknown data file {name!r}; salbench can fetch: {', '.join(sorted(SOURCES))}")
    source = SOURCES[name]
    directory = Path(data_dir).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / source.file
    if target.exists():
        with target.open("rb") as f:
            found = _md5(f)
        if found != source.md5:
            raise ValueError(
                f"{target} exists but is not the official {source.file} (MD5 {found}, expected {source.md5}); "
                "remove it or fetch into another --data-dir"
            )
        return target
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{source.file}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urlopen(source.url, timeout=60) as response:
            found = _md5(response, copy_to=out)
        if found != source.md5:
            raise ValueError(
                f"download of {source.url} is corrupt: MD5 {found}, expected {source.md5}; nothing was written"
            )
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _md5(stream, copy_to=None) -> str:
    """MD5 hex digest of a binary stream read in chunks, optionally copying it to ``copy_to``."""
    digest = hashlib.md5(usedforsecurity=False)
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        if copy_to is not None:
            copy_to.write(chunk)
    return digest.hexdigest()
