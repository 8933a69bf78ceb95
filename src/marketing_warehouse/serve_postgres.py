"""PostgreSQL serving target: the published DuckDB file's ``marts`` and ``audit`` in PostgreSQL.

Switched on by ``MWH_POSTGRES_DSN``. One transaction per publish: every table is created and
filled with ``COPY ... FROM STDIN`` in staging schemas (``marts__publishing``,
``audit__publishing``) while readers keep using the live ones; then every live table is locked
(``NOWAIT``, retried until no query is running on them, so new queries never queue behind a long
one), the live schemas are dropped and the staging ones renamed into their place, and the
transaction commits. A query sees the previous version or the new one, never a mix (a statement
cannot read one old and one new table: the swap waits until no statement holds an old one). Any
error rolls everything back, so PostgreSQL stays at the previous version.

Data goes DuckDB -> CSV file -> ``COPY``: DuckDB writes each table as CSV (NULL unquoted and
empty, empty strings quoted, as PostgreSQL's CSV format expects) and psycopg streams the file in
blocks; no row passes through Python objects.

The reader role (``MWH_POSTGRES_READER_ROLE``, default ``bi_reader``) is created when missing and
re-granted on every publish: CONNECT on the database, USAGE on ``marts`` and SELECT on its tables;
nothing on ``audit`` (it holds quarantined raw rows, PII included); transactions read-only by
default; and nobody but owners may create objects in ``public``.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from pathlib import Path

import duckdb

from marketing_warehouse.config import Settings
from marketing_warehouse.publish import PUBLISHED_SCHEMAS, table_counts

#: Schema whose tables the reader role may select; every other schema stays closed to it.
READER_SCHEMAS = ("marts",)
#: Longest wait for any single lock inside the publish transaction (catalog rows, the role).
LOCK_TIMEOUT = "1min"
#: How long the swap may keep trying to find the live tables free of readers before giving up.
LOCK_WAIT_SECONDS = 60.0
#: Pause between two attempts; readers run undisturbed in between.
LOCK_RETRY_SECONDS = 0.2
_COPY_BLOCK = 1 << 20
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


def publish_to_postgres(settings: Settings, source: Path | None = None) -> dict[str, int]:
    """Copy schemas ``marts`` and ``audit`` of the serving file (or ``source``) into PostgreSQL
    in one transaction; return rows per table. Raise ``PostgresPublishError`` on any failure."""
    import psycopg
    from psycopg import sql

    if not settings.postgres_dsn:
        raise PostgresPublishError("MWH_POSTGRES_DSN is not set: no PostgreSQL serving target")
    source = source or settings.warehouse_path
    duck = duckdb.connect(str(source), read_only=True)
    role = sql.Identifier(settings.postgres_reader_role)
    counts: dict[str, int] = {}
    try:
        expected = table_counts(duck)
        with (
            tempfile.TemporaryDirectory(prefix="mwh-pg-") as scratch,
            psycopg.connect(
                settings.postgres_dsn, autocommit=True, application_name="mwh-publish"
            ) as pg,
            pg.transaction(),
        ):
            pg.execute(sql.SQL("set local lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
            _ensure_reader_role(pg, settings)
            for schema in PUBLISHED_SCHEMAS:
                staging = sql.Identifier(f"{schema}__publishing")
                pg.execute(sql.SQL("drop schema if exists {} cascade").format(staging))
                pg.execute(sql.SQL("create schema {}").format(staging))
            for name in expected:
                schema, table = name.split(".")
                counts[name] = _copy_table(duck, pg, schema, table, Path(scratch))
            if counts != expected:
                raise PostgresPublishError(
                    f"row counts differ after COPY (PostgreSQL left unchanged): "
                    f"{counts} != {expected}"
                )
            _lock_live_tables(pg)
            for schema in PUBLISHED_SCHEMAS:
                live = sql.Identifier(schema)
                staging = sql.Identifier(f"{schema}__publishing")
                pg.execute(sql.SQL("drop schema if exists {} cascade").format(live))
                pg.execute(sql.SQL("alter schema {} rename to {}").format(staging, live))
                if schema in READER_SCHEMAS:
                    pg.execute(sql.SQL("grant usage on schema {} to {}").format(live, role))
                    pg.execute(
                        sql.SQL("grant select on all tables in schema {} to {}").format(live, role)
                    )
                else:
                    pg.execute(sql.SQL("revoke all on schema {} from {}").format(live, role))
    except psycopg.Error as exc:
        raise PostgresPublishError(
            f"publishing to PostgreSQL failed, the transaction was rolled back and PostgreSQL "
            f"still serves the previous version: {type(exc).__name__}: {exc}".strip()
        ) from exc
    finally:
        duck.close()
    return counts


def _lock_live_tables(pg) -> None:
    """Take every live table exclusively, without ever queueing: ``NOWAIT`` in a savepoint,
    retried until no reader is on them. Queueing would stall new readers behind a long query and
    could deadlock with a query that holds one table and wants the next."""
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
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            with pg.transaction():  # a savepoint: a failed attempt releases what it took
                pg.execute(statement)
            return
        except psycopg.errors.LockNotAvailable:
            if time.monotonic() > deadline:
                raise PostgresPublishError(
                    f"readers kept the live marts busy for {LOCK_WAIT_SECONDS:.0f} s without a "
                    "pause: the transaction was rolled back and PostgreSQL still serves the "
                    "previous version (the task's retry tries again)"
                ) from None
            time.sleep(LOCK_RETRY_SECONDS)


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


def _ensure_reader_role(pg, settings: Settings) -> None:
    """Create the reader role when missing and (re)state what it may do."""
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
    pg.execute(sql.SQL("alter role {} set default_transaction_read_only = on").format(role))
    database = sql.Identifier(pg.info.dbname)
    pg.execute(sql.SQL("grant connect on database {} to {}").format(database, role))
    pg.execute("revoke create on schema public from public")
    pg.execute(sql.SQL("revoke all on schema public from {}").format(role))


def prepare_reader(settings: Settings) -> None:
    """Create the reader role and an empty ``marts`` schema before the first publish, so a BI
    tool can be connected as the reader on a fresh stack (``mwh metabase-setup`` calls this)."""
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
