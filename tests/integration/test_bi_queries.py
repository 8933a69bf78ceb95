"""The BI query pack, run as a dashboard would: DuckDB opened read-only, PostgreSQL as the
read-only reader role. Queries whose marts are not built yet are skipped and listed."""

from __future__ import annotations

from datetime import date

import duckdb
import psycopg
import pytest

from marketing_warehouse.config import load_settings
from marketing_warehouse.quality.gates import Check, GateResult, write_results
from marketing_warehouse.serve.postgres import publish_to_postgres
from marketing_warehouse.serve.publish import publish
from marketing_warehouse.serve.query_pack import load_queries

pytestmark = pytest.mark.integration
QUERIES = load_queries()


@pytest.fixture(scope="module")
def served(at_risk_built, tmp_path_factory, postgres_cluster):
    """Both serving targets published from the real dbt build (plus one gate's results)."""
    import dataclasses

    root = tmp_path_factory.mktemp("bi")
    served = load_settings({"MWH_DATA_DIR": str(root / "data"), **postgres_cluster.serving_env()})
    settings = dataclasses.replace(served, build_path=at_risk_built.build_path)
    checks = [
        Check("marts/kpi_daily", "expect_column_values_to_be_between", "revenue", "critical",
              True, "", 120, 0, ""),
        Check("marts/kpi_daily", "expect_table_row_count_to_be_between", None, "warning",
              False, "0", 120, None, ""),
    ]  # fmt: skip
    write_results(settings, GateResult(stage="marts", checks=checks), date(2026, 11, 21), "run_1")
    publish(settings, date(2026, 11, 21), "run_1")
    publish_to_postgres(settings)
    duck = duckdb.connect(str(settings.warehouse_path), read_only=True)
    tables = {
        f"{s}.{t}"
        for s, t in duck.execute("select schema_name, table_name from duckdb_tables()").fetchall()
    }
    yield settings, duck, tables
    duck.close()
    with psycopg.connect(postgres_cluster.dsn(), autocommit=True) as con:
        con.execute("drop schema if exists marts cascade")
        con.execute("drop schema if exists audit cascade")


def test_every_query_declares_what_it_reads():
    names = {q.name for q in QUERIES}
    assert {"kpi_trend", "data_quality_status", "cohort_heatmap", "segment_sizes"} <= names
    assert {"channel_roas", "experiments", "customers_at_risk", "churn_risk_value"} <= names
    for query in QUERIES:
        for table in query.requires:
            assert table in query.sql, (query.name, table)
        schemas = {t.split(".")[0] for t in query.requires}
        assert schemas == ({"marts"} if query.audience == "bi" else {"audit"}), query.name


#: Columns of the marts the placeholder queries read (kpi_experiments: as built, relative_uplift).
AGREED_COLUMNS = {
    "marts.kpi_cohort_retention": "cohort_month date, months_since_first_order integer, "
    "cohort_size integer, retained_customers integer, retention_rate double",
    "marts.dim_customer_segments": "snapshot_date date, customer_id varchar, rfm_segment varchar, "
    "lifecycle_stage varchar, churn_risk varchar, probability_alive double, predicted_clv double, "
    "last_order_date date, is_email_marketable boolean",
    "marts.customer_predictions": "snapshot_date date, customer_id varchar, "
    "expected_next_order_date date",
    "marts.kpi_channel_performance": "month date, channel varchar, spend decimal(18, 2), "
    "roas double, cac decimal(18, 2)",
    "marts.kpi_experiments": "experiment_id varchar, variant varchar, participants integer, "
    "conversion_rate double, relative_uplift double, p_value double, is_significant boolean",
}


def test_queries_on_marts_not_built_yet_bind_to_the_agreed_columns():
    con = duckdb.connect()
    con.execute("create schema marts")
    for table, columns in AGREED_COLUMNS.items():
        con.execute(f"create table {table} ({columns})")
    for query in QUERIES:
        if set(query.requires) <= AGREED_COLUMNS.keys():
            con.execute(query.sql).fetchall()  # binds every column, on empty tables


def _skip_unless_built(query, tables):
    missing = sorted(set(query.requires) - tables)
    if missing:
        pytest.skip(f"{query.name}: {', '.join(missing)} not built yet")


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.name)
def test_query_runs_on_duckdb_read_only(query, served):
    _settings, duck, tables = served
    _skip_unless_built(query, tables)
    rows = duck.execute(query.sql).fetchall()
    assert rows, query.name


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.name)
def test_query_runs_on_postgres_as_its_audience(query, served, postgres_cluster):
    _settings, duck, tables = served
    _skip_unless_built(query, tables)
    expected = duck.execute(query.sql).fetchall()
    with psycopg.connect(postgres_cluster.reader_dsn()) as con:
        if query.audience == "bi":
            rows = con.execute(query.sql).fetchall()
            assert len(rows) == len(expected) and rows[0] == expected[0], query.name
            return
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            con.execute(query.sql)  # ops queries read audit: closed to the reader role
    with psycopg.connect(postgres_cluster.dsn()) as con:
        rows = con.execute(query.sql).fetchall()
    assert len(rows) == len(expected) and rows[0] == expected[0], query.name
