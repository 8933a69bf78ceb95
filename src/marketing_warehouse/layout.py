"""The on-disk layout: every folder and file name the warehouse reads and writes, in one place.

Other modules ask this one for a path (``settings.layout`` is the ``Layout`` of a run's settings)
and never join these names themselves; ``tests/unit/test_layout.py`` holds them to it::

    <landing>/YYYY-MM-DD/<file>                  landed exports, one folder per delivery date
    <landing>/.erasure/                          scratch of an erasure rewriting a landed file
    <data>/raw/<source>/load_date=YYYY-MM-DD/<hash>.parquet       typed rows, one file per landed file
    <data>/raw/<source>/_schema/empty.parquet                     zero rows, keeps staging readable
    <data>/raw/_quarantine/<source>/load_date=YYYY-MM-DD/<hash>.parquet    rows set aside, why
    <data>/raw/_quarantine/<source>/_schema/empty.parquet
    <data>/raw/_ledger/<source>/load_date=YYYY-MM-DD.json         what each landed file became
    <data>/raw/_erased/<source>.json             content hashes an erasure rewrote
    <data>/raw/_staging/<source>/                a partition being assembled (never read)
    <data>/predictions/<table>/snapshot_date=YYYY-MM-DD/part.parquet   predictions of one snapshot
        (<table>: customer_predictions, clv_model_parameters; kept across rebuilds of build.duckdb)
    <data>/predictions/<table>/_schema/empty.parquet              zero rows, keeps the source readable
    <data>/runs/<ds>/                            one run of logical date <ds>:
        extract/<source>.json                      what extraction did, per source
        landing_scan.json                          every landing entry the run looked at
        predict.json                               what the predict stage did
        validation/<stage>.json | .parquet         gate summary and results (raw, staging, marts)
        publish.json                               what publish did
        summary.txt, report.html                   what the run tells its operator
    <data>/runs/<ds>.<timestamp>/                 an earlier run of the same date, moved aside
    <data>/docs/dbt/, <data>/gx/                  dbt docs, GX context and data docs
        (docs/dbt/docs_version.txt: the project, dbt release and settings they describe)
    <data>/dbt/                                   target folder of dbt commands run outside Airflow
    <data>/cosmos/<dag>__<stage>/target/          each dbt stage's last parse (Cosmos' cache)
    <data>/spark/tables/<schema>.db/<table>/      Spark's tables as Parquet (MWH_ENGINE=spark;
        <data>/spark is MWH_SPARK_DIR), schemas/<schema>.<table>/ the zero-row schema file of a
        partitioned table, metastore_db/ its Derby metastore, derby.log; the build database
        is then a DuckDB file of views over these tables (transform.spark_catalog)
    <data>/audit/                                 erasure journal and log
    <data>/exports/<ds>/                          audience files for the tools (one folder per
        run date): <audience>.<layout>.csv, <audience>.control.csv, manifest.json
    <data>/exports/.<ds>.tmp/, .<ds>.old/         an export folder being written, the one it
        replaces (both never read)
    <project>/dbt_project/audiences/<name>.yml    audience definitions (audiences as code)
    <data>/bench/                                 benchmark results
    <data>/bi/                                    Superset's state (``make bi``): superset.db
        (SQLite metadata), credentials.json (secret key, admin password), superset.log,
        bundle.zip (the last imported dashboards), screenshots/<slug>.png (the BI tests')
    <project>/.bi/venv/                           Superset's own virtualenv (``make bi-install``)
    <data>/.run.lock, .run.lock.guard             one run at a time
    <warehouse dir>/.publish.lock                 one publish or rollback at a time
    <warehouse dir>/versions/<serving>.<id>.duckdb   published versions, .other-targets.version

A run's tasks hand their summaries to each other through Airflow (XCom); the run folder keeps
the same summaries as the run's record (``RunFolder.keep`` writes one, ``RunFolder.record``
reads them all back) for what runs outside the task flow: ``mwh run``'s summary, the report of a
failed run, a gate called on its own.

``<hash>`` is the first ``HASH_NAME_LENGTH`` hex digits of the landed file's SHA-256: the raw
file, its quarantine file and the ledger entry share it. dbt reads the same layout through
``MWH_RAW_DIR`` (the ``external_location`` of the sources in ``models/**/_*__sources.yml``) and
the predictions through ``MWH_PREDICTIONS_DIR`` (``models/predictions/_predictions__sources.yml``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

#: Hex digits of a landed file's SHA-256 that name its raw and quarantine Parquet files.
HASH_NAME_LENGTH = 16
PARTITION_PREFIX = "load_date="
SNAPSHOT_PREFIX = "snapshot_date="
#: The tables the predict stage writes, one folder each under ``<data>/predictions/``.
PREDICTION_TABLES = ("customer_predictions", "clv_model_parameters")
_DATE_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: A run folder's entries that belong to one run: a re-run of the date moves them aside.
RUN_STATE = ("extract", "validation", "predict.json", "publish.json", "landing_scan.json")
#: What ``mwh run`` writes into a run folder around the DAG run: its re-run moves them aside too.
#: The report stays: a failed re-run never replaces the report of a published run
#: (``RunFolder.failed_report``).
RUN_LOGS = ("airflow.log", "summary.txt")


def hash_name(file_hash: str) -> str:
    """The part of a content hash that names its files (also the key erasure's journal uses)."""
    return file_hash[:HASH_NAME_LENGTH]


def raw_file_name(file_hash: str) -> str:
    """The name of the raw (and quarantine) Parquet file of the landed file with ``file_hash``."""
    return f"{hash_name(file_hash)}.parquet"


def partition_name(day: date | str) -> str:
    return f"{PARTITION_PREFIX}{day if isinstance(day, str) else day.isoformat()}"


def partition_day(name: str) -> str:
    """The load date (ISO) of a partition folder or ledger file name."""
    return name.removeprefix(PARTITION_PREFIX).removesuffix(".json")


def landing_day(landing_dir: Path, day: date) -> Path:
    """The landing folder of one delivery date."""
    return landing_dir / day.isoformat()


def landing_folder_day(name: str) -> date | None:
    """The delivery date a landing folder's name gives (``YYYY-MM-DD``), or None."""
    if not _DATE_FOLDER.match(name):
        return None
    try:
        return date.fromisoformat(name)
    except ValueError:
        return None


@dataclass(frozen=True)
class Source:
    """The raw, quarantine and ledger folders of one source entity (contract key)."""

    key: str
    raw: Path
    quarantine: Path
    ledger: Path
    erased_hashes: Path
    staging: Path

    def raw_partition(self, day: date | str) -> Path:
        return self.raw / partition_name(day)

    def quarantine_partition(self, day: date | str) -> Path:
        return self.quarantine / partition_name(day)

    def raw_file(self, day: date | str, file_hash: str) -> Path:
        return self.raw_partition(day) / raw_file_name(file_hash)

    def quarantine_file(self, day: date | str, file_hash: str) -> Path:
        return self.quarantine_partition(day) / raw_file_name(file_hash)

    @property
    def raw_schema_file(self) -> Path:
        return self.raw / "_schema" / "empty.parquet"

    @property
    def quarantine_schema_file(self) -> Path:
        return self.quarantine / "_schema" / "empty.parquet"

    def ledger_file(self, day: date | str) -> Path:
        return self.ledger / f"{partition_name(day)}.json"

    def ledger_files(self) -> list[Path]:
        return sorted(self.ledger.glob(f"{PARTITION_PREFIX}*.json")) if self.ledger.is_dir() else []

    def raw_files(self) -> list[Path]:
        """Every raw Parquet file of the source, in partition order (no schema file)."""
        return sorted(self.raw.glob(f"{PARTITION_PREFIX}*/*.parquet"))

    def quarantine_files(self) -> list[Path]:
        return sorted(self.quarantine.glob(f"{PARTITION_PREFIX}*/*.parquet"))

    def staged_partition(self, kind: str, day: date) -> Path:
        """Where the partition of ``day`` (``kind`` raw or quarantine) is assembled."""
        return self.staging / f"{kind}-{day.isoformat()}"


@dataclass(frozen=True)
class PredictionTable:
    """The snapshot partitions of one table the predict stage writes."""

    root: Path

    def partition(self, day: date | str) -> Path:
        return self.root / f"{SNAPSHOT_PREFIX}{day if isinstance(day, str) else day.isoformat()}"

    def part_file(self, day: date | str) -> Path:
        """The one file of a snapshot (replaced whole by a re-run of that date)."""
        return self.partition(day) / "part.parquet"

    @property
    def schema_file(self) -> Path:
        return self.root / "_schema" / "empty.parquet"

    def snapshot_files(self) -> list[Path]:
        return sorted(self.root.glob(f"{SNAPSHOT_PREFIX}*/*.parquet"))


@dataclass(frozen=True)
class RunFolder:
    """The folder of one run of logical date ``ds``."""

    root: Path

    @property
    def extract_dir(self) -> Path:
        return self.root / "extract"

    def extract_summary(self, key: str) -> Path:
        return self.extract_dir / f"{key}.json"

    def extract_summaries(self) -> list[Path]:
        return sorted(self.extract_dir.glob("*.json"))

    @property
    def validation_dir(self) -> Path:
        return self.root / "validation"

    def gate_summary(self, stage: str) -> Path:
        return self.validation_dir / f"{stage}.json"

    def gate_results(self, stage: str) -> Path:
        return self.validation_dir / f"{stage}.parquet"

    @property
    def landing_scan(self) -> Path:
        return self.root / "landing_scan.json"

    @property
    def publish_record(self) -> Path:
        return self.root / "publish.json"

    @property
    def predict_summary(self) -> Path:
        """What the predict stage did (customers, fitted, converged, why it skipped)."""
        return self.root / "predict.json"

    @property
    def summary(self) -> Path:
        return self.root / "summary.txt"

    @property
    def airflow_log(self) -> Path:
        """The output of ``airflow dags test`` under ``mwh run``."""
        return self.root / "airflow.log"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def failed_report(self) -> Path:
        """The report of a failed run when ``report`` is that of a run that published the date:
        a failure never overwrites it (``ops.alerts``)."""
        return self.root / "report-failed.html"

    def state(self, logs: bool = False) -> list[Path]:
        """The entries of ``RUN_STATE`` (and with ``logs``, of ``RUN_LOGS``) that exist: left by
        an earlier run of the date."""
        names = RUN_STATE + RUN_LOGS if logs else RUN_STATE
        return [self.root / name for name in names if (self.root / name).exists()]

    def keep(self, path: Path, payload: object) -> Path:
        """Write one task's summary (JSON) into the run's record, atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(payload, indent=1), "utf-8")
        os.replace(tmp, path)
        return path

    def record(self) -> RunRecord:
        """The run's record as its tasks kept it (empty parts for what did not run)."""

        def read(path: Path, default):
            return json.loads(path.read_text("utf-8")) if path.exists() else default

        return RunRecord(
            extracts=[read(p, {}) for p in self.extract_summaries()],
            landing_scan=read(self.landing_scan, []),
            gates={
                stage: read(self.gate_summary(stage), {})
                for stage in GATE_STAGES
                if self.gate_summary(stage).exists()
            },
            published=read(self.publish_record, {}),
        )


#: The gates of a run, in order (``quality.gates`` runs them; the record keeps their summaries).
GATE_STAGES = ("raw", "staging", "marts")


@dataclass
class RunRecord:
    """What a run's tasks returned: extraction summaries (one per source), the landing scan,
    gate summaries by stage and what publish did. In the DAG the tasks pass these to each other
    through Airflow; ``RunFolder.record`` reads the same from the run folder."""

    extracts: list[dict] = field(default_factory=list)
    landing_scan: list[dict] = field(default_factory=list)
    gates: dict[str, dict] = field(default_factory=dict)
    published: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Layout:
    """Where everything is, for one set of settings (``Settings.layout``)."""

    data_dir: Path
    landing_dir: Path
    warehouse_path: Path
    #: MWH_SPARK_DIR when set, else ``spark`` under the data folder
    spark_dir: Path | None = None

    # landing ---------------------------------------------------------------------------
    def landing_day(self, day: date) -> Path:
        return landing_day(self.landing_dir, day)

    @property
    def landing_scratch(self) -> Path:
        return self.landing_dir / ".erasure"

    # raw -------------------------------------------------------------------------------
    @property
    def raw(self) -> Path:
        return self.data_dir / "raw"

    @property
    def quarantine(self) -> Path:
        return self.raw / "_quarantine"

    @property
    def ledger(self) -> Path:
        return self.raw / "_ledger"

    def source(self, key: str) -> Source:
        return Source(
            key=key,
            raw=self.raw / key,
            quarantine=self.quarantine / key,
            ledger=self.ledger / key,
            erased_hashes=self.raw / "_erased" / f"{key}.json",
            staging=self.raw / "_staging" / key,
        )

    def ledger_sources(self) -> list[str]:
        """The source keys that have a ledger folder."""
        return (
            sorted(p.name for p in self.ledger.iterdir() if p.is_dir())
            if self.ledger.is_dir()
            else []
        )

    def all_quarantine_files(self) -> list[Path]:
        return sorted(self.quarantine.glob(f"*/{PARTITION_PREFIX}*/*.parquet"))

    # predictions -----------------------------------------------------------------------
    @property
    def predictions(self) -> Path:
        return self.data_dir / "predictions"

    def prediction_table(self, name: str) -> PredictionTable:
        if name not in PREDICTION_TABLES:
            raise KeyError(f"{name!r} is not one of the prediction tables {PREDICTION_TABLES}")
        return PredictionTable(self.predictions / name)

    # runs ------------------------------------------------------------------------------
    @property
    def runs(self) -> Path:
        return self.data_dir / "runs"

    def run(self, ds: str) -> RunFolder:
        return RunFolder(self.runs / ds)

    def archived_run(self, ds: str, stamp: str) -> Path:
        """Where a re-run of ``ds`` moves the earlier run's state (``stamp``: when)."""
        return self.runs / f"{ds}.{stamp}"

    def archive_earlier_run(self, ds: str, logs: bool = False) -> Path | None:
        """Move what an earlier run of ``ds`` left in its run folder (``RUN_STATE``; with
        ``logs``, also ``mwh run``'s log and summary, ``RUN_LOGS``) to ``archived_run``, stamped
        now (UTC); return that folder, or None when there was nothing to move."""
        stale = self.run(ds).state(logs)
        if not stale:
            return None
        archive = self.archived_run(ds, f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}")
        archive.mkdir(parents=True)
        for path in stale:
            os.replace(path, archive / path.name)
        return archive

    def all_gate_results(self) -> list[Path]:
        """Gate results of every run, archived runs included."""
        return sorted(self.runs.glob("*/validation/*.parquet"))

    # docs, audit, bench ----------------------------------------------------------------
    @property
    def dbt_docs(self) -> Path:
        return self.data_dir / "docs" / "dbt"

    @property
    def dbt_docs_index(self) -> Path:
        return self.dbt_docs / "index.html"

    @property
    def dbt_docs_version(self) -> Path:
        """What the dbt docs beside it were generated from (``serve.docs.docs_version``)."""
        return self.dbt_docs / "docs_version.txt"

    @property
    def dbt_target(self) -> Path:
        return self.data_dir / "dbt"

    @property
    def spark(self) -> Path:
        """Spark's folder (MWH_ENGINE=spark): its warehouse and metastore."""
        return self.spark_dir or self.data_dir / "spark"

    @property
    def spark_warehouse(self) -> Path:
        """``spark.sql.warehouse.dir``: ``<schema>.db/<table>/`` of Parquet files per table."""
        return self.spark / "tables"

    @property
    def spark_schemas(self) -> Path:
        """``<schema>.<table>/``: the zero-row schema file of each partitioned Spark table (such
        a table without rows has no Parquet file of its own)."""
        return self.spark / "schemas"

    @property
    def spark_metastore(self) -> Path:
        """Spark's Derby metastore database (which tables the warehouse holds)."""
        return self.spark / "metastore_db"

    @property
    def cosmos_cache(self) -> Path:
        """Cosmos' cache folder (``AIRFLOW__COSMOS__CACHE_DIR``): each dbt stage's last parse,
        which the stage's next run starts from. One per data folder: a parse of another data
        folder's build file is one dbt cannot reuse (its profile differs)."""
        return self.data_dir / "cosmos"

    @property
    def gx_root(self) -> Path:
        return self.data_dir / "gx"

    def gx_docs_site(self) -> Path:
        """GX's local data docs site under its context (the folder holding its index.html)."""
        found = sorted(self.gx_root.glob("**/data_docs/local_site/index.html"))
        if found:
            return found[0].parent
        return self.gx_root / "gx" / "uncommitted" / "data_docs" / "local_site"

    @property
    def erasure_journal(self) -> Path:
        return self.data_dir / "audit" / "erasure-journal.json"

    @property
    def erasure_log(self) -> Path:
        return self.data_dir / "audit" / "erasures.jsonl"

    @property
    def bench(self) -> Path:
        return self.data_dir / "bench"

    # audience exports ------------------------------------------------------------------
    @property
    def exports(self) -> Path:
        return self.data_dir / "exports"

    def export_dir(self, ds: str) -> Path:
        """The audience files of run date ``ds`` (replaced as a whole by each run of it)."""
        return self.exports / ds

    def export_scratch(self, ds: str) -> Path:
        """Where the export of ``ds`` is assembled before one rename makes it visible."""
        return self.exports / f".{ds}.tmp"

    def export_old(self, ds: str) -> Path:
        """The previous export of ``ds`` during the rename that replaces it (then removed)."""
        return self.exports / f".{ds}.old"

    def export_manifest(self, ds: str) -> Path:
        return self.export_dir(ds) / EXPORT_MANIFEST

    def export_dirs(self) -> list[Path]:
        """Every published export folder, oldest date first."""
        if not self.exports.is_dir():
            return []
        return sorted(
            p for p in self.exports.iterdir() if p.is_dir() and _DATE_FOLDER.match(p.name)
        )

    # BI tool (Superset) ----------------------------------------------------------------
    @property
    def bi_home(self) -> Path:
        """Superset's home (``SUPERSET_HOME``): its metadata and the local credentials."""
        return self.data_dir / "bi"

    @property
    def bi_metadata(self) -> Path:
        return self.bi_home / "superset.db"

    @property
    def bi_credentials(self) -> Path:
        return self.bi_home / "credentials.json"

    @property
    def bi_log(self) -> Path:
        return self.bi_home / "superset.log"

    @property
    def bi_bundle_zip(self) -> Path:
        return self.bi_home / "bundle.zip"

    @property
    def bi_screenshots(self) -> Path:
        return self.bi_home / "screenshots"

    # locks -----------------------------------------------------------------------------
    @property
    def run_lock(self) -> Path:
        return self.data_dir / ".run.lock"

    @property
    def run_lock_guard(self) -> Path:
        return self.data_dir / ".run.lock.guard"

    @property
    def publish_lock(self) -> Path:
        return self.warehouse_path.parent / ".publish.lock"

    # versions --------------------------------------------------------------------------
    @property
    def versions(self) -> Path:
        return self.warehouse_path.parent / "versions"

    def version_file(self, version_id: str) -> Path:
        return self.versions / f"{self.warehouse_path.stem}.{version_id}.duckdb"

    def version_files(self) -> dict[str, Path]:
        """Version id -> file of every kept version."""
        prefix = f"{self.warehouse_path.stem}."
        return {
            path.name.removeprefix(prefix).removesuffix(".duckdb"): path
            for path in self.versions.glob(f"{prefix}*.duckdb")
        }

    @property
    def pinned_version(self) -> Path:
        """Records the version the other serving target (PostgreSQL) holds."""
        return self.versions / ".other-targets.version"


#: The manifest of an export folder: each file's audience, layout, arm, rows and SHA-256.
EXPORT_MANIFEST = "manifest.json"


def export_file_name(audience: str, kind: str) -> str:
    """One audience file of an export folder: ``kind`` is a tool layout (klaviyo, hubspot, meta,
    google), ``plain`` or ``control``."""
    return f"{audience}.{kind}.csv"


def audiences_dir(dbt_project_dir: Path) -> Path:
    """The committed audience definitions, one YAML file per audience."""
    return dbt_project_dir / "audiences"


def bi_venv(project_dir: Path) -> Path:
    """Superset's own virtualenv in the checkout (git-ignored; ``make bi-install``)."""
    return project_dir / ".bi" / "venv"


def bi_bundle(project_dir: Path) -> Path:
    """The committed dashboards-as-code bundle (``serve/superset_bundle.py`` renders it)."""
    return project_dir / "bi" / "superset-assets"


def bi_config(project_dir: Path) -> Path:
    """Superset's committed configuration file and its bootstrap script."""
    return project_dir / "bi" / "superset_config.py"


def bi_bootstrap(project_dir: Path) -> Path:
    return project_dir / "bi" / "superset_bootstrap.py"


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the lock file ``path`` (created if missing) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
