"""Shared fixtures: isolated settings on a temporary folder and hand-written export files."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from marketing_warehouse.config import Settings, load_settings
from marketing_warehouse.tools.demo import SHOPIFY_HEADER


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"MWH_DATA_DIR": str(tmp_path / "data"), "MWH_TASK_RETRIES": "0"})


def write_shopify(path: Path, rows: list[dict[str, str]], header=SHOPIFY_HEADER, **fmt) -> Path:
    """A Shopify orders export with ``rows`` (header -> value; missing cells are empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    encoding = fmt.pop("encoding", "utf-8")
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n", **fmt)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(h, "") for h in header])
    return path


def order_row(name: str, email: str, created: str, qty: str = "1", **extra: str) -> dict[str, str]:
    row = {
        "Name": name,
        "Email": email,
        "Created at": created,
        "Lineitem quantity": qty,
        "Lineitem name": "Organic Cotton Tee",
        "Lineitem price": "24.90",
    }
    row.update({k.replace("_", " "): v for k, v in extra.items()})
    return row


def pytest_configure(config):
    """Airflow reads its configuration at import: point it at a throwaway home first."""
    import os
    import tempfile

    home = tempfile.mkdtemp(prefix="mwh-airflow-home-")
    os.environ.setdefault("AIRFLOW_HOME", home)
    settings = load_settings()
    from marketing_warehouse.airflow_env import TELEMETRY_OFF

    os.environ.update(TELEMETRY_OFF)
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(settings.project_dir / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("MWH_TASK_RETRIES", "2")


@pytest.fixture(scope="session")
def dbt_manifest():
    """The manifest Cosmos renders from (``make`` keeps it fresh; tests make sure it exists)."""
    import os

    from marketing_warehouse.transform.dbt_tasks import manifest_is_stale, parse_project

    settings = load_settings()
    if manifest_is_stale(settings):
        parse_project(settings, dict(os.environ))
    return settings.dbt_project_dir / "target" / "manifest.json"


@pytest.fixture(scope="session")
def postgres_cluster():
    """A real PostgreSQL server for the session, on a unix socket in a temporary folder."""
    import shutil

    from postgres_server import start_cluster

    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)


def make_build_db(settings: Settings, version: int, days: int = 5) -> None:
    """A small build database shaped like dbt's output (schemas marts, audit, staging), whose
    numbers depend on ``version`` so tests can tell published versions apart."""
    import duckdb

    settings.build_path.parent.mkdir(parents=True, exist_ok=True)
    settings.build_path.unlink(missing_ok=True)
    con = duckdb.connect(str(settings.build_path))
    try:
        for schema in ("marts", "audit", "staging"):
            con.execute(f"create schema {schema}")
        con.execute(
            f"""
            create table marts.kpi_daily as
            select
                cast(date '2026-11-01' + cast(i as integer) as date) as date,
                'EUR' as reporting_currency,
                {version} as orders,
                cast({version} * 100 as decimal(18, 2)) as revenue,
                cast(0 as decimal(18, 2)) as refunds,
                cast({version} * 100 as decimal(18, 2)) as net_revenue,
                cast(100 as decimal(18, 2)) as average_order_value,
                {version} as new_customers,
                0 as returning_customers,
                cast(0 as decimal(18, 2)) as discount_cost
            from range({days}) as t(i)
            """
        )
        con.execute(
            f"""
            create table marts.fct_orders as
            select
                'shopify-#' || i as order_id,
                md5('c' || i) as customer_id,
                cast(date '2026-11-01' + cast(i % {days} as integer) as date) as order_date,
                timestamp '2026-11-01 10:00:00' + to_days(cast(i % {days} as integer)) as created_at,
                true as is_revenue_order,
                i < {days} as is_first_order,
                'online_store' as channel,
                cast(100 as decimal(18, 2)) as total_amount_reporting,
                case when i % 2 = 0 then 'c' || i || '@example.com' end as email,
                '' as discount_code
            from range({version * days}) as t(i)
            """
        )
        con.execute(
            "create table marts.dim_customers as select distinct customer_id, email "
            "from marts.fct_orders"
        )
        con.execute(
            "create table audit.quarantine as select 'shopify_orders.csv' as source_file, "
            "'bad_date' as reason_code, '{\"Email\": \"x@example.com\"}' as raw_row"
        )
        con.execute("create table staging.private_rows as select 1 as id")
    finally:
        con.close()


def made_once(tmp_path_factory, name: str, make) -> Path:
    """A copy of the folder ``make(folder)`` fills, which is made once for all test processes:
    pytest-xdist's workers share the parent of their base temporary folders, and the first
    worker to need the folder makes it there under a lock (the others wait for it). Each worker
    gets a copy of its own, so that what a test writes stays in its process."""
    import os
    import shutil

    from marketing_warehouse.layout import exclusive_lock

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    made = shared / f"made-once-{name}"
    with exclusive_lock(shared / f"made-once-{name}.lock"):
        if not (made / ".complete").exists():
            shutil.rmtree(made, ignore_errors=True)
            made.mkdir()
            make(made)
            (made / ".complete").touch()
    mine = tmp_path_factory.mktemp(name)
    shutil.copytree(made, mine, dirs_exist_ok=True)
    return mine


@pytest.fixture(scope="session")
def dbt_built(tmp_path_factory) -> Settings:
    """Settings whose build database holds every dbt model, built from 10 days of demo exports
    stage by stage with the predictions between (about 60 s, once for both test processes):
    tests that need the real marts share it and must not write to it."""
    from datetime import date

    from marketing_warehouse.ingest.contracts import load_contracts
    from marketing_warehouse.ingest.extract import utc_now
    from marketing_warehouse.ingest.loads import load_source
    from marketing_warehouse.tools import demo

    def make(root: Path) -> None:
        settings = load_settings({"MWH_DATA_DIR": str(root / "data")})
        end = date(2026, 11, 21)
        demo.generate(settings.landing_dir, end, 10, seed=1, scale=0.01)
        for folder in sorted(settings.landing_dir.iterdir()):
            for contract in load_contracts():
                load_source(settings, contract, date.fromisoformat(folder.name), utc_now())
        build_stages(settings)

    root = made_once(tmp_path_factory, "dbt_built", make)
    return load_settings({"MWH_DATA_DIR": str(root / "data")})


@pytest.fixture(scope="session")
def at_risk_built(dbt_built, tmp_path_factory) -> Settings:
    """A copy of ``dbt_built`` whose churn bands are re-cut so that it has at-risk customers:
    ten demo days are too short for anyone to look gone (every probability_alive is near 1), so
    customer_predictions and dim_customer_segments are rebuilt with var churn_risk_high_below at
    the snapshot's 25th and churn_risk_medium_below at its 60th percentile of probability_alive
    (about a quarter high, a third medium), once for both test processes. Tests that need a high
    or medium band read it."""
    import json
    import os
    import shutil

    import duckdb

    from marketing_warehouse.transform.dbt_tasks import run_dbt

    def make(root: Path) -> None:
        shutil.copytree(dbt_built.data_dir, root / "data")
        settings = load_settings({"MWH_DATA_DIR": str(root / "data")})
        con = duckdb.connect(str(settings.build_path), read_only=True)
        try:
            ds, high, medium = con.execute(
                "select snapshot_date, quantile_disc(probability_alive, 0.25), "
                "quantile_disc(probability_alive, 0.6) from marts.customer_predictions "
                "where snapshot_date = (select max(snapshot_date) from marts.customer_predictions) "
                "group by snapshot_date"
            ).fetchone()
        finally:
            con.close()
        variables = {"snapshot_date": str(ds), "churn_risk_high_below": high,
                     "churn_risk_medium_below": medium}  # fmt: skip
        args = ["build", "--select", "customer_predictions", "dim_customer_segments"]
        result = run_dbt(settings, [*args, "--vars", json.dumps(variables)], dict(os.environ))
        assert result.returncode == 0, result.stdout[-3000:]

    root = made_once(tmp_path_factory, "at_risk_built", make)
    return load_settings({"MWH_DATA_DIR": str(root / "data")})


def build_stages(settings: Settings) -> str:
    """The dbt stages in the DAG's order with the predict stage between the marts and the
    segments, as of the latest order date (the snapshot a build without the var takes); return
    that date."""
    import json
    import os

    import duckdb

    from marketing_warehouse.pipeline import predict
    from marketing_warehouse.transform.dbt_tasks import DBT_STAGES, dbt_stage_args, run_dbt

    ds = ""
    for stage in DBT_STAGES:
        if stage == "dbt_segments":
            con = duckdb.connect(str(settings.build_path), read_only=True)
            try:
                ds = str(con.execute("select max(order_date) from marts.fct_orders").fetchone()[0])
            finally:
                con.close()
            predict(ds, settings)
        args = ["build", *dbt_stage_args(stage)]
        if ds:
            args += ["--vars", json.dumps({"snapshot_date": ds})]
        result = run_dbt(settings, args, dict(os.environ))
        errors = [line for line in result.stdout.splitlines() if "ERROR" in line or "Error" in line]
        assert result.returncode == 0, (stage, errors[-20:], result.stdout[-3000:])
    return ds


#: The longest files, scheduled first: ``make test`` runs the suite in two processes, each test file
#: in one of them (``--dist loadfile``), so a long file started last would run alone at the end.
LONGEST_FIRST = (
    "tests/integration/test_dag.py",
    "tests/integration/test_dag_dates.py",
    "tests/integration/test_spark_engine.py",
    "tests/integration/test_serve_postgres.py",
    "tests/integration/test_kpi_marts.py",
    "tests/integration/test_bench_full.py",
    "tests/integration/test_incremental_nights.py",
)


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        path = item.nodeid.split("::")[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)
