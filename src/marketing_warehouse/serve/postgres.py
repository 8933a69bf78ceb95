"""PostgreSQL serving target: the published DuckDB file's ``marts`` and ``audit`` in PostgreSQL.

Switched on by ``MWH_POSTGRES_DSN``. One transaction per publish: every table is created and
filled with ``COPY ... FROM STDIN`` in staging schemas (``marts__publishing``,
``audit__publishing``) while readers keep using the live ones; then every live table is locked
(``NOWAIT``, retried until no query is running on them, so new queries never queue behind a long
one; reader sessions idle in a transaction are ended after ``MWH_POSTGRES_IDLE_READER_GRACE``
seconds), the live schemas are dropped and the staging ones renamed into their place, and the
transaction commits. A query sees the previous version or the new one, never a mix (a statement
cannot read one old and one new table: the swap waits until no statement holds an old one). Any
error rolls everything back, so PostgreSQL stays at the previous version.

Data goes DuckDB -> CSV file -> ``COPY``: DuckDB writes each table as CSV (NULL unquoted and
empty, empty strings quoted, as PostgreSQL's CSV format expects) and psycopg streams the file in
blocks; no row passes through Python objects.

The reader role (``MWH_POSTGRES_READER_ROLE``, default ``bi_reader``) is created when missing and
re-granted on every publish: CONNECT on the database, USAGE on ``marts`` and SELECT on its tables;
nothing on ``audit`` (it holds quarantined raw rows, PII included); transactions read-only by
default; no objects of any kind: nothing in ``public``, no schemas, no temporary tables, no large
objects. What PostgreSQL 15 lets every role do to itself (``ALTER ROLE`` own password and
settings) cannot be denied; each publish puts both back.

This module loads and swaps; ``publish.publish`` decides when to commit (``PostgresTarget``),
so the DuckDB file and PostgreSQL move to a new version together or not at all.
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb

from marketing_warehouse.config import Settings
from marketing_warehouse.serve.publish import PUBLISHED_SCHEMAS, table_counts

#: Schema whose tables the reader role may select; every other schema stays closed to it.
READER_SCHEMAS = ("marts",)
#: Longest wait for any single lock inside the publish transaction (catalog rows, the role).
LOCK_TIMEOUT = "1min"
#: How long the swap may keep trying to find the live tables free of readers before giving up.
LOCK_WAIT_SECONDS = 60.0
#: Pause between two attempts; readers run undisturbed in between.
LOCK_RETRY_SECONDS = 0.2
_COPY_BLOCK = 1 << 20
#: Comment on schema ``marts`` naming the DuckDB version PostgreSQL serves.
VERSION_COMMENT = "mwh version "
log = logging.getLogger(__name__)

_SIMPLE_TYPES = {
    "BOOLEAN": "boolean",
    "TINYINT": "smallint",
    "SMALLINT": "smallint",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "UTINYINT": "smallint",
    "USMALLINT": "integer",
    "UINTEGER": "bigint",
    "UBIGINT": "numeric(20, 0)",
    "HUGEINT": "numeric(39, 0)",
    "FLOAT": "real",
    "DOUBLE": "double precision",
    "VARCHAR": "text",
    "DATE": "date",
    "TIME": "time",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP_S": "timestamp",
    "TIMESTAMP_MS": "timestamp",
    "TIMESTAMP_NS": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "INTERVAL": "interval",
    "UUID": "uuid",
}


class PostgresPublishError(RuntimeError):
    """Publishing to PostgreSQL failed; the transaction was rolled back."""


def postgres_type(duckdb_type: str) -> tuple[str, bool]:
    """The PostgreSQL column type for a DuckDB type, and whether DuckDB must cast it to text
    first (nested and other types PostgreSQL's CSV input cannot parse are served as text)."""
    if duckdb_type in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[duckdb_type], False
    decimal = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", duckdb_type)
    if decimal:
        return f"numeric({decimal.group(1)}, {decimal.group(2)})", False
    return "text", True


def _table_columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[tuple]:
    return con.execute(
        "select column_name, data_type from duckdb_columns() "
        "where schema_name = ? and table_name = ? order by column_index",
        [schema, table],
    ).fetchall()


def publish_to_postgres(
    settings: Settings, source: Path | None = None, version_id: str | None = None
) -> dict[str, int]:
    """Copy schemas ``marts`` and ``audit`` of the serving file (or ``source``) into PostgreSQL
    in one transaction and commit; return rows per table. Raise ``PostgresPublishError`` on any
    failure. (``publish.publish`` uses ``PostgresTarget`` instead, to commit with DuckDB.)"""
    target = PostgresTarget(settings)
    with target.stage(source or settings.warehouse_path, version_id or "") as commit:
        commit()
    return target.counts


def served_version(settings: Settings) -> str | None:
    """The version id PostgreSQL serves (the comment on schema ``marts``), or None."""
    import psycopg

    with psycopg.connect(settings.postgres_dsn, application_name="mwh-publish") as pg:
        row = pg.execute(
            "select obj_description(oid, 'pg_namespace') from pg_namespace where nspname = %s",
            [READER_SCHEMAS[0]],
        ).fetchone()
    return row[0].removeprefix(VERSION_COMMENT) if row and row[0] else None


class PostgresTarget:
    """PostgreSQL as a serving target published together with the DuckDB file
    (``publish.Target``): ``stage`` loads a version and swaps the schemas inside one open
    transaction, and yields its commit; the row counts copied are in ``counts`` afterwards."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.counts: dict[str, int] = {}

    @contextlib.contextmanager
    def stage(self, source: Path, version_id: str) -> Iterator[Callable[[], None]]:
        import psycopg

        if not self.settings.postgres_dsn:
            raise PostgresPublishError("MWH_POSTGRES_DSN is not set: no PostgreSQL serving target")
        try:
            pg = psycopg.connect(self.settings.postgres_dsn, application_name="mwh-publish")
        except psycopg.Error as exc:
            raise _failed(exc) from exc
        try:
            try:
                self.counts = _load_and_swap(self.settings, pg, source, version_id)
            except psycopg.Error as exc:
                raise _failed(exc) from exc

            def commit() -> None:
                try:
                    pg.commit()
                except psycopg.Error as exc:
                    raise _failed(exc) from exc

            yield commit
        finally:
            if not pg.closed:
                with contextlib.suppress(psycopg.Error):
                    pg.rollback()  # a no-op after the commit
                pg.close()


def _failed(exc: Exception) -> PostgresPublishError:
    return PostgresPublishError(
        f"publishing to PostgreSQL failed, the transaction was rolled back and PostgreSQL "
        f"still serves the previous version: {type(exc).__name__}: {exc}".strip()
    )


def _load_and_swap(settings: Settings, pg, source: Path, version_id: str) -> dict[str, int]:
    """Everything but the commit: staging schemas loaded from ``source``, live tables locked
    (idle readers ended after the grace period), live schemas replaced by the staging ones."""
    from psycopg import sql

    role = sql.Identifier(settings.postgres_reader_role)
    counts: dict[str, int] = {}
    duck = duckdb.connect(str(source), read_only=True)
    try:
        expected = table_counts(duck)
        pg.execute(sql.SQL("set local lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
        _ensure_reader_role(pg, settings)
        for schema in PUBLISHED_SCHEMAS:
            staging = sql.Identifier(f"{schema}__publishing")
            pg.execute(sql.SQL("drop schema if exists {} cascade").format(staging))
            pg.execute(sql.SQL("create schema {}").format(staging))
        with tempfile.TemporaryDirectory(prefix="mwh-pg-") as scratch:
            for name in expected:
                schema, table = name.split(".")
                counts[name] = _copy_table(duck, pg, schema, table, Path(scratch))
    finally:
        duck.close()
    if counts != expected:
        raise PostgresPublishError(
            f"row counts differ after COPY (PostgreSQL left unchanged): {counts} != {expected}"
        )
    _lock_live_tables(pg, settings)
    for schema in PUBLISHED_SCHEMAS:
        live = sql.Identifier(schema)
        staging = sql.Identifier(f"{schema}__publishing")
        pg.execute(sql.SQL("drop schema if exists {} cascade").format(live))
        pg.execute(sql.SQL("alter schema {} rename to {}").format(staging, live))
        if schema in READER_SCHEMAS:
            pg.execute(sql.SQL("grant usage on schema {} to {}").format(live, role))
            pg.execute(sql.SQL("grant select on all tables in schema {} to {}").format(live, role))
        else:
            pg.execute(sql.SQL("revoke all on schema {} from {}").format(live, role))
    pg.execute(
        sql.SQL("comment on schema {} is {}").format(
            sql.Identifier(READER_SCHEMAS[0]), sql.Literal(VERSION_COMMENT + version_id)
        )
    )
    return counts


def _lock_live_tables(pg, settings: Settings) -> None:
    """Take every live table exclusively, without ever queueing: ``NOWAIT`` in a savepoint,
    retried until no reader is on them. Queueing would stall new readers behind a long query and
    could deadlock with a query that holds one table and wants the next. A reader session idle
    in a transaction that holds a live table is ended once it has been idle for
    ``MWH_POSTGRES_IDLE_READER_GRACE`` seconds; a running query is waited for up to
    ``LOCK_WAIT_SECONDS`` after the grace period."""
    import psycopg
    from psycopg import sql

    tables = pg.execute(
        "select schemaname, tablename from pg_tables where schemaname = any(%s) order by 1, 2",
        [list(PUBLISHED_SCHEMAS)],
    ).fetchall()
    if not tables:
        return
    statement = sql.SQL("lock table {} in access exclusive mode nowait").format(
        sql.SQL(", ").join(sql.Identifier(schema, table) for schema, table in tables)
    )
    grace = settings.postgres_idle_reader_grace
    deadline = time.monotonic() + grace + LOCK_WAIT_SECONDS
    while True:
        try:
            with pg.transaction():  # a savepoint: a failed attempt releases what it took
                pg.execute(statement)
            return
        except psycopg.errors.LockNotAvailable:
            if end_idle_readers(pg, settings.postgres_reader_role, grace):
                continue
            if time.monotonic() > deadline:
                raise PostgresPublishError(
                    f"readers kept the live marts busy for {grace + LOCK_WAIT_SECONDS:.0f} s "
                    "without a pause: the transaction was rolled back and PostgreSQL still "
                    "serves the previous version (the task's retry tries again)"
                ) from None
            time.sleep(LOCK_RETRY_SECONDS)


def end_idle_readers(pg, role: str, grace: int) -> list[int]:
    """End the sessions of ``role`` that are idle in a transaction holding a lock on a live
    table and have been idle for at least ``grace`` seconds (PostgreSQL's clock); return their
    pids. Needs the publishing user to be superuser or a member of ``pg_signal_backend``."""
    idle = pg.execute(
        """
        select distinct activity.pid,
            extract(epoch from clock_timestamp() - activity.state_change)::int
        from pg_stat_activity as activity
        inner join pg_locks as held on held.pid = activity.pid
        inner join pg_class as relation on relation.oid = held.relation
        inner join pg_namespace as namespace on namespace.oid = relation.relnamespace
        where activity.usename = %s
            and activity.state in ('idle in transaction', 'idle in transaction (aborted)')
            and namespace.nspname = any(%s)
            and clock_timestamp() - activity.state_change >= make_interval(secs => %s)
        order by 1
        """,
        [role, list(PUBLISHED_SCHEMAS), grace],
    ).fetchall()
    for pid, seconds in idle:
        pg.execute("select pg_terminate_backend(%s)", [pid])
        log.warning(
            "ended PostgreSQL session pid %s of reader role %s: idle in a transaction for %s s "
            "(more than MWH_POSTGRES_IDLE_READER_GRACE=%s s) while holding the live marts",
            pid,
            role,
            seconds,
            grace,
        )
    return [pid for pid, _ in idle]


def _copy_table(duck, pg, schema: str, table: str, scratch: Path) -> int:
    from psycopg import sql

    columns = _table_columns(duck, schema, table)
    definitions, selects = [], []
    for column, duck_type in columns:
        pg_type, as_text = postgres_type(duck_type)
        definitions.append(sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(pg_type)))
        quoted = '"' + column.replace('"', '""') + '"'
        selects.append(f"cast({quoted} as varchar) as {quoted}" if as_text else quoted)
    target = sql.Identifier(f"{schema}__publishing", table)
    pg.execute(sql.SQL("create table {} ({})").format(target, sql.SQL(", ").join(definitions)))
    csv_path = scratch / f"{schema}.{table}.csv"
    duck.execute(
        f'copy (select {", ".join(selects)} from "{schema}"."{table}") '
        f"to '{csv_path}' (format csv, header false)"
    )
    names = sql.SQL(", ").join(sql.Identifier(c) for c, _ in columns)
    with (
        pg.cursor() as cur,
        cur.copy(sql.SQL("copy {} ({}) from stdin (format csv)").format(target, names)) as copy,
        csv_path.open("rb") as handle,
    ):
        while block := handle.read(_COPY_BLOCK):
            copy.write(block)
    rows = pg.execute(sql.SQL("select count(*) from {}").format(target)).fetchone()[0]
    csv_path.unlink()
    return rows


#: Functions through which any role may create a large object (a lasting object outside every
#: schema); EXECUTE on them is revoked from PUBLIC in the serving database.
LARGE_OBJECT_CREATORS = (
    "lo_creat(integer)",
    "lo_create(oid)",
    "lo_from_bytea(oid, bytea)",
    "lo_import(text)",
    "lo_import(text, oid)",
)
#: The reader role's only role-level setting; anything else it set on itself is reset.
READER_SETTINGS = ("default_transaction_read_only=on",)


def _ensure_reader_role(pg, settings: Settings) -> None:
    """Create the reader role when missing and (re)state what it may do: connect, read what is
    granted on ``marts``, nothing else. Settings it gave itself (``ALTER ROLE ... SET``) and a
    password it changed are put back on every publish; PostgreSQL 15 cannot forbid either."""
    from psycopg import sql

    name = settings.postgres_reader_role
    role = sql.Identifier(name)
    if not pg.execute("select 1 from pg_roles where rolname = %s", [name]).fetchone():
        pg.execute(sql.SQL("create role {}").format(role))
    login = (
        sql.SQL("login password {}").format(sql.Literal(settings.postgres_reader_password))
        if settings.postgres_reader_password
        else sql.SQL("nologin")
    )
    pg.execute(
        sql.SQL(
            "alter role {} with nosuperuser nocreatedb nocreaterole noreplication nobypassrls {}"
        ).format(role, login)
    )
    changed = pg.execute(
        "select setting.setdatabase <> 0, unnest(setting.setconfig) from pg_db_role_setting "
        "as setting inner join pg_roles as r on r.oid = setting.setrole where r.rolname = %s",
        [name],
    ).fetchall()
    unexpected = sorted(
        {
            value.split("=", 1)[0]
            for per_db, value in changed
            if per_db or value not in READER_SETTINGS
        }
    )
    if unexpected:
        log.warning(
            "reader role %s had given itself settings %s since the last publish: reset",
            name,
            ", ".join(unexpected),
        )
    database = sql.Identifier(pg.info.dbname)
    pg.execute(sql.SQL("alter role {} reset all").format(role))
    pg.execute(sql.SQL("alter role {} in database {} reset all").format(role, database))
    pg.execute(sql.SQL("alter role {} set default_transaction_read_only = on").format(role))
    pg.execute(sql.SQL("grant connect on database {} to {}").format(database, role))
    pg.execute(sql.SQL("revoke create, temporary on database {} from public").format(database))
    pg.execute(sql.SQL("revoke create, temporary on database {} from {}").format(database, role))
    pg.execute("revoke create on schema public from public")
    pg.execute(sql.SQL("revoke all on schema public from {}").format(role))
    pg.execute(
        sql.SQL("revoke execute on function {} from public").format(
            sql.SQL(", ").join(sql.SQL(f) for f in LARGE_OBJECT_CREATORS)
        )
    )
    still = [
        function
        for function in LARGE_OBJECT_CREATORS
        if pg.execute(
            "select has_function_privilege(%s, %s, 'execute')", [name, function]
        ).fetchone()[0]
    ]
    if still:  # the publishing user is not a superuser: it cannot revoke on pg_catalog
        log.warning(
            "reader role %s can still create large objects through %s: as a superuser run "
            "`revoke execute on function %s from public` in database %s",
            name,
            ", ".join(still),
            ", ".join(still),
            pg.info.dbname,
        )


def prepare_reader(settings: Settings) -> None:
    """Create the reader role and an empty ``marts`` schema before the first publish, so a BI
    tool can be connected as the reader on a fresh stack (``mwh bi import --postgres`` calls this)."""
    import psycopg
    from psycopg import sql

    if not settings.postgres_dsn:
        raise PostgresPublishError("MWH_POSTGRES_DSN is not set: no PostgreSQL serving target")
    role = sql.Identifier(settings.postgres_reader_role)
    with psycopg.connect(settings.postgres_dsn, application_name="mwh-prepare") as pg:
        _ensure_reader_role(pg, settings)
        for schema in PUBLISHED_SCHEMAS:
            pg.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
        for schema in READER_SCHEMAS:
            live = sql.Identifier(schema)
            pg.execute(sql.SQL("grant usage on schema {} to {}").format(live, role))
            pg.execute(sql.SQL("grant select on all tables in schema {} to {}").format(live, role))
