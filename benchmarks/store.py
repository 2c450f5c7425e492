"""The results store of a suite run: one atomic file per grid cell.

Layout under ``out_dir/store/``::

    cells/<cell_id>.parquet      the cell's records (schema :data:`RECORD_SCHEMA`); its presence
                                 marks the cell as done, so a rerun skips it
    failures/<cell_id>.json      a cell that raised: error text, traceback, cell parameters
    examples/<cell_id>.npz       inputs and explanations of the cell's first samples, for figures

Every file is written to a temporary name in its directory and then renamed over the final
name (:func:`atomic_write_bytes`), so a killed run never leaves a half-written record: a cell is
either stored completely or not at all. Temporary files start with a dot and end in ``.tmp``;
readers ignore them.

Records are long format, one row per evaluation sample × metric. Columns that measure the run
rather than the method (:data:`VOLATILE_COLUMNS`: the cell's wall-clock seconds) differ between
otherwise identical runs; compare runs on :func:`comparable` records.

Example:
    >>> records = read_records("results/quickstart")          # doctest: +SKIP
    >>> records.groupby(["explainer", "metric"]).value.mean()  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "RECORD_SCHEMA",
    "RECORD_COLUMNS",
    "VOLATILE_COLUMNS",
    "SORT_COLUMNS",
    "atomic_write_bytes",
    "write_cell",
    "write_failure",
    "read_records",
    "read_failures",
    "read_examples",
    "stored_cell_ids",
    "comparable",
    "store_dir",
]

_NULLABLE = ("value", "curve", "note", "attack_iterations", "attack_success", "label_kept")

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
            ("model_key", pa.string()),
            ("elapsed_s", pa.float64()),  # wall-clock seconds of the whole cell
            ("versions", pa.string()),  # JSON of the package versions that computed the cell
        ]
    ]
)
"""Columns and types of the records; every cell file has exactly this schema. Only the curve, the
note and the three attack columns may hold nulls. Stores written before the ``note`` column
existed read back with a null note (pyarrow fills a missing nullable column)."""

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
    out_dir: str | Path, cell_id: str, records: pd.DataFrame, examples: dict[str, np.ndarray] | None = None
) -> None:
    """Store a finished cell: its examples (if any), then its records, then drop an old failure.

    The records file goes last because its presence marks the cell as done.
    """
    _check_cell_id(cell_id)
    _check_records(records)
    table = pa.Table.from_pandas(records[list(RECORD_COLUMNS)], schema=RECORD_SCHEMA, preserve_index=False)
    if examples is not None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **examples)
        atomic_write_bytes(_examples_path(out_dir, cell_id), buffer.getvalue())
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(_cell_path(out_dir, cell_id), sink.getvalue().to_pybytes())
    _failure_path(out_dir, cell_id).unlink(missing_ok=True)


def write_failure(out_dir: str | Path, cell_id: str, failure: dict[str, Any]) -> None:
    """Store a cell that raised: ``failure`` is a JSON-serialisable dict (error, traceback, cell, ...)."""
    _check_cell_id(cell_id)
    text = json.dumps({"cell_id": cell_id, **failure}, indent=2, sort_keys=True)
    atomic_write_bytes(_failure_path(out_dir, cell_id), text.encode())


def stored_cell_ids(out_dir: str | Path) -> set[str]:
    """Ids of the cells whose records are stored (the cells a rerun skips)."""
    return {p.stem for p in (store_dir(out_dir) / "cells").glob("*.parquet")}


def read_records(out_dir: str | Path) -> pd.DataFrame:
    """All stored records of ``out_dir``, one DataFrame sorted by :data:`SORT_COLUMNS`.

    The attack columns, which are null in attack-free cells, use pandas' nullable dtypes (Int64,
    boolean); ``curve`` holds a float64 array per row or None, ``note`` a string or None. An empty store gives an empty
    frame with the record columns.
    """
    paths = sorted((store_dir(out_dir) / "cells").glob("*.parquet"))
    tables = [pq.read_table(p, schema=RECORD_SCHEMA) for p in paths]
    table = pa.concat_tables(tables) if tables else RECORD_SCHEMA.empty_table()
    frame = table.to_pandas().astype(
        {f.name: _NULLABLE_DTYPES[f.type] for f in RECORD_SCHEMA if f.nullable and f.type in _NULLABLE_DTYPES}
    )
    return frame.sort_values(list(SORT_COLUMNS), kind="mergesort").reset_index(drop=True)


def read_failures(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every recorded cell failure, sorted by cell id."""
    paths = sorted((store_dir(out_dir) / "failures").glob("*.json"))
    return [json.loads(p.read_text()) for p in paths]


def read_examples(out_dir: str | Path, cell_id: str) -> dict[str, np.ndarray]:
    """The stored examples of one cell (x, attr and, in attacked cells, x_adv, attr_adv, ...)."""
    path = _examples_path(out_dir, cell_id)
    if not path.exists():
        raise FileNotFoundError(f"no examples stored for cell {cell_id!r} (looked for {path})")
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def comparable(records: pd.DataFrame) -> pd.DataFrame:
    """``records`` without the :data:`VOLATILE_COLUMNS`: what two runs of one suite must agree on."""
    return records.drop(columns=[c for c in VOLATILE_COLUMNS if c in records.columns])
