"""The latest-copy tables are dropped when the dbt project changed since they were built, and only
they: the snapshot history stays."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from marketing_warehouse.config import load_settings
from marketing_warehouse.transform.incremental import (
    STATE_TABLE,
    latest_copy_models,
    project_hash,
    reset_stale,
)

LATEST_COPY = {
    "int_orders_deduplicated",
    "int_klaviyo_events_deduplicated",
    "int_product_events_deduplicated",
    "int_customer_identities",
}


@pytest.fixture
def project(dbt_manifest, tmp_path):
    """Settings on a copy of the dbt project (its files can change) with the real manifest."""
    source = load_settings()
    copy = tmp_path / "project"
    shutil.copytree(source.dbt_project_dir, copy / "dbt_project",
                    ignore=shutil.ignore_patterns("target", "dbt_packages", "logs"))  # fmt: skip
    (copy / "dbt_project" / "target").mkdir()
    shutil.copy2(dbt_manifest, copy / "dbt_project" / "target" / "manifest.json")
    return load_settings({"MWH_PROJECT_DIR": str(copy), "MWH_DATA_DIR": str(tmp_path / "data")})


def _tables(settings) -> set[str]:
    con = duckdb.connect(str(settings.build_path), read_only=True)
    try:
        return {
            f"{schema}.{table}"
            for schema, table in con.execute(
                "select schema_name, table_name from duckdb_tables() where schema_name <> 'main'"
            ).fetchall()
        }
    finally:
        con.close()


def _build_tables(settings) -> None:
    con = duckdb.connect(str(settings.build_path))
    try:
        con.execute("create schema if not exists intermediate")
        con.execute("create schema if not exists marts")
        for name in LATEST_COPY:
            con.execute(f"create or replace table intermediate.{name} as select 1 as id")
        con.execute("create or replace table marts.dim_customer_segments as select 1 as id")
    finally:
        con.close()


def test_the_latest_copy_models_are_those_of_the_post_hook(project):
    assert set(latest_copy_models(project)) == LATEST_COPY


def test_a_changed_project_drops_the_latest_copy_tables_and_keeps_the_history(project):
    assert reset_stale(project) == []  # first run: nothing built yet; the project is recorded
    _build_tables(project)
    assert reset_stale(project) == []  # same project: the tables stay
    assert _tables(project) == {f"intermediate.{m}" for m in LATEST_COPY} | {
        "marts.dim_customer_segments"
    }
    before = project_hash(project)
    macro = project.dbt_project_dir / "macros" / "latest_copy.sql"
    macro.write_text(macro.read_text("utf-8").replace("source_file desc", "source_file asc"))
    assert project_hash(project) != before
    assert sorted(reset_stale(project)) == sorted(LATEST_COPY)
    assert _tables(project) == {"marts.dim_customer_segments"}
    con = duckdb.connect(str(project.build_path), read_only=True)
    try:
        recorded = dict(con.execute(f"select model, project_hash from {STATE_TABLE}").fetchall())
    finally:
        con.close()
    assert recorded == dict.fromkeys(LATEST_COPY, project_hash(project))
    _build_tables(project)
    assert reset_stale(project) == []


def test_tables_of_a_build_from_before_any_record_are_rebuilt(project):
    project.build_path.parent.mkdir(parents=True)
    _build_tables(project)  # built by a version that recorded nothing
    assert sorted(reset_stale(project)) == sorted(LATEST_COPY)
