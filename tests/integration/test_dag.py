"""The nightly DAG: it imports cleanly, its stages are in order, and real Airflow runs work: reruns,
killed runs, failed gates, an out-of-order backfill, and BI readers through a run."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pytest
from conftest import order_row, write_shopify
from stages import DBT_STAGES, run_stages

from marketing_warehouse.serve.publish import PUBLISHED_MARTS

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
    from marketing_warehouse.ops.alerts import on_failure

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
        "docs",
        "report",
        "release_run_lock",
    ]
    # every stage is upstream of every later stage, and never downstream of one
    assert staging | marts | {"gate_staging", "gate_marts", "publish"} <= _downstream_closure(
        dag, "gate_raw"
    )
    assert marts | {"gate_marts", "publish"} <= _downstream_closure(dag, "gate_staging")
    assert "publish" in _downstream_closure(dag, "gate_marts")
    assert _downstream_closure(dag, "publish") == {"docs", "report", "release_run_lock"}
    assert {"docs", "report"} <= {t.task_id for t in dag.get_task("release_run_lock").upstream_list}
    # the raw gate is handed what prepare and the extract tasks returned; the report what they,
    # the three gates and publish returned (XCom arguments make them direct upstream tasks)
    assert {"prepare", "extract_source"} <= dag.get_task("gate_raw").upstream_task_ids
    assert {"prepare", "extract_source", "gate_raw", "gate_staging", "gate_marts", "publish"} <= (
        dag.get_task("report").upstream_task_ids
    )
    assert dag.get_task("release_run_lock").is_teardown  # runs after a failed run as well
    assert set(order) == ids


def test_the_stage_helper_builds_what_the_dag_builds(dagbag, dbt_manifest):
    """tests/stages.py builds the DAG's two dbt stages with its own selections: each model and
    seed belongs to the stage whose paths hold it, and the DAG has that model's task there."""
    dag = dagbag.dags[DAG_ID]
    nodes = json.loads(dbt_manifest.read_text())["nodes"].values()
    expected = set()
    for node in nodes:
        if node["resource_type"] not in ("model", "seed"):
            continue
        path = node["original_file_path"]
        [stage] = [
            s
            for s, selectors in DBT_STAGES.items()
            if any(path.startswith(sel.removeprefix("path:") + "/") for sel in selectors)
        ]
        expected.add((stage, node["name"]))
    rendered = {
        (t.task_id.split(".")[0], t.task_id.split(".")[1].rsplit("_", 2)[0])
        for t in dag.tasks
        if t.task_id.startswith("dbt_") and t.task_id.endswith(("_model_build", "_seed_build"))
    }
    assert expected == rendered


def test_warehouse_tasks_share_the_single_writer_pool(dagbag):
    dag = dagbag.dags[DAG_ID]
    writers = [
        t for t in dag.tasks if t.task_id.startswith(("dbt_", "gate_")) or t.task_id == "publish"
    ]
    assert writers and all(t.pool == "warehouse_writer" for t in writers)
    # dbt docs and the report read, and wait for no writer: outside the one-slot pool
    assert {dag.get_task(t).pool for t in ("docs", "report")} == {"default_pool"}
    publish = dag.get_task("publish")
    assert sorted(a.name for a in publish.outlets) == sorted(f"marts.{m}" for m in PUBLISHED_MARTS)


def test_published_marts_list_matches_the_dbt_models():
    models = {p.stem for p in (PROJECT / "dbt_project" / "models" / "marts").rglob("*.sql")}
    assert set(PUBLISHED_MARTS) == models


#: Marts that keep one snapshot per run date (a backfill adds snapshots), and their date column.
SNAPSHOT_MARTS = {"dim_customer_segments": "snapshot_date", "kpi_channel_coverage": "date"}


def _mart_fingerprints(path: Path, snapshot: str | None = None) -> dict[str, str]:
    """A hash of every published mart's sorted rows; with ``snapshot``, the snapshot marts are
    hashed for that one date."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        prints = {}
        for mart in PUBLISHED_MARTS:
            where = ""
            if snapshot and mart in SNAPSHOT_MARTS:
                where = f" where {SNAPSHOT_MARTS[mart]} = date '{snapshot}'"
            rows = con.execute(f"select * from marts.{mart}{where} order by all").fetchall()
            prints[mart] = hashlib.sha256(repr(rows).encode()).hexdigest()
        return prints
    finally:
        con.close()


def _version_digest(path: Path) -> str:
    """One hash of all published marts: tells versions of the serving file apart."""
    prints = _mart_fingerprints(path)
    return hashlib.sha256(json.dumps(prints, sort_keys=True).encode()).hexdigest()


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


def _env(root: Path) -> dict[str, str]:
    """A clean environment on ``root``: its own data folder and Airflow home, ten demo days."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MWH_", "AIRFLOW"))}
    return base | {
        "MWH_DATA_DIR": str(root / "data"),
        "MWH_DEMO_DAYS": "10",
        "MWH_TASK_RETRIES": "0",
        "AIRFLOW_HOME": str(root / "airflow"),
    }


def _mwh_run(ds: str) -> list[str]:
    return [str(Path(sys.executable).parent / "mwh"), "run", "--date", ds]


def _settings(env: dict[str, str], expectations: Path | None = None):
    """The settings a run with ``env`` (and a copy of the expectations) would load."""
    from marketing_warehouse.config import load_settings

    more = {"MWH_EXPECTATIONS_DIR": str(expectations)} if expectations else {}
    return load_settings(env | more)


#: Ad exports below the campaign grain, landed beside the demo's campaign-level reports: a Meta
#: ad-level export broken down by age and gender, and a Google Ads ad group download.
META_AD_LEVEL = ("2026-11-18", "meta_ads_ads_by_age_gender.csv", "2026-11-15", 3)
GOOGLE_AD_GROUPS = ("2026-11-19", "google_ads_ad_groups.csv", "2026-11-16", 3)
FINER_GRAIN_CAMPAIGNS = {"91001": "Prospecting | ads", "91002": "Retargeting | ads"}


def _land_finer_grain_ad_exports(landing: Path) -> None:
    from ad_exports import write_google_ad_groups, write_meta_ad_level

    for (folder, name, first, days), write in (
        (META_AD_LEVEL, write_meta_ad_level),
        (GOOGLE_AD_GROUPS, write_google_ad_groups),
    ):
        first_day = date.fromisoformat(first)
        write(landing / folder / name, first_day, days, FINER_GRAIN_CAMPAIGNS)


@dataclass
class FirstRun:
    """One clean run of 2026-11-21 on ten demo days plus ad exports below the campaign grain."""

    root: Path
    env: dict[str, str]
    stdout: str
    landing: Path  # a copy of the landing folder as the run found it
    serving: Path  # a copy of the serving file the run published


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, dbt_manifest) -> FirstRun:
    from marketing_warehouse.tools import demo

    root = tmp_path_factory.mktemp("first_run")
    env = _env(root)
    # the demo days `mwh run` writes into an empty landing folder, then the finer-grain exports
    demo.generate(root / "data" / "landing", date(2026, 11, 21), 10, seed=42, scale=0.01)
    _land_finer_grain_ad_exports(root / "data" / "landing")
    first = subprocess.run(_mwh_run("2026-11-21"), env=env, **RUN)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    landing = shutil.copytree(root / "data" / "landing", root / "landing-as-run")
    serving = root / "served-by-first-run.duckdb"
    shutil.copyfile(root / "data" / "warehouse" / "warehouse.duckdb", serving)
    return FirstRun(root, env, first.stdout, landing, serving)


def test_full_dag_run_rerun_and_failed_gates(first_run):
    root, env, mwh = first_run.root, first_run.env, _mwh_run("2026-11-21")
    assert "SUCCESS" in first_run.stdout and "raw      PASS" in first_run.stdout
    serving = root / "data" / "warehouse" / "warehouse.duckdb"
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
    # What the gates and publish do on these data needs no Airflow: the stages are called in
    # this process (tests/stages.py), the whole run with its dbt builds, so this is also the
    # complete run after the killed ones.
    strict = _expectations_copy(
        root / "strict",
        "marts/kpi_daily",
        {
            "type": "expect_column_values_to_be_between",
            "severity": "warning",
            "kwargs": {"column": "orders", "max_value": 0},
        },
    )
    again = run_stages(_settings(env, strict), "2026-11-21", "stages__strict_rerun")
    assert again.published, again.failure
    assert "marts    WARN" in again.summary and "Not published" not in again.summary
    assert _mart_fingerprints(serving) == before
    con = duckdb.connect(str(serving), read_only=True)
    flagged = con.execute(
        "select severity, observed_value from audit.validation_results "
        "where not success and suite = 'marts/kpi_daily' and column_name = 'orders'"
    ).fetchall()
    published = con.execute("select count(distinct run_id) from audit.publish_log").fetchone()[0]
    con.close()
    assert [f[0] for f in flagged] == ["warning"] and published == 2

    # A critical raw expectation (tightened by configuration) stops the DAG at the raw gate:
    # no dbt task runs and nothing is published. The later DAG runs build each dbt stage as one
    # task (MWH_DBT_TASKS=single): same marts, and the first run exercised per-model rendering.
    env = env | {"MWH_DBT_TASKS": "single"}
    raw_suite = "raw/shopify__order_lines"
    overrides = _expectations_copy(
        root / "raw",
        raw_suite,
        {
            "type": "expect_column_values_to_be_between",
            "severity": "critical",
            "kwargs": {"column": "lineitem_quantity", "max_value": 0},
        },
    )
    failed = subprocess.run(mwh, env=env | {"MWH_EXPECTATIONS_DIR": str(overrides)}, **RUN)
    assert failed.returncode != 0
    assert "raw      FAIL" in failed.stdout and "Not published this run." in failed.stdout
    assert raw_suite in failed.stdout
    assert "dbt_staging" not in failed.stdout
    assert _mart_fingerprints(serving) == before

    # A critical marts expectation stops the run at the last gate (stages called directly, on
    # the build the strict rerun left): nothing is published.
    marts_suite = "marts/volume"
    overrides = _expectations_copy(
        root / "marts",
        marts_suite,
        {
            "type": "expect_column_values_to_be_between",
            "severity": "critical",
            "kwargs": {"column": "ratio_to_previous", "min_value": 2},
        },
    )
    stopped = run_stages(
        _settings(env, overrides), "2026-11-21", "stages__critical_marts", dbt=False
    )
    assert stopped.failure is not None and marts_suite in str(stopped.failure)
    assert stopped.finished == ["extract", "gate_raw", "gate_staging"]
    assert "marts    FAIL" in stopped.summary and "Not published this run." in stopped.summary
    assert marts_suite in stopped.summary
    assert _mart_fingerprints(serving) == before
    con = duckdb.connect(str(serving), read_only=True)
    runs = con.execute("select count(distinct run_id) from audit.publish_log").fetchone()[0]
    con.close()
    assert runs == 2

    # Next day an order arrives in a currency the FX workbook has no rate for: it is quarantined
    # (missing_fx_rate) and left out of the marts, the staging gate warns (one order of the
    # whole history is far under the share that stops a run), and the run publishes.
    write_shopify(
        root / "data" / "landing" / "2026-11-22" / "shopify_orders_export_2026-11-22.csv",
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
    jpy = subprocess.run(
        [*mwh[:-1], "2026-11-22"], env=env, capture_output=True, text=True, timeout=900
    )
    assert jpy.returncode == 0, jpy.stdout[-3000:]
    assert "staging  WARN" in jpy.stdout and "staging/fx_rate_coverage" in jpy.stdout
    assert "JPY->EUR: no rate for 1 of" in jpy.stdout and "yen@example.com" not in jpy.stdout
    assert "Not published this run." not in jpy.stdout
    assert "missing_fx_rate 1" in jpy.stdout  # the summary's quarantine by reason
    con = duckdb.connect(str(serving), read_only=True)
    dates = con.execute(
        "select distinct logical_date::varchar from audit.publish_log order by 1"
    ).fetchall()
    jpy_orders = con.execute(
        "select count(*) from marts.fct_orders where source_order_key = '#90001'"
    ).fetchone()[0]
    quarantined = con.execute(
        "select source_file, row_number, reason_code from audit.quarantine "
        "where reason_code = 'missing_fx_rate'"
    ).fetchall()
    con.close()
    assert dates == [("2026-11-21",), ("2026-11-22",)]
    assert jpy_orders == 0
    assert quarantined == [("shopify_orders_export_2026-11-22.csv", 1, "missing_fx_rate")]


def test_the_ui_shows_the_runs_own_duration_and_each_extract_by_source(first_run):
    """What Airflow recorded of the first run (its metadata database, as the UI reads it): the
    run lasted as long as its tasks (``airflow dags test`` had recorded the logical date as its
    start: 11 days for 2026-11-21), and each mapped extract task is named by its source."""
    import sqlite3
    from datetime import datetime

    from marketing_warehouse.ingest.contracts import load_contracts

    con = sqlite3.connect(Path(first_run.env["AIRFLOW_HOME"]) / "airflow.db")
    try:
        [(run_id, started, ended)] = con.execute(
            "select run_id, start_date, end_date from dag_run where dag_id = ? "
            "and logical_date like '2026-11-21%'",
            [DAG_ID],
        ).fetchall()
        first_task, last_task = con.execute(
            "select min(start_date), max(end_date) from task_instance where run_id = ?", [run_id]
        ).fetchone()
        names = con.execute(
            "select map_index, rendered_map_index from task_instance "
            "where run_id = ? and task_id = 'extract_source' order by map_index",
            [run_id],
        ).fetchall()
    finally:
        con.close()
    assert started == first_task, (started, first_task)
    seconds = (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()
    ran = (datetime.fromisoformat(last_task) - datetime.fromisoformat(first_task)).total_seconds()
    assert 0 < ran <= seconds < ran + 60, (seconds, ran)
    # prepare maps the sources in the contracts' order
    assert names == list(enumerate(c.key for c in load_contracts()))


def test_ad_exports_below_the_campaign_grain_reach_the_marts_whole(first_run):
    """Spend, impressions and clicks per platform and day of the finer-grain exports (in the
    build's ad-spend model) and per channel and month (published kpi_channel_performance) equal
    the sums over the landed CSV files: rows summed within a file, the latest delivery of a
    campaign and day winning across files."""
    from ad_exports import expected_ad_totals

    finer = first_run.root / "finer-grain-landing"
    for folder, name, _, _ in (META_AD_LEVEL, GOOGLE_AD_GROUPS):
        (finer / folder).mkdir(parents=True)
        shutil.copy2(first_run.landing / folder / name, finer / folder / name)
    expected = expected_ad_totals(finer)
    assert len(expected) == 6  # 2 platforms x 3 days
    build = duckdb.connect(
        str(first_run.root / "data" / "warehouse" / "build.duckdb"), read_only=True
    )
    try:
        got = {
            (platform, day): {"spend": spend, "impressions": impressions, "clicks": clicks}
            for platform, day, spend, impressions, clicks in build.execute(
                "select ad_platform, report_date::varchar, sum(spend_amount_reporting), "
                "sum(impressions), sum(clicks) from intermediate.int_ad_spend_converted "
                "where campaign_id in ('91001', '91002') group by 1, 2"
            ).fetchall()
        }
        loaded = build.execute(
            "select source_file, rows_landed, rows_loaded from audit.load_ledger "
            "where source_file in (?, ?) order by 1",
            [META_AD_LEVEL[1], GOOGLE_AD_GROUPS[1]],
        ).fetchall()
    finally:
        build.close()
    assert got == expected
    meta_rows = 2 * 2 * 2 * 3 * 6 * 3  # campaigns x ad sets x ads x days x ages x genders
    google_rows = 2 * 3 * 3  # campaigns x ad groups x days
    assert loaded == [
        (GOOGLE_AD_GROUPS[1], google_rows + 2, google_rows),  # + its two "Total:" rows
        (META_AD_LEVEL[1], meta_rows, meta_rows),
    ]

    # Per channel and month over every ad file landed (the demo's campaign reports too):
    # Google spend is all EUR; Meta's demo spend is in GBP, so Meta is compared on volumes.
    every = expected_ad_totals(first_run.landing)
    month = {}
    for (platform, _), metrics in every.items():
        totals = month.setdefault(platform, dict.fromkeys(metrics, 0))
        for metric, value in metrics.items():
            totals[metric] += value
    serving = duckdb.connect(str(first_run.serving), read_only=True)
    try:
        published = {
            channel: {"spend": spend, "impressions": impressions, "clicks": clicks}
            for channel, spend, impressions, clicks in serving.execute(
                "select channel, spend, impressions, clicks from marts.kpi_channel_performance "
                "where month = date '2026-11-01' and channel in ('google_ads', 'meta_ads')"
            ).fetchall()
        }
    finally:
        serving.close()
    assert published["google_ads"] == month["google_ads"]
    assert {k: published["meta_ads"][k] for k in ("impressions", "clicks")} == {
        k: month["meta_ads"][k] for k in ("impressions", "clicks")
    }


#: A BI tool in its own process, printing one JSON line per query round: a hash of every mart, the
#: newest logical date in audit.publish_log and the problems found by checks that fail on a mix of
#: versions. Mode "fresh" opens a new read-only connection for each round (as BI tools do per
#: query); mode "held" keeps the one it opened at start. Stops when a line arrives on stdin.
#: (Two processes, because DuckDB shares one open database among a process's connections to a
#: file: a new connection beside a held one would see the held one's version.)
READER = textwrap.dedent(
    """
    import hashlib, json, select, sys, traceback
    import duckdb

    path, marts, mode = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    pause = 0.2 if mode == "fresh" else 1.0  # seconds between rounds
    CHECKS = {
        "kpi_daily orders = revenue orders in fct_orders": (
            "select (select sum(orders) from marts.kpi_daily)"
            " = (select count(*) from marts.fct_orders where is_revenue_order)"
        ),
        "kpi_daily revenue = revenue of fct_orders": (
            "select (select sum(revenue) from marts.kpi_daily)"
            " = (select sum(total_amount_reporting) from marts.fct_orders where is_revenue_order)"
        ),
        "kpi_daily new customers = buying customers of fct_orders": (
            "select (select sum(new_customers) from marts.kpi_daily) = (select count(distinct"
            " customer_id) from marts.fct_orders where is_revenue_order)"
        ),
        "the run's dim_customer_segments snapshot covers dim_customers": (
            "select (select count(*) from marts.dim_customer_segments where snapshot_date ="
            " (select max_by(logical_date, published_at) from audit.publish_log))"
            " = (select count(*) from marts.dim_customers)"
        ),
    }

    def digest(con):
        prints = {}
        for mart in marts:
            rows = con.execute(f"select * from marts.{mart} order by all").fetchall()
            prints[mart] = hashlib.sha256(repr(rows).encode()).hexdigest()
        return hashlib.sha256(json.dumps(prints, sort_keys=True).encode()).hexdigest()

    def problems(con):
        found = [name for name, sql in CHECKS.items() if not con.execute(sql).fetchone()[0]]
        # the last publish's log lists every table of this file with its row count
        logged = con.execute(
            "select relation, row_count from audit.publish_log"
            " where run_id = (select max_by(run_id, published_at) from audit.publish_log)"
        ).fetchall()
        for relation, rows in logged:
            counted = con.execute(f"select count(*) from {relation}").fetchone()[0]
            if counted != rows:
                found.append(f"{relation}: {counted} rows, publish_log says {rows}")
        return found

    def seen(con):
        date = "select max_by(logical_date, published_at) from audit.publish_log"
        return {
            "digest": digest(con),
            "date": str(con.execute(date).fetchone()[0]),
            "problems": problems(con),
        }

    held = duckdb.connect(path, read_only=True) if mode == "held" else None
    while True:
        try:
            if held is not None:
                line = seen(held)
            else:
                con = duckdb.connect(path, read_only=True)
                try:
                    line = seen(con)
                finally:
                    con.close()
        except Exception:
            line = {"error": traceback.format_exc()}
        print(json.dumps(line), flush=True)
        if select.select([sys.stdin], [], [], pause)[0]:
            break
    """
)


@contextlib.contextmanager
def _readers(serving: Path, folder: Path) -> Iterator[dict[str, list[dict]]]:
    """Run the two ``READER`` processes on ``serving`` through the ``with`` block; yield the rounds
    each saw (filled in on exit). Each has done its first round when the block starts."""
    rounds: dict[str, list[dict]] = {}
    procs, outputs = {}, {}
    try:
        for mode in ("fresh", "held"):
            outputs[mode] = folder / f"reader-{mode}.jsonl"
            with outputs[mode].open("w") as out:
                procs[mode] = subprocess.Popen(
                    [sys.executable, "-c", READER, str(serving), json.dumps(PUBLISHED_MARTS), mode],
                    stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, text=True,
                )  # fmt: skip
        for mode, proc in procs.items():
            while not outputs[mode].read_text():
                assert proc.poll() is None, outputs[mode].read_text()
                time.sleep(0.1)
        yield rounds
    finally:
        for proc in procs.values():
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):  # a reader that died: its output says why
                proc.stdin.write("stop\n")
                proc.stdin.close()
        for mode, proc in procs.items():
            assert proc.wait(timeout=60) == 0, outputs[mode].read_text()[-3000:]
            rounds[mode] = [json.loads(line) for line in outputs[mode].read_text().splitlines()]


def _await_rounds(output: Path, digest: str, rounds: int, timeout: float = 60.0) -> None:
    """Wait until a reader's output shows ``rounds`` rounds on the version ``digest``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = output.read_text().splitlines()
        if sum(json.loads(line).get("digest") == digest for line in lines) >= rounds:
            return
        time.sleep(0.2)


@dataclass
class Backfill:
    """The backfill's serving file, and what readers saw during its run of 21 November."""

    serving: Path
    old: tuple[str, str] = ("", "")  # (digest, logical date) served before the run of the 21st
    new: tuple[str, str] = ("", "")  # ... and after it
    rounds: dict[str, list[dict]] = field(default_factory=dict)  # what readers saw during it


#: The backfill: 20 and 21 November as two nightly runs, then 19 November backfilled. 19 November
#: is first loaded as a late file by the run of the 20th, then reloaded by its own run after later
#: dates exist, and the last run's logical date is not the newest. Raw partitions are keyed by
#: landing date and the marts are rebuilt from all of them whatever the run's date, so "the marts
#: of one clean run" are those of the module's first run (the newest date, every file loaded at
#: once): after the backfill every mart must equal them, except that the two snapshot marts keep
#: one snapshot per run date by design (the backfill adds those of the 19th and 20th) and are
#: compared on the 21st. The first run is a DAG run that builds dbt model by model; the backfill
#: calls the stages directly (tests/stages.py), each dbt stage as one build: what it checks is
#: what the stages make of the dates, not how Airflow schedules them.
BACKFILL = ("2026-11-20", "2026-11-21", "2026-11-19")


@pytest.fixture(scope="module")
def backfill(first_run, tmp_path_factory) -> Backfill:
    """The backfill on the first run's landing files (byte for byte), with BI reader processes
    querying the serving file through the whole run of 21 November, which publishes over the
    version of the 20th."""
    root = tmp_path_factory.mktemp("backfill")
    shutil.copytree(first_run.landing, root / "data" / "landing")
    settings = _settings(_env(root))
    result = Backfill(serving=settings.warehouse_path)
    for ds in BACKFILL:
        if ds == "2026-11-21":
            result.old = (_version_digest(result.serving), BACKFILL[0])
            with _readers(result.serving, root) as result.rounds:
                run = run_stages(settings, ds, f"backfill__{ds}")
                # publish is the run's last stage: let the readers go on a few rounds after it
                _await_rounds(root / "reader-fresh.jsonl", _version_digest(result.serving), 3)
            result.new = (_version_digest(result.serving), ds)
        else:
            run = run_stages(settings, ds, f"backfill__{ds}")
        assert run.published, (ds, run.summary)
    return result


def test_backfilling_dates_out_of_order_gives_the_marts_of_one_clean_run(first_run, backfill):
    con = duckdb.connect(str(backfill.serving), read_only=True)
    snapshots = {
        mart: sorted(
            str(d) for (d,) in con.execute(f"select distinct {column} from marts.{mart}").fetchall()
        )
        for mart, column in SNAPSHOT_MARTS.items()
    }
    con.close()
    assert snapshots == dict.fromkeys(SNAPSHOT_MARTS, sorted(BACKFILL))
    newest = max(BACKFILL)
    clean = _mart_fingerprints(first_run.serving, snapshot=newest)
    assert clean == _mart_fingerprints(first_run.serving)  # one run, one snapshot
    assert _mart_fingerprints(backfill.serving, snapshot=newest) == clean


def test_a_reader_through_a_whole_run_only_sees_complete_versions(backfill):
    fresh, held = backfill.rounds["fresh"], backfill.rounds["held"]
    assert [r for r in fresh + held if "error" in r or r["problems"]] == []
    assert backfill.old[0] != backfill.new[0]
    # a new connection per round: the old version until the swap, then the new one, nothing else
    seen = [(r["digest"], r["date"]) for r in fresh]
    assert backfill.new in seen
    switch = seen.index(backfill.new)
    assert seen == [backfill.old] * switch + [backfill.new] * (len(seen) - switch)
    assert switch >= 20 and len(seen) - switch >= 3  # many rounds before and after the swap
    # a connection opened before the run keeps reading the old version undisturbed
    assert len(held) >= 20 and {(r["digest"], r["date"]) for r in held} == {backfill.old}


def test_a_historical_date_publishes_and_a_mostly_quarantined_export_stops_the_next_run(
    tmp_path_factory, dbt_manifest
):
    """A date years before the DAG was written runs every task and publishes (history loads):
    this is the suite's one complete DAG run in the single dbt task mode. Files no run reads are
    listed as a warning; the next date, whose Shopify export lost most of its rows to the
    quarantine, stops at the raw gate (the stages called directly) and BI keeps the published
    version."""
    import csv

    root = tmp_path_factory.mktemp("historical")
    env = _env(root) | {"MWH_DBT_TASKS": "single"}
    landing = root / "data" / "landing"
    mwh = str(Path(sys.executable).parent / "mwh")
    made = subprocess.run([mwh, "demo", "--date", "1998-07-01", "--days", "10"], env=env, **RUN)
    assert made.returncode == 0, made.stdout + made.stderr
    strays = {
        "exports/shopify_orders_1998-07-01.csv": "outside_date_folder",
        "1998-07-01/old/shopify_orders_1998-06-30.csv": "nested_folder",
        "1998-07-01/orders backup.csv": "no_contract",
    }
    for path in strays:
        (landing / path).parent.mkdir(parents=True, exist_ok=True)
        (landing / path).write_text("Name,Email\n#1,stray@example.com\n", "utf-8")

    first = subprocess.run(_mwh_run("1998-07-01"), env=env, **RUN)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Marketing warehouse run for 1998-07-01: SUCCESS" in first.stdout
    assert "ok   publish" in first.stdout
    assert f"Ignored landing entries ({len(strays)}; no run reads them):" in first.stdout
    for path, reason in strays.items():
        assert f"WARN {path}: " in first.stdout and f"({reason})" in first.stdout
    serving = root / "data" / "warehouse" / "warehouse.duckdb"
    con = duckdb.connect(str(serving), read_only=True)
    dates = con.execute("select distinct logical_date::varchar from audit.publish_log").fetchall()
    kpi_days = con.execute("select count(*), max(date)::varchar from marts.kpi_daily").fetchone()
    scan = con.execute(
        "select severity, success, unexpected_count from audit.validation_results "
        "where suite = 'raw/landing_scan'"
    ).fetchall()
    con.close()
    assert dates == [("1998-07-01",)] and kpi_days == (10, "1998-07-01")
    assert scan == [("warning", False, len(strays))]
    before = _mart_fingerprints(serving)

    # The next day's export: 9 of its 10 orders lost "Lineitem quantity" on every line.
    export = landing / "1998-07-02" / "shopify_orders_export_1998-07-02.csv"
    write_shopify(
        export,
        [
            order_row(
                f"#{n}",
                f"buyer{n}@example.com",
                "1998-07-02 10:00:00 +0000",
                qty="1" if n == 1 else "",
                Currency="EUR",
            )
            for n in range(1, 11)
            for _ in range(30)
        ],
    )
    with export.open(newline="", encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    landed, lost = len(written), sum(1 for r in written if not r["Lineitem quantity"])
    assert (landed, lost) == (300, 270)
    bad = run_stages(_settings(env), "1998-07-02", "stages__mostly_quarantined")
    assert bad.failure is not None and bad.finished == ["extract"]
    assert "1998-07-02: FAILED" in bad.summary and "raw      FAIL" in bad.summary
    assert (
        f"shopify__order_lines/1998-07-02/{export.name}: {lost} of {landed} rows quarantined "
        f"({lost / landed:.2%}); top reasons missing_required_value {lost}"
    ) in bad.summary
    assert "Not published this run." in bad.summary
    assert _mart_fingerprints(serving) == before
    con = duckdb.connect(str(serving), read_only=True)
    dates = con.execute("select distinct logical_date::varchar from audit.publish_log").fetchall()
    con.close()
    assert dates == [("1998-07-01",)]
