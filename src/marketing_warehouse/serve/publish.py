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

Versions are named ``<sequence>.<logical date>.<run hash>``: the sequence number orders them, never
the wall clock, so a clock set back cannot reorder them; a run publishing again (a retry) replaces
its own version. The last ``MWH_KEEP_VERSIONS`` versions are kept, plus the one being served and the
one PostgreSQL holds; ``rollback`` swaps one of them back in the same way. Publish and rollback take
an exclusive lock on ``<warehouse dir>/.publish.lock`` so they never interleave.

With a second serving target (PostgreSQL, ``Target``) both move as one unit: the target is loaded
and swapped inside its open transaction, then the file is renamed, then the target commits; a
failure before the commit leaves the file untouched, a failed commit renames the previous file back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb

from marketing_warehouse import duck
from marketing_warehouse.config import Settings
from marketing_warehouse.ingest.extract import utc_now
from marketing_warehouse.layout import exclusive_lock
from marketing_warehouse.quality.gates import RESULT_COLUMNS

#: Schemas copied to the serving file; nothing else (staging, intermediate) is visible to BI tools.
PUBLISHED_SCHEMAS = ("marts", "audit")
#: Marts emitted as Airflow Assets by the publish task (kept in step with models/marts by a test).
PUBLISHED_MARTS = (
    "audience_members",
    "clv_model_parameters",
    "customer_predictions",
    "dim_customer_identity_map",
    "dim_customer_segments",
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
    """One kept version of the serving file; ``id`` is what ``mwh rollback --to`` accepts.

    ``sequence`` orders versions (0 for files named before versions had one); ``run`` is a short
    hash of the run id that published it."""

    path: Path
    id: str
    is_current: bool
    sequence: int = 0
    run: str = ""


#: A second serving target published as one unit with the DuckDB file: called with the new file
#: and its version id, it loads everything and yields a ``commit`` callable; leaving the context
#: without calling it (or by an exception) rolls the target back. See ``serve_postgres``.
Target = Callable[[Path, str], AbstractContextManager[Callable[[], None]]]

#: A version id: sequence number, logical date, hash of the run id.
_VERSION_ID = re.compile(r"^(\d{6,})\.(\d{4}-\d{2}-\d{2})\.([0-9a-f]{8})$")


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _safe(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"unexpected relation name {name!r}")
    return name


def pinned_version(settings: Settings) -> str | None:
    """Id of the version the other serving target (PostgreSQL) was last committed with."""
    try:
        return settings.layout.pinned_version.read_text("utf-8").strip() or None
    except FileNotFoundError:
        return None


def pin_version(settings: Settings, version_id: str) -> None:
    """Record that the other serving target now holds ``version_id`` (never pruned)."""
    path = settings.layout.pinned_version
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(version_id + "\n", "utf-8")
    os.replace(tmp, path)


def run_tag(run_id: str) -> str:
    """The part of a version id that names its run: one version per run, retries included."""
    return hashlib.sha256(run_id.encode()).hexdigest()[:8]


def publish_lock(settings: Settings) -> contextlib.AbstractContextManager[None]:
    """Exclusive lock held while the serving file or its versions change."""
    return exclusive_lock(settings.layout.publish_lock)


def runs_that_published(settings: Settings, ds: str) -> list[str]:
    """Run ids that published logical date ``ds`` to the serving file, oldest first
    (``audit.publish_log``); none before the first publish."""
    if not settings.warehouse_path.exists():
        return []
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        rows = con.execute(
            "select run_id, min(published_at) from audit.publish_log "
            "where logical_date = cast(? as date) group by run_id order by 2, 1",
            [ds],
        ).fetchall()
    finally:
        con.close()
    return [row[0] for row in rows]


def _tmp_files(serving: Path) -> list[Path]:
    return sorted(serving.parent.glob(f".{serving.stem}.*.tmp.duckdb*"))


def table_counts(con: duckdb.DuckDBPyConnection, database: str | None = None) -> dict[str, int]:
    """Row count of every table in the published schemas of ``database`` (default: current),
    and of every view there that is a Spark table (``transform.spark_catalog``)."""
    from marketing_warehouse.transform.spark_catalog import PUBLISHED

    where = f"database_name = {_sql_literal(database)} and " if database else ""
    where += f"schema_name in ({', '.join(_sql_literal(s) for s in PUBLISHED_SCHEMAS)})"
    tables = con.execute(
        f"select schema_name, table_name from duckdb_tables() where {where} union all "
        f"select schema_name, view_name from duckdb_views() where {where} "
        f"and comment = {_sql_literal(PUBLISHED)} order by 1, 2"
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
        files = settings.layout.all_gate_results()
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


def publish(
    settings: Settings,
    ds: date,
    run_id: str,
    *,
    now: datetime | None = None,
    target: Target | None = None,
) -> PublishResult:
    """Build a new serving file from the build database, audit it and swap it in atomically.

    With ``target`` (PostgreSQL) both move as one unit: the target is loaded from the new file
    first, then the file is swapped in, then the target commits; if the target fails before its
    commit the DuckDB file was never swapped, if its commit fails the previous file is swapped
    back. Versions are numbered by a sequence, not by ``now`` (the wall clock, which only goes
    into ``audit.publish_log``); a run that publishes again (a retry) replaces its own version
    instead of adding one.
    """
    serving = settings.warehouse_path
    serving.parent.mkdir(parents=True, exist_ok=True)
    with publish_lock(settings):
        for stale in _tmp_files(serving):  # left by a run killed before its swap
            stale.unlink()
        stamp = now or utc_now()
        slug = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)[:80]
        tmp = serving.parent / f".{serving.stem}.{slug}.tmp.duckdb"
        result = PublishResult(serving_path=serving, version_path=Path())
        try:
            result.row_counts = _write(settings, tmp, ds, run_id, stamp)
            _audit(tmp, result.row_counts)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        kept = list_versions(settings)
        tag = run_tag(run_id)
        sequence = max((v.sequence for v in kept), default=0) + 1
        version_id = f"{sequence:06d}.{ds.isoformat()}.{tag}"
        version = settings.layout.version_file(version_id)
        try:
            _swap_in(settings, tmp, version_id, target)
        finally:
            tmp.unlink(missing_ok=True)
        _keep_version(serving, version)
        for earlier in kept:  # an earlier attempt of this run: replaced, not kept beside it
            if earlier.run == tag and earlier.id != pinned_version(settings):
                earlier.path.unlink(missing_ok=True)
        result.version_path = version
        prune_versions(settings)
    return result


def _keep_version(serving: Path, version: Path) -> None:
    """Hard-link the serving file into ``versions/`` (after the swap: only files that were
    served become versions)."""
    version.parent.mkdir(parents=True, exist_ok=True)
    tmp = version.with_name(f".{version.name}.tmp")
    tmp.unlink(missing_ok=True)
    os.link(serving, tmp)
    os.replace(tmp, version)


def _swap_in(settings: Settings, source: Path, version_id: str, target: Target | None) -> None:
    """Swap ``source`` in as the serving file, together with ``target`` when given (see
    ``publish``). ``source`` is consumed on success."""
    serving = settings.warehouse_path
    with target(source, version_id) if target else contextlib.nullcontext() as commit:
        previous = serving.parent / f".{serving.stem}.previous.tmp.duckdb"
        previous.unlink(missing_ok=True)
        if serving.exists():
            os.link(serving, previous)
        _swap(source, serving)
        try:
            if commit is not None:
                commit()
        except BaseException:
            if previous.exists():  # the target did not commit: DuckDB goes back as well
                os.replace(previous, serving)
            else:
                serving.unlink(missing_ok=True)
            raise
        previous.unlink(missing_ok=True)
    if target is not None:
        pin_version(settings, version_id)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except FileNotFoundError:
        return False


def list_versions(settings: Settings) -> list[Version]:
    """Kept versions, oldest first by sequence number (files named before versions had one come
    first, by name); the one the serving file is a hard link of is current."""
    serving = settings.warehouse_path
    found = []
    for version_id, path in settings.layout.version_files().items():
        match = _VERSION_ID.match(version_id)
        found.append(
            Version(
                path=path,
                id=version_id,
                is_current=_same_file(path, serving),
                sequence=int(match.group(1)) if match else 0,
                run=match.group(3) if match else "",
            )
        )
    return sorted(found, key=lambda v: (v.sequence, v.id))


def prune_versions(settings: Settings) -> list[Path]:
    """Delete all but the newest ``keep_versions`` versions; never the one being served nor the
    one the other serving target holds (``pinned_version``)."""
    versions = list_versions(settings)
    pinned = pinned_version(settings)
    removed = []
    for version in versions[: max(len(versions) - settings.keep_versions, 0)]:
        if not version.is_current and version.id != pinned:
            version.path.unlink()
            removed.append(version.path)
    return removed


def rollback(settings: Settings, to: str | None = None, *, target: Target | None = None) -> Version:
    """Serve a kept version again: ``to`` (an id or a unique part of one), else the one before
    the version being served. The swap is the same atomic rename as a publish, and with
    ``target`` the same unit: both targets move to the version or neither does."""
    serving = settings.warehouse_path
    with publish_lock(settings):
        versions = list_versions(settings)
        if not versions:
            raise PublishError(
                f"no kept versions in {settings.layout.versions}: nothing to roll back to"
            )
        if to:
            matches = [v for v in versions if to in v.id]
            if len(matches) != 1:
                known = ", ".join(v.id for v in versions)
                what = "no version matches" if not matches else "several versions match"
                raise PublishError(f"{what} {to!r}; kept versions: {known}")
            chosen = matches[0]
        else:
            current = [i for i, v in enumerate(versions) if v.is_current]
            if current and current[0] == 0:
                raise PublishError(
                    f"the serving file is the oldest kept version ({versions[0].id}): "
                    "nothing earlier to roll back to"
                )
            chosen = versions[current[0] - 1] if current else versions[-1]
        tmp = serving.parent / f".{serving.stem}.rollback.tmp.duckdb"
        tmp.unlink(missing_ok=True)
        os.link(chosen.path, tmp)
        try:
            _swap_in(settings, tmp, chosen.id, target)
        finally:
            tmp.unlink(missing_ok=True)
    return dataclasses.replace(chosen, is_current=True)
