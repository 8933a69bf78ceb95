"""The nightly run's stages called in this process, in the DAG's order, without Airflow.

For tests of what the stages do on given data (a gate that warns or stops, a publish, a backfill):
one ``airflow dags test`` costs about a minute, the same stages called directly a fraction of that.
What only the DAG can show (task order, a failed gate stopping its downstream tasks, a killed run,
the dbt task modes, the start date) stays with the DAG runs in tests/integration/test_dag.py and
test_dag_dates.py.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from marketing_warehouse.config import Settings
from marketing_warehouse.ops import summary
from marketing_warehouse.pipeline import extract_source, gate, predict, prepare, publish
from marketing_warehouse.quality.gates import GateFailed
from marketing_warehouse.transform.dbt_tasks import (
    DBT_STAGE_EXCLUDES,
    DBT_STAGES,
    dbt_run_env,
    dbt_stage_args,
    run_dbt,
)

__all__ = ["DBT_STAGES", "DBT_STAGE_EXCLUDES", "StagesRun", "run_stages", "stage_nodes"]


@dataclass
class StagesRun:
    """What a direct run did: the stages it finished, the gate failure that stopped it (if any)
    and the summary ``mwh run`` would print for it."""

    ds: str
    finished: list[str] = field(default_factory=list)
    failure: GateFailed | None = None
    summary: str = ""

    @property
    def published(self) -> bool:
        return "publish" in self.finished


def run_stages(settings: Settings, ds: str, run_id: str, *, dbt: bool = True) -> StagesRun:
    """prepare, extract every source, gate raw, dbt staging, gate staging, dbt marts, predict,
    dbt segments, gate marts, publish; a critical gate failure ends the run there (as the DAG
    does). ``dbt=False`` leaves the build database and the predictions as they are (they must
    already hold this landing's models)."""
    run = StagesRun(ds)

    def build(stage: str) -> None:
        if dbt:
            args = ["build", *dbt_stage_args(stage)]
            built = run_dbt(settings, args, {**os.environ, **dbt_run_env(ds)})
            assert built.returncode == 0, (stage, built.stdout[-4000:])
            run.finished.append(stage)

    def check(stage: str, **handed) -> None:
        gate(stage, ds, run_id, settings, **handed)
        run.finished.append(f"gate_{stage}")

    try:
        prepared = prepare(ds, settings)
        extracts = [extract_source(key, ds, settings) for key in prepared["sources"]]
        run.finished.append("extract")
        check("raw", extracts=extracts, landing_scan=prepared["landing_scan"])
        build("dbt_staging")
        check("staging")
        build("dbt_marts")
        if dbt:
            predict(ds, settings)
            run.finished.append("predict")
        build("dbt_segments")
        check("marts")
        publish(ds, run_id, settings)
        run.finished.append("publish")
    except GateFailed as failure:
        run.failure = failure
    problem = "" if run.published else str(run.failure).splitlines()[0]
    run.summary = summary.build(settings, ds, run.published, problem)
    return run


def stage_nodes(
    settings: Settings, resource_types: tuple[str, ...] = ("model", "seed")
) -> dict[str, set[str]]:
    """The nodes (unique ids) of ``resource_types`` each dbt stage builds, as dbt itself
    resolves the stage's selectors and exclusions (``dbt ls``)."""
    found = {}
    for stage in DBT_STAGES:
        listed = run_dbt(
            settings,
            ["ls", *dbt_stage_args(stage),
             *[arg for kind in resource_types for arg in ("--resource-type", kind)],
             "--output", "json", "--output-keys", "unique_id", "--quiet"],
            dict(os.environ),
        )  # fmt: skip
        assert listed.returncode == 0, listed.stdout[-3000:]
        found[stage] = {
            json.loads(line)["unique_id"] for line in listed.stdout.splitlines() if line.strip()
        }
    return found
