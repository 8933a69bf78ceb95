"""The nightly DAG: it imports cleanly, its stages are in order, and real Airflow runs work: reruns,
killed runs, failed gates, a failed dbt test shown on its model. The dates a warehouse is run for
(an out-of-order backfill with BI readers through a run, a historical date) are in
test_dag_dates.py, which runs in the other test process."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from conftest import order_row, write_shopify
from dag_runs import (
    DAG_ID,
    DEMO_END,
    GOOGLE_AD_GROUPS,
    META_AD_LEVEL,
    PROJECT,
    RUN,
    land_demo_days,
    mart_fingerprints,
    mwh_run,
    run_env,
    settings_for,
)
from stages import DBT_STAGE_EXCLUDES, DBT_STAGES, run_stages, stage_nodes

from marketing_warehouse.serve.publish import PUBLISHED_MARTS

pytestmark = pytest.mark.integration


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
    segments = {t for t in ids if t.startswith("dbt_segments.")}
    # each stage is one dbt build (the watcher's producer), and each model has a task that reports
    # how the build went for it, and one for its tests, after it
    assert {f"{s}.dbt_producer_watcher" for s in DBT_STAGES} <= ids
    assert {"dbt_staging.stg_shopify__order_lines.run", "dbt_staging.load_ledger.run"} <= staging
    assert {"dbt_marts.dim_customers.run", "dbt_marts.kpi_daily.run"} <= marts
    assert {"dbt_segments.customer_predictions.run", "dbt_segments.dim_customer_segments.run"} <= (
        segments
    )
    for model in [t for t in staging | marts | segments if t.endswith(".run")]:
        if model.replace(".run", ".test") in ids:
            assert model in dag.get_task(model.replace(".run", ".test")).upstream_task_ids
    order = [
        "prepare",
        "extract_source",
        "gate_raw",
        *sorted(staging),
        "gate_staging",
        *sorted(marts),
        "predict",
        *sorted(segments),
        "gate_marts",
        "publish",
        "docs",
        "report",
        "release_run_lock",
    ]
    # every stage is upstream of every later stage, and never downstream of one
    assert staging | marts | segments | {"gate_staging", "predict", "gate_marts", "publish"} <= (
        _downstream_closure(dag, "gate_raw")
    )
    assert marts | segments | {"predict", "gate_marts", "publish"} <= _downstream_closure(
        dag, "gate_staging"
    )
    assert segments | {"gate_marts", "publish"} <= _downstream_closure(dag, "predict")
    assert "predict" in _downstream_closure(dag, "dbt_marts.dbt_producer_watcher")
    assert not {"predict"} & set().union(*(_downstream_closure(dag, t) for t in segments))
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


@pytest.mark.parametrize("mode", ["watcher", "per_model"])
def test_the_stage_helper_builds_what_the_dag_builds(
    mode, dagbag, dbt_manifest, settings, monkeypatch
):
    """tests/stages.py builds the DAG's three dbt stages with its own selections: each model and
    seed belongs to the stage dbt resolves it to (selectors and exclusions), and the DAG has that
    model's task there, in the default mode (whose one build per stage selects and excludes what
    the helper does) and per model."""
    if mode == "watcher":
        dag = dagbag.dags[DAG_ID]
    else:
        from airflow.dag_processing.dagbag import DagBag

        monkeypatch.setenv("MWH_DBT_TASKS", mode)
        dag = DagBag(dag_folder=str(PROJECT / "dags")).dags[DAG_ID]
    nodes = json.loads(dbt_manifest.read_text())["nodes"]
    expected = {
        (stage, nodes[key]["name"]) for stage, keys in stage_nodes(settings).items() for key in keys
    }
    # a model's task: watcher <stage>.<model>.run (with tests) or <stage>.<model>_run, seeds
    # alike; per model <stage>.<model>_model_build, <stage>.<seed>_seed_build
    suffix = {"watcher": r"[._](?:run|seed)", "per_model": r"_(?:model|seed)_build"}[mode]
    node_task = re.compile(rf"(dbt_\w+)\.(\w+?){suffix}")
    rendered = {m.groups() for t in dag.tasks if (m := node_task.fullmatch(t.task_id))}
    assert expected == rendered
    for stage, selectors in DBT_STAGES.items():
        producer = dag.task_dict.get(f"{stage}.dbt_producer_watcher")
        if mode == "watcher":
            assert producer.select.split() == selectors
            assert (producer.exclude or "").split() == DBT_STAGE_EXCLUDES.get(stage, [])
        else:
            assert producer is None


def test_warehouse_tasks_share_the_single_writer_pool(dagbag):
    dag = dagbag.dags[DAG_ID]
    # the dbt builds, the gates, publish, and the watcher's model tasks (on a retry each runs dbt
    # for its model itself); not the stage's closing no-op task
    writers = [
        t
        for t in dag.tasks
        if (t.task_id.startswith(("dbt_", "gate_")) or t.task_id == "publish")
        and t.task_type != "EmptyOperator"
    ]
    assert writers and all(t.pool == "warehouse_writer" for t in writers)
    # a model's task waiting for the build gives the slot back between looks (reschedule)
    sensors = [t for t in writers if t.task_id.endswith((".run", ".test", "_run", ".seed"))]
    assert sensors and {t.mode for t in sensors} == {"reschedule"}
    # dbt docs and the report read, and wait for no writer: outside the one-slot pool
    assert {dag.get_task(t).pool for t in ("docs", "report")} == {"default_pool"}
    publish = dag.get_task("publish")
    assert sorted(a.name for a in publish.outlets) == sorted(f"marts.{m}" for m in PUBLISHED_MARTS)


def test_published_marts_list_matches_the_dbt_models():
    models = {
        p.stem
        for folder in ("marts", "predictions")
        for pattern in ("*.sql", "*.py")
        for p in (PROJECT / "dbt_project" / "models" / folder).rglob(pattern)
    }
    assert set(PUBLISHED_MARTS) == models


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
    root = tmp_path_factory.mktemp("first_run")
    env = run_env(root)
    land_demo_days(root / "data" / "landing")
    first = subprocess.run(mwh_run(DEMO_END.isoformat()), env=env, **RUN)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    landing = shutil.copytree(root / "data" / "landing", root / "landing-as-run")
    serving = root / "served-by-first-run.duckdb"
    shutil.copyfile(root / "data" / "warehouse" / "warehouse.duckdb", serving)
    return FirstRun(root, env, first.stdout, landing, serving)


#: A task's line in `mwh run`'s output: its final state and task id.
TASK_LINE = re.compile(r"^  (ok  |FAIL|RETRY|\S+) (\S+)\s+[\d.]+s$", re.M)


def test_full_dag_run_rerun_and_failed_gates(first_run, dagbag):
    root, env, mwh = first_run.root, first_run.env, mwh_run("2026-11-21")
    assert "SUCCESS" in first_run.stdout and "raw      PASS" in first_run.stdout
    # the default dbt task mode: each stage's build, and every model's and its tests' task, ran
    # and succeeded
    dbt_tasks = {t for t in dagbag.dags[DAG_ID].task_ids if t.startswith("dbt_")}
    finished = dict((task, state) for state, task in TASK_LINE.findall(first_run.stdout))
    assert {t: finished.get(t) for t in dbt_tasks} == dict.fromkeys(dbt_tasks, "ok  ")
    assert "up_for_reschedule" not in first_run.stdout  # only final states are printed
    serving = root / "data" / "warehouse" / "warehouse.duckdb"
    con = duckdb.connect(str(serving), read_only=True)
    counts = {
        m: con.execute(f"select count(*) from marts.{m}").fetchone()[0] for m in PUBLISHED_MARTS
    }
    con.close()
    assert all(n > 0 for n in counts.values()), counts
    assert counts["kpi_daily"] == 10
    before = mart_fingerprints(serving)

    # A run SIGKILLed during extraction, then one killed inside dbt (the staging build): serving
    # stays as it was, and the next complete run (below) publishes marts identical to the
    # uninterrupted first run.
    for stage, after_line in (("extraction", "ok   prepare"), ("dbt", "ok   gate_raw")):
        output = _run_and_kill(mwh, env, after_line, delay=2.0)
        assert after_line in output, (stage, output[-2000:])
        assert "Marketing warehouse run" not in output, stage  # it died before its summary
        assert mart_fingerprints(serving) == before, stage
    # each `mwh run` moved the earlier run's record aside before it opened its own log: the
    # first run's log and summary are kept beside its publish record
    earliest = sorted((root / "data" / "runs").glob("2026-11-21.*"))[0]
    assert "SUCCESS" in (earliest / "summary.txt").read_text("utf-8")
    assert "publish" in (earliest / "airflow.log").read_text("utf-8")
    assert (earliest / "publish.json").exists()

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
    again = run_stages(settings_for(env, strict), "2026-11-21", "stages__strict_rerun")
    assert again.published, again.failure
    assert "marts    WARN" in again.summary and "Not published" not in again.summary
    assert mart_fingerprints(serving) == before
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
    # task (MWH_DBT_TASKS=single): same marts, and the first run exercised the default mode.
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
    assert mart_fingerprints(serving) == before

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
        settings_for(env, overrides), "2026-11-21", "stages__critical_marts", dbt=False
    )
    assert stopped.failure is not None and marts_suite in str(stopped.failure)
    assert stopped.finished == ["extract", "gate_raw", "gate_staging"]
    assert "marts    FAIL" in stopped.summary and "Not published this run." in stopped.summary
    assert marts_suite in stopped.summary
    assert mart_fingerprints(serving) == before
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
    # A later night's dbt stages start from their last parse (the snapshot date changed: one
    # file is parsed again, not the project)
    night_log = settings_for(env).layout.run("2026-11-22").airflow_log.read_text()
    assert night_log.count("Running with dbt=") == 3
    assert "Unable to do partial parsing" not in night_log
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
    snapshots = con.execute(
        "select distinct snapshot_date::varchar from marts.dim_customer_segments order by 1"
    ).fetchall()
    con.close()
    assert dates == [("2026-11-21",), ("2026-11-22",)]
    # the night's logical date reached dbt (the latest order is of 2026-11-21: the JPY one is
    # set aside)
    assert snapshots == dates
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


def test_a_failing_dbt_test_fails_its_models_task_and_nothing_is_published(first_run):
    """A dbt test that fails (a singular test in a copy of the project, MWH_PROJECT_DIR) fails the
    task of that model's tests, in the default dbt task mode: the model itself built, the stage's
    other models succeed, no marts task runs, nothing is published, and the run's problem names the
    model's task."""
    project = first_run.root / "failing-test-project"
    for folder in ("dags", "expectations"):
        shutil.copytree(PROJECT / folder, project / folder)
    shutil.copytree(
        PROJECT / "dbt_project", project / "dbt_project", ignore=shutil.ignore_patterns("logs")
    )
    (project / "dbt_project" / "tests").mkdir(exist_ok=True)
    (project / "dbt_project" / "tests" / "order_lines_never_arrive.sql").write_text(
        "-- fails on every order line: a test that fails on the night's data\n"
        "select * from {{ ref('stg_shopify__order_lines') }}\n",
        "utf-8",
    )
    serving = first_run.root / "data" / "warehouse" / "warehouse.duckdb"
    before = mart_fingerprints(serving)

    env = first_run.env | {"MWH_PROJECT_DIR": str(project)}
    failed = subprocess.run(mwh_run("2026-11-22"), env=env, **RUN)
    assert failed.returncode != 0, failed.stdout[-3000:]
    finished = dict((task, state) for state, task in TASK_LINE.findall(failed.stdout))
    assert finished["dbt_staging.stg_shopify__order_lines.test"] == "FAIL", failed.stdout[-3000:]
    assert finished["dbt_staging.stg_shopify__order_lines.run"] == "ok  "
    assert finished["dbt_staging.stg_hubspot__contacts.test"] == "ok  "
    assert not [t for t in finished if t.startswith(("dbt_marts.", "gate_staging", "publish"))]
    [problem] = [line for line in failed.stdout.splitlines() if "not successful:" in line]
    assert "dbt_staging.stg_shopify__order_lines.test" in problem
    assert "Not published this run." in failed.stdout
    assert mart_fingerprints(serving) == before
