"""The results store of a suite run: two compact files, plus atomic per-cell files for new cells.

Layout under ``out_dir/store/``::

    records.parquet              the records of every compacted cell (schema :data:`RECORD_SCHEMA`)
    examples.npz                 their examples, arrays named ``<cell_id>/<name>``; an array equal
                                 to one stored before (a cell's input, shared by the cells of
                                 one model and seed) is stored once and named in ``_same_as``
    cells/<cell_id>.parquet      the records of a cell finished since the last compaction; its
                                 presence marks the cell as done, so a rerun skips it
    examples/<cell_id>.npz       inputs and explanations of that cell's first samples, for figures
    failures/<cell_id>.json      a cell that raised, or one stored with failed metrics: error
                                 text, traceback, cell parameters

While a grid runs, each finished cell goes to its own files (:func:`write_cell`), so a killed
run never loses a finished cell. :func:`compact_store` then folds those files into the two
compact ones and removes them (``salbench run`` after its grid, ``salbench report``).
:func:`read_store` reads the compact files and every per-cell file; a cell found in both (a
compaction killed before it removed the per-cell files) is taken from its per-cell file, so
the store reads the same before, during and after a compaction.

Every file is written to a temporary name in its directory and then renamed over the final
name (:func:`atomic_write_bytes`), so a killed run never leaves a half-written record: a cell is
either stored completely or not at all. Temporary files start with a dot and end in ``.tmp``;
readers ignore them.

Records are long format, one row per evaluation sample × metric. Columns that measure the run
rather than the method (:data:`VOLATILE_COLUMNS`: the cell's wall-clock seconds) differ between
otherwise identical runs; compare runs on :func:`comparable` records.

Example:
    >>> stored = read_store("results/quickstart")                    # doctest: +SKIP
    >>> stored.records.groupby(["explainer", "metric"]).value.mean()  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = [
    "RECORD_SCHEMA",
    "RECORD_COLUMNS",
    "VOLATILE_COLUMNS",
    "SORT_COLUMNS",
    "StoredRun",
    "atomic_write_bytes",
    "write_cell",
    "write_failure",
    "read_store",
    "compact_store",
    "read_records",
    "read_failures",
    "read_examples",
    "stored_cell_ids",
    "failed_cell_ids",
    "delete_failures",
    "stored_failures",
    "comparable",
    "store_dir",
]

_NULLABLE = (
    "explainer_layer", "value", "curve", "note", "attack_iterations", "attack_success", "label_kept",
    "clean_balanced_accuracy",
)

RECORD_SCHEMA = pa.schema(
    [
        pa.field(name, type_, nullable=name in _NULLABLE)
        for name, type_ in [
            ("suite", pa.string()),
            ("config_hash", pa.string()),
            ("cell_id", pa.string()),
            ("dataset", pa.string()),
            ("dataset_params", pa.string()),  # canonical JSON of the validated parameters
            ("model", pa.string()),
            ("model_params", pa.string()),
            ("recipe", pa.string()),
            ("recipe_params", pa.string()),
            ("explainer", pa.string()),
            ("explainer_params", pa.string()),
            ("explainer_layer", pa.string()),  # the layer Grad-CAM/CAM read ("auto" resolved); null for others
            ("attack", pa.string()),  # "none" in attack-free cells
            ("attack_params", pa.string()),  # "{}" in attack-free cells
            ("seed", pa.int64()),
            ("sample", pa.int64()),  # index into the data set's test split
            ("label", pa.int64()),
            ("metric", pa.string()),
            ("metric_params", pa.string()),
            ("category", pa.string()),
            ("higher_is_better", pa.bool_()),
            ("value", pa.float64()),  # NaN is stored as null (pyarrow's pandas conversion); reads back as NaN
            ("curve", pa.list_(pa.float64())),  # null unless the metric has a curve
            ("note", pa.string()),  # why the value is missing (NaN); null when it is not
            ("attack_iterations", pa.int64()),  # null in attack-free cells, as are the next two
            ("attack_success", pa.bool_()),
            ("label_kept", pa.bool_()),
            ("clean_accuracy", pa.float64()),  # the model's test accuracy
            ("clean_balanced_accuracy", pa.float64()),  # its balanced accuracy; null for models cached before it
            ("model_key", pa.string()),
            ("elapsed_s", pa.float64()),  # wall-clock seconds of the whole cell
            ("versions", pa.string()),  # JSON of the package versions that computed the cell
        ]
    ]
)
"""Columns and types of the records; every cell file has exactly this schema. Only the explainer
layer, the value, the curve, the note, the three attack columns and the clean balanced accuracy
may hold nulls. Stores written before the ``note`` or ``clean_balanced_accuracy`` column existed
read back with a null note / balanced accuracy (pyarrow fills a missing nullable column)."""

RECORD_COLUMNS: tuple[str, ...] = tuple(RECORD_SCHEMA.names)

VOLATILE_COLUMNS: tuple[str, ...] = ("elapsed_s",)
"""Columns that depend on when and how fast a run went, not on its configuration: the only
columns allowed to differ between two runs of the same suite (resumed or not, any backend)."""

SORT_COLUMNS: tuple[str, ...] = (
    "dataset", "model", "recipe", "seed", "explainer", "attack", "cell_id", "metric", "metric_params", "sample",
)
"""The deterministic row order of :func:`read_records` (cell_id and metric_params break ties)."""

# pandas dtypes that keep nulls in integer and boolean columns (instead of float NaN / object)
_NULLABLE_DTYPES = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}


def store_dir(out_dir: str | Path) -> Path:
    """The store of a results directory: ``out_dir/store``."""
    return Path(out_dir) / "store"


_RECORDS_FILE = "records.parquet"
_EXAMPLES_FILE = "examples.npz"
_SAME_AS = "_same_as"  # (name, name of the equal array stored instead) in the compact examples


def _cell_path(out_dir: str | Path, cell_id: str) -> Path:
    return store_dir(out_dir) / "cells" / f"{cell_id}.parquet"


def _failure_path(out_dir: str | Path, cell_id: str) -> Path:
    return store_dir(out_dir) / "failures" / f"{cell_id}.json"


def _examples_path(out_dir: str | Path, cell_id: str) -> Path:
    return store_dir(out_dir) / "examples" / f"{cell_id}.npz"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same directory, then rename.

    Readers see either the old file (or none) or the complete new one, never a partial write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give results the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_cell_id(cell_id: str) -> None:
    if not isinstance(cell_id, str) or not cell_id or not all(c in "0123456789abcdef" for c in cell_id):
        raise ValueError(f"cell_id must be a non-empty lowercase hex string (a Cell.id), got {cell_id!r}")


def _check_records(records: pd.DataFrame) -> None:
    if not isinstance(records, pd.DataFrame):
        raise TypeError(f"records must be a pandas DataFrame, got {type(records).__name__}")
    missing = [c for c in RECORD_COLUMNS if c not in records.columns]
    extra = [c for c in records.columns if c not in RECORD_COLUMNS]
    if missing or extra:
        raise ValueError(
            f"records must have exactly the columns of RECORD_SCHEMA; missing {missing}, unexpected {extra}"
        )


def write_cell(
    out_dir: str | Path,
    cell_id: str,
    records: pd.DataFrame,
    examples: dict[str, np.ndarray] | None = None,
    failure: dict[str, Any] | None = None,
) -> None:
    """Store a finished cell in its own files: its examples (if any), its ``failure`` (a cell
    stored with some metrics failed: see :func:`write_failure`) or else no failure, then its records.

    The records file goes last because its presence marks the cell as done.
    """
    _check_cell_id(cell_id)
    _check_records(records)
    if examples is not None:
        atomic_write_bytes(_examples_path(out_dir, cell_id), _npz_bytes(examples))
    if failure is None:
        _failure_path(out_dir, cell_id).unlink(missing_ok=True)
    else:
        write_failure(out_dir, cell_id, failure)
    atomic_write_bytes(_cell_path(out_dir, cell_id), _parquet_bytes(records))


def _parquet_bytes(records: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(records[list(RECORD_COLUMNS)], schema=RECORD_SCHEMA, preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An ``.npz`` archive (deflated, readable by :func:`numpy.load`) of ``arrays`` in name order,
    with fixed time stamps, so the same arrays always give the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(arrays[name]), allow_pickle=False)
    return buffer.getvalue()


def write_failure(out_dir: str | Path, cell_id: str, failure: dict[str, Any]) -> None:
    """Store a cell that raised: ``failure`` is a JSON-serialisable dict (error, traceback, cell, ...)."""
    _check_cell_id(cell_id)
    text = json.dumps({"cell_id": cell_id, **failure}, indent=2, sort_keys=True)
    atomic_write_bytes(_failure_path(out_dir, cell_id), text.encode())


def stored_cell_ids(out_dir: str | Path) -> set[str]:
    """Ids of the cells whose records are stored (the cells a rerun skips).

    Reads only the ``cell_id`` column of the compact records, not the records themselves.
    """
    ids = {p.stem for p in (store_dir(out_dir) / "cells").glob("*.parquet")}
    compact = store_dir(out_dir) / _RECORDS_FILE
    if compact.exists():
        ids.update(pq.read_table(compact, columns=["cell_id"]).column("cell_id").unique().to_pylist())
    return ids


def stored_failures(out_dir: str | Path) -> tuple[dict[str, Any], ...]:
    """The failure records (:func:`write_failure`) of ``out_dir``, sorted by cell id; reads
    nothing else of the store."""
    return tuple(json.loads(p.read_text()) for p in sorted((store_dir(out_dir) / "failures").glob("*.json")))


@dataclasses.dataclass(frozen=True)
class StoredRun:
    """Everything a store holds, read at once by :func:`read_store`.

    ``records``: every stored record, sorted by :data:`SORT_COLUMNS` (see :func:`read_records`);
    ``failures``: the failure records, sorted by cell id; ``examples``: cell id -> that cell's
    example arrays (x, attr and, in attacked cells, x_adv, attr_adv, ...), for the cells with
    records (equal arrays from the compact file are one shared object: read them, do not write
    into them); ``loose``: the cells read from per-cell files, which :func:`compact_store` folds
    into the compact files.
    """

    records: pd.DataFrame
    failures: tuple[dict[str, Any], ...]
    examples: Mapping[str, Mapping[str, np.ndarray]]
    loose: frozenset[str]


def read_store(out_dir: str | Path) -> StoredRun:
    """Read the whole store of ``out_dir`` once: compact files and per-cell files (see the module
    docstring); a cell in both is taken from its per-cell files. An empty or missing store
    gives empty records with the record columns."""
    root = store_dir(out_dir)
    loose_paths = sorted((root / "cells").glob("*.parquet"))
    loose = frozenset(p.stem for p in loose_paths)
    tables = [pq.read_table(p, schema=RECORD_SCHEMA) for p in loose_paths]
    if (root / _RECORDS_FILE).exists():
        compact = pq.read_table(root / _RECORDS_FILE, schema=RECORD_SCHEMA)
        tables.append(compact.filter(pc.invert(pc.is_in(compact["cell_id"], pa.array(sorted(loose), pa.string())))))
    table = pa.concat_tables(tables) if tables else RECORD_SCHEMA.empty_table()
    frame = table.to_pandas().astype(
        {f.name: _NULLABLE_DTYPES[f.type] for f in RECORD_SCHEMA if f.nullable and f.type in _NULLABLE_DTYPES}
    )
    records = frame.sort_values(list(SORT_COLUMNS), kind="mergesort").reset_index(drop=True)
    done = set(records["cell_id"])
    examples = _read_compact_examples(root / _EXAMPLES_FILE) if (root / _EXAMPLES_FILE).exists() else {}
    for path in sorted((root / "examples").glob("*.npz")):
        with np.load(path) as data:
            examples[path.stem] = {k: data[k] for k in data.files}
    return StoredRun(
        records=records,
        failures=stored_failures(out_dir),
        examples={k: v for k, v in sorted(examples.items()) if k in done},
        loose=loose & done,
    )


def compact_store(out_dir: str | Path, stored: StoredRun) -> bool:
    """Fold the per-cell files of ``stored`` (what :func:`read_store` just read from ``out_dir``)
    into ``records.parquet`` and ``examples.npz``, then remove those per-cell files.

    Both compact files are written atomically before any per-cell file goes, so a kill at any
    point leaves a store that reads the same. Cells stored after ``stored`` was read keep their
    per-cell files. Returns whether there was anything to compact (nothing is written if not).
    """
    if not stored.loose:
        return False
    _check_records(stored.records)
    root = store_dir(out_dir)
    atomic_write_bytes(root / _EXAMPLES_FILE, _compact_examples_bytes(stored.examples))
    atomic_write_bytes(root / _RECORDS_FILE, _parquet_bytes(stored.records))
    for cell_id in sorted(stored.loose):
        _examples_path(out_dir, cell_id).unlink(missing_ok=True)
        _cell_path(out_dir, cell_id).unlink()
    return True


def _compact_examples_bytes(examples: Mapping[str, Mapping[str, np.ndarray]]) -> bytes:
    """The compact examples file: every array under ``<cell_id>/<name>``, each distinct array once."""
    arrays: dict[str, np.ndarray] = {}
    same_as: list[tuple[str, str]] = []
    first: dict[tuple, str] = {}  # (dtype, shape, digest of the bytes) -> name of the stored array
    for cell_id in sorted(examples):
        for name in sorted(examples[cell_id]):
            key, array = f"{cell_id}/{name}", np.ascontiguousarray(examples[cell_id][name])
            content = (array.dtype.str, array.shape, hashlib.sha256(array.tobytes()).hexdigest())
            if content in first:
                same_as.append((key, first[content]))
            else:
                first[content], arrays[key] = key, array
    if same_as:
        arrays[_SAME_AS] = np.array(same_as, dtype=str)
    return _npz_bytes(arrays)


def _read_compact_examples(path: Path) -> dict[str, dict[str, np.ndarray]]:
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    for key, target in arrays.pop(_SAME_AS, np.empty((0, 2), dtype=str)):
        arrays[key] = arrays[target]
    examples: dict[str, dict[str, np.ndarray]] = {}
    for key, array in arrays.items():
        cell_id, name = key.split("/", 1)
        examples.setdefault(cell_id, {})[name] = array
    return examples


def read_records(out_dir: str | Path) -> pd.DataFrame:
    """All stored records of ``out_dir`` (``read_store(out_dir).records``), one DataFrame sorted
    by :data:`SORT_COLUMNS`.

    The attack columns, which are null in attack-free cells, use pandas' nullable dtypes (Int64,
    boolean); ``curve`` holds a float64 array per row or None, ``note`` a string or None. An empty store gives an empty
    frame with the record columns.
    """
    return read_store(out_dir).records


def read_failures(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every recorded cell failure, sorted by cell id (``read_store(out_dir).failures``)."""
    return list(read_store(out_dir).failures)


def failed_cell_ids(out_dir: str | Path) -> set[str]:
    """Ids of the cells recorded as failures."""
    return {p.stem for p in (store_dir(out_dir) / "failures").glob("*.json")}


def delete_failures(out_dir: str | Path, cell_ids: Iterable[str]) -> None:
    """Delete the failure records of ``cell_ids`` (those that exist)."""
    for cell_id in cell_ids:
        _check_cell_id(cell_id)
        _failure_path(out_dir, cell_id).unlink(missing_ok=True)


def read_examples(out_dir: str | Path, cell_id: str) -> dict[str, np.ndarray]:
    """The stored examples of one cell (x, attr and, in attacked cells, x_adv, attr_adv, ...)."""
    examples = read_store(out_dir).examples
    if cell_id not in examples:
        raise FileNotFoundError(f"no examples stored for cell {cell_id!r} under {store_dir(out_dir)}")
    return dict(examples[cell_id])


def comparable(records: pd.DataFrame) -> pd.DataFrame:
    """``records`` without the :data:`VOLATILE_COLUMNS`: what two runs of one suite must agree on."""
    return records.drop(columns=[c for c in VOLATILE_COLUMNS if c in records.columns])
