"""PostgreSQL serving target on a real, throwaway PostgreSQL server."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import duckdb
import psycopg
import pytest
from conftest import make_build_db

from marketing_warehouse import pipeline, serve_postgres
from marketing_warehouse.config import load_settings
from marketing_warehouse.publish import publish
from marketing_warehouse.serve_postgres import PostgresPublishError, publish_to_postgres

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
        ):
            with pytest.raises(psycopg.Error) as failure:
                con.execute(statement)
            assert isinstance(
                failure.value,
                psycopg.errors.InsufficientPrivilege | psycopg.errors.ReadOnlySqlTransaction,
            ), statement
            con.rollback()


def test_a_failed_publish_leaves_the_previous_version(settings, postgres_cluster):
    make_build_db(settings, 1)
    publish(settings, date(2026, 11, 21), "run_1")
    publish_to_postgres(settings)

    # The next build has a text value PostgreSQL cannot store (a NUL byte from a broken export):
    # COPY fails on the last table, after the others were loaded; everything rolls back.
    make_build_db(settings, 2)
    con = duckdb.connect(str(settings.build_path))
    con.execute("create table marts.zz_notes as select 'a' || chr(0) || 'b' as note")
    con.close()
    with pytest.raises(PostgresPublishError, match="previous version") as failure:
        pipeline.publish("2026-11-22", "run_2", settings)
    assert "zz_notes" in str(failure.value) or "0x00" in str(failure.value)
    with reader(postgres_cluster) as con:
        assert served_orders(con) == [(1,)]
    with psycopg.connect(postgres_cluster.dsn()) as con:
        schemas = con.execute(
            "select nspname from pg_namespace where nspname ~ '^(marts|audit)' order by 1"
        ).fetchall()
    assert schemas == [("audit",), ("marts",)]

    # with the bad row gone the retry goes through
    make_build_db(settings, 2)
    publish(settings, date(2026, 11, 22), "run_2_retry")
    pipeline.publish_postgres(settings)
    with reader(postgres_cluster) as con:
        assert served_orders(con) == [(2,)]


def test_a_long_running_reader_is_never_broken_nor_queued_behind(
    settings, postgres_cluster, monkeypatch
):
    make_build_db(settings, 1)
    publish(settings, date(2026, 11, 21), "run_1")
    publish_to_postgres(settings)
    make_build_db(settings, 2)
    publish(settings, date(2026, 11, 22), "run_2")
    monkeypatch.setattr(serve_postgres, "LOCK_WAIT_SECONDS", 3.0)
    outcome: list = []

    def publish_in_background():
        try:
            outcome.append(publish_to_postgres(settings))
        except PostgresPublishError as failure:
            outcome.append(failure)

    with reader(postgres_cluster) as long_query:
        assert served_orders(long_query) == [(1,)]  # a transaction that holds its tables
        worker = threading.Thread(target=publish_in_background)
        worker.start()
        time.sleep(1)
        # while the publish waits for a pause, other readers are not queued behind it
        with reader(postgres_cluster) as fresh:
            started = time.monotonic()
            assert served_orders(fresh) == [(1,)]
            assert time.monotonic() - started < 1
        worker.join(timeout=60)
        assert served_orders(long_query) == [(1,)]  # never broken
    (failure,) = outcome
    assert isinstance(failure, PostgresPublishError)
    assert "still serves the previous version" in str(failure)

    # once the long query is over, the retry goes through
    publish_to_postgres(settings)
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
