"""Write-audit-publish: copy the audited marts from the private build file to the serving file.

Write: a new file is assembled next to the serving file from the build database (schemas
``marts`` and ``audit``) plus the persisted gate results. Audit: the new file is reopened
read-only and every table's row count is checked against what was copied. Publish: the file is
renamed over the serving file in one ``os.replace`` (atomic on POSIX), then hard-linked into
``versions/``, so a BI tool sees yesterday's complete data or today's, never a mix. A reader holding the
old file open keeps reading the old version undisturbed (the rename does not touch the old inode),
and a run killed at any point before the rename leaves the serving file as it was. A new connection
sees the new version once its process holds no other connection to the file: DuckDB's Python client
shares one open database among a process's connections to the same path.

The last ``MWH_KEEP_VERSIONS`` versions are kept; ``rollback`` swaps one of them back in the same
way. Publish and rollback take an exclusive lock on ``<warehouse dir>/.publish.lock`` so they never
interleave.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from marketing_warehouse import duck
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


#: ``KEEP_VERSIONS`` is the default of ``MWH_KEEP_VERSIONS`` (settings.keep_versions).


class PublishError(RuntimeError):
    """The new serving file failed its audit, or a rollback target does not exist."""


@dataclass
class PublishResult:
    serving_path: Path
    version_path: Path
    row_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Version:
    """One kept version of the serving file; ``id`` is what ``mwh rollback --to`` accepts."""

    path: Path
    id: str
    is_current: bool


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _safe(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"unexpected relation name {name!r}")
    return name


def versions_dir(settings: Settings) -> Path:
    return settings.warehouse_path.parent / "versions"


@contextlib.contextmanager
def publish_lock(settings: Settings) -> Iterator[None]:
    """Exclusive lock held while the serving file or its versions change."""
    folder = settings.warehouse_path.parent
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".publish.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tmp_files(serving: Path) -> list[Path]:
    return sorted(serving.parent.glob(f".{serving.stem}.*.tmp.duckdb*"))


def table_counts(con: duckdb.DuckDBPyConnection, database: str | None = None) -> dict[str, int]:
    """Row count of every table in the published schemas of ``database`` (default: current)."""
    where = f"database_name = {_sql_literal(database)} and " if database else ""
    tables = con.execute(
        "select schema_name, table_name from duckdb_tables() where "
        + where
        + f"schema_name in ({', '.join(_sql_literal(s) for s in PUBLISHED_SCHEMAS)}) order by 1, 2"
    ).fetchall()
    prefix = f"{database}." if database else ""
    return {
        f"{s}.{t}": con.execute(f"select count(*) from {prefix}{_safe(s)}.{_safe(t)}").fetchone()[0]
        for s, t in tables
    }


def _write(settings: Settings, tmp: Path, ds: date, run_id: str, stamp) -> dict[str, int]:
    """Assemble the new serving file at ``tmp``; return the row count of every table copied."""
    serving = settings.warehouse_path
    counts: dict[str, int] = {}
    con = duck.connect(settings.duckdb_memory_limit, tmp)
    try:
        con.execute(f"attach {_sql_literal(str(settings.build_path))} as build (read_only)")
        for schema in PUBLISHED_SCHEMAS:
            con.execute(f"create schema if not exists {schema}")
        for name, rows in table_counts(con, "build").items():
            con.execute(f"create table {name} as select * from build.{name}")
            counts[name] = rows

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
        counts["audit.validation_results"] = con.execute(
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
            except duckdb.CatalogException:
                pass  # an older serving file without a publish log
        con.executemany(
            "insert into audit.publish_log values (?, ?, ?, ?, ?)",
            [(run_id, ds, stamp, rel, n) for rel, n in sorted(counts.items())],
        )
        con.execute("detach build")
        con.execute("checkpoint")
    finally:
        con.close()
    return counts


def _audit(tmp: Path, expected: dict[str, int]) -> None:
    """Reopen the new file read-only: every table copied must be there with its row count."""
    con = duckdb.connect(str(tmp), read_only=True)
    try:
        found = table_counts(con)
    finally:
        con.close()
    found.pop("audit.publish_log", None)
    if found != expected:
        missing = {k: (expected.get(k), found.get(k)) for k in expected.keys() | found.keys()}
        diff = {k: v for k, v in missing.items() if v[0] != v[1]}
        raise PublishError(
            f"the new serving file {tmp} does not hold what was copied (table: expected, found): "
            f"{diff}; the serving file was left unchanged"
        )


def _swap(source: Path, serving: Path) -> None:
    """The one step readers can observe: an atomic rename over the serving file."""
    os.replace(source, serving)


def publish(settings: Settings, ds: date, run_id: str) -> PublishResult:
    """Build a new serving file from the build database, audit it and swap it in atomically."""
    serving = settings.warehouse_path
    serving.parent.mkdir(parents=True, exist_ok=True)
    with publish_lock(settings):
        for stale in _tmp_files(serving):  # left by a run killed before its swap
            stale.unlink()
        stamp = utc_now()
        slug = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)[:80]
        tmp = serving.parent / f".{serving.stem}.{slug}.tmp.duckdb"
        result = PublishResult(serving_path=serving, version_path=Path())
        try:
            result.row_counts = _write(settings, tmp, ds, run_id, stamp)
            _audit(tmp, result.row_counts)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        versions = versions_dir(settings)
        versions.mkdir(parents=True, exist_ok=True)
        version = (
            versions / f"{serving.stem}.{datetime.now(UTC):%Y%m%dT%H%M%S%f}.{ds.isoformat()}."
            f"{uuid.uuid4().hex[:6]}.duckdb"
        )
        _swap(tmp, serving)
        os.link(serving, version)  # after the swap: only files that were served become versions
        result.version_path = version
        prune_versions(settings)
    return result


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except FileNotFoundError:
        return False


def list_versions(settings: Settings) -> list[Version]:
    """Kept versions, oldest first; the one the serving file is a hard link of is current."""
    serving = settings.warehouse_path
    prefix = f"{serving.stem}."
    return [
        Version(
            path=path,
            id=path.name.removeprefix(prefix).removesuffix(".duckdb"),
            is_current=_same_file(path, serving),
        )
        for path in sorted(versions_dir(settings).glob(f"{prefix}*.duckdb"))
    ]


def prune_versions(settings: Settings) -> list[Path]:
    """Delete all but the newest ``keep_versions`` versions (never the one being served)."""
    versions = list_versions(settings)
    removed = []
    for version in versions[: max(len(versions) - settings.keep_versions, 0)]:
        if not version.is_current:
            version.path.unlink()
            removed.append(version.path)
    return removed


def rollback(settings: Settings, to: str | None = None) -> Version:
    """Serve a kept version again: ``to`` (an id or a unique part of one), else the one before
    the version being served. The swap is the same atomic rename as a publish."""
    serving = settings.warehouse_path
    with publish_lock(settings):
        versions = list_versions(settings)
        if not versions:
            raise PublishError(
                f"no kept versions in {versions_dir(settings)}: nothing to roll back to"
            )
        if to:
            matches = [v for v in versions if to in v.id]
            if len(matches) != 1:
                known = ", ".join(v.id for v in versions)
                what = "no version matches" if not matches else "several versions match"
                raise PublishError(f"{what} {to!r}; kept versions: {known}")
            target = matches[0]
        else:
            current = [i for i, v in enumerate(versions) if v.is_current]
            if current and current[0] == 0:
                raise PublishError(
                    f"the serving file is the oldest kept version ({versions[0].id}): "
                    "nothing earlier to roll back to"
                )
            target = versions[current[0] - 1] if current else versions[-1]
        tmp = serving.parent / f".{serving.stem}.rollback.tmp.duckdb"
        tmp.unlink(missing_ok=True)
        os.link(target.path, tmp)
        _swap(tmp, serving)
    return Version(path=target.path, id=target.id, is_current=True)
