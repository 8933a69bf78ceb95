"""The end-of-run summary: rows per mart, gate results, quarantined rows, where things are."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb

from marketing_warehouse.config import Settings

EXAMPLE_QUERY = (
    "select date, orders, revenue, average_order_value, new_customers\n"
    "from marts.kpi_daily order by date desc limit 7;"
)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text("utf-8")) if path.exists() else {}


def gate_statuses(settings: Settings, ds: str) -> dict[str, dict]:
    folder = settings.run_dir(ds) / "validation"
    return {
        stage: _read_json(folder / f"{stage}.json")
        for stage in ("raw", "staging", "marts")
        if (folder / f"{stage}.json").exists()
    }


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


def quarantined_files(settings: Settings, ds: str) -> list[dict]:
    """The files of the run with any row quarantined, or rejected whole, highest share first."""
    from marketing_warehouse.gates import quarantine_shares

    rows = quarantine_shares(settings, date.fromisoformat(ds))
    hit = [
        r for r in rows if r["level"] == "file" and (r["rows_quarantined"] or r["rejected_reason"])
    ]
    return sorted(hit, key=lambda r: (-r["quarantine_share"], r["subject"]))


def review_command(row: dict) -> str:
    """What a user runs to see a file's quarantined rows: row numbers and reasons, no content."""
    if not row.get("quarantine_file"):
        return ""
    return (
        '.venv/bin/mwh query "select row_number, reason_code, reason_detail from '
        f"read_parquet('{row['quarantine_file']}') order by row_number\""
    )


def ignored_entries(settings: Settings, ds: str) -> list[dict]:
    """The landing entries the run looked at and did not read (see ``loads.scan_landing``)."""
    from marketing_warehouse.gates import landing_scan

    return [e for e in landing_scan(settings, date.fromisoformat(ds)) if e["ignored_reason"]]


def share_lines(settings: Settings, ds: str) -> list[str]:
    files = quarantined_files(settings, ds)
    if not files:
        return []
    lines = ["", "Quarantined share per file (a file rejected whole counts as 100 %):"]
    for row in files:
        lines.append(f"  {row['quarantine_share']:>8.2%}  {row['label']}")
        command = review_command(row)
        if command:
            lines.append(f"            rows and reasons: {command}")
    lines.append(
        "  What to do: fix the export at its source (the reasons say what broke), land it again "
        "in its date folder and re-run that date; the raw gate's checks above say which shares "
        "stop the run (expectations/raw/quarantine_share.json)."
    )
    return lines


def missing_fx_rates(settings: Settings) -> list[dict]:
    """Per source and currency, the loaded rows the marts leave out for want of an FX rate
    (``audit.fx_rate_coverage`` of the build file; each is in ``audit.quarantine`` as
    ``missing_fx_rate``). Empty when the build file or the model is not there yet."""
    if not settings.build_path.exists():
        return []
    try:
        con = duckdb.connect(str(settings.build_path), read_only=True)
    except duckdb.Error:
        return []
    try:
        rel = con.sql(
            "select source || '__' || entity as dataset, coalesce(currency, '') as currency, "
            "count(*) as rows, min(amount_date)::varchar as first_date, "
            "max(amount_date)::varchar as last_date, any_value(reason_detail) as example "
            "from audit.fx_rate_coverage where not has_fx_rate group by all order by all"
        )
        return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]
    except duckdb.Error:
        return []
    finally:
        con.close()


def missing_fx_lines(settings: Settings) -> list[str]:
    rows = missing_fx_rates(settings)
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


def ignored_lines(settings: Settings, ds: str) -> list[str]:
    from marketing_warehouse.loads import IGNORED_REASONS

    entries = ignored_entries(settings, ds)
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


def build(settings: Settings, ds: str, succeeded: bool, problem: str = "") -> str:
    """The run's summary (also written to ``runs/<ds>/summary.txt``); ``problem`` says why a run
    that did not fail outright still does not count (e.g. no task ran)."""
    lines = ["", f"Marketing warehouse run for {ds}: {'SUCCESS' if succeeded else 'FAILED'}"]
    if problem:
        lines.append(f"  {problem}")
    lines += ["", "Extraction (landed = loaded + quarantined):"]
    for path in sorted((settings.run_dir(ds) / "extract").glob("*.json")):
        info = _read_json(path)
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
    lines += share_lines(settings, ds)
    lines += missing_fx_lines(settings)
    lines += ignored_lines(settings, ds)
    lines += ["", "Gates:"]
    gates = gate_statuses(settings, ds)
    docs = ""
    for stage in ("raw", "staging", "marts"):
        info = gates.get(stage)
        if not info:
            lines.append(f"  {stage:<8} not run")
            continue
        docs = info.get("docs_index") or docs
        lines.append(f"  {stage:<8} {info['status'].upper():<5} ({info['checks']} checks)")
        for text in info.get("failed_critical", []):
            lines.append(f"    FAIL {text}")
        for text in info.get("failed_warning", []):
            lines.append(f"    WARN {text}")
    counts = mart_row_counts(settings)
    published = _read_json(settings.run_dir(ds) / "publish.json")
    lines += ["", "Published tables (rows):" if published else "Not published this run."]
    if published:
        for name, rows in counts.items():
            lines.append(f"  {name:<32} {rows:>10}")
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
    from marketing_warehouse import report

    report_path = report.write(settings, ds, succeeded)
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
        f"dbt docs: {published.get('dbt_docs') or '(not generated)'}",
        "Both docs in a browser: .venv/bin/mwh docs   (http://127.0.0.1:8081/)",
        f"Run details: {settings.run_dir(ds)}",
        *(
            ["", "Try it:", f'  .venv/bin/mwh query "{EXAMPLE_QUERY.replace(chr(10), " ")}"']
            if settings.warehouse_path.exists()
            else ["", "No serving warehouse yet: nothing to query until a run publishes."]
        ),
        "",
    ]
    text = "\n".join(lines)
    target = settings.run_dir(ds) / "summary.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, "utf-8")
    return text
