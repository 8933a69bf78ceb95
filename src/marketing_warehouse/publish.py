"""Write-audit-publish: copy the audited marts from the private build file to the serving file.

The serving file is replaced in one ``os.replace`` (an atomic rename), so a BI tool sees
yesterday's complete data or today's, never a mix; a reader holding the old file open keeps reading
the old version undisturbed. The new file is assembled from the build database (schemas ``marts``
and ``audit``) plus the persisted gate results, then hard-linked into ``versions/`` so the last
versions can be rolled back to without copying.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from marketing_warehouse.config import Settings
from marketing_warehouse.extract import utc_now
from marketing_warehouse.gates import RESULT_COLUMNS

#: Schemas copied to the serving file; nothing else (staging, intermediate) is visible to BI tools.
PUBLISHED_SCHEMAS = ("marts", "audit")
#: Marts emitted as Airflow Assets by the publish task (kept in step with models/marts by a test).
PUBLISHED_MARTS = (
    "customer_identity_map",
    "customer_segments",
    "dim_customers",
    "fct_orders",
    "kpi_campaign_performance",
    "kpi_channel_coverage",
    "kpi_channel_performance",
    "kpi_cohort_retention",
    "kpi_coupon_performance",
    "kpi_daily",
    "kpi_experiments",
    "kpi_retention_churn",
)
KEEP_VERSIONS = 5


@dataclass
class PublishResult:
    serving_path: Path
    version_path: Path
    row_counts: dict[str, int] = field(default_factory=dict)


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _safe(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"unexpected relation name {name!r}")
    return name


def versions_dir(settings: Settings) -> Path:
    return settings.warehouse_path.parent / "versions"


def publish(settings: Settings, ds: date, run_id: str) -> PublishResult:
    """Build a new serving file from the build database and swap it in atomically."""
    serving = settings.warehouse_path
    serving.parent.mkdir(parents=True, exist_ok=True)
    stamp = utc_now()
    slug = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)[:80]
    tmp = serving.parent / f".{serving.stem}.{slug}.tmp.duckdb"
    tmp.unlink(missing_ok=True)
    result = PublishResult(serving_path=serving, version_path=Path())
    con = duckdb.connect(str(tmp))
    try:
        con.execute(f"attach {_sql_literal(str(settings.build_path))} as build (read_only)")
        tables = con.execute(
            "select schema_name, table_name from duckdb_tables() "
            "where database_name = 'build' and schema_name in "
            f"({', '.join(_sql_literal(s) for s in PUBLISHED_SCHEMAS)}) order by 1, 2"
        ).fetchall()
        for schema in PUBLISHED_SCHEMAS:
            con.execute(f"create schema if not exists {schema}")
        for schema, table in tables:
            name = f"{_safe(schema)}.{_safe(table)}"
            con.execute(f"create table {name} as select * from build.{name}")
            result.row_counts[name] = con.execute(f"select count(*) from {name}").fetchone()[0]

        # audit.validation_results: every gate result ever persisted, one row per expectation
        columns = ", ".join(f"{n} {t}" for n, t in RESULT_COLUMNS.items())
        con.execute(f"create table audit.validation_results ({columns})")
        files = sorted(settings.runs_dir.glob("*/validation/*.parquet"))
        if files:
            listing = ", ".join(_sql_literal(str(f)) for f in files)
            con.execute(
                f"insert into audit.validation_results by name "
                f"select * from read_parquet([{listing}], union_by_name = true)"
            )
        result.row_counts["audit.validation_results"] = con.execute(
            "select count(*) from audit.validation_results"
        ).fetchone()[0]

        # audit.publish_log: history carried over from the previous serving file
        con.execute(
            "create table audit.publish_log (run_id varchar, logical_date date, "
            "published_at timestamp, relation varchar, row_count bigint)"
        )
        if serving.exists():
            try:
                con.execute(f"attach {_sql_literal(str(serving))} as previous (read_only)")
                con.execute(
                    "insert into audit.publish_log select * from previous.audit.publish_log"
                )
                con.execute("detach previous")
            except duckdb.Error:
                pass  # an older serving file without a publish log
        con.executemany(
            "insert into audit.publish_log values (?, ?, ?, ?, ?)",
            [(run_id, ds, stamp, rel, n) for rel, n in sorted(result.row_counts.items())],
        )
        con.execute("detach build")
        con.execute("checkpoint")
    finally:
        con.close()

    versions = versions_dir(settings)
    versions.mkdir(parents=True, exist_ok=True)
    version = (
        versions
        / f"{serving.stem}.{stamp:%Y%m%dT%H%M%S}.{ds.isoformat()}.{uuid.uuid4().hex[:6]}.duckdb"
    )
    os.link(tmp, version)
    os.replace(tmp, serving)
    result.version_path = version
    for old in sorted(versions.glob("*.duckdb"))[:-KEEP_VERSIONS]:
        old.unlink()
    return result
