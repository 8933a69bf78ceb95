"""PostgreSQL serving target on a real, throwaway PostgreSQL server."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import date
from pathlib import Path

import duckdb
import psycopg
import pytest
from conftest import make_build_db

from marketing_warehouse import pipeline
from marketing_warehouse.config import load_settings
from marketing_warehouse.serve import postgres as serve_postgres
from marketing_warehouse.serve.postgres import PostgresPublishError, publish_to_postgres
from marketing_warehouse.serve.publish import list_versions, publish

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path, postgres_cluster):
    settings = load_settings(
        {
            "MWH_DATA_DIR": str(tmp_path / "data"),
            **postgres_cluster.serving_env(),
        }
    )
    yield settings
    with psycopg.connect(postgres_cluster.dsn(), autocommit=True) as con:
        con.execute("drop schema if exists marts cascade")
        con.execute("drop schema if exists audit cascade")


def reader(cluster):
    return psycopg.connect(cluster.reader_dsn())


def served_orders(con) -> list[tuple]:
    return con.execute("select distinct orders from marts.kpi_daily").fetchall()


def test_publish_writes_marts_and_audit_with_types_and_nulls(settings, postgres_cluster):
    make_build_db(settings, 1)
    publish(settings, date(2026, 11, 21), "run_1")
    counts = publish_to_postgres(settings)
    assert counts["marts.fct_orders"] == 5 and counts["audit.quarantine"] == 1
    with psycopg.connect(postgres_cluster.dsn()) as con:
        tables = con.execute(
            "select table_schema || '.' || table_name from information_schema.tables "
            "where table_schema in ('marts', 'audit', 'staging') order by 1"
        ).fetchall()
        assert [t[0] for t in tables] == sorted(counts)
        types = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'marts' and table_name = 'fct_orders'"
            ).fetchall()
        )
        assert types["order_date"] == "date"
        assert types["created_at"] == "timestamp without time zone"
        assert types["total_amount_reporting"] == "numeric"
        assert types["is_revenue_order"] == "boolean"
        emails = con.execute(
            "select count(*) filter (where email is null), count(*) filter (where discount_code = '')"
            " from marts.fct_orders"
        ).fetchone()
        assert emails == (2, 5)  # NULL stays NULL, the empty string stays an empty string
        assert not con.execute(
            "select nspname from pg_namespace where nspname like '%%__p%%'"
        ).fetchall()


def test_reader_role_reads_marts_only_and_cannot_write(settings, postgres_cluster):
    make_build_db(settings, 1)
    publish(settings, date(2026, 11, 21), "run_1")
    publish_to_postgres(settings)
    with reader(postgres_cluster) as con:
        assert served_orders(con) == [(1,)]
        con.rollback()
        for statement in (
            "select * from audit.quarantine",
            "select * from audit.validation_results",
            "insert into marts.kpi_daily (date) values ('2030-01-01')",
            "delete from marts.fct_orders",
            "create table marts.mine (id int)",
            "create table public.mine (id int)",
            "set transaction read write; create table public.mine (id int)",
            "drop table marts.kpi_daily",
            # no lasting objects of any kind, read-write transaction or not
            "set transaction read write; create schema mine",
            "set transaction read write; create temporary table mine (id int)",
            "set transaction read write; select lo_create(0)",
            "set transaction read write; select lo_creat(-1)",
            "set transaction read write; select lo_from_bytea(0, 'x')",
            "set transaction read write; select lo_import('/etc/hostname')",
        ):
            with pytest.raises(psycopg.Error) as failure:
                con.execute(statement)
            assert isinstance(
                failure.value,
                psycopg.errors.InsufficientPrivilege | psycopg.errors.ReadOnlySqlTransaction,
            ), statement
            con.rollback()


def served_duckdb_orders(settings) -> int:
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        (value,) = con.execute("select distinct orders from marts.kpi_daily").fetchall()
    finally:
        con.close()
    return value[0]


def current_version(settings) -> str:
    (current,) = [v.id for v in list_versions(settings) if v.is_current]
    return current


def add_nul_table(settings) -> None:
    """A text value PostgreSQL cannot store (a NUL byte from a broken export), written into the
    build file directly: COPY fails on this last table, after the others were loaded."""
    con = duckdb.connect(str(settings.build_path))
    con.execute("create table marts.zz_notes as select 'a' || chr(0) || 'b' as note")
    con.close()


def test_a_postgres_failure_leaves_both_targets_on_the_previous_version(tmp_path, postgres_cluster):
    settings = load_settings(
        {
            "MWH_DATA_DIR": str(tmp_path / "data"),
            "MWH_KEEP_VERSIONS": "2",
            **postgres_cluster.serving_env(),
        }
    )
    make_build_db(settings, 1)
    pipeline.publish("2026-11-21", "run_1", settings)
    matching = current_version(settings)

    # every attempt of the next run fails on PostgreSQL (the task and its retries): DuckDB never
    # moves, no version is added, the one PostgreSQL holds stays kept
    make_build_db(settings, 2)
    add_nul_table(settings)
    for attempt in range(3):
        with pytest.raises(PostgresPublishError, match="previous version") as failure:
            pipeline.publish("2026-11-22", "run_2", settings)
        assert "0x00" in str(failure.value), attempt
        assert served_duckdb_orders(settings) == 1
        assert [v.id for v in list_versions(settings)] == [matching]
        with reader(postgres_cluster) as con:
            assert served_orders(con) == [(1,)]
        assert serve_postgres.served_version(settings) == matching
    assert not list(settings.warehouse_path.parent.glob(".warehouse.*.tmp.duckdb*"))
    with psycopg.connect(postgres_cluster.dsn()) as con:
        schemas = con.execute(
            "select nspname from pg_namespace where nspname ~ '^(marts|audit)' order by 1"
        ).fetchall()
    assert schemas == [("audit",), ("marts",)]

    # with the bad row gone the same run's next attempt moves both, as one version
    make_build_db(settings, 2)
    pipeline.publish("2026-11-22", "run_2", settings)
    assert served_duckdb_orders(settings) == 2
    assert len(list_versions(settings)) == 2
    assert serve_postgres.served_version(settings) == current_version(settings) != matching
    with reader(postgres_cluster) as con:
        assert served_orders(con) == [(2,)]


def test_what_the_reader_changes_on_itself_is_put_back_by_the_next_publish(
    settings, postgres_cluster, caplog
):
    """PostgreSQL 15 lets every role ALTER ROLE itself (PASSWORD, SET) and offers no way to deny
    it (event triggers do not fire for roles): the publish puts both back."""
    make_build_db(settings, 1)
    pipeline.publish("2026-11-21", "run_1", settings)
    with reader(postgres_cluster) as con:
        con.autocommit = True
        con.execute("set default_transaction_read_only = off")  # its own session: allowed
        con.execute("alter role bi_reader set work_mem = '2GB'")
        con.execute("alter role bi_reader set default_transaction_read_only = off")
        con.execute("alter role bi_reader password 'chosen-by-the-reader'")
    changed = postgres_cluster.dsn("bi_reader", "chosen-by-the-reader")
    with psycopg.connect(changed) as con:  # the change itself cannot be refused
        assert con.execute("show work_mem").fetchone() == ("2GB",)

    make_build_db(settings, 2)
    with caplog.at_level("WARNING", logger="marketing_warehouse.serve.postgres"):
        pipeline.publish("2026-11-22", "run_2", settings)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(changed)
    with reader(postgres_cluster) as con:
        assert con.execute("show work_mem").fetchone() == ("4MB",)
        assert con.execute("show default_transaction_read_only").fetchone() == ("on",)
    (line,) = [r.getMessage() for r in caplog.records if "had given itself settings" in r.message]
    assert "work_mem" in line and "2GB" not in line


def test_a_failed_commit_swaps_the_previous_duckdb_file_back(settings, postgres_cluster):
    make_build_db(settings, 1)
    pipeline.publish("2026-11-21", "run_1", settings)
    matching = current_version(settings)

    @contextlib.contextmanager
    def connection_lost_before_commit(source, version_id):
        """PostgreSQL loads and swaps for real; its session is then ended by the server before
        the commit (as a restart or a failover would), after DuckDB was swapped."""
        with serve_postgres.PostgresTarget(settings).stage(source, version_id) as commit:

            def commit_on_a_lost_connection():
                assert served_duckdb_orders(settings) == 2  # DuckDB is already swapped
                with psycopg.connect(postgres_cluster.dsn(), autocommit=True) as admin:
                    admin.execute(
                        "select pg_terminate_backend(pid) from pg_stat_activity "
                        "where application_name = 'mwh-publish'"
                    )
                commit()

            yield commit_on_a_lost_connection

    make_build_db(settings, 2)
    with pytest.raises(PostgresPublishError, match="previous version"):
        publish(settings, date(2026, 11, 22), "run_2", target=connection_lost_before_commit)
    assert served_duckdb_orders(settings) == 1
    assert [v.id for v in list_versions(settings)] == [matching]
    assert current_version(settings) == matching
    assert serve_postgres.served_version(settings) == matching
    with reader(postgres_cluster) as con:
        assert served_orders(con) == [(1,)]


def test_a_long_running_query_is_never_broken_nor_queued_behind(
    settings, postgres_cluster, monkeypatch
):
    make_build_db(settings, 1)
    publish(settings, date(2026, 11, 21), "run_1")
    publish_to_postgres(settings)
    make_build_db(settings, 2)
    publish(settings, date(2026, 11, 22), "run_2")
    monkeypatch.setattr(serve_postgres, "LOCK_WAIT_SECONDS", 3.0)
    settings = dataclasses.replace(settings, postgres_idle_reader_grace=1)
    query_result: list = []

    def long_query():  # a running statement, not an idle session: never ended by the publish
        with reader(postgres_cluster) as con:
            query_result.append(
                con.execute(
                    "select max(orders), pg_sleep(8)::text from marts.kpi_daily"
                ).fetchone()[0]
            )

    worker = threading.Thread(target=long_query)
    worker.start()
    time.sleep(1)
    started = time.monotonic()
    with pytest.raises(PostgresPublishError, match="still serves the previous version"):
        publish_to_postgres(settings)
    assert time.monotonic() - started >= 3.5  # the grace period, then LOCK_WAIT_SECONDS
    # while the publish waited, other readers were not queued behind it
    with reader(postgres_cluster) as fresh:
        assert served_orders(fresh) == [(1,)]
    worker.join(timeout=60)
    assert query_result == [1]  # never broken

    # once the long query is over, the retry goes through
    publish_to_postgres(settings)
    with reader(postgres_cluster) as con:
        assert served_orders(con) == [(2,)]


def test_a_reader_idle_in_a_transaction_is_ended_after_the_grace_period(
    tmp_path, postgres_cluster, monkeypatch, caplog
):
    settings = load_settings(
        {
            "MWH_DATA_DIR": str(tmp_path / "data"),
            "MWH_POSTGRES_IDLE_READER_GRACE": "3",
            **postgres_cluster.serving_env(),
        }
    )
    make_build_db(settings, 1)
    pipeline.publish("2026-11-21", "run_1", settings)
    monkeypatch.setattr(serve_postgres, "LOCK_WAIT_SECONDS", 10.0)
    make_build_db(settings, 2)
    with reader(postgres_cluster) as forgotten:
        # a BI session that read a mart and then sat idle in its transaction
        assert served_orders(forgotten) == [(1,)]
        started = time.monotonic()  # its idle time starts with the next statement
        (pid,) = forgotten.execute("select pg_backend_pid()").fetchone()
        with caplog.at_level("WARNING", logger="marketing_warehouse.serve.postgres"):
            pipeline.publish("2026-11-22", "run_2", settings)
        assert time.monotonic() - started >= 3  # not before the grace period
        with pytest.raises(psycopg.OperationalError):
            forgotten.execute("select 1")
    (line,) = [r.getMessage() for r in caplog.records if "idle in a transaction" in r.message]
    assert f"pid {pid} of reader role bi_reader" in line
    assert served_duckdb_orders(settings) == 2
    with reader(postgres_cluster) as con:
        assert served_orders(con) == [(2,)]


def test_readers_see_the_old_or_the_new_version_never_a_mix(settings, postgres_cluster):
    make_build_db(settings, 1)
    publish(settings, date(2026, 11, 21), "run_1")
    publish_to_postgres(settings)
    make_build_db(settings, 2)
    publish(settings, date(2026, 11, 22), "run_2")
    seen: list[tuple] = []
    stop = threading.Event()

    def poll():
        with reader(postgres_cluster) as con:
            con.autocommit = True
            while not stop.is_set():
                seen.append(
                    con.execute(
                        "select (select max(orders) from marts.kpi_daily), "
                        "(select count(*) from marts.fct_orders)"
                    ).fetchone()
                )

    thread = threading.Thread(target=poll)
    thread.start()
    try:
        publish_to_postgres(settings)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert set(seen) <= {(1, 5), (2, 10)}, set(seen)
    with reader(postgres_cluster) as con:
        assert served_orders(con) == [(2,)]


def test_rollback_serves_the_earlier_version_on_postgres_too(settings, postgres_cluster):
    for version in (1, 2):
        make_build_db(settings, version)
        publish(settings, date(2026, 11, 20 + version), f"run_{version}")
        publish_to_postgres(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MWH_")} | {
        "MWH_DATA_DIR": str(settings.data_dir),
        **postgres_cluster.serving_env(),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mwh"), "rollback"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "PostgreSQL schemas marts and audit now hold version" in done.stdout
    with reader(postgres_cluster) as con:
        assert served_orders(con) == [(1,)]


def test_the_version_postgres_holds_is_never_pruned(tmp_path, postgres_cluster):
    env = {"MWH_DATA_DIR": str(tmp_path / "data"), "MWH_KEEP_VERSIONS": "2"}
    settings = load_settings(env | postgres_cluster.serving_env())
    make_build_db(settings, 1)
    pipeline.publish("2026-11-21", "run_1", settings)
    held = current_version(settings)
    duckdb_only = load_settings(env)  # PostgreSQL switched off for a while
    for version in (2, 3, 4):
        make_build_db(duckdb_only, version)
        publish(duckdb_only, date(2026, 11, 20 + version), f"run_{version}")
    kept = [v.id for v in list_versions(settings)]
    assert len(kept) == 3 and kept[0] == held  # the newest two, and the one PostgreSQL holds
    assert serve_postgres.served_version(settings) == held


KILLED_BEFORE_COMMIT = textwrap.dedent(
    """
    import contextlib, os, signal
    from datetime import date
    from marketing_warehouse.serve import publish, postgres as serve_postgres
    from marketing_warehouse.config import load_settings

    settings = load_settings()

    @contextlib.contextmanager
    def dies_before_commit(source, version_id):
        with serve_postgres.PostgresTarget(settings).stage(source, version_id):
            def die():  # the process dies after the DuckDB swap, before PostgreSQL commits
                print("killing before commit", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            yield die

    publish.publish(settings, date(2026, 11, 22), "run_2", target=dies_before_commit)
    """
)


def test_a_publish_killed_before_the_commit_is_repaired_by_its_retry(settings, postgres_cluster):
    make_build_db(settings, 1)
    pipeline.publish("2026-11-21", "run_1", settings)
    first = current_version(settings)
    make_build_db(settings, 2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MWH_")} | {
        "MWH_DATA_DIR": str(settings.data_dir),
        **postgres_cluster.serving_env(),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
    }
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_BEFORE_COMMIT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr
    assert "killing before commit" in killed.stdout
    # the one window left: DuckDB was swapped, PostgreSQL rolled back with the lost session
    assert served_duckdb_orders(settings) == 2
    assert serve_postgres.served_version(settings) == first
    assert [v.id for v in list_versions(settings)] == [first]  # no version for a half publish

    # the task's retry (same run) publishes both, as one version
    pipeline.publish("2026-11-22", "run_2", settings)
    versions = list_versions(settings)
    assert versions[0].id == first and len(versions) == 2
    assert serve_postgres.served_version(settings) == current_version(settings) != first
    with reader(postgres_cluster) as con:
        assert served_orders(con) == [(2,)]
