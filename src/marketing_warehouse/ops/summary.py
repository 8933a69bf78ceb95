"""The end-of-run summary: rows per mart, gate results, quarantined rows, where things are."""

from __future__ import annotations

import json

import duckdb

from marketing_warehouse.config import Settings
from marketing_warehouse.layout import GATE_STAGES, RunRecord
from marketing_warehouse.ops import report

EXAMPLE_QUERY = (
    "select date, orders, revenue, average_order_value, new_customers\n"
    "from marts.kpi_daily order by date desc limit 7;"
)


def mart_row_counts(settings: Settings) -> dict[str, int]:
    if not settings.warehouse_path.exists():
        return {}
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        tables = con.execute(
            "select schema_name, table_name from duckdb_tables() "
            "where schema_name in ('marts', 'audit') order by 1, 2"
        ).fetchall()
        return {
            f"{s}.{t}": con.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0]
            for s, t in tables
        }
    finally:
        con.close()


def share_lines(settings: Settings, ds: str, record: RunRecord) -> list[str]:
    files = report.quarantined_files(settings, ds, record)
    if not files:
        return []
    lines = ["", "Quarantined share per file (a file rejected whole counts as 100 %):"]
    for row in files:
        lines.append(f"  {row['quarantine_share']:>8.2%}  {row['label']}")
        command = report.review_command(row)
        if command:
            lines.append(f"            rows and reasons: {command}")
    lines.append(
        "  What to do: fix the export at its source (the reasons say what broke), land it again "
        "in its date folder and re-run that date; the raw gate's checks above say which shares "
        "stop the run (expectations/raw/quarantine_share.json)."
    )
    return lines


def missing_fx_lines(settings: Settings) -> list[str]:
    rows = report.missing_fx_rates(settings)
    if not rows:
        return []
    lines = ["", "Quarantined by the build: rows without an FX rate (missing_fx_rate):"]
    for row in rows:
        lines.append(
            f"  {row['dataset']} {row['currency'] or '(no currency)'}: {row['rows']:,} row(s) "
            f"dated {row['first_date']} to {row['last_date']}, left out of the marts"
        )
    lines.append(f"  What to do: {rows[0]['example'].split('; ', 1)[-1]}")
    return lines


def ignored_lines(record: RunRecord, ds: str) -> list[str]:
    from marketing_warehouse.ingest.loads import IGNORED_REASONS

    entries = report.ignored_entries(record)
    if not entries:
        return []
    lines = ["", f"Ignored landing entries ({len(entries)}; no run reads them):"]
    for entry in entries:
        reason = entry["ignored_reason"]
        lines.append(f"  WARN {entry['path']}: {IGNORED_REASONS[reason]} ({reason})")
    lines.append(
        f"  What to do: move each file into <landing>/YYYY-MM-DD/ (for this run {ds}) under a "
        "name its source's contract matches, or remove it."
    )
    return lines


def export_lines(published: dict) -> list[str]:
    """The audience files the run wrote, with the members per arm of each audience."""
    audiences, files, folder = report.audience_exports(published)
    if not published or not folder:
        return []
    lines = ["", f"Audience exports ({folder}):"]
    for audience in audiences:
        lines.append(
            f"  {audience['audience']:<32} {audience['channel']:<10} treatment "
            f"{audience['treatment']:>7}  control {audience['control']:>6}"
        )
        for entry in files:
            if entry["audience"] == audience["audience"]:
                lines.append(f"    {entry['file']:<48} {entry['arm']:<9} {entry['rows']:>7} rows")
    if not audiences:
        lines.append("  no audience had members in this snapshot")
    return lines


def prediction_lines(settings: Settings, ds: str) -> list[str]:
    """What the predict stage did (its ``predict.json``), when it ran."""
    path = settings.layout.run(ds).predict_summary
    if not path.exists():
        return []
    info = json.loads(path.read_text("utf-8"))
    if info.get("skipped"):
        return ["", f"Predictions: none for {ds}: {info['skipped']}"]
    return [
        "",
        f"Predictions: {info['customers']} customer(s), models fitted on {info['fitted']} "
        f"({info['seconds']} s); marts.customer_predictions, marts.clv_model_parameters",
    ]


def build(settings: Settings, ds: str, succeeded: bool, problem: str = "") -> str:
    """The run's summary (also written to ``runs/<ds>/summary.txt``) from the run folder's
    record; ``problem`` says why a run that did not fail outright still does not count (e.g. no
    task ran)."""
    record = settings.layout.run(ds).record()
    lines = ["", f"Marketing warehouse run for {ds}: {'SUCCESS' if succeeded else 'FAILED'}"]
    if problem:
        lines.append(f"  {problem}")
    lines += ["", "Extraction (landed = loaded + quarantined):"]
    for info in record.extracts:
        lines.append(
            f"  {info['source']:<28} files {info['files']:>4}  landed {info['rows_landed']:>9}"
            f"  loaded {info['rows_loaded']:>9}  quarantined {info['rows_quarantined']:>6}"
        )
        for message in info.get("rejected_files", []):
            lines.append(f"    rejected: {message}")
        if info.get("formula_values"):
            lines.append(
                f"    {info['formula_values']} text value(s) start like a spreadsheet formula "
                "(loaded as text; see the run report)"
            )
        if info.get("duplicate_files"):
            lines.append(f"    skipped as duplicates: {', '.join(info['duplicate_files'])}")
    lines += share_lines(settings, ds, record)
    lines += missing_fx_lines(settings)
    lines += ignored_lines(record, ds)
    lines += ["", "Gates:"]
    docs = ""
    for stage in GATE_STAGES:
        info = record.gates.get(stage)
        if not info:
            lines.append(f"  {stage:<8} not run")
            continue
        docs = info.get("docs_index") or docs
        lines.append(f"  {stage:<8} {info['status'].upper():<5} ({info['checks']} checks)")
        for text in info.get("failed_critical", []):
            lines.append(f"    FAIL {text}")
        for text in info.get("failed_warning", []):
            lines.append(f"    WARN {text}")
    lines += prediction_lines(settings, ds)
    counts = mart_row_counts(settings)
    published = record.published
    lines += ["", "Published tables (rows):" if published else "Not published this run."]
    if published:
        for name, rows in counts.items():
            lines.append(f"  {name:<32} {rows:>10}")
    lines += export_lines(published)
    quarantined = counts.get("audit.quarantine")
    if quarantined:
        con = duckdb.connect(str(settings.warehouse_path), read_only=True)
        try:
            reasons = con.execute(
                "select reason_code, count(*) from audit.quarantine group by 1 order by 2 desc"
            ).fetchall()
        finally:
            con.close()
        lines.append("  quarantine by reason: " + ", ".join(f"{r} {n}" for r, n in reasons))
    from marketing_warehouse.ops.alerts import failure_report_path

    # a failed run never overwrites the report of a run that published the date
    target = None if succeeded else failure_report_path(settings, ds)
    report_path = report.write(settings, ds, succeeded, record, target=target)
    dbt_index = settings.layout.dbt_docs_index
    lines += [
        "",
        f"Run report: {report_path}",
        f"Warehouse (serving, open read-only): {settings.warehouse_path}",
        *(
            [
                f"PostgreSQL serving: {len(published['postgres_row_counts'])} tables in schemas "
                f"marts and audit (BI role {settings.postgres_reader_role}, marts only)"
            ]
            if published.get("postgres_row_counts")
            else []
        ),
        f"Data docs: {docs or '(not generated)'}",
        f"dbt docs: {dbt_index if dbt_index.exists() else '(not generated)'}",
        "Both docs in a browser: .venv/bin/mwh docs   (http://127.0.0.1:8081/)",
        f"Run details: {settings.layout.run(ds).root}",
        *(
            ["", "Try it:", f'  .venv/bin/mwh query "{EXAMPLE_QUERY.replace(chr(10), " ")}"']
            if settings.warehouse_path.exists()
            else ["", "No serving warehouse yet: nothing to query until a run publishes."]
        ),
        "",
    ]
    text = "\n".join(lines)
    target = settings.layout.run(ds).summary
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, "utf-8")
    return text
