"""The predictions on disk: one Parquet file per table and snapshot date, written atomically.

A snapshot's file is written beside its final name and moved over it (``os.replace``): a re-run
of a date replaces that date's partition, a reader never sees half a file, and the other dates'
files stay (they live under ``<data>/predictions/``, not in the build database that a full dbt
rebuild replaces). Each table also keeps a zero-row file of its schema, so that dbt's source
resolves with its column types before the first prediction (or on a shop too small to fit).
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from marketing_warehouse.config import Settings
from marketing_warehouse.predict.clv import PARAMETER_SCHEMA, PREDICTION_SCHEMA

#: The schema of each table of ``layout.PREDICTION_TABLES``.
SCHEMAS = {"customer_predictions": PREDICTION_SCHEMA, "clv_model_parameters": PARAMETER_SCHEMA}


def write_atomically(table: pa.Table, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def ensure_schema_files(settings: Settings) -> list[Path]:
    """The zero-row schema file of every prediction table (rewritten when the schema changed)."""
    written = []
    for name, schema in SCHEMAS.items():
        path = settings.layout.prediction_table(name).schema_file
        if not path.exists() or not pq.read_schema(path).equals(schema):
            write_atomically(schema.empty_table(), path)
        written.append(path)
    return written


def write_snapshot(settings: Settings, snapshot: date, tables: dict[str, pa.Table]) -> dict:
    """Replace the snapshot's partition of each table; return the path of each file."""
    ensure_schema_files(settings)
    paths = {}
    for name, table in tables.items():
        table = table.cast(SCHEMAS[name])
        paths[name] = str(
            write_atomically(table, settings.layout.prediction_table(name).part_file(snapshot))
        )
    return paths
