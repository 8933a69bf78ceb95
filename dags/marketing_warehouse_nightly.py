"""
# marketing_warehouse_nightly

The nightly marketing warehouse run for one logical date (`ds`, the UTC date whose landing
folder `<landing>/<ds>/` is processed; late files in earlier folders are picked up too). Any date
from the start date (1990-01-01) on runs, so history can be loaded date by date; `catchup=False`
keeps the scheduler to the latest interval.

| stage | what it does |
|---|---|
| `prepare` | creates the run's folders, records the landing scan (entries no run reads) and lists the sources (one contract each); a scheduled run of a date already published (e.g. by `mwh run`) is skipped, and so is everything after it |
| `extract_source` | one mapped task per source (named by the source in the UI): landed files -> typed raw Parquet + quarantine, load ledger |
| `gate_raw` | GX suites on the new raw partition, row conservation, the quarantined share per file and source, ignored landing entries (critical failures stop the run) |
| `dbt_staging` | dbt staging + audit models: one `dbt build` (Cosmos watcher), one task per model and per model's tests showing how it went |
| `gate_staging` | GX suites on staging rows of the run's load date |
| `dbt_marts` | dbt intermediate + marts models and the semantic layer's time spine, the same way, except `dim_customer_segments` and what reads it |
| `predict` | fits the customer-value models (modified BG/NBD, Gamma-Gamma) on the revenue orders up to `ds` and writes that snapshot's predictions and parameters as Parquet (a shop too small to fit gets empty files) |
| `dbt_segments` | dbt `models/predictions` (customer_predictions with its churn-risk band, clv_model_parameters), then `dim_customer_segments` (which joins them) and the marts that read it |
| `gate_marts` | GX suites on the marts: ranges, reconciliation, freshness |
| `publish` | atomic swap of the audited marts into the serving DuckDB file and PostgreSQL (if `MWH_POSTGRES_DSN` is set) as one unit: both move or neither; emits one Asset per mart |
| `docs` | regenerates the dbt docs when the dbt project changed (a failure is logged, the publish stands) |
| `report` | the run's HTML report, from what prepare, extraction, the gates and publish returned |
| `release_run_lock` | teardown: frees the run lock, also after a failed run |

Tasks hand their summaries to each other through Airflow (XCom): the raw gate gets what the
extract tasks and `prepare` (the landing scan) returned, the report what extraction, the gates
and publish returned. The run folder `runs/<ds>/` keeps the same summaries as the run's record,
for `mwh run`'s summary and the report of a failed run. Tasks that open the build DuckDB file run
in the one-slot `warehouse_writer` pool (`predict` too: it reads the file while no dbt writes); `docs` and `report` run after publish, outside it. A task that fails for good (after its
retries, with exponential backoff) and a failed run send an alert by e-mail and/or webhook
(`MWH_ALERT_*`). Configuration: `MWH_*` environment variables, or `<project>/.env` under them
(see the README).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from airflow.sdk import Asset, dag, task, teardown
from airflow.timetables.interval import CronDataIntervalTimetable

from marketing_warehouse import pipeline

settings = pipeline.load_settings()

MART_ASSETS = [
    Asset(name=f"marts.{mart}", uri=f"duckdb://marketing-warehouse/marts/{mart}", group="marts")
    for mart in pipeline.PUBLISHED_MARTS
]


@dag(
    dag_id="marketing_warehouse_nightly",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable(settings.schedule, timezone="UTC"),
    start_date=datetime.combine(pipeline.EARLIEST_LOGICAL_DATE, time(), tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "data",
        "retries": settings.task_retries,
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(hours=1),
        "on_failure_callback": pipeline.on_failure,
    },
    on_failure_callback=pipeline.on_failure,
    tags=["marketing", "warehouse"],
)
def marketing_warehouse_nightly():
    @task
    def prepare(
        ds: str | None = None, run_id: str | None = None, dag_run=None, ti=None
    ) -> list[str]:
        # a scheduled run of a date already published (`make run`, then `make airflow`) skips
        scheduled = dag_run.run_type == "scheduled"
        done = pipeline.published_by(ds, other_than=run_id) if scheduled else ""
        if done:
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException(pipeline.already_published_message(ds, done))
        pipeline.take_for_airflow_run(run_id)  # first: a run refused here has touched nothing
        prepared = pipeline.prepare(ds)
        ti.xcom_push(key="landing_scan", value=prepared["landing_scan"])
        return prepared["sources"]

    # the UI names each mapped task by its source ("shopify__order_lines"), not "[5]"
    @task(max_active_tis_per_dag=2, map_index_template="{{ task.op_kwargs['key'] }}")
    def extract_source(key: str, ds: str | None = None) -> dict:
        return pipeline.extract_source(key, ds)

    @task(pool=pipeline.WAREHOUSE_POOL)
    def gate(
        stage: str,
        extracts: list | None = None,
        landing_scan: list | None = None,
        ds: str | None = None,
        run_id: str | None = None,
    ) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        try:
            return pipeline.gate(stage, ds, run_id, extracts=extracts, landing_scan=landing_scan)
        except pipeline.GateFailed as failure:  # bad data: retrying cannot help
            raise AirflowFailException(str(failure)) from failure

    @task(pool=pipeline.WAREHOUSE_POOL)
    def predict(ds: str | None = None) -> dict:
        return pipeline.predict(ds)

    @task(pool=pipeline.WAREHOUSE_POOL, outlets=MART_ASSETS)
    def publish(ds: str | None = None, run_id: str | None = None) -> dict:
        return pipeline.publish(ds, run_id)

    @task
    def docs() -> str:
        return pipeline.refresh_dbt_docs()

    @task
    def report(
        published: dict, extracts: list, gates: list, landing_scan: list, ds: str | None = None
    ) -> str:
        return pipeline.run_report(
            ds, published, extracts=extracts, gates=gates, landing_scan=landing_scan
        )

    @teardown
    def release_run_lock(run_id: str | None = None) -> bool:
        return pipeline.release_run_lock(pipeline.load_settings(), run_id)

    prepared = prepare()
    scan = prepared["landing_scan"]
    extracted = extract_source.expand(key=prepared)
    gate_raw = gate.override(task_id="gate_raw")("raw", extracted, scan)
    dbt_staging = pipeline.dbt_task_group(
        "dbt_staging", pipeline.DBT_STAGES["dbt_staging"], settings
    )
    gate_staging = gate.override(task_id="gate_staging")("staging")
    dbt_marts = pipeline.dbt_task_group(
        "dbt_marts",
        pipeline.DBT_STAGES["dbt_marts"],
        settings,
        exclude=pipeline.DBT_STAGE_EXCLUDES["dbt_marts"],
    )
    predicted = predict()
    dbt_segments = pipeline.dbt_task_group(
        "dbt_segments", pipeline.DBT_STAGES["dbt_segments"], settings
    )
    gate_marts = gate.override(task_id="gate_marts")("marts")

    published = publish()
    (extracted >> gate_raw >> dbt_staging >> gate_staging >> dbt_marts >> predicted)
    (predicted >> dbt_segments >> gate_marts >> published)
    gates = [gate_raw, gate_staging, gate_marts]
    published >> [docs(), report(published, extracted, gates, scan)] >> release_run_lock()


marketing_warehouse_nightly()
