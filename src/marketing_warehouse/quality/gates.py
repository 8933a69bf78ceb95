"""Great Expectations gates between stages, run from our own Airflow tasks through the GX 1.x API.

What a gate checks is configuration, not code: ``expectations/gates.yml`` binds each committed suite
(``expectations/<stage>/<suite>.json``) to the data it validates, and each expectation carries its
severity: ``critical`` stops the run before publish, ``warning`` publishes and is flagged.

In the raw gate, whose batch is every row the night loaded, DuckDB computes the metrics of each
expectation ``sql_metrics`` can count (not null, in a set, between, regex, pair comparison, unique
key, table columns and row count) over the new partition, and GX's expectation classes judge them;
everything else reaches GX as bounded pandas frames produced by DuckDB (GX's SQL datasource does not
work on DuckDB): staging gates filter to the run's load date, mart gates read the small marts whole. Results go to ``<data>/runs/<ds>/validation/<stage>.parquet``
(published as ``audit.validation_results``) and to GX data docs under ``<data>/gx``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import yaml

from marketing_warehouse import duck
from marketing_warehouse.config import Settings
from marketing_warehouse.ingest.contracts import load_contracts
from marketing_warehouse.ingest.extract import utc_now
from marketing_warehouse.layout import GATE_STAGES, RunRecord
from marketing_warehouse.quality.data_docs import localize

log = logging.getLogger(__name__)

STAGES = GATE_STAGES
SEVERITIES = ("critical", "warning", "info")
RESULT_COLUMNS = {
    "run_id": "VARCHAR",
    "logical_date": "DATE",
    "stage": "VARCHAR",
    "suite": "VARCHAR",
    "expectation": "VARCHAR",
    "column_name": "VARCHAR",
    "severity": "VARCHAR",
    "success": "BOOLEAN",
    "observed_value": "VARCHAR",
    "element_count": "BIGINT",
    "unexpected_count": "BIGINT",
    "unexpected_sample": "VARCHAR",
    "validated_at": "TIMESTAMP",
}


class GateFailed(RuntimeError):
    """A critical expectation failed: the run must stop before publish."""


@dataclass
class Check:
    suite: str
    expectation: str
    column: str | None
    severity: str
    success: bool
    observed: str
    element_count: int | None
    unexpected_count: int | None
    sample: str
    expected: str = ""

    def describe(self) -> str:
        target = f"(column={self.column})" if self.column else ""
        text = f"{self.suite}: {self.expectation}{target} [{self.severity}]"
        if self.expected:
            text += f" expected {self.expected};"
        text += f" observed {self.observed}"
        if self.unexpected_count:
            text += f"; {self.unexpected_count} of {self.element_count} rows unexpected"
        if self.sample:
            text += f"; sample {self.sample}"
        return text


@dataclass
class GateResult:
    stage: str
    checks: list[Check] = field(default_factory=list)
    docs_index: str = ""
    finished_at: str = ""

    @property
    def status(self) -> str:
        failed = [c for c in self.checks if not c.success]
        if any(c.severity == "critical" for c in failed):
            return "fail"
        return "warn" if failed else "pass"

    def summary(self) -> dict[str, Any]:
        """What the gate task returns and the run's record keeps: status, counts, failures."""
        return {
            "stage": self.stage,
            "status": self.status,
            "docs_index": self.docs_index,
            "checks": len(self.checks),
            "failed_critical": [c.describe() for c in self.failures("critical")],
            "failed_warning": [c.describe() for c in self.failures("warning")],
            "finished_at": self.finished_at,
        }

    def failures(self, severity: str) -> list[Check]:
        return [c for c in self.checks if not c.success and c.severity == severity]


# --- configuration ---------------------------------------------------------------------------


def load_bindings(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    path = settings.expectations_dir / "gates.yml"
    config = yaml.safe_load(path.read_text("utf-8")) or {}
    unknown = set(config) - set(STAGES)
    if unknown:
        raise ValueError(f"{path}: unknown stage(s) {sorted(unknown)}; expected {STAGES}")
    return {stage: list(config.get(stage) or []) for stage in STAGES}


def load_suite_dict(settings: Settings, name: str) -> dict[str, Any]:
    path = settings.expectations_dir / f"{name}.json"
    suite = json.loads(path.read_text("utf-8"))
    for exp in suite.get("expectations", []):
        severity = exp.get("severity", "critical")
        if severity not in SEVERITIES:
            raise ValueError(f"{path}: expectation {exp.get('type')} has severity {severity!r}")
    return suite


def suite_parameters(settings: Settings) -> dict[str, Any]:
    """Thresholds declared once under a suite's ``meta.parameters`` and used by any suite as
    ``{"$PARAMETER": "<name>"}`` (e.g. the quarantined share that stops a run, shared by
    ``raw/quarantine_share`` and ``staging/fx_rate_coverage``). A name declared twice is an
    error, even with the same value: each threshold lives in one place."""
    found: dict[str, Any] = {}
    where: dict[str, Path] = {}
    for path in sorted(settings.expectations_dir.rglob("*.json")):
        declared = json.loads(path.read_text("utf-8")).get("meta", {}).get("parameters") or {}
        for name, value in declared.items():
            if name in found:
                raise ValueError(
                    f"{path}: suite parameter {name!r} is already declared in {where[name]}"
                )
            found[name], where[name] = value, path
    return found


# --- datasets --------------------------------------------------------------------------------


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _partition_reader(settings: Settings, key: str, ds: date, extracts: list[dict]) -> str:
    """Every raw file this run loaded for ``key`` (the ds partition and any late files)."""
    summary = next((e for e in extracts if e["source"] == key), None)
    source = settings.layout.source(key)
    files: list[Path] = []
    if summary is not None:
        for entry in summary.get("detail", []):
            if entry["status"] == "loaded":
                files.append(source.raw_file(entry["load_date"], entry["file_hash"]))
    else:
        part = source.raw_partition(ds)
        files = sorted(part.glob("*.parquet")) if part.is_dir() else []
    files = [f for f in files if f.exists()] or [source.raw_schema_file]
    listing = ", ".join(_sql_literal(str(f)) for f in files)
    return f"read_parquet([{listing}], union_by_name = true)"


def _ledger_reader(settings: Settings, key: str, ds: date) -> str:
    """The run's ledger entries as a SQL relation; ``key`` ``*`` means every source entity."""
    keys = settings.layout.ledger_sources() if key == "*" else [key]
    values = []
    for dataset in keys:
        path = settings.layout.source(dataset).ledger_file(ds)
        for r in json.loads(path.read_text("utf-8")) if path.exists() else []:
            values.append(
                f"({_sql_literal(dataset)}, {_sql_literal(r['source_file'])}, "
                f"{_sql_literal(r['status'])}, {int(r['rows_landed'])}, {int(r['rows_loaded'])}, "
                f"{int(r['rows_quarantined'])}, {_sql_literal(r.get('rows_lost_at', ''))})"
            )
    values = values or ["(null, null, null, 0, 0, 0, '')"]
    return (
        f"(select * from (values {', '.join(values)}) "
        f"as t(dataset, source_file, status, rows_landed, rows_loaded, rows_quarantined, "
        f"rows_lost_at) "
        f"where source_file is not null)"
    )


def _values_relation(rows: list[dict], columns: dict[str, str]) -> str:
    """``rows`` as a SQL relation with ``columns`` (name -> DuckDB type), empty when no rows."""

    def literal(value: object, kind: str) -> str:
        if value is None:
            return f"cast(null as {kind})"
        if isinstance(value, bool | int | float):
            return f"cast({value!r} as {kind})"
        return f"cast({_sql_literal(str(value))} as {kind})"

    names = ", ".join(columns)
    if not rows:
        nulls = ", ".join(f"cast(null as {kind}) as {name}" for name, kind in columns.items())
        return f"(select {nulls} where false)"
    values = ", ".join(
        "(" + ", ".join(literal(row.get(n), k) for n, k in columns.items()) + ")" for row in rows
    )
    return f"(select * from (values {values}) as t({names}))"


#: Columns of ``{quarantine_share}``: one row per file the run dealt with and one per source.
SHARE_COLUMNS = {
    "level": "VARCHAR",  # file | source
    "subject": "VARCHAR",  # <source>__<entity>/<load date>/<file name>, or <source>__<entity>
    "status": "VARCHAR",  # a file's ledger status; "files" for a source
    "files": "BIGINT",
    "rows_landed": "BIGINT",
    "rows_quarantined": "BIGINT",
    "quarantine_share": "DOUBLE",  # rows quarantined / rows landed; 1 for a file rejected whole
    "rejected_reason": "VARCHAR",
    "top_reasons": "VARCHAR",
    "label": "VARCHAR",  # what a failed check names: subject, share, top reasons, what to do
}


#: Quarantine reasons for lines that are part of an export's layout, not data: a tool's totals
#: line, a header repeated where two exports were pasted together. Setting them aside loses
#: nothing, so the quarantined share leaves them out of both its counts.
LAYOUT_REASONS = ("summary_row", "repeated_header")


def _top_reasons(counts: dict[str, int], top: int = 3) -> str:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
    return ", ".join(f"{reason} {count:,}" for reason, count in ranked)


def quarantine_shares(
    settings: Settings, ds: date, extracts: list[dict] | None = None
) -> list[dict]:
    """The quarantined share of every file the run of ``ds`` dealt with (its own date and late
    files; duplicates skipped unread are left out), then of every source over those files.
    Rows are data rows: lines of an export's layout (``LAYOUT_REASONS``) count on neither side.

    A file rejected whole counts as wholly quarantined (share 1), whatever its rows. Computed
    from the run's extraction summaries (``extracts``, by default the run folder's record), so
    the rows are exactly what ``mwh run`` reports."""
    rows: list[dict] = []
    if extracts is None:
        extracts = settings.layout.run(ds.isoformat()).record().extracts
    for summary in sorted(extracts, key=lambda e: e["source"]):
        key = summary["source"]
        files = [e for e in summary.get("detail", []) if e["status"] != "skipped_duplicate"]
        reasons: dict[str, int] = {}
        for entry in files:
            counts = dict(entry.get("quarantine_reasons") or {})
            rejected = entry["status"] == "rejected"
            layout = 0 if rejected else sum(counts.pop(r, 0) for r in LAYOUT_REASONS)
            landed = int(entry["rows_landed"]) - layout
            quarantined = int(entry["rows_quarantined"]) - layout
            share = 1.0 if rejected else (quarantined / landed if landed else 0.0)
            subject = f"{key}/{entry['load_date']}/{entry['source_file']}"
            if rejected:
                reason = next(iter(counts), "rejected")
                label = (
                    f"{subject}: rejected whole ({reason}); no row of it is in the warehouse: "
                    "land a readable export in its place (or remove it), then re-run the date"
                )
            else:
                reason = None
                label = f"{subject}: {quarantined:,} of {landed:,} rows quarantined ({share:.2%})"
                if layout:
                    label += (
                        f", not counting {layout:,} layout line(s) ({', '.join(LAYOUT_REASONS)})"
                    )
                if quarantined:
                    label += (
                        f"; top reasons {_top_reasons(counts)}; fix the export and land it again"
                    )
                    for name, count in counts.items():
                        reasons[name] = reasons.get(name, 0) + count
            quarantine_file = settings.layout.source(key).quarantine_file(
                entry["load_date"], entry["file_hash"]
            )
            rows.append(
                {
                    "level": "file",
                    "subject": subject,
                    "quarantine_file": str(quarantine_file) if quarantine_file.exists() else "",
                    "message": entry.get("message", ""),
                    "status": entry["status"],
                    "files": 1,
                    "rows_landed": landed,
                    "rows_quarantined": quarantined,
                    "quarantine_share": share,
                    "rejected_reason": reason,
                    "top_reasons": _top_reasons(counts),
                    "label": label,
                }
            )
        if files:
            mine = [r for r in rows if r["level"] == "file" and r["subject"].startswith(f"{key}/")]
            landed = sum(r["rows_landed"] for r in mine)
            quarantined = sum(r["rows_quarantined"] for r in mine)
            share = quarantined / landed if landed else 0.0
            label = (
                f"{key}: {quarantined:,} of {landed:,} rows quarantined ({share:.2%}) "
                f"over {len(files)} file(s)"
            )
            if quarantined:
                label += f"; top reasons {_top_reasons(reasons)}; fix the source's exports"
            rows.append(
                {
                    "level": "source",
                    "subject": key,
                    "status": "files",
                    "files": len(files),
                    "rows_landed": landed,
                    "rows_quarantined": quarantined,
                    "quarantine_share": share,
                    "rejected_reason": None,
                    "top_reasons": _top_reasons(reasons),
                    "label": label,
                }
            )
    return rows


#: Columns of ``{landing_scan}``: one row per landing entry the run looked at.
SCAN_COLUMNS = {"path": "VARCHAR", "ignored_reason": "VARCHAR", "label": "VARCHAR"}


def landing_scan(entries: list[dict], ds: date) -> list[dict]:
    """The run's landing scan (``entries``: what ``loads.scan_landing`` returned), each row with
    a label naming the entry, why it was ignored and what to do."""
    from marketing_warehouse.ingest.loads import IGNORED_REASONS

    rows = [dict(entry) for entry in entries]
    for row in rows:
        reason = row["ignored_reason"]
        row["label"] = (
            f"{row['path']}: ignored, {IGNORED_REASONS[reason]} ({reason}); move it into "
            f"<landing>/{ds.isoformat()}/ under a name its source's contract matches, or remove it"
            if reason
            else f"{row['path']}: read"
        )
    return rows


def _published_rows(settings: Settings, relation: str) -> str:
    """Row count of ``relation`` in the version BI tools see now (``null`` before the first publish)."""
    if not settings.warehouse_path.exists():
        return "cast(null as bigint)"
    try:
        con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    except duckdb.Error:
        return "cast(null as bigint)"
    try:
        row = con.execute(
            "select row_count from audit.publish_log where relation = ? "
            "order by published_at desc limit 1",
            [relation],
        ).fetchone()
    except duckdb.Error:
        row = None
    finally:
        con.close()
    return f"cast({int(row[0])} as bigint)" if row else "cast(null as bigint)"


def audience_reachable_sql(settings: Settings) -> str:
    """A boolean SQL expression over a row with ``channel`` and dim_customers' columns: the
    condition of the dbt var ``audience_channels`` for the row's channel (false for another)."""
    conditions = settings.dbt_var("audience_channels")
    cases = " ".join(
        f"when {_sql_literal(channel)} then coalesce(({condition}), false)"
        for channel, condition in conditions.items()
    )
    return f"(case channel {cases} else false end)"


def erased_subjects_sql(settings: Settings) -> str:
    """A relation with one column ``subject_sha256``: every finished erasure (the erasure log)."""
    log = settings.layout.erasure_log
    rows = []
    if log.is_file():
        for line in log.read_text("utf-8").splitlines():
            if line.strip():
                rows.append({"subject_sha256": json.loads(line).get("subject_sha256")})
    return _values_relation(rows, {"subject_sha256": "VARCHAR"})


def render_sql(settings: Settings, sql: str, ds: date, record: RunRecord | None = None) -> str:
    """Expand the placeholders of a binding's SQL.

    ``{ds}``, ``{reporting_currency}``, ``{raw:<key>}`` (what the run loaded), ``{ledger:<key>}``,
    ``{published_rows:<schema.relation>}`` (its row count in the currently served version),
    ``{quarantine_share}`` (see ``quarantine_shares``), ``{landing_scan}`` (``landing_scan``)
    ``{fx_lookback_days}`` and ``{audience_share_check_min_members}`` (the dbt vars),
    ``{audience_reachable}`` (whether a row's customer can be reached on its ``channel``, from
    the dbt var ``audience_channels``) and ``{erased_subjects}`` (``subject_sha256`` of every
    finished erasure). ``record``: what the run's earlier tasks returned
    (``raw`` and ``quarantine_share`` read its extraction summaries, ``landing_scan`` its scan;
    by default the run folder's record).
    """
    if record is None and re.search(r"\{(raw:|quarantine_share\}|landing_scan\})", sql):
        record = settings.layout.run(ds.isoformat()).record()
    extracts = record.extracts if record else []
    sql = re.sub(
        r"\{published_rows:([a-z0-9_.]+)\}", lambda m: _published_rows(settings, m[1]), sql
    )
    sql = re.sub(
        r"\{raw:([a-z0-9_]+)\}", lambda m: _partition_reader(settings, m[1], ds, extracts), sql
    )
    sql = re.sub(r"\{ledger:([a-z0-9_*]+)\}", lambda m: _ledger_reader(settings, m[1], ds), sql)
    sql = sql.replace("{reporting_currency}", settings.reporting_currency)
    sql = sql.replace("{ds}", ds.isoformat())
    if "{fx_lookback_days}" in sql:
        sql = sql.replace("{fx_lookback_days}", str(int(settings.dbt_var("fx_lookback_days"))))
    if "{audience_share_check_min_members}" in sql:
        minimum = str(int(settings.dbt_var("audience_share_check_min_members")))
        sql = sql.replace("{audience_share_check_min_members}", minimum)
    if "{audience_reachable}" in sql:
        sql = sql.replace("{audience_reachable}", audience_reachable_sql(settings))
    if "{erased_subjects}" in sql:
        sql = sql.replace("{erased_subjects}", erased_subjects_sql(settings))
    # last: these carry file names, which must not be taken for placeholders
    if "{quarantine_share}" in sql:
        shares = _values_relation(quarantine_shares(settings, ds, extracts), SHARE_COLUMNS)
        sql = sql.replace("{quarantine_share}", shares)
    if "{landing_scan}" in sql:
        scan = _values_relation(landing_scan(record.landing_scan, ds), SCAN_COLUMNS)
        sql = sql.replace("{landing_scan}", scan)
    return sql


#: Batches above this many rows reach GX in chunks of about this many rows (see _frames).
CHUNK_ROWS = 500_000
#: Expectations whose verdict on a whole batch follows from their results on its chunks.
ROW_WISE = ("expect_column_values_", "expect_column_pair_values_", "expect_table_columns_")
ROW_COUNT = "expect_table_row_count_to_be_between"
UNIQUE = {
    "expect_compound_columns_to_be_unique": "column_list",
    "expect_column_values_to_be_unique": "column",
}


def batch_sql(
    settings: Settings, binding: dict[str, Any], ds: date, record: RunRecord | None
) -> str:
    """The binding's batch as DuckDB SQL, placeholders expanded."""
    sql = binding.get("sql") or f"select * from {binding['table']}"
    if binding.get("where"):
        sql = f"select * from ({sql}) as t where {binding['where']}"
    return render_sql(settings, sql, ds, record)


def _connect(settings: Settings, stage: str, spill_dir: str) -> duckdb.DuckDBPyConnection:
    """The raw gate reads Parquet files; the others read the build warehouse, read-only."""
    if stage == "raw":
        return duck.connect(settings.duckdb_memory_limit, spill_dir=spill_dir)
    return duck.connect(
        settings.duckdb_memory_limit, settings.build_path, read_only=True, spill_dir=spill_dir
    )


def _frames(
    settings: Settings,
    binding: dict[str, Any],
    suite_dict: dict[str, Any],
    stage: str,
    ds: date,
    record: RunRecord | None,
):
    """The binding's batch as pandas frames of at most about ``CHUNK_ROWS`` rows where possible.

    DuckDB computes the whole batch (window columns such as repeated keys see every file the run
    loaded), within the DuckDB memory limit; GX gets it in chunks, so neither a first night that
    loads a year of history nor a million-row mart sits in pandas at once.
    - Suites of row-wise checks get consecutive chunks of the result.
    - Suites that also check keys for uniqueness get chunks split by a hash of the columns every
      such key shares (e.g. the landed file and its row's key): all rows of one key value meet in
      one chunk, so a duplicate is found wherever it is.
    - Suites with any other kind of check get one frame.
    ``_combine`` merges the chunks' results into one result per expectation."""
    sql = batch_sql(settings, binding, ds, record)
    chunking = _chunking(suite_dict)
    spill = tempfile.TemporaryDirectory(prefix="mwh-gate-")
    con = _connect(settings, stage, spill.name)
    try:
        if chunking is None:
            yield con.execute(sql).df()
        elif chunking == "rows":
            con.execute(sql)
            vectors = max(1, CHUNK_ROWS // 2048)  # DuckDB hands out rows 2,048 at a time
            frame = con.fetch_df_chunk(vectors)
            yield frame
            while len(frame):
                frame = con.fetch_df_chunk(vectors)
                if len(frame):
                    yield frame
        else:
            yield from _key_chunks(con, sql, _shared_key(suite_dict))
    finally:
        con.close()
        spill.cleanup()


def _key_chunks(con, sql: str, key: list[str]):
    """The batch in ``ceil(rows / CHUNK_ROWS)`` chunks by a hash of the ``key`` columns. The
    batch is stored once, sorted by chunk, so each chunk is read without scanning the others."""
    total = con.execute(f"select count(*) from ({sql}) as batch").fetchone()[0]
    parts = -(-total // CHUNK_ROWS)
    if parts <= 1:
        yield con.execute(sql).df()
        return
    hashed = ", ".join('"' + c.replace('"', '""') + '"' for c in key)
    con.execute(
        f"create temp table batch as select *, hash({hashed}) % {parts} as _mwh_chunk "
        f"from ({sql}) as batch order by _mwh_chunk"
    )
    for chunk in range(parts):
        yield con.execute(
            "select * exclude (_mwh_chunk) from batch where _mwh_chunk = ?", [chunk]
        ).df()


def _shared_key(suite_dict: dict[str, Any]) -> list[str]:
    """The columns that every key a suite checks for uniqueness contains (in the first key's
    order); [] when the suite checks no key, or its keys have no column in common."""
    keys = []
    for exp in suite_dict.get("expectations", []):
        if exp["type"] in UNIQUE:
            value = exp.get("kwargs", {}).get(UNIQUE[exp["type"]])
            keys.append(value if isinstance(value, list) else [value])
    if not keys:
        return []
    return [c for c in keys[0] if all(c in k for k in keys[1:])]


def _chunking(suite_dict: dict[str, Any]) -> str | None:
    """How a suite's batch may be split: "rows", "keys" (by a hash of the columns its unique keys
    share) or None (one frame: a check that needs every row at once)."""
    chunking = "rows"
    key = _shared_key(suite_dict)
    for exp in suite_dict.get("expectations", []):
        if exp["type"] in UNIQUE:
            if not key:
                return None
            chunking = "keys"
        elif not (exp["type"].startswith(ROW_WISE) or exp["type"] == ROW_COUNT):
            return None
    return chunking


def pii_columns() -> set[str]:
    """Columns the contracts mark ``pii``: their unexpected values are kept as hashes."""
    return {name for contract in load_contracts() for name in contract.pii_columns}


def sample_hash(value: object) -> str:
    """How a personal value appears in a gate's sample: the start of its SHA-256."""
    return "sha256:" + hashlib.sha256(str(value).encode("utf-8")).hexdigest()[:16]


def _hidden(value: Any, kwargs: dict[str, Any], pii: set[str]) -> Any:
    """A sample value with the values of ``pii`` columns hashed: a column's value, a key's
    ``{column: value}`` or a pair's ``(column_A, column_B)``."""

    def hide(name: object, item: Any) -> Any:
        return sample_hash(item) if name in pii and item is not None else item

    if isinstance(value, dict):
        return {name: hide(name, item) for name, item in value.items()}
    if isinstance(value, list | tuple) and "column_A" in kwargs:
        names = (kwargs["column_A"], kwargs.get("column_B"))
        return [hide(name, item) for name, item in zip(names, value, strict=False)]
    return hide(kwargs.get("column"), value)


def _combine(cfg, items: list) -> tuple[bool, dict[str, Any], Any]:
    """One verdict from the results of several chunks of one batch.

    Row-wise expectations add up their counts and apply ``mostly`` to the sums (nulls are not
    counted against a column's values, except by ``not_be_null``); schema checks must hold in
    every chunk. Returns (success, result details, exception info of the first failing chunk)."""
    failing = next((i for i in items if not i.success), None)
    exception = failing.exception_info if failing is not None else None
    raised = any(
        (i.exception_info or {}).get("raised_exception")
        for i in items
        if isinstance(i.exception_info, dict)
    )
    if len(items) == 1:
        return bool(items[0].success), dict(items[0].result or {}), exception
    results = [dict(i.result or {}) for i in items]
    if not raised and cfg.type == ROW_COUNT:
        rows = sum(int(r.get("observed_value") or 0) for r in results)
        low, high = cfg.kwargs.get("min_value"), cfg.kwargs.get("max_value")
        below = low is not None and (rows <= low if cfg.kwargs.get("strict_min") else rows < low)
        above = high is not None and (rows >= high if cfg.kwargs.get("strict_max") else rows > high)
        return not (below or above), {"observed_value": rows}, exception
    if raised or not all("unexpected_count" in r for r in results):
        chosen = results[items.index(failing)] if failing is not None else results[0]
        return failing is None, chosen, exception
    element = sum(int(r.get("element_count") or 0) for r in results)
    unexpected = sum(int(r.get("unexpected_count") or 0) for r in results)
    missing = sum(int(r.get("missing_count") or 0) for r in results)
    counted = element if cfg.type == "expect_column_values_to_not_be_null" else element - missing
    share = unexpected / counted if counted else 0.0
    mostly = cfg.kwargs.get("mostly")
    success = unexpected == 0 if mostly is None else (1 - share) >= float(mostly)
    sample = [v for r in results for v in (r.get("partial_unexpected_list") or [])][:5]
    labels = [v for r in results for v in (r.get("partial_unexpected_index_list") or [])][:5]
    details = {
        "element_count": element,
        "unexpected_count": unexpected,
        "missing_count": missing,
        "unexpected_percent": 100 * share,
        "partial_unexpected_list": sample,
        "partial_unexpected_index_list": labels,
    }
    return success, details, exception


# --- GX --------------------------------------------------------------------------------------


def _gx_context(settings: Settings):
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    root = settings.layout.gx_root
    root.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(root))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.variables.save()
    return gx, context


def _observed(result: dict[str, Any]) -> str:
    if "observed_value" in result:
        return json.dumps(result["observed_value"], default=str)
    if result.get("unexpected_percent") is not None:
        return f"{result['unexpected_percent']:.4g}% unexpected"
    if "element_count" in result:
        return f"{result['element_count']} rows checked"
    return ""


def _expected(kwargs: dict[str, Any], parameters: dict[str, Any] | None = None) -> str:
    """The expectation's own thresholds, for messages: ``min_value=0, max_value=1`` (a suite
    parameter by its value)."""
    parts = []
    for key, value in kwargs.items():
        if isinstance(value, dict) and "$PARAMETER" in value:
            value = (parameters or {}).get(value["$PARAMETER"], value)
        if (
            key in ("column", "column_A", "column_B", "batch_id", "condition_parser")
            or value is None
        ):
            continue
        if key == "row_condition":  # GX keeps a pandas condition as {"pass_through_filter": …}
            condition = value.get("pass_through_filter") if isinstance(value, dict) else value
            parts.append(f"where {condition or value}")
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = json.dumps(value, default=str)
        parts.append(f"{key}={text if len(text) <= 80 else text[:77] + '...'}")
    return ", ".join(parts)


def docs_run_name(ds: date, stage: str) -> str:
    """The run name GX's data docs show and file a gate's validation pages under."""
    return f"{ds.isoformat()}-{stage}"


def _docs_run_date(run_name: str | None) -> str | None:
    """The run date a ``docs_run_name`` names (ISO), else None."""
    return run_name[:10] if run_name else None


#: How many run dates (the latest ones) GX's data docs show. Older validation results leave GX's
#: store and site; every result stays in the run folders and ``audit.validation_results``.
DATA_DOCS_RUN_DATES = 30


def _refresh_data_docs(settings: Settings, context, ds: date, stage: str, suites: list[str]) -> str:
    """Render this gate's validation pages and its suites' pages, then the index; drop the
    results of run dates beyond the latest ``DATA_DOCS_RUN_DATES`` (pages included). Rendering
    every stored result again at each gate would grow with every night kept. Returns the site's
    index URL."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    store = context.validation_results_store
    keys = store.list_keys()
    run_dates = {_docs_run_date(k.run_id.run_name) for k in keys} - {None}
    kept = set(sorted(run_dates, reverse=True)[:DATA_DOCS_RUN_DATES])
    site = settings.layout.gx_docs_site()
    gone = set()
    for key in keys:
        if _docs_run_date(key.run_id.run_name) not in kept | {None}:
            store.remove_key(key)
            gone.add(key.run_id.run_name)
    for run_name in sorted(gone):
        for folder in (site / "validations").glob(f"**/{run_name}"):
            shutil.rmtree(folder, ignore_errors=True)
    current = docs_run_name(ds, stage)
    context.build_data_docs(
        resource_identifiers=[
            *(k for k in keys if k.run_id.run_name == current),
            *(ExpectationSuiteIdentifier(name=name) for name in suites),
        ]
    )
    localize(settings.layout.gx_docs_site())
    sites = context.get_docs_sites_urls()
    return sites[0]["site_url"] if sites else ""


#: Stages whose translatable expectations DuckDB counts (``sql_metrics``): the raw gate's batch is
#: every row the night loaded. The staging and marts gates read bounded batches through GX.
SQL_STAGES = ("raw",)


def _gx_order(configs: list) -> list[int]:
    """The order GX reports a suite's results in: grouped by column, each column where it first
    appears (``Validator.process_expectations_for_validation``)."""
    groups: dict[str, list[int]] = {}
    for index, config in enumerate(configs):
        column = config.kwargs.get("column")
        groups.setdefault(column if isinstance(column, str) else "", []).append(index)
    return [index for group in groups.values() for index in group]


def _validate_in_sql(
    settings: Settings,
    stage: str,
    binding: dict[str, Any],
    suite_dict: dict[str, Any],
    validation,
    result_format: dict[str, Any],
    params: dict[str, Any],
    ds: date,
    record: RunRecord | None,
    run_id,
) -> dict[str, Any] | None:
    """One suite's validation result with the metrics of every expectation ``sql_metrics`` can
    count computed by DuckDB over the batch, and the others' by GX on frames as ``_frames``
    cuts them; GX's expectation classes judge both. None when DuckDB can count none of them
    (the caller then runs the suite's checkpoint as before). Returned as the arguments of
    ``ValidationResultsStore.store_validation_results``: the gate stores it, and data docs
    show one validation per suite."""
    import great_expectations as gx
    import pandas as pd
    from great_expectations.constants import DATAFRAME_REPLACEMENT_STR
    from great_expectations.core.expectation_validation_result import (
        ExpectationValidationResult,
    )
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )
    from great_expectations.execution_engine import PandasExecutionEngine
    from great_expectations.validator.v1_validator import Validator
    from great_expectations.validator.validation_statistics import calc_validation_statistics

    from marketing_warehouse.quality import sql_metrics

    suite, batch_def = validation.suite, validation.data
    originals = list(suite.expectation_configurations)
    configs = [copy.deepcopy(c) for c in originals]
    for config in configs:
        config.process_suite_parameters(suite_parameters=params, interactive_evaluation=True)
    engine = PandasExecutionEngine()
    sql = batch_sql(settings, binding, ds, record)
    spill = tempfile.TemporaryDirectory(prefix="mwh-gate-")
    con = _connect(settings, stage, spill.name)
    try:
        described = con.execute(f"describe select * from ({sql}) as batch").fetchall()
        columns = {row[0]: row[1] for row in described}
        plans = {}
        for index, config in enumerate(configs):
            found = sql_metrics.plan(config, columns, result_format, engine)
            if found is not None:
                plans[index] = found
        if not plans:
            return None
        computed = sql_metrics.validate(con, sql, list(plans.values()), result_format, engine)
    finally:
        con.close()
        spill.cleanup()
    results: dict[int, Any] = dict(zip(plans, computed, strict=True))

    rest = [index for index in range(len(configs)) if index not in plans]
    skeleton_suite = gx.ExpectationSuite(name=suite.name)
    for index in rest:
        skeleton_suite.add_expectation_configuration(copy.deepcopy(originals[index]))
    rest_dict = {**suite_dict, "expectations": [suite_dict["expectations"][i] for i in rest]}
    frames = _frames(settings, binding, rest_dict, stage, ds, record) if rest else None
    items: dict[int, list] = {index: [] for index in rest}
    skeleton = None
    for frame in frames or [pd.DataFrame({name: [] for name in columns})]:
        validator = Validator(
            batch_definition=batch_def,
            result_format=result_format,
            batch_parameters={"dataframe": frame},
        )
        outcome = validator.validate_expectation_suite(skeleton_suite, params)
        del frame, validator
        skeleton = skeleton or outcome
        for item in outcome.results:  # GX reorders by column: match each result to its config
            kwargs = {k: v for k, v in item.expectation_config.kwargs.items() if k != "batch_id"}
            fewest = min(len(items[i]) for i in rest)  # results of this frame not yet matched
            index = next(
                (
                    i
                    for i in rest
                    if configs[i].type == item.expectation_config.type
                    and configs[i].kwargs == kwargs
                    and len(items[i]) == fewest
                ),
                None,
            )
            if index is None:
                raise RuntimeError(
                    f"{suite.name}: GX returned a result for {item.expectation_config.type} "
                    f"{kwargs} that matches no expectation of the suite"
                )
            items[index].append(item)
    for index in rest:
        if len(items[index]) == 1:
            results[index] = items[index][0]
            continue
        success, details, exception = _combine(configs[index], items[index])
        results[index] = ExpectationValidationResult(
            success=success,
            expectation_config=items[index][0].expectation_config,
            result=details,
            exception_info=exception,
        )

    ordered = [results[index] for index in _gx_order(configs)]
    statistics = calc_validation_statistics(ordered)
    skeleton.results = ordered
    skeleton.success = statistics.success
    skeleton.statistics = {
        "evaluated_expectations": statistics.evaluated_expectations,
        "successful_expectations": statistics.successful_expectations,
        "unsuccessful_expectations": statistics.unsuccessful_expectations,
        "success_percent": statistics.success_percent,
    }
    skeleton.meta.update(
        validation_id=validation.id,
        checkpoint_id=None,
        run_id=run_id,
        validation_time=run_id.run_time,
        batch_parameters={"dataframe": DATAFRAME_REPLACEMENT_STR},
    )
    spec = skeleton.meta.get("batch_spec")
    if isinstance(spec, dict) and not spec.get("data_asset_name"):
        spec["data_asset_name"] = batch_def.data_asset.name
    suite_id = ExpectationSuiteIdentifier(name=suite.name)
    return {
        "suite_validation_result": skeleton,
        "suite_validation_result_identifier": ValidationResultIdentifier(
            expectation_suite_identifier=suite_id,
            run_id=run_id,
            batch_identifier=skeleton.batch_id,
        ),
        "expectation_suite_identifier": suite_id,
    }


def _name_the_asset(context, result, asset_name: str) -> None:
    """A dataframe batch's spec carries no asset name, so the data docs would show ``None``:
    store each validation result again with the asset's name in its batch spec."""
    for key, validation in result.run_results.items():
        spec = validation.meta.get("batch_spec")
        if isinstance(spec, dict) and not spec.get("data_asset_name"):
            spec["data_asset_name"] = asset_name
            context.validation_results_store.set(key, validation)


def run_gate(
    settings: Settings, stage: str, ds: date, run_id: str, record: RunRecord | None = None
) -> GateResult:
    """Validate every dataset bound to ``stage``; persist results; return them (never raises on
    data). ``record``: what the run's earlier tasks returned (the raw gate's checks read the
    extraction summaries and the landing scan); without it a check that needs them reads the
    run folder's record."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    gx, context = _gx_context(settings)
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    datasource = context.data_sources.add_or_update_pandas("mwh")
    params = {
        "ds": ds.isoformat(),
        "ds_next": (ds + timedelta(days=1)).isoformat(),
        "ds_minus_2": (ds - timedelta(days=2)).isoformat(),
        **suite_parameters(settings),
    }
    outcome = GateResult(stage=stage)
    pii = pii_columns()
    suites = []
    for binding in load_bindings(settings)[stage]:
        suite_name = binding["suite"]
        suite_dict = load_suite_dict(settings, suite_name)
        asset_name = suite_name.replace("/", ".")
        suites.append(asset_name)
        try:
            asset = datasource.get_asset(asset_name)
        except LookupError:
            asset = datasource.add_dataframe_asset(asset_name)
        names = [b.name for b in asset.batch_definitions]
        batch_def = (
            asset.get_batch_definition("whole")
            if "whole" in names
            else asset.add_batch_definition_whole_dataframe("whole")
        )
        suite = gx.ExpectationSuite(name=asset_name, meta=suite_dict.get("meta", {}))
        for exp in suite_dict.get("expectations", []):
            config = ExpectationConfiguration(
                type=exp["type"],
                kwargs=exp.get("kwargs", {}),
                meta=exp.get("meta"),
                severity=exp.get("severity", "critical"),
            )
            suite.add_expectation_configuration(config)
        suite = context.suites.add_or_update(suite)
        validation = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=asset_name, data=batch_def, suite=suite)
        )
        result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": 5}
        row_label = suite_dict.get("meta", {}).get("row_label")
        if row_label:  # failed rows are named by this column instead of the values checked
            result_format["unexpected_index_column_names"] = [row_label]
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=asset_name,
                validation_definitions=[validation],
                result_format=result_format,
            )
        )
        run_name = RunIdentifier(run_name=docs_run_name(ds, stage))
        per_expectation: dict[int, list] = {}
        configs: dict[int, Any] = {}
        assembled = None
        if stage in SQL_STAGES:
            assembled = _validate_in_sql(
                settings, stage, binding, suite_dict, validation, result_format, params, ds,
                record, run_name,
            )  # fmt: skip
        if assembled is not None:
            context.validation_results_store.store_validation_results(**assembled)
            for index, item in enumerate(assembled["suite_validation_result"].results):
                configs[index], per_expectation[index] = item.expectation_config, [item]
        for frame in (
            ()
            if assembled is not None
            else _frames(settings, binding, suite_dict, stage, ds, record)
        ):
            result = checkpoint.run(
                batch_parameters={"dataframe": frame},
                expectation_parameters=params,
                run_id=run_name,
            )
            del frame
            _name_the_asset(context, result, asset_name)
            for run_result in result.run_results.values():
                for index, item in enumerate(run_result.results):
                    configs.setdefault(index, item.expectation_config)
                    per_expectation.setdefault(index, []).append(item)
        for index, items in sorted(per_expectation.items()):
            cfg = configs[index]
            success, details, exception = _combine(cfg, items)
            sample = [  # pandas shows a missing value as NaN, which is not JSON
                None if isinstance(v, float) and math.isnan(v) else v
                for v in details.get("partial_unexpected_list") or []
            ]
            if row_label and details.get("partial_unexpected_index_list"):
                sample = [r[row_label] for r in details["partial_unexpected_index_list"]]
            else:  # hashes, never a person's values
                sample = [_hidden(v, cfg.kwargs, pii) for v in sample]
            outcome.checks.append(
                Check(
                    suite=suite_name,
                    expectation=cfg.type,
                    column=cfg.kwargs.get("column")
                    or ",".join(
                        str(cfg.kwargs[k]) for k in ("column_A", "column_B") if k in cfg.kwargs
                    )
                    or None,
                    severity=str(getattr(cfg.severity, "value", cfg.severity)),
                    success=success,
                    observed=_observed(details)
                    or ("exception: " + str(exception) if not success else ""),
                    element_count=details.get("element_count"),
                    unexpected_count=details.get("unexpected_count"),
                    sample=json.dumps(sample[:5], default=str) if sample else "",
                    expected=_expected(cfg.kwargs, params),
                )
            )
    outcome.docs_index = _refresh_data_docs(settings, context, ds, stage, suites)
    outcome.finished_at = datetime.now().isoformat(timespec="seconds")
    write_results(settings, outcome, ds, run_id)
    return outcome


def write_results(settings: Settings, outcome: GateResult, ds: date, run_id: str) -> Path:
    """Persist one gate's results as Parquet (published later as audit.validation_results)."""
    target = settings.layout.run(ds.isoformat()).gate_results(outcome.stage)
    target.parent.mkdir(parents=True, exist_ok=True)
    validated_at = utc_now()
    rows = [
        (
            run_id,
            ds,
            outcome.stage,
            c.suite,
            c.expectation,
            c.column,
            c.severity,
            c.success,
            c.observed,
            c.element_count,
            c.unexpected_count,
            c.sample,
            validated_at,
        )
        for c in outcome.checks
    ]
    con = duckdb.connect()
    try:
        cols = ", ".join(f"{n} {t}" for n, t in RESULT_COLUMNS.items())
        con.execute(f"create table results ({cols})")
        if rows:
            con.executemany(
                f"insert into results values ({', '.join('?' * len(RESULT_COLUMNS))})", rows
            )
        tmp = target.with_suffix(".parquet.tmp")
        con.execute(f"copy results to {_sql_literal(str(tmp))} (format parquet)")
        os.replace(tmp, target)
    finally:
        con.close()
    run = settings.layout.run(ds.isoformat())
    run.keep(run.gate_summary(outcome.stage), outcome.summary())
    return target


def enforce(outcome: GateResult) -> None:
    """Raise ``GateFailed`` with an actionable message when a critical expectation failed."""
    for check in outcome.failures("warning"):
        log.warning("gate %s warning: %s", outcome.stage, check.describe())
    critical = outcome.failures("critical")
    if critical:
        lines = "\n  - ".join(c.describe() for c in critical)
        raise GateFailed(
            f"{outcome.stage} gate failed: {len(critical)} critical expectation(s) not met "
            f"(data docs: {outcome.docs_index}):\n  - {lines}"
        )
