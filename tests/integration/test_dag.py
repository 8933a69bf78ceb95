"""The nightly DAG: it imports cleanly, its stages are in order, and a real Airflow run works."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from conftest import order_row, write_shopify

from marketing_warehouse.publish import PUBLISHED_MARTS

pytestmark = pytest.mark.integration
DAG_ID = "marketing_warehouse_nightly"
PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dagbag(dbt_manifest):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(PROJECT / "dags"))


def test_dagbag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert list(dagbag.dag_ids) == [DAG_ID]


def test_dag_settings(dagbag):
    dag = dagbag.dags[DAG_ID]
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.doc_md and "publish" in dag.doc_md
    assert dag.timetable.summary == "0 2 * * *"
    for task in dag.tasks:
        assert task.retries == 2, task.task_id
        assert task.retry_exponential_backoff, task.task_id


def test_failure_alerts_are_wired_on_the_dag_and_every_task(dagbag):
    from marketing_warehouse.alerts import on_failure

    def callbacks(value):
        return value if isinstance(value, list) else [value]

    dag = dagbag.dags[DAG_ID]
    assert on_failure in callbacks(dag.on_failure_callback)
    for task in dag.tasks:  # Cosmos' dbt tasks included
        assert on_failure in callbacks(task.on_failure_callback), task.task_id


def _downstream_closure(dag, task_id: str) -> set[str]:
    return {t.task_id for t in dag.get_task(task_id).get_flat_relatives(upstream=False)}


def test_stages_run_in_order(dagbag):
    dag = dagbag.dags[DAG_ID]
    ids = set(dag.task_ids)
    staging = {t for t in ids if t.startswith("dbt_staging.")}
    marts = {t for t in ids if t.startswith("dbt_marts.")}
    assert "dbt_staging.stg_shopify__order_lines_model_build" in staging
    assert {"dbt_marts.dim_customers_model_build", "dbt_marts.kpi_daily_model_build"} <= marts
    order = [
        "prepare",
        "extract_source",
        "gate_raw",
        *sorted(staging),
        "gate_staging",
        *sorted(marts),
        "gate_marts",
        "publish",
    ]
    # every stage is upstream of every later stage, and never downstream of one
    assert staging | marts | {"gate_staging", "gate_marts", "publish"} <= _downstream_closure(
        dag, "gate_raw"
    )
    assert marts | {"gate_marts", "publish"} <= _downstream_closure(dag, "gate_staging")
    assert "publish" in _downstream_closure(dag, "gate_marts")
    assert not _downstream_closure(dag, "publish")
    assert set(order) == ids


def test_warehouse_tasks_share_the_single_writer_pool(dagbag):
    dag = dagbag.dags[DAG_ID]
    writers = [
        t for t in dag.tasks if t.task_id.startswith(("dbt_", "gate_")) or t.task_id == "publish"
    ]
    assert writers and all(t.pool == "warehouse_writer" for t in writers)
    publish = dag.get_task("publish")
    assert sorted(a.name for a in publish.outlets) == sorted(f"marts.{m}" for m in PUBLISHED_MARTS)


def test_published_marts_list_matches_the_dbt_models():
    models = {p.stem for p in (PROJECT / "dbt_project" / "models" / "marts").glob("*.sql")}
    assert set(PUBLISHED_MARTS) == models


def _mart_fingerprints(path: Path) -> dict[str, str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        prints = {}
        for mart in PUBLISHED_MARTS:
            rows = con.execute(f"select * from marts.{mart} order by all").fetchall()
            prints[mart] = hashlib.sha256(repr(rows).encode()).hexdigest()
        return prints
    finally:
        con.close()


RUN = {"capture_output": True, "text": True, "timeout": 900}


def _expectations_copy(target: Path, suite: str, expectation: dict) -> Path:
    """The committed expectations with one more expectation in ``suite``."""
    shutil.copytree(PROJECT / "expectations", target)
    path = target / f"{suite}.json"
    data = json.loads(path.read_text())
    data["expectations"].append(expectation)
    path.write_text(json.dumps(data))
    return target


def _run_and_kill(cmd: list[str], env: dict[str, str], after_line: str, delay: float) -> str:
    """Start ``cmd``; SIGKILL its whole process group ``delay`` s after ``after_line`` is printed."""
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    seen: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if after_line in line:
            time.sleep(delay)
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    proc.stdout.close()
    return "".join(seen)


def test_full_dag_run_rerun_and_failed_gates(tmp_path, dbt_manifest):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MWH_", "AIRFLOW"))} | {
        "MWH_DATA_DIR": str(tmp_path / "data"),
        "MWH_DEMO_DAYS": "10",
        "MWH_TASK_RETRIES": "0",
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
    }
    mwh = [str(Path(sys.executable).parent / "mwh"), "run", "--date", "2026-11-21"]
    first = subprocess.run(mwh, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "SUCCESS" in first.stdout and "raw      PASS" in first.stdout
    serving = tmp_path / "data" / "warehouse" / "warehouse.duckdb"
    con = duckdb.connect(str(serving), read_only=True)
    counts = {
        m: con.execute(f"select count(*) from marts.{m}").fetchone()[0] for m in PUBLISHED_MARTS
    }
    con.close()
    assert all(n > 0 for n in counts.values()), counts
    assert counts["kpi_daily"] == 10
    before = _mart_fingerprints(serving)

    # A run SIGKILLed during extraction, then one killed inside dbt: serving stays as it was, and
    # the next complete run (below) publishes marts identical to the uninterrupted first run.
    fast = env | {"MWH_DBT_TASKS": "single"}
    for stage, after_line in (("extraction", "ok   prepare"), ("dbt", "ok   gate_raw")):
        output = _run_and_kill(mwh, fast, after_line, delay=2.0)
        assert after_line in output, (stage, output[-2000:])
        assert "Marketing warehouse run" not in output, stage  # it died before its summary
        assert _mart_fingerprints(serving) == before, stage

    # Rerun with a stricter copy of the suites (no code change): a failed warning-level
    # expectation publishes, is flagged in the summary and recorded in audit.validation_results.
    strict = _expectations_copy(
        tmp_path / "strict",
        "marts/kpi_daily",
        {
            "type": "expect_column_values_to_be_between",
            "severity": "warning",
            "kwargs": {"column": "orders", "max_value": 0},
        },
    )
    # The later runs build each dbt stage as one task (MWH_DBT_TASKS=single): same marts, and
    # the per-model rendering was exercised by the first run.
    env = env | {"MWH_DBT_TASKS": "single"}
    again = subprocess.run(mwh, env=env | {"MWH_EXPECTATIONS_DIR": str(strict)}, **RUN)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "marts    WARN" in again.stdout and "Not published" not in again.stdout
    assert _mart_fingerprints(serving) == before
    con = duckdb.connect(str(serving), read_only=True)
    flagged = con.execute(
        "select severity, observed_value from audit.validation_results "
        "where not success and suite = 'marts/kpi_daily' and column_name = 'orders'"
    ).fetchall()
    published = con.execute("select count(distinct run_id) from audit.publish_log").fetchone()[0]
    con.close()
    assert [f[0] for f in flagged] == ["warning"] and published == 2

    # A critical raw expectation (tightened by configuration) stops the run at the raw gate, and
    # a critical marts expectation stops it at the last gate: neither publishes anything.
    for stage, suite, expectation in (
        (
            "raw",
            "raw/shopify__order_lines",
            {
                "type": "expect_column_values_to_be_between",
                "severity": "critical",
                "kwargs": {"column": "lineitem_quantity", "max_value": 0},
            },
        ),
        (
            "marts",
            "marts/volume",
            {
                "type": "expect_column_values_to_be_between",
                "severity": "critical",
                "kwargs": {"column": "ratio_to_previous", "min_value": 2},
            },
        ),
    ):
        overrides = _expectations_copy(tmp_path / stage, suite, expectation)
        failed = subprocess.run(mwh, env=env | {"MWH_EXPECTATIONS_DIR": str(overrides)}, **RUN)
        assert failed.returncode != 0, stage
        assert f"{stage:8} FAIL" in failed.stdout and "Not published this run." in failed.stdout
        assert suite in failed.stdout
        assert _mart_fingerprints(serving) == before
        if stage == "raw":
            assert "dbt_staging" not in failed.stdout
    con = duckdb.connect(str(serving), read_only=True)
    runs = con.execute("select count(distinct run_id) from audit.publish_log").fetchone()[0]
    con.close()
    assert runs == 2

    # Next day an order arrives in a currency the FX workbook has no rate for: the critical
    # staging gate stops the run before the marts and publish; BI keeps yesterday's data.
    write_shopify(
        tmp_path / "data" / "landing" / "2026-11-22" / "shopify_orders_export_2026-11-22.csv",
        [
            order_row(
                "#90001",
                "yen@example.com",
                "2026-11-22 09:00:00 +0900",
                Currency="JPY",
                Total="5000",
                **{"Financial Status": "paid"},
            )
        ],
    )
    bad = subprocess.run(
        [*mwh[:-1], "2026-11-22"], env=env, capture_output=True, text=True, timeout=900
    )
    assert bad.returncode != 0
    assert "FAILED" in bad.stdout and "staging  FAIL" in bad.stdout
    assert "fx_rate_coverage" in bad.stdout and "Not published this run." in bad.stdout
    assert "dbt_marts" not in bad.stdout  # nothing after the gate ran
    assert _mart_fingerprints(serving) == before
    con = duckdb.connect(str(serving), read_only=True)
    dates = con.execute("select distinct logical_date::varchar from audit.publish_log").fetchall()
    con.close()
    assert dates == [("2026-11-21",)]
