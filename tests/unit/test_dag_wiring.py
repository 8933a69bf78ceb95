"""The DAG file through a real DagBag: failure alerts and retries are wired on the DAG and every task.

Cosmos' dbt task groups are replaced by one empty task each, so this runs without a dbt manifest;
``tests/integration/test_dag.py`` checks the same wiring on the full DAG, Cosmos tasks included.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from marketing_warehouse.alerts import on_failure

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def dag(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import TaskGroup

    from marketing_warehouse import dbt_tasks

    def fake_group(group_id, select, settings):
        with TaskGroup(group_id) as group:
            EmptyOperator(task_id="model_build", pool="warehouse_writer")
        return group

    monkeypatch.setattr(dbt_tasks, "dbt_task_group", fake_group)
    monkeypatch.setenv("MWH_TASK_RETRIES", "3")
    bag = DagBag(dag_folder=str(PROJECT / "dags"))
    assert bag.import_errors == {}
    return bag.dags["marketing_warehouse_nightly"]


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
