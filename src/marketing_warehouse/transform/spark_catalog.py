"""MWH_ENGINE=spark: the build database as DuckDB views over Spark's tables.

The gates, predict, publish and the run report read the build database
(``Settings.build_path``) with DuckDB. On Spark, dbt writes each table as Parquet files under
``<spark dir>/tables/<schema>.db/<table>/`` (a partitioned table in ``<column>=<value>/``
folders, its partition column last). ``refresh`` rewrites the build database as a DuckDB file
with one view per Spark table over those files, so every later stage reads what Spark built,
and publish copies it into the serving file and PostgreSQL as it does from DuckDB's own build.
A partitioned table without rows has no file: its zero-row schema file (the dbt macro
``spark_schema_file``) gives its view the columns. The file is written beside the build
database and renamed over it, so a reader sees the old views or the new ones.

Publish copies the tables of the build database's published schemas; here every relation is a
view, so the views publish copies carry the comment ``PUBLISHED`` (every table of a dbt model
but those whose config says ``meta: {published: false}``, e.g. ``audit.fx_rate_coverage``, a
view on DuckDB and a table on Spark only so that the staging gate can read it).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import duckdb

from marketing_warehouse.config import Settings

#: The comment of a view that publish copies like a table (``serve.publish.table_counts``).
PUBLISHED = "published"

log = logging.getLogger(__name__)


class SparkCatalogError(RuntimeError):
    """A Spark table folder cannot be read as a table."""


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def table_folders(settings: Settings) -> dict[tuple[str, str], Path]:
    """``{(schema, table): folder}`` of every table in Spark's warehouse folder."""
    warehouse = settings.layout.spark_warehouse
    found = {}
    for schema in sorted(warehouse.glob("*.db")) if warehouse.is_dir() else []:
        for table in sorted(p for p in schema.iterdir() if p.is_dir()):
            found[(schema.name.removesuffix(".db"), table.name)] = table
    return found


def view_sql(settings: Settings, schema: str, table: str, folder: Path) -> str:
    """The DuckDB query of one Spark table: its Parquet files (partition folders as columns;
    files written before a column was added read it as null), else its schema file."""
    if any(folder.rglob("*.parquet")):
        return (
            f"select * from read_parquet({_literal(folder / '**' / '*.parquet')}, "
            "hive_partitioning = true, union_by_name = true)"
        )
    schema_file = settings.layout.spark_schemas / f"{schema}.{table}"
    if any(schema_file.glob("*.parquet")):
        return f"select * from read_parquet({_literal(schema_file / '*.parquet')})"
    raise SparkCatalogError(
        f"{folder}: Spark table {schema}.{table} has no Parquet file and no schema file in "
        f"{schema_file} (a partitioned model needs the post-hook spark_schema_file)"
    )


def unpublished(settings: Settings) -> set[tuple[str, str]]:
    """``(schema, table)`` of the dbt models whose config says ``meta: {published: false}``."""
    from marketing_warehouse.transform.dbt_tasks import manifest_models

    return {
        (node["schema"], node["alias"] or node["name"])
        for node in manifest_models(settings)
        if (node["config"].get("meta") or {}).get("published") is False
    }


def refresh(settings: Settings) -> int:
    """Rewrite the build database as views over every Spark table; return how many."""
    folders = table_folders(settings)
    hidden = unpublished(settings)
    path = settings.build_path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.views.tmp")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    try:
        for schema in sorted({s for s, _ in folders}):
            con.execute(f'create schema "{schema}"')
        for (schema, table), folder in folders.items():
            view = f'"{schema}"."{table}"'
            con.execute(f"create view {view} as {view_sql(settings, schema, table, folder)}")
            if (schema, table) not in hidden:
                con.execute(f"comment on view {view} is '{PUBLISHED}'")
        con.execute("checkpoint")
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        raise
    con.close()
    os.replace(tmp, path)
    log.info("build database %s: views over %d Spark table(s)", path, len(folders))
    return len(folders)
