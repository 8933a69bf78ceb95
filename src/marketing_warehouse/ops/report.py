"""The per-run HTML report: ``<data>/runs/<ds>/report.html``, one self-contained file.

It shows what the run did (rows landed, loaded and quarantined per source; quarantine by reason;
each gate's result; rows per published table) and a few KPI charts from the serving file. Charts
are inline SVG and the styles inline CSS: no script, font or image is fetched, so the file can be
mailed or opened offline. It is written by the publish task, by the summary of ``mwh run`` and,
for scheduled runs that fail, by the run's failure callback.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from html import escape
from pathlib import Path

import duckdb

from marketing_warehouse.config import Settings

KPI_DAYS = 30
#: (column of marts.kpi_daily, title, chart kind); columns missing from the mart are skipped.
KPI_CHARTS = (
    ("revenue", "Revenue", "line"),
    ("orders", "Orders", "bar"),
    ("new_customers", "New customers", "bar"),
    ("average_order_value", "Average order value", "line"),
)
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1000px;color:#1f2933;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;
border-bottom:1px solid #d9e2ec;padding-bottom:.3rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #e4e7eb;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#0b6e4f;font-weight:600}.warn{color:#b7791f;font-weight:600}
.fail{color:#c53030;font-weight:600}.muted{color:#7b8794}
.charts{display:flex;flex-wrap:wrap;gap:1rem}.chart{flex:1 1 440px}
small{color:#52606d}
"""
STATUS_CLASS = {"pass": "ok", "warn": "warn", "fail": "fail", "success": "ok", "failed": "fail"}


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text("utf-8")) if path.exists() else {}


def _num(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return escape(str(value))


def _table(head: list[str], rows: list[list[object]], numeric: set[int] = frozenset()) -> str:
    cells = "".join(
        f"<th{' class=n' if i in numeric else ''}>{escape(h)}</th>" for i, h in enumerate(head)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class=n>{_num(v)}</td>" if i in numeric else f"<td>{v}</td>"
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


# --- charts ----------------------------------------------------------------------------------


def svg_chart(
    points: list[tuple[str, float]], title: str, kind: str = "line", width: int = 460
) -> str:
    """A small line or bar chart as inline SVG (labels are the x values, first and last shown)."""
    height, left, right, top, bottom = 190, 56, 12, 26, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for _, v in points]
    high = max([*values, 0.0]) or 1.0
    low = min([*values, 0.0])
    span = (high - low) or 1.0

    def y(value: float) -> float:
        return top + plot_h * (1 - (value - low) / span)

    step = plot_w / max(len(points), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="16" font-size="13" font-weight="600">{escape(title)}</text>',
        f'<line x1="{left}" y1="{y(0):.1f}" x2="{width - right}" y2="{y(0):.1f}" '
        'stroke="#9aa5b1" stroke-width="1"/>',
        f'<text x="{left - 6}" y="{top + 4}" font-size="11" text-anchor="end">{_num(high)}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" font-size="11" text-anchor="end">'
        f"{_num(low)}</text>",
    ]
    if not points:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" font-size="12" '
            'text-anchor="middle" fill="#7b8794">no data</text>'
        )
    elif kind == "bar":
        for index, (label, value) in enumerate(points):
            x = left + index * step + step * 0.15
            top_y, base = min(y(value), y(0)), max(y(value), y(0))
            parts.append(
                f'<rect x="{x:.1f}" y="{top_y:.1f}" width="{step * 0.7:.1f}" '
                f'height="{max(base - top_y, 0.5):.1f}" fill="#3e7cb1">'
                f"<title>{escape(label)}: {_num(value)}</title></rect>"
            )
    else:
        coords = " ".join(
            f"{left + (i + 0.5) * step:.1f},{y(v):.1f}" for i, (_, v) in enumerate(points)
        )
        parts.append(f'<polyline points="{coords}" fill="none" stroke="#3e7cb1" stroke-width="2"/>')
        for index, (label, value) in enumerate(points):
            parts.append(
                f'<circle cx="{left + (index + 0.5) * step:.1f}" cy="{y(value):.1f}" r="2.5" '
                f'fill="#3e7cb1"><title>{escape(label)}: {_num(value)}</title></circle>'
            )
    if points:
        parts.append(
            f'<text x="{left}" y="{height - 8}" font-size="11">{escape(points[0][0])}</text>'
        )
        parts.append(
            f'<text x="{width - right}" y="{height - 8}" font-size="11" text-anchor="end">'
            f"{escape(points[-1][0])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def kpi_series(settings: Settings, ds: str) -> dict[str, list[tuple[str, float]]]:
    """The last ``KPI_DAYS`` days up to ``ds`` of each KPI column from the serving file."""
    if not settings.warehouse_path.exists():
        return {}
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        columns = {
            r[0]
            for r in con.execute(
                "select column_name from duckdb_columns() "
                "where schema_name = 'marts' and table_name = 'kpi_daily'"
            ).fetchall()
        }
        wanted = [c for c, _, _ in KPI_CHARTS if c in columns]
        if "date" not in columns or not wanted:
            return {}
        first = (date.fromisoformat(ds) - timedelta(days=KPI_DAYS - 1)).isoformat()
        rows = con.execute(
            f"select date::varchar, {', '.join(wanted)} from marts.kpi_daily "
            "where date between ?::date and ?::date order by date",
            [first, ds],
        ).fetchall()
    except duckdb.Error:
        return {}
    finally:
        con.close()
    return {column: [(r[0], float(r[i + 1] or 0)) for r in rows] for i, column in enumerate(wanted)}


# --- the report ------------------------------------------------------------------------------


def quarantined_files(settings: Settings, ds: str) -> list[dict]:
    """The files of the run with any row quarantined, or rejected whole, highest share first."""
    from marketing_warehouse.quality.gates import quarantine_shares

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
    from marketing_warehouse.quality.gates import landing_scan

    return [e for e in landing_scan(settings, date.fromisoformat(ds)) if e["ignored_reason"]]


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


def build_html(
    settings: Settings, ds: str, succeeded: bool | None, published: dict | None = None
) -> str:
    """The report's page; ``published``: what the publish task returned (by default the run
    folder's record of it, empty when the run did not publish)."""
    run = settings.layout.run(ds)
    extracts = [_read_json(p) for p in run.extract_summaries()]
    if published is None:
        published = _read_json(run.publish_record)
    state = {True: "SUCCESS", False: "FAILED", None: "RUNNING"}[succeeded]
    css_state = {True: "ok", False: "fail", None: "warn"}[succeeded]
    html = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>Marketing warehouse run {escape(ds)}</title><style>{CSS}</style></head><body>",
        f"<h1>Marketing warehouse run for {escape(ds)}: <span class={css_state}>{state}</span></h1>",
        f"<small>Run folder: {escape(str(run.root))}</small>",
    ]

    # extraction
    rows, reasons, formulas, notes = [], {}, [], []
    for info in extracts:
        rows.append(
            [
                escape(info.get("source", "?")),
                info.get("files", 0),
                info.get("rows_landed", 0),
                info.get("rows_loaded", 0),
                info.get("rows_quarantined", 0),
            ]
        )
        for entry in info.get("detail", []):
            for reason, count in (entry.get("quarantine_reasons") or {}).items():
                key = (info.get("source", "?"), reason)
                reasons[key] = reasons.get(key, 0) + count
            for column, count in (entry.get("formula_values") or {}).items():
                formulas.append([escape(entry["source_file"]), escape(column), count])
        notes += [f"rejected: {escape(m)}" for m in info.get("rejected_files", [])]
        notes += [f"skipped as duplicate: {escape(f)}" for f in info.get("duplicate_files", [])]
    html.append("<h2>Extraction <small>(landed = loaded + quarantined)</small></h2>")
    if rows:
        totals = ["<b>total</b>", *(sum(r[i] for r in rows) for i in range(1, 5))]
        html.append(
            _table(
                ["source", "files", "landed", "loaded", "quarantined"],
                [*rows, totals],
                {1, 2, 3, 4},
            )
        )
    else:
        html.append("<p class=muted>No extraction results for this run.</p>")
    if notes:
        html.append("<ul>" + "".join(f"<li>{n}</li>" for n in notes) + "</ul>")

    html.append("<h2>Quarantine by reason</h2>")
    if reasons:
        by_reason: dict[str, int] = {}
        for (_, reason), count in reasons.items():
            by_reason[reason] = by_reason.get(reason, 0) + count
        html.append(
            _table(
                ["reason", "rows or files"],
                [[escape(r), n] for r, n in sorted(by_reason.items(), key=lambda x: -x[1])],
                {1},
            )
        )
        html.append(
            _table(
                ["source", "reason", "rows or files"],
                [[escape(s), escape(r), n] for (s, r), n in sorted(reasons.items())],
                {2},
            )
        )
    else:
        html.append("<p class=muted>Nothing quarantined.</p>")
    if formulas:
        html.append(
            "<p>Text that a spreadsheet would run as a formula (loaded as text; "
            "<code>mwh query --csv</code> defuses it):</p>"
        )
        html.append(_table(["file", "column", "values"], formulas, {2}))

    from marketing_warehouse.ingest.loads import IGNORED_REASONS

    shares = quarantined_files(settings, ds)
    html.append(
        "<h2>Quarantined share per file <small>(a file rejected whole counts as 100 %)</small></h2>"
    )
    if shares:
        html.append(
            _table(
                ["file", "landed", "quarantined", "share", "top reasons", "rows and reasons"],
                [
                    [
                        escape(r["subject"]),
                        r["rows_landed"],
                        r["rows_quarantined"],
                        f"{r['quarantine_share']:.2%}",
                        escape(r["rejected_reason"] or r["top_reasons"]),
                        f"<code>{escape(review_command(r))}</code>",
                    ]
                    for r in shares
                ],
                {1, 2, 3},
            )
        )
        html.append(
            "<p>What to do: fix the export at its source, land it again in its date folder and "
            "re-run that date. Which shares stop the run: "
            "<code>expectations/raw/quarantine_share.json</code> (see the raw gate below).</p>"
        )
    else:
        html.append("<p class=muted>No file had a row quarantined.</p>")
    missing_fx = missing_fx_rates(settings)
    if missing_fx:
        html.append(
            "<h2 class=warn>Quarantined by the build: rows without an FX rate "
            "<small>(missing_fx_rate, left out of the marts)</small></h2>"
        )
        html.append(
            _table(
                ["source", "currency", "rows", "first date", "last date"],
                [
                    [
                        escape(r["dataset"]),
                        escape(r["currency"] or "(none)"),
                        r["rows"],
                        r["first_date"],
                        r["last_date"],
                    ]
                    for r in missing_fx
                ],
                {2},
            )
        )
        html.append(
            "<p>What to do: "
            + escape(missing_fx[0]["example"].split("; ", 1)[-1])
            + "; then re-run the date. Rows and reasons: <code>audit.quarantine</code> where "
            "reason_code = 'missing_fx_rate'.</p>"
        )
    ignored = ignored_entries(settings, ds)
    if ignored:
        html.append(f"<h2 class=warn>Ignored landing entries ({len(ignored)})</h2>")
        html.append(
            _table(
                ["entry", "why no run reads it"],
                [
                    [
                        escape(e["path"]),
                        escape(f"{IGNORED_REASONS[e['ignored_reason']]} ({e['ignored_reason']})"),
                    ]
                    for e in ignored
                ],
            )
        )
        html.append(
            f"<p>What to do: move each file into <code>&lt;landing&gt;/YYYY-MM-DD/</code> (for "
            f"this run {escape(ds)}) under a name its source's contract matches, or remove it.</p>"
        )

    # gates
    html.append("<h2>Quality gates</h2>")
    gate_rows = []
    for stage in ("raw", "staging", "marts"):
        info = _read_json(run.gate_summary(stage))
        if not info:
            gate_rows.append([stage, "<span class=muted>not run</span>", "", ""])
            continue
        status = str(info.get("status", "?"))
        failures = [f"<span class=fail>FAIL</span> {escape(t)}" for t in info["failed_critical"]]
        failures += [f"<span class=warn>WARN</span> {escape(t)}" for t in info["failed_warning"]]
        gate_rows.append(
            [
                stage,
                f"<span class={STATUS_CLASS.get(status, 'muted')}>{escape(status.upper())}</span>",
                info.get("checks", 0),
                "<br>".join(failures) or "<span class=muted>all passed</span>",
            ]
        )
    html.append(_table(["gate", "result", "checks", "failed expectations"], gate_rows, {2}))

    # published
    html.append("<h2>Published tables</h2>")
    if published:
        counts = published.get("row_counts", {})
        html.append(
            _table(["table", "rows"], [[escape(k), v] for k, v in sorted(counts.items())], {1})
        )
    else:
        html.append(
            "<p class=muted>Not published this run: BI tools keep the last good version.</p>"
        )

    # KPIs
    series = kpi_series(settings, ds)
    source = "this run" if published else "the last published version"
    html.append(f"<h2>KPIs, last {KPI_DAYS} days <small>(from {source})</small></h2>")
    if series:
        html.append("<div class=charts>")
        for column, title, kind in KPI_CHARTS:
            if column in series:
                html.append(f"<div class=chart>{svg_chart(series[column], title, kind)}</div>")
        html.append("</div>")
    else:
        html.append("<p class=muted>No serving warehouse yet.</p>")
    html.append("</body></html>")
    return "\n".join(html)


def write(
    settings: Settings,
    ds: str,
    succeeded: bool | None,
    published: dict | None = None,
    target: Path | None = None,
) -> Path:
    """Write (or rewrite) the run's report (to ``target``, default the run folder's report) and
    return its path."""
    target = target or settings.layout.run(ds).report
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text(build_html(settings, ds, succeeded, published), "utf-8")
    tmp.replace(target)
    return target
