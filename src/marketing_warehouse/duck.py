"""DuckDB connections bounded by ``MWH_DUCKDB_MEMORY_LIMIT``.

Every connection that reads or writes whole tables gets the limit and a folder to spill to (the
files extracted at the same time share one database, and so one limit), so no stage grows with
the data: beyond the limit DuckDB spills to disk, and an operation that cannot spill fails with
DuckDB's "Out of Memory" error instead of taking the machine's memory.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from marketing_warehouse.config import memory_bytes


def connect(
    memory_limit: str,
    database: str | Path = ":memory:",
    *,
    read_only: bool = False,
    spill_dir: str | Path | None = None,
) -> duckdb.DuckDBPyConnection:
    """A connection to ``database`` limited to ``memory_limit``; it spills to ``spill_dir`` (by
    default DuckDB's ``<database>.tmp`` beside a database file; none for an in-memory one)."""
    con = duckdb.connect(str(database), read_only=read_only)
    try:
        con.execute(f"set memory_limit = '{memory_bytes(memory_limit) // 2**20}MiB'")
        if spill_dir is not None:
            con.execute("set temp_directory = ?", [str(spill_dir)])
    except BaseException:
        con.close()
        raise
    return con
