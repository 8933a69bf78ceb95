"""The nightly run's stages as plain functions; the DAG's tasks call these and nothing else.

Each stage is idempotent for its logical date ``ds``: extraction replaces the date's raw partition,
dbt rebuilds its models, gates rewrite the date's results, publish swaps in a complete file.

The DAG file imports this module only: besides the stages it finds here what Airflow needs to
build the tasks (the settings, the dbt task groups, the writer pool, the failure callback, the run
lock, the published marts), so the DAG shows the flow and the sub-packages stay behind it.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import asdict
from datetime import date

from marketing_warehouse.airflow_env import WAREHOUSE_POOL
from marketing_warehouse.config import Settings, load_settings
from marketing_warehouse.ingest.contracts import contract_for, load_contracts
from marketing_warehouse.ingest.extract import utc_now
from marketing_warehouse.layout import RunRecord
from marketing_warehouse.ops.alerts import on_failure
from marketing_warehouse.ops.runlock import release_run_lock, take_for_airflow_run
from marketing_warehouse.quality.gates import GateFailed
from marketing_warehouse.serve.publish import PUBLISHED_MARTS
from marketing_warehouse.transform.dbt_tasks import DBT_STAGE_EXCLUDES, DBT_STAGES, dbt_task_group

#: The stages, and what the DAG file builds its tasks with.
__all__ = [
    "DBT_STAGES",
    "DBT_STAGE_EXCLUDES",
    "EARLIEST_LOGICAL_DATE",
    "PUBLISHED_MARTS",
    "WAREHOUSE_POOL",
    "GateFailed",
    "already_published_message",
    "dbt_task_group",
    "extract_source",
    "gate",
    "load_settings",
    "on_failure",
    "predict",
    "prepare",
    "publish",
    "publish_postgres",
    "published_by",
    "refresh_dbt_docs",
    "release_run_lock",
    "run_report",
    "take_for_airflow_run",
]

log = logging.getLogger(__name__)

#: The DAG's start date. Any logical date from here on runs (``mwh run --date`` refuses earlier
#: ones): history loads need old dates, and with ``catchup=False`` the scheduler only ever creates
#: the latest interval, so an early start date schedules nothing extra. 1990 is before any export
#: the contracts describe and within what every Airflow metadata database stores (MySQL
#: timestamps start in 1970).
EARLIEST_LOGICAL_DATE = date(1990, 1, 1)


def log_peak_memory(stage: str) -> float:
    """Log (and return) the peak RSS of this process so far, in MB. Under ``airflow dags test``
    every task runs in one process: the first stage whose line shows the peak is the one that
    set it. Under a scheduler each task has its own process and the figure is the task's own."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log.info("%s: peak RSS of this process so far %.0f MB", stage, peak)
    return peak


def refresh_build(settings: Settings) -> None:
    """Before a stage reads the build database: on Spark (``MWH_ENGINE=spark``) it is rewritten
    as views over the tables dbt built there (``transform.spark_catalog``); on DuckDB it is dbt's
    own file."""
    if settings.engine == "spark":
        from marketing_warehouse.transform.spark_catalog import refresh

        refresh(settings)


def prepare(ds: str | None = None, settings: Settings | None = None) -> dict:
    """Create the run's folders and scan the landing folder; return the source entities to
    extract (``sources``, one task each) and the landing scan (``landing_scan``, for the raw
    gate and the report).

    State left by an earlier run of the same date (extraction summaries, gate results, publish
    record) moves to ``runs/<ds>.<timestamp>/``, so this run's summary shows only this run and
    the earlier gate results stay in ``audit.validation_results``. The latest-copy models' tables
    built by another version of the dbt project are dropped, so that dbt builds them in full
    (``transform.incremental``).
    """
    from marketing_warehouse.transform.dbt_tasks import ensure_source_files
    from marketing_warehouse.transform.incremental import reset_stale

    settings = settings or load_settings()
    for folder in (settings.layout.raw, settings.build_path.parent, settings.warehouse_path.parent):
        folder.mkdir(parents=True, exist_ok=True)
    ensure_source_files(settings)  # every dbt source resolves before the night writes it
    if settings.engine == "duckdb":  # on Spark the latest-copy models are tables built in full
        reset_stale(settings)
    if ds:
        settings.layout.archive_earlier_run(ds)
    scan = write_landing_scan(settings, ds) if ds else []
    return {"sources": [c.key for c in load_contracts()], "landing_scan": scan}


def write_landing_scan(settings: Settings, ds: str) -> list[dict]:
    """Record every landing entry the run looks at (``loads.scan_landing``) in the run folder,
    for the raw gate's ``raw/landing_scan`` suite, the summary and the report; log each one the
    run ignores."""
    from marketing_warehouse.ingest.loads import IGNORED_REASONS, scan_landing

    entries = scan_landing(settings.landing_dir, date.fromisoformat(ds), load_contracts())
    run = settings.layout.run(ds)
    run.keep(run.landing_scan, entries)
    for entry in entries:
        if entry["ignored_reason"]:
            log.warning(
                "ignored landing entry %s: %s (%s)",
                entry["path"],
                IGNORED_REASONS[entry["ignored_reason"]],
                entry["ignored_reason"],
            )
    return entries


def extract_source(key: str, ds: str, settings: Settings | None = None) -> dict:
    """Load the files landed for ``ds`` (and late files for earlier dates) of one source entity."""
    from marketing_warehouse.ingest.loads import load_source

    settings = settings or load_settings()
    contract = contract_for(key)
    results = load_source(settings, contract, date.fromisoformat(ds), utc_now())
    summary: dict = {
        "source": key,
        "files": len(results),
        "rows_landed": sum(r.rows_landed for r in results),
        "rows_loaded": sum(r.rows_loaded for r in results),
        "rows_quarantined": sum(r.rows_quarantined for r in results),
        "rejected_files": [r.message for r in results if r.status == "rejected"],
        "duplicate_files": [r.source_file for r in results if r.status == "skipped_duplicate"],
        "formula_values": sum(sum(r.formula_values.values()) for r in results),
        "detail": [asdict(r) for r in results],
    }
    run = settings.layout.run(ds)
    run.keep(run.extract_summary(key), summary)
    for message in summary["rejected_files"]:
        log.warning("quarantined whole file: %s", message)
    for r in results:
        for column, count in r.formula_values.items():
            log.warning(
                "%s: %d value(s) in column %r start like a spreadsheet formula (loaded as text)",
                r.source_file,
                count,
                column,
            )
    log.info(
        "%s: %s file(s), %s row(s) landed, %s loaded, %s quarantined",
        key,
        summary["files"],
        summary["rows_landed"],
        summary["rows_loaded"],
        summary["rows_quarantined"],
    )
    log_peak_memory(f"extract {key}")
    return summary


def gate(
    stage: str,
    ds: str,
    run_id: str,
    settings: Settings | None = None,
    extracts: list[dict] | None = None,
    landing_scan: list[dict] | None = None,
) -> dict:
    """Run one GX gate; raise ``GateFailed`` when a critical expectation fails; return the
    gate's summary. ``extracts`` and ``landing_scan``: what the extract tasks and ``prepare``
    returned (the raw gate's input in the DAG; without them the run folder's record is read)."""
    from marketing_warehouse.quality.gates import enforce, run_gate

    settings = settings or load_settings()
    record = None
    if extracts is not None or landing_scan is not None:
        fallback = settings.layout.run(ds).record()
        record = RunRecord(
            extracts=fallback.extracts if extracts is None else list(extracts),
            landing_scan=fallback.landing_scan if landing_scan is None else list(landing_scan),
        )
    if stage != "raw":
        refresh_build(settings)
    outcome = run_gate(settings, stage, date.fromisoformat(ds), run_id, record)
    log.info(
        "%s gate: %s (%d checks, data docs %s)",
        stage,
        outcome.status,
        len(outcome.checks),
        outcome.docs_index,
    )
    log_peak_memory(f"{stage} gate")
    enforce(outcome)
    return outcome.summary()


def predict(ds: str, settings: Settings | None = None) -> dict:
    """Predict each customer's value and churn risk as of ``ds`` (the snapshot date) from the
    build database's revenue orders; write the snapshot's Parquet files (``predict.store``) for
    the next dbt stage, keep the summary in the run folder and return it. A shop too small to
    fit writes empty files and says why in the summary (``skipped``)."""
    from marketing_warehouse.predict.snapshot import predict_snapshot

    settings = settings or load_settings()
    refresh_build(settings)
    summary = predict_snapshot(settings, date.fromisoformat(ds))
    run = settings.layout.run(ds)
    run.keep(run.predict_summary, summary)
    log.info(
        "predictions of %s: %d customer(s), fitted on %d, converged %s, %.1f s",
        ds,
        summary["customers"],
        summary["fitted"],
        summary["converged"],
        summary["seconds"],
    )
    log_peak_memory("predict")
    return summary


def publish(ds: str, run_id: str, settings: Settings | None = None) -> dict:
    """Swap the audited marts into the serving file and, when configured, PostgreSQL as one
    unit; record what was published in the run folder and return it.

    PostgreSQL is loaded first, then the DuckDB file is swapped, then PostgreSQL commits: a
    PostgreSQL failure fails the task with both targets on the previous version, and the retry
    publishes both again (replacing, not adding to, this run's version). The two targets stay
    in one task: PostgreSQL's transaction is open while the file is swapped, and a transaction
    cannot outlive the process that opened it. dbt docs and the run report follow as tasks of
    their own (``refresh_dbt_docs``, ``run_report``).

    Once the swap has succeeded, the audiences of ``ds`` are exported from the new serving
    file to ``<data>/exports/<ds>/`` (``ops.audience_exports``); a failed export fails the task,
    and its retry publishes and exports again.
    """
    from marketing_warehouse.ops.audience_exports import export as export_audiences
    from marketing_warehouse.serve.publish import publish as publish_file

    settings = settings or load_settings()
    refresh_build(settings)
    postgres = postgres_target(settings)
    result = publish_file(
        settings, date.fromisoformat(ds), run_id, target=postgres.stage if postgres else None
    )
    log.info("published %s (version %s)", result.serving_path, result.version_path.name)
    payload: dict = {
        "serving_path": str(result.serving_path),
        "version": result.version_path.name,
        "row_counts": result.row_counts,
    }
    if postgres:
        payload["postgres_row_counts"] = postgres.counts
        log_postgres(settings, postgres.counts)
    exports = export_audiences(settings, ds)
    payload["audience_exports"] = exports
    log.info(
        "exported %d audience file(s) of %d audience(s) to %s",
        len(exports["files"]),
        len(exports["audiences"]),
        exports["folder"],
    )
    run = settings.layout.run(ds)
    run.keep(run.publish_record, payload)
    log_peak_memory("publish")
    return payload


def run_report(
    ds: str,
    published: dict,
    settings: Settings | None = None,
    extracts: list[dict] | None = None,
    gates: list[dict] | None = None,
    landing_scan: list[dict] | None = None,
) -> str:
    """Write the HTML report of a published run from what its tasks returned: ``publish``, the
    extract tasks, the gates and ``prepare`` (what is not given is read from the run folder's
    record)."""
    from marketing_warehouse.ops import report

    settings = settings or load_settings()
    kept = settings.layout.run(ds).record()
    record = RunRecord(
        extracts=kept.extracts if extracts is None else list(extracts),
        landing_scan=kept.landing_scan if landing_scan is None else list(landing_scan),
        gates=kept.gates if gates is None else {g["stage"]: g for g in gates},
        published=published,
    )
    path = str(report.write(settings, ds, succeeded=True, record=record))
    log.info("run report: %s", path)
    return path


def published_by(ds: str, settings: Settings | None = None, other_than: str = "") -> str:
    """The run that last published ``ds`` to the serving file ("" if none did), leaving out
    the run ``other_than`` (a scheduled run cleared to run again after it published)."""
    from marketing_warehouse.serve.publish import runs_that_published

    runs = [r for r in runs_that_published(settings or load_settings(), ds) if r != other_than]
    return runs[-1] if runs else ""


def already_published_message(ds: str, run_id: str) -> str:
    """Why a scheduled run of ``ds`` does nothing, and how to run that date again."""
    return (
        f"{ds} is already published (run {run_id}): a scheduled run does not repeat a published "
        f"date. To run it again, trigger the DAG by hand for {ds} or run `mwh run --date {ds}`"
    )


def postgres_target(settings: Settings):
    """The PostgreSQL serving target published with the DuckDB file, or None when off."""
    if not settings.postgres_dsn:
        return None
    from marketing_warehouse.serve.postgres import PostgresTarget

    return PostgresTarget(settings)


def log_postgres(settings: Settings, counts: dict[str, int]) -> None:
    log.info(
        "published %d tables to PostgreSQL (reader role %s)",
        len(counts),
        settings.postgres_reader_role,
    )


def publish_postgres(settings: Settings) -> dict[str, int]:
    """Copy the serving file's marts and audit into PostgreSQL (one transaction) on their own,
    and record which version PostgreSQL now holds."""
    from marketing_warehouse.serve.postgres import publish_to_postgres
    from marketing_warehouse.serve.publish import list_versions, pin_version

    current = next((v.id for v in list_versions(settings) if v.is_current), "")
    counts = publish_to_postgres(settings, version_id=current)
    if current:
        pin_version(settings, current)
    log_postgres(settings, counts)
    return counts


def refresh_dbt_docs(settings: Settings | None = None) -> str:
    """Regenerate dbt docs when the project changed; return the index path, or "" when
    generation failed. dbt docs are documentation, not data: a failure is logged and does not
    fail the run."""
    import os
    import subprocess

    from marketing_warehouse.serve.docs import generate_dbt_docs

    settings = settings or load_settings()
    try:
        index = generate_dbt_docs(settings, dict(os.environ))
    except subprocess.CalledProcessError as exc:
        log.warning("dbt docs generate failed (the publish stands): %s", exc.stdout[-2000:])
        return ""
    log.info("dbt docs: %s", index)
    return str(index)
