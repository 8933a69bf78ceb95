"""After an erasure no byte under the data folder and no row in PostgreSQL holds the person."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import duckdb
import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
from test_erasure import ALICE, BOB, build_warehouses, everything, land, load_all

from marketing_warehouse.config import load_settings
from marketing_warehouse.ops.erasure import erase
from marketing_warehouse.serve.postgres import publish_to_postgres

pytestmark = pytest.mark.integration


def traces(settings, values: list[str]) -> list[str]:
    """Files whose raw bytes (zip members unpacked) hold one of ``values``, in any case."""
    found = []
    for path in sorted(p for p in settings.data_dir.rglob("*") if p.is_file()):
        blobs = [path.read_bytes()]
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                blobs += [archive.read(n) for n in archive.namelist()]
        for blob in blobs:
            lowered = blob.lower()
            for value in values:
                if any(value.lower().encode(e) in lowered for e in ("utf-8", "utf-16-le")):
                    found.append(f"{path.relative_to(settings.data_dir)}: {value[:3]}…")
    return found


def postgres_traces(dsn: str, values: list[str]) -> int:
    with psycopg.connect(dsn) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in ('marts', 'audit')"
        ).fetchall()
        hits = 0
        for schema, table in tables:
            for value in values:
                hits += con.execute(
                    f'select count(*) from "{schema}"."{table}" t where t::text ilike %s',
                    [f"%{value}%"],
                ).fetchone()[0]
    return hits


def test_no_trace_in_any_file_or_in_postgresql_also_after_the_next_run(tmp_path, postgres_cluster):
    settings = load_settings(
        {"MWH_DATA_DIR": str(tmp_path / "data"), **postgres_cluster.serving_env()}
    )
    land(settings)
    load_all(settings, "2026-11-20")
    load_all(settings, "2026-11-21")
    build_warehouses(settings)
    # dbt rebuilds tables every run: the blocks of the dropped copy are free, not zeroed
    con = duckdb.connect(str(settings.build_path))
    con.execute(f"create table marts.dim_customers__dbt_backup as select '{ALICE}' as email")
    con.execute("checkpoint")
    con.execute("drop table marts.dim_customers__dbt_backup")
    con.execute("checkpoint")
    con.close()
    # reports, GX docs and logs the runs wrote, as they write them
    run = settings.layout.run("2026-11-21")
    run.root.mkdir(parents=True)
    run.report.write_text(f"<td>{ALICE.replace('@', '&#64;')}</td><td>{BOB}</td>")
    (settings.data_dir / "gx").mkdir()
    (settings.data_dir / "gx" / "index.html").write_text(f'{{"partial": ["{ALICE.upper()}"]}}')
    publish_to_postgres(settings)
    assert postgres_traces(postgres_cluster.dsn(), [ALICE]) > 0
    assert traces(settings, [ALICE])

    result = erase(settings, email=ALICE)
    assert result.postgres_tables > 0
    assert traces(settings, [ALICE]) == []
    assert postgres_traces(postgres_cluster.dsn(), [ALICE]) == 0
    assert postgres_traces(postgres_cluster.dsn(), [BOB]) > 0
    assert BOB in run.report.read_text()

    load_all(settings, "2026-11-21")  # the next runs: the rewritten files do not bring her back
    load_all(settings, "2026-11-22")
    assert traces(settings, [ALICE]) == [] and ALICE not in everything(settings)
    with psycopg.connect(postgres_cluster.dsn(), autocommit=True) as con:
        con.execute("drop schema if exists marts cascade")
        con.execute("drop schema if exists audit cascade")
