"""The DAG file through a real DagBag: failure alerts and retries are wired on the DAG and every task.

Cosmos' dbt task groups are replaced by one empty task each, so this runs without a dbt manifest;
``tests/integration/test_dag.py`` checks the same wiring on the full DAG, Cosmos tasks included.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from marketing_warehouse.ops.alerts import on_failure

PROJECT = Path(__file__).resolve().parents[2]


def load_dag(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import TaskGroup

    from marketing_warehouse import pipeline

    def fake_group(group_id, select, settings, exclude=None):
        with TaskGroup(group_id) as group:
            EmptyOperator(task_id="model_build", pool="warehouse_writer")
        return group

    monkeypatch.setattr(pipeline, "dbt_task_group", fake_group)
    bag = DagBag(dag_folder=str(PROJECT / "dags"))
    assert bag.import_errors == {}
    return bag.dags["marketing_warehouse_nightly"]


@pytest.fixture
def dag(monkeypatch):
    monkeypatch.setenv("MWH_TASK_RETRIES", "3")
    return load_dag(monkeypatch)


def test_the_dag_reads_the_projects_env_file(tmp_path, monkeypatch):
    """The DAG's settings come from <project>/.env outside Docker too; the environment wins."""
    project = tmp_path / "project"
    project.mkdir()
    (project / ".env").write_text("MWH_SCHEDULE=30 4 * * *\nMWH_TASK_RETRIES=1\n", "utf-8")
    for name in ("MWH_SCHEDULE", "MWH_TASK_RETRIES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MWH_PROJECT_DIR", str(project))
    dag = load_dag(monkeypatch)
    assert dag.timetable.summary == "30 4 * * *"
    assert {task.retries for task in dag.tasks} == {1}
    monkeypatch.setenv("MWH_TASK_RETRIES", "4")
    assert {task.retries for task in load_dag(monkeypatch).tasks} == {4}


def callbacks(value) -> list:
    return value if isinstance(value, list) else [value]


def test_failures_alert_from_the_dag_and_from_every_task(dag):
    assert on_failure in callbacks(dag.on_failure_callback)
    assert len(dag.tasks) >= 8
    for task in dag.tasks:
        assert on_failure in callbacks(task.on_failure_callback), task.task_id


def test_every_task_retries_with_exponential_backoff(dag):
    for task in dag.tasks:
        assert task.retries == 3, task.task_id
        assert task.retry_exponential_backoff, task.task_id
        assert task.retry_delay == timedelta(minutes=5)
        assert task.max_retry_delay == timedelta(hours=1)


def test_any_logical_date_from_the_earliest_on_runs_every_task(dag):
    """Airflow runs no task whose logical date is before the task's (or the DAG's) start date:
    a history load of 1998-07-01 must find none of them blocking."""
    from datetime import UTC, datetime

    from marketing_warehouse.pipeline import EARLIEST_LOGICAL_DATE

    historical = datetime(1998, 7, 1, tzinfo=UTC)
    earliest = datetime.combine(EARLIEST_LOGICAL_DATE, datetime.min.time(), tzinfo=UTC)
    assert dag.start_date == earliest <= historical
    assert dag.catchup is False  # the scheduler itself only ever creates the latest interval
    for task in dag.tasks:
        assert task.start_date is None or task.start_date <= earliest, task.task_id


def test_mwh_run_refuses_a_date_before_the_dags_start_date():
    from marketing_warehouse.cli import USAGE_EXIT, CliError, _logical_date

    assert _logical_date("1998-07-01") == "1998-07-01"
    with pytest.raises(CliError, match="from 1990-01-01 on") as refused:
        _logical_date("1989-12-31")
    assert refused.value.code == USAGE_EXIT


def test_a_dag_run_counts_only_when_its_tasks_ran_and_publish_succeeded():
    from marketing_warehouse.cli import DagRunOutcome

    tasks = {"prepare": "success", "extract_source[0]": "success", "gate_raw": "success"}
    assert "no task ran" in DagRunOutcome(0, {}).problem()  # exit code 0, nothing done
    assert "without publishing" in DagRunOutcome(0, tasks).problem()
    failed = DagRunOutcome(1, {**tasks, "gate_raw": "failed"}).problem()
    assert failed == "task(s) not successful: gate_raw"
    assert DagRunOutcome(0, {**tasks, "publish": "success"}).problem() == ""
    assert "exited with code 2" in DagRunOutcome(2, {**tasks, "publish": "success"}).problem()


def test_a_scheduled_run_of_a_date_already_published_skips_and_touches_nothing(
    dag, settings, monkeypatch
):
    """`make run` published 2026-11-21; the scheduler `make airflow` starts then creates the
    latest interval's run, of the same date: its prepare skips (so does every task after it),
    without taking the run lock or archiving the published run's folder. A run triggered by hand
    runs the date again."""
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowSkipException
    from conftest import make_build_db

    from marketing_warehouse import pipeline

    monkeypatch.setenv("MWH_DATA_DIR", str(settings.data_dir))
    make_build_db(settings, 1)
    pipeline.publish("2026-11-21", "manual__2026-11-21T00:00:00+00:00", settings)
    folder = settings.layout.run("2026-11-21")
    before = sorted(p.name for p in folder.root.iterdir())
    prepare = dag.get_task("prepare").python_callable

    with pytest.raises(AirflowSkipException) as skipped:
        prepare(
            ds="2026-11-21",
            run_id="scheduled__2026-11-22T02:00:00+00:00",
            dag_run=SimpleNamespace(run_type="scheduled"),
        )
    assert str(skipped.value) == (
        "2026-11-21 is already published (run manual__2026-11-21T00:00:00+00:00): a scheduled "
        "run does not repeat a published date. To run it again, trigger the DAG by hand for "
        "2026-11-21 or run `mwh run --date 2026-11-21`"
    )
    assert sorted(p.name for p in folder.root.iterdir()) == before
    assert not settings.layout.run_lock.exists()

    # a date not yet published runs on schedule; the published one runs when triggered by hand
    for ds, run_type in (("2026-11-22", "scheduled"), ("2026-11-21", "manual")):
        run_id = f"{run_type}__{ds}"
        pushed: dict = {}
        ti = SimpleNamespace(xcom_push=lambda key, value, into=pushed: into.update({key: value}))
        assert prepare(ds=ds, run_id=run_id, dag_run=SimpleNamespace(run_type=run_type), ti=ti)
        assert list(pushed) == ["landing_scan"]  # the raw gate's and the report's input
        assert pipeline.release_run_lock(settings, run_id)

    # a scheduled run that published its date itself, cleared to run again, runs
    cleared = "scheduled__2026-11-23T02:00:00+00:00"
    pipeline.publish("2026-11-22", cleared, settings)
    pushed = {}
    ti = SimpleNamespace(xcom_push=lambda key, value, into=pushed: into.update({key: value}))
    scheduled = SimpleNamespace(run_type="scheduled")
    assert prepare(ds="2026-11-22", run_id=cleared, dag_run=scheduled, ti=ti)
    assert pipeline.release_run_lock(settings, cleared)


def test_predict_runs_between_the_marts_and_the_segments(dag):
    """dbt_marts >> predict >> dbt_segments >> gate_marts >> publish, predict in the writer pool
    (it reads the build file while no dbt task writes it)."""
    predict = dag.get_task("predict")
    assert predict.pool == "warehouse_writer"
    assert predict.upstream_task_ids == {"dbt_marts.model_build"}
    assert predict.downstream_task_ids == {"dbt_segments.model_build"}
    assert dag.get_task("dbt_segments.model_build").downstream_task_ids == {"gate_marts"}
    assert "publish" in dag.get_task("gate_marts").downstream_task_ids
    assert "pipeline.predict(ds)" in __import__("inspect").getsource(predict.python_callable)
