"""The per-run HTML report: ``<data>/runs/<ds>/report.html``, one self-contained file.

It shows what the run did (rows landed, loaded and quarantined per source; quarantine by reason;
each gate's result; rows per published table) and a few KPI charts from the serving file. Charts
are inline SVG and the styles inline CSS: no script, font or image is fetched, so the file can be
mailed or opened offline. It is written by the DAG's report task (from what the run's tasks
returned), by the summary of ``mwh run`` and, for runs that fail, by the failure callback (both
from the run folder's record).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from html import escape
from pathlib import Path

import duckdb

from marketing_warehouse.config import Settings
from marketing_warehouse.layout import GATE_STAGES, RunRecord

KPI_DAYS = 30
#: (column of marts.kpi_daily, title, chart kind, unit); unit "currency" is the reporting
#: currency, "count" a whole number; columns missing from the mart are skipped.
KPI_CHARTS = (
    ("revenue", "Revenue per day", "line", "currency"),
    ("orders", "Orders per day", "bar", "count"),
    ("new_customers", "New customers per day", "bar", "count"),
    ("average_order_value", "Average order value per day", "line", "currency"),
)
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1000px;color:#1f2933;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;
border-bottom:1px solid #d9e2ec;padding-bottom:.3rem}h3{font-size:1rem;margin:1.2rem 0 .3rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #e4e7eb;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#0b6e4f;font-weight:600}.warn{color:#b7791f;font-weight:600}
.fail{color:#c53030;font-weight:600}.muted{color:#7b8794}
.up{color:#0b6e4f}.down{color:#c53030}
.charts{display:flex;flex-wrap:wrap;gap:1rem}.chart{flex:1 1 440px}
.cards{display:flex;flex-wrap:wrap;gap:.6rem;margin:.6rem 0}
.card{flex:1 1 170px;border:1px solid #d9e2ec;border-radius:6px;padding:.5rem .7rem}
.card b{display:block;font-size:1.25rem;font-variant-numeric:tabular-nums}
.card small{display:block}
small{color:#52606d}
"""
STATUS_CLASS = {"pass": "ok", "warn": "warn", "fail": "fail", "success": "ok", "failed": "fail"}


def _num(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return escape(str(value))


def fmt(value: float | int | None, unit: str, currency: str = "") -> str:
    """A figure as the page shows it: ``count`` a whole number (``1,234``), ``currency`` two
    decimals and the currency code, ``share`` a percentage, ``ratio`` two decimals; None is
    ``n/a``."""
    if value is None:
        return "n/a"
    value = float(value)
    if unit == "count":
        return f"{round(value):,}"
    if unit == "currency":
        return f"{value:,.2f} {currency}".rstrip()
    if unit == "share":
        return f"{value * 100:.1f} %"
    return f"{value:,.2f}"  # a ratio, or a figure without a unit


def change(current: float | None, previous: float | None) -> str:
    """The relative change, ``+12.5 %``; n/a when the previous value is 0 or unknown."""
    if current is None or not previous:
        return "n/a"
    return f"{(float(current) - float(previous)) / abs(float(previous)) * 100:+.1f} %"


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


def _cell(text: str, metric: str = "") -> str:
    """A numeric cell; ``metric`` names the figure (``data-metric``) so that it can be found."""
    tag = f' data-metric="{escape(metric)}"' if metric else ""
    return f"<td class=n{tag}>{escape(text)}</td>"


def _rows(head: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    """A table whose cells are already HTML (``_cell`` for figures)."""
    cells = "".join(
        f"<th{' class=n' if i >= numeric_from else ''}>{escape(h)}</th>" for i, h in enumerate(head)
    )
    body = "".join("<tr>" + "".join(row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


# --- charts ----------------------------------------------------------------------------------


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering low..high,
    0 included: the y axis is labelled at each."""
    low, high = min(low, 0.0), max(high, 0.0)
    if high == low:
        high = low + 1.0
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks, value = [], first
    while value < high + step * 0.999:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _tick_label(value: float, unit: str, step: float) -> str:
    if unit == "share":
        return f"{value * 100:.{0 if step * 100 >= 1 else 1}f} %"
    if unit == "count" or float(step).is_integer():
        return f"{round(value):,}"
    return f"{value:,.{max(0, -math.floor(math.log10(step)))}f}"


def _axis_title(unit: str, currency: str) -> str:
    return {"currency": currency, "count": "count", "share": "%", "ratio": "ratio"}.get(unit, "")


def svg_chart(
    points: list[tuple[str, float]],
    title: str,
    kind: str = "line",
    width: int = 460,
    *,
    unit: str = "",
    currency: str = "",
    x_title: str = "",
    tick_text: Callable[[str], str] = str,
) -> str:
    """A line or bar chart as inline SVG with labelled axes: y ticks at round values (whole
    numbers for counts, % for shares) with the unit as the axis title, x labels on every point
    or, for long series, about six of them (first and last included)."""
    height, left, right, top, bottom = 220, 64, 12, 30, 42
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for _, v in points]
    ticks = nice_ticks(min([*values, 0.0]), max([*values, 0.0]))
    if unit == "count":
        ticks = sorted({round(t) for t in ticks}) or [0]
    low, high = ticks[0], ticks[-1]
    span = (high - low) or 1.0
    step_value = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0

    def y(value: float) -> float:
        return top + plot_h * (1 - (value - low) / span)

    step = plot_w / max(len(points), 1)
    axis = _axis_title(unit, currency)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="16" font-size="13" font-weight="600">{escape(title)}</text>',
    ]
    if axis:
        parts.append(
            f'<text x="4" y="{top - 8}" font-size="11" fill="#52606d">{escape(axis)}</text>'
        )
    for tick in ticks:
        parts.append(
            f'<line x1="{left}" y1="{y(tick):.1f}" x2="{width - right}" y2="{y(tick):.1f}" '
            f'stroke="{"#9aa5b1" if tick == 0 else "#e4e7eb"}" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" font-size="11" text-anchor="end">'
            f"{escape(_tick_label(tick, unit, step_value))}</text>"
        )
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
                f"<title>{escape(label)}: {escape(fmt(value, unit, currency))}</title></rect>"
            )
    else:
        coords = " ".join(
            f"{left + (i + 0.5) * step:.1f},{y(v):.1f}" for i, (_, v) in enumerate(points)
        )
        parts.append(f'<polyline points="{coords}" fill="none" stroke="#3e7cb1" stroke-width="2"/>')
        for index, (label, value) in enumerate(points):
            parts.append(
                f'<circle cx="{left + (index + 0.5) * step:.1f}" cy="{y(value):.1f}" r="2.5" '
                f'fill="#3e7cb1"><title>{escape(label)}: {escape(fmt(value, unit, currency))}'
                "</title></circle>"
            )
    if points:
        every = max(1, math.ceil(len(points) / 6))
        shown = sorted({*range(0, len(points), every), len(points) - 1})
        if len(shown) > 1 and shown[-1] - shown[-2] < every:
            shown.pop(-2)  # keep the last label clear of its neighbour
        for index in shown:
            parts.append(
                f'<text x="{left + (index + 0.5) * step:.1f}" y="{top + plot_h + 16}" '
                f'font-size="11" text-anchor="middle">{escape(tick_text(points[index][0]))}</text>'
            )
    if x_title:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{height - 6}" font-size="11" fill="#52606d" '
            f'text-anchor="middle">{escape(x_title)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def kpi_series(settings: Settings, ds: str) -> dict[str, list[tuple[str, float]]]:
    """The last ``KPI_DAYS`` days up to ``ds`` of each KPI column from the serving file, read
    with the BI query pack's ``kpi_trend`` (counts stay whole numbers)."""
    if not settings.warehouse_path.exists():
        return {}
    first = date.fromisoformat(ds) - timedelta(days=KPI_DAYS - 1)
    try:
        con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    except duckdb.Error:
        return {}
    try:
        rel = con.sql(_pack_sql("kpi_trend"))
        columns = rel.columns
        rows = rel.fetchall()
    except duckdb.Error:
        return {}
    finally:
        con.close()
    wanted = [c for c, *_ in KPI_CHARTS if c in columns]
    at = {c: i for i, c in enumerate(columns)}
    rows = [r for r in rows if first <= r[at["date"]] <= date.fromisoformat(ds)]
    return {
        column: [
            (
                r[at["date"]].isoformat(),
                int(r[at[column]] or 0) if unit == "count" else float(r[at[column]] or 0),
            )
            for r in rows
        ]
        for column, _, _, unit in KPI_CHARTS
        if column in wanted
    }


def _pack_sql(name: str) -> str:
    from marketing_warehouse.serve.query_pack import load_queries

    return next(q.sql for q in load_queries() if q.name == name)


# --- the morning page: KPIs from the serving file ----------------------------------------


@dataclass(frozen=True)
class Period:
    """A run of whole days, both ends included."""

    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def label(self) -> str:
        return f"{self.first.isoformat()} to {self.last.isoformat()} ({self.days} days)"


def periods(ds: str) -> tuple[Period, Period]:
    """The report's period, the month to date of ``ds`` (its month's first day to ``ds``), and
    the previous period of the same length (the as many days just before it)."""
    last = date.fromisoformat(ds)
    current = Period(last.replace(day=1), last)
    previous_last = current.first - timedelta(days=1)
    return current, Period(previous_last - timedelta(days=current.days - 1), previous_last)


def _month_days(day: date) -> int:
    following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return (following - day.replace(day=1)).days


def _dicts(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    rel = con.execute(sql, params or [])
    columns = [c[0] for c in rel.description]
    return [dict(zip(columns, row, strict=True)) for row in rel.fetchall()]


MARKETING_COLUMNS = (
    "spend",
    "budget",
    "target_revenue",
    "target_new_customers",
    "paid_revenue",
    "paid_new_customers",
    "roas",
    "cac",
)


def _has_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from duckdb_tables() where schema_name = ? and table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


def _f(value: object) -> float | None:
    return None if value is None else float(value)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return None if numerator is None or not denominator else numerator / denominator


def headline(con: duckdb.DuckDBPyConnection, ds: str) -> dict:
    """The headline figures: sales of the period and the previous period (marts.kpi_daily),
    the month's targets prorated to the period's days and the month's marketing totals
    (marts.kpi_channel_performance: spend, budget, ROAS and CAC over the channels with spend)."""
    current, previous = periods(ds)
    sales = {}
    for key, period in (("current", current), ("previous", previous)):
        [row] = _dicts(
            con,
            "select count(*) as days, sum(revenue) as revenue, sum(orders) as orders, "
            "sum(new_customers) as new_customers from marts.kpi_daily "
            "where date between ? and ?",
            [period.first, period.last],
        )
        row = {k: _f(v) for k, v in row.items()}
        row["average_order_value"] = _ratio(row["revenue"], row["orders"])
        sales[key] = row if row["days"] else {k: None for k in row}
    month = current.first
    previous_month = (month - timedelta(days=1)).replace(day=1)
    marketing = {}
    for key, first in (("current", month), ("previous", previous_month)):
        if not _has_table(con, "marts", "kpi_channel_performance"):
            marketing[key] = dict.fromkeys(MARKETING_COLUMNS)
            continue
        [row] = _dicts(
            con,
            "select sum(spend) as spend, sum(budget) as budget, "
            "sum(target_revenue) as target_revenue, "
            "sum(target_new_customers) as target_new_customers, "
            "sum(attributed_revenue) filter (where spend is not null) as paid_revenue, "
            "sum(new_customers) filter (where spend is not null) as paid_new_customers "
            "from marts.kpi_channel_performance where month = ?",
            [first],
        )
        row = {k: _f(v) for k, v in row.items()}
        row["roas"] = _ratio(row["paid_revenue"], row["spend"])
        row["cac"] = _ratio(row["spend"], row["paid_new_customers"])
        marketing[key] = row
    share = current.days / _month_days(month)
    month_row = marketing["current"]
    targets = {
        "revenue": month_row["target_revenue"],
        "new_customers": month_row["target_new_customers"],
        "spend": month_row["budget"],
    }
    return {
        "current": current,
        "previous": previous,
        "month": month,
        "previous_month": previous_month,
        "month_share": share,
        "sales": sales,
        "marketing": marketing,
        "targets": targets,
        "targets_to_date": {k: None if v is None else v * share for k, v in targets.items()},
    }


#: (key, title, unit) of the sales figures of the headline.
SALES = (
    ("revenue", "Revenue", "currency"),
    ("orders", "Orders", "count"),
    ("new_customers", "New customers", "count"),
    ("average_order_value", "Average order value", "currency"),
)
#: (key, title, unit) of the month's marketing figures.
MARKETING = (
    ("spend", "Ad spend", "currency"),
    ("roas", "ROAS (attributed revenue / spend)", "ratio"),
    ("cac", "CAC (spend / new customers)", "currency"),
)


#: Figures for which a rise is bad news (shown red when they go up).
LOWER_IS_BETTER = frozenset({"cac"})


#: Figures whose change is neither good nor bad news by itself (shown uncoloured).
NEUTRAL = frozenset({"spend"})


def _trend(text: str, key: str = "") -> str:
    if key in NEUTRAL:
        return f"<span class=muted>{escape(text)}</span>"
    good, bad = ("down", "up") if key in LOWER_IS_BETTER else ("up", "down")
    css = good if text.startswith("+") else bad if text.startswith("-") else "muted"
    return f"<span class={css}>{escape(text)}</span>"


def _headline_html(figures: dict, currency: str) -> list[str]:
    current, previous = figures["current"], figures["previous"]
    sales, marketing = figures["sales"], figures["marketing"]
    to_date = figures["targets_to_date"]
    html = [
        f"<h2>Headline, month to date <small>{escape(current.label())}; previous period "
        f"{escape(previous.label())}; money in {escape(currency)}</small></h2>",
        "<div class=cards>",
    ]
    for key, title, unit in SALES:
        now, before = sales["current"][key], sales["previous"][key]
        html.append(
            f"<div class=card><small>{escape(title)}</small>"
            f'<b data-metric="card.{key}">{escape(fmt(now, unit, currency))}</b>'
            f"<small>{_trend(change(now, before))} vs previous period</small></div>"
        )
    html.append("</div>")

    def compared(items, figures: dict, target_of: Callable[[str], float | None]):
        """One row per figure: now, before, the change, the target to date and its share."""
        rows = []
        for key, title, unit in items:
            now, before = figures["current"][key], figures["previous"][key]
            target = target_of(key)
            rows.append(
                [
                    f"<td>{escape(title)}</td>",
                    _cell(fmt(now, unit, currency), f"{key}.current"),
                    _cell(fmt(before, unit, currency), f"{key}.previous"),
                    f"<td class=n>{_trend(change(now, before), key)}</td>",
                    _cell(
                        fmt(target, unit, currency) if target is not None else "", f"{key}.target"
                    ),
                    _cell(
                        fmt(_ratio(now, target), "share") if target is not None else "",
                        f"{key}.attainment",
                    ),
                ]
            )
        return rows

    html.append(
        _rows(
            ["", "this period", "previous period", "change", "target to date", "of target"],
            compared(SALES, sales, to_date.get),
        )
    )
    month, before_month = figures["month"], figures["previous_month"]
    html.append(
        f"<h3>Marketing, {escape(month.strftime('%B %Y'))} to date "
        f"<small>(monthly figures; vs {escape(before_month.strftime('%B %Y'))} and the month's "
        f"budget to date, {figures['month_share'] * 100:.0f} % of the month gone)</small></h3>"
    )
    budget = compared(
        MARKETING, marketing, lambda key: to_date["spend"] if key == "spend" else None
    )
    html.append(
        _rows(["", "this month", "previous month", "change", "budget to date", "of budget"], budget)
    )
    html.append(
        "<p><small>Targets and budgets are the budget workbook's for the month (all channels), "
        "prorated to the days of the period. ROAS and CAC count the channels with ad spend.</small>"
        "</p>"
    )
    return html


def _channels_html(con: duckdb.DuckDBPyConnection, figures: dict, currency: str) -> list[str]:
    """ROAS and CAC per channel (the BI query pack's channel_roas) with the month's budget."""
    month = figures["month"]
    rows = [r for r in _dicts(con, _pack_sql("channel_roas")) if r["month"] == month]
    budgets = {
        r["channel"]: r
        for r in _dicts(
            con,
            "select channel, budget, budget_attainment from marts.kpi_channel_performance "
            "where month = ?",
            [month],
        )
    }
    paid = [r for r in rows if r["spend"] is not None]
    html = [f"<h2>Paid channels, {escape(month.strftime('%B %Y'))} to date</h2>"]
    if not paid:
        return [*html, "<p class=muted>No ad spend this month.</p>"]
    table = []
    for row in sorted(paid, key=lambda r: -float(r["spend"])):
        channel = row["channel"]
        budget = budgets.get(channel, {})
        table.append(
            [
                f"<td>{escape(channel)}</td>",
                _cell(fmt(row["spend"], "currency", currency), f"channel.{channel}.spend"),
                _cell(fmt(budget.get("budget"), "currency", currency)),
                _cell(fmt(budget.get("budget_attainment"), "share")),
                _cell(fmt(row["roas"], "ratio"), f"channel.{channel}.roas"),
                _cell(fmt(row["cac"], "currency", currency), f"channel.{channel}.cac"),
            ]
        )
    html.append(_rows(["channel", "spend", "budget", "of budget", "ROAS", "CAC"], table))
    roas = [(r["channel"], float(r["roas"] or 0)) for r in paid]
    cac = [(r["channel"], float(r["cac"] or 0)) for r in paid]
    html.append("<div class=charts>")
    html.append(f"<div class=chart>{svg_chart(roas, 'ROAS by channel', 'bar', unit='ratio')}</div>")
    html.append(
        f"<div class=chart>{svg_chart(cac, 'CAC by channel', 'bar', unit='currency', currency=currency)}</div>"
    )
    html.append("</div>")
    return html


#: At-risk customers the report lists (the BI query pack's customers_at_risk has them all).
AT_RISK_TOP = 10


def _at_risk_html(con: duckdb.DuckDBPyConnection, currency: str) -> list[str]:
    """Customers and predicted CLV per churn band (the BI query pack's churn_risk_value) and the
    top ``AT_RISK_TOP`` at-risk customers by predicted CLV (customers_at_risk). Customers are
    named by customer_id (md5 of the e-mail), never by e-mail or phone."""
    html = ["<h3>At-risk valuable customers</h3>"]
    bands = _dicts(con, _pack_sql("churn_risk_value"))
    if not bands:
        snapshot = con.execute("select max(snapshot_date) from marts.dim_customer_segments")
        day = snapshot.fetchone()[0]
        return [
            *html,
            f"<p class=muted>No predictions for the snapshot {escape(str(day))}: the predict "
            "stage skips a shop with too few repeat buyers to fit the models, or a fit that did "
            "not converge (marts.clv_model_parameters and the run's predict.json say which).</p>",
        ]
    html[0] = (
        "<h3>At-risk valuable customers <small>(snapshot "
        f"{escape(str(bands[0]['snapshot_date']))}; churn risk from the probability of being "
        "alive; predicted CLV: discounted expected spend over the CLV horizon)</small></h3>"
    )
    html.append(
        _rows(
            ["churn risk", "customers", "reachable by e-mail", "predicted CLV"],
            [
                [
                    f"<td>{escape(r['churn_risk'])}</td>",
                    _cell(fmt(r["customers"], "count"), f"at_risk.{r['churn_risk']}.customers"),
                    _cell(fmt(r["email_marketable_customers"], "count")),
                    _cell(
                        fmt(r["predicted_clv"], "currency", currency),
                        f"at_risk.{r['churn_risk']}.predicted_clv",
                    ),
                ]
                for r in bands
            ],
        )
    )
    top = con.execute(_pack_sql("customers_at_risk"))
    columns = [c[0] for c in top.description]
    customers = [dict(zip(columns, row, strict=True)) for row in top.fetchmany(AT_RISK_TOP)]
    if not customers:
        return [*html, "<p class=muted>No customer with a high or medium churn risk.</p>"]
    head = ["customer", "RFM segment", "churn risk", "probability alive", "predicted CLV"]
    html.append(f"<p>Top {len(customers)} at-risk customers by predicted CLV:</p>")
    html.append(
        _rows(
            [*head, "expected next order"],
            [
                [
                    f'<td data-metric="at_risk.{rank}.customer">'
                    f"<code>{escape(r['customer_id'])}</code></td>",
                    f"<td>{escape(str(r['rfm_segment']))}</td>",
                    f"<td>{escape(r['churn_risk'])}</td>",
                    _cell(fmt(r["probability_alive"], "share"), f"at_risk.{rank}.probability"),
                    _cell(
                        fmt(r["predicted_clv"], "currency", currency),
                        f"at_risk.{rank}.predicted_clv",
                    ),
                    _cell(
                        "none within the CLV horizon"
                        if r["expected_next_order_date"] is None
                        else str(r["expected_next_order_date"]),
                        f"at_risk.{rank}.next_order",
                    ),
                ]
                for rank, r in enumerate(customers, start=1)
            ],
            numeric_from=3,
        )
    )
    return html


def _customers_html(con: duckdb.DuckDBPyConnection, ds: str, currency: str = "") -> list[str]:
    """Segment and lifecycle sizes (the BI query pack's segment_sizes), at-risk valuable
    customers (``_at_risk_html``), churn by month (marts.kpi_retention_churn) and reachable
    customers per channel (kpi_channel_coverage)."""
    html = ["<h2>Customers</h2>"]
    cells = _dicts(con, _pack_sql("segment_sizes"))
    if cells:
        snapshot = cells[0]["snapshot_date"]
        for column, title in (("rfm_segment", "RFM segment"), ("lifecycle_stage", "lifecycle")):
            sizes: dict[str, int] = {}
            for cell in cells:
                sizes[cell[column]] = sizes.get(cell[column], 0) + int(cell["customers"])
            total = sum(sizes.values())
            html.append(
                f"<h3>Customers per {escape(title)} <small>(snapshot {snapshot})</small></h3>"
            )
            html.append(
                _rows(
                    [title, "customers", "share"],
                    [
                        [
                            f"<td>{escape('(none: no order yet)' if name is None else name)}</td>",
                            _cell(fmt(n, "count"), f"{column}.{name}"),
                            _cell(fmt(n / total, "share")),
                        ]
                        for name, n in sorted(sizes.items(), key=lambda x: (-x[1], str(x[0])))
                    ],
                )
            )
        html += _at_risk_html(con, currency)
    churn = _dicts(
        con,
        "select month, active_previous_month, active_customers, new_customers, "
        "retained_customers, reactivated_customers, churned_customers, churn_rate, "
        "is_complete_month from marts.kpi_retention_churn where month <= ? "
        "order by month desc limit 6",
        [date.fromisoformat(ds)],
    )
    if churn:
        html.append(
            "<h3>Churn by month <small>(active: at least one revenue order in the month; "
            "churned: active the month before and not in this one)</small></h3>"
        )
        html.append(
            _rows(
                ["month", "active", "new", "retained", "reactivated", "churned", "churn rate"],
                [
                    [
                        f"<td>{r['month'].strftime('%Y-%m')}"
                        + ("" if r["is_complete_month"] else " <small>(to date)</small>")
                        + "</td>",
                        _cell(fmt(r["active_customers"], "count"), f"churn.{r['month']}.active"),
                        _cell(fmt(r["new_customers"], "count")),
                        _cell(fmt(r["retained_customers"], "count")),
                        _cell(fmt(r["reactivated_customers"], "count")),
                        _cell(fmt(r["churned_customers"], "count"), f"churn.{r['month']}.churned"),
                        _cell(fmt(r["churn_rate"], "share"), f"churn.{r['month']}.rate"),
                    ]
                    for r in churn
                ],
            )
        )
    reach = _dicts(
        con,
        "select channel, customers, reachable_customers, coverage_share, "
        "reachable_active_customers from marts.kpi_channel_coverage "
        "where date = (select max(date) from marts.kpi_channel_coverage where date <= ?) "
        "order by channel",
        [date.fromisoformat(ds)],
    )
    if reach:
        html.append(
            "<h3>Reachable customers per channel <small>(consent, not bounced)</small></h3>"
        )
        html.append(
            _rows(
                ["channel", "reachable", "of all customers", "reachable and active (30 days)"],
                [
                    [
                        f"<td>{escape(r['channel'])}</td>",
                        _cell(fmt(r["reachable_customers"], "count"), f"reach.{r['channel']}"),
                        _cell(fmt(r["coverage_share"], "share")),
                        _cell(fmt(r["reachable_active_customers"], "count")),
                    ]
                    for r in reach
                ],
            )
        )
    return html


def _campaigns_html(con: duckdb.DuckDBPyConnection, figures: dict, currency: str) -> list[str]:
    """Campaign rates per channel over the campaigns sent in the period (sums of recipients,
    then the rates: a rate of the sums, not an average of rates)."""
    current = figures["current"]
    rows = _dicts(
        con,
        "select channel, count(*) as campaigns, sum(sent) as sent, sum(delivered) as delivered, "
        "sum(opened) as opened, sum(clicked) as clicked, sum(unsubscribed) as unsubscribed, "
        "sum(conversions) as conversions, sum(attributed_revenue) as attributed_revenue "
        "from marts.kpi_campaign_performance "
        "where cast(sent_at as date) between ? and ? group by channel order by channel",
        [current.first, current.last],
    )
    html = [f"<h2>CRM campaigns sent {escape(current.label())}</h2>"]
    if not rows:
        return [*html, "<p class=muted>No campaign sent in the period.</p>"]
    table = []
    for r in rows:
        channel = r["channel"]
        delivered = _f(r["delivered"])
        table.append(
            [
                f"<td>{escape(channel)}</td>",
                _cell(fmt(r["campaigns"], "count")),
                _cell(fmt(r["sent"], "count"), f"campaigns.{channel}.sent"),
                _cell(fmt(_ratio(delivered, _f(r["sent"])), "share")),
                _cell(
                    "n/a" if channel == "sms" else fmt(_ratio(_f(r["opened"]), delivered), "share"),
                    f"campaigns.{channel}.open_rate",
                ),
                _cell(
                    fmt(_ratio(_f(r["clicked"]), delivered), "share"),
                    f"campaigns.{channel}.click_rate",
                ),
                _cell(fmt(_ratio(_f(r["unsubscribed"]), delivered), "share")),
                _cell(fmt(r["conversions"], "count")),
                _cell(
                    fmt(r["attributed_revenue"], "currency", currency),
                    f"campaigns.{channel}.revenue",
                ),
            ]
        )
    html.append(
        _rows(
            [
                "channel",
                "campaigns",
                "sent",
                "delivered",
                "opened",
                "clicked",
                "unsubscribed",
                "orders",
                "attributed revenue",
            ],
            table,
        )
    )
    html.append(
        "<p><small>Delivered of sent; opened, clicked and unsubscribed of delivered (SMS opens "
        "are not tracked); orders attributed by last touch.</small></p>"
    )
    return html


def source_freshness(con: duckdb.DuckDBPyConnection, ds: str) -> list[dict]:
    """Per source of the contracts: the newest landing date it loaded a file from
    (audit.load_ledger, status loaded) and how many days before ``ds`` that is."""
    from marketing_warehouse.ingest.contracts import load_contracts

    newest = {
        r["source"]: r["newest"]
        for r in _dicts(
            con,
            "select source, max(load_date) as newest from audit.load_ledger "
            "where status = 'loaded' group by source",
        )
    }
    day = date.fromisoformat(ds)
    sources = sorted({c.source for c in load_contracts()} | newest.keys())
    return [
        {
            "source": s,
            "newest": newest.get(s),
            "age_days": None if newest.get(s) is None else (day - newest[s]).days,
        }
        for s in sources
    ]


def stale_after_days(settings: Settings) -> int | None:
    """How many days behind the run date data may be before the marts gate warns
    (``kpi_days_behind_run`` in expectations/marts/reconciliation.json): the report marks a
    source older than that."""
    from marketing_warehouse.quality.gates import load_suite_dict

    try:
        suite = load_suite_dict(settings, "marts/reconciliation")
    except (OSError, ValueError):
        return None
    for expectation in suite.get("expectations", []):
        kwargs = expectation.get("kwargs", {})
        if kwargs.get("column") == "kpi_days_behind_run" and "max_value" in kwargs:
            return int(kwargs["max_value"])
    return None


def _freshness_html(settings: Settings, con: duckdb.DuckDBPyConnection, ds: str) -> list[str]:
    rows = source_freshness(con, ds)
    limit = stale_after_days(settings)
    table = []
    for r in rows:
        age = r["age_days"]
        css = (
            "fail" if age is None else "muted" if limit is None else "warn" if age > limit else "ok"
        )
        table.append(
            [
                f"<td>{escape(r['source'])}</td>",
                f"<td>{r['newest'] or 'never'}</td>",
                f'<td class="n {css}" data-metric="freshness.{escape(r["source"])}">'
                f"{'never loaded' if age is None else f'{age} days'}</td>",
            ]
        )
    return [
        "<h2>Source freshness <small>(newest landing folder each source loaded, "
        f"age on {escape(ds)}"
        + ("" if limit is None else f"; older than {limit} days is marked")
        + ")</small></h2>",
        _rows(["source", "newest landed data", "age"], table, numeric_from=2),
    ]


def _links_html(settings: Settings) -> list[str]:
    from marketing_warehouse.serve.docs import docs_urls
    from marketing_warehouse.serve.superset_bundle import DASHBOARDS

    docs = docs_urls()
    items = "".join(
        f'<li><a href="{escape(d.url(settings.bi_url))}">{escape(d.title)}</a>: '
        f"{escape(d.answers)}</li>"
        for d in DASHBOARDS
    )
    return [
        "<h2>Dashboards and docs</h2>",
        f"<ul>{items}</ul>",
        "<p>Documentation (<code>make docs</code>): "
        f'<a href="{docs["dbt"]}">dbt docs</a> (models, columns, lineage) and '
        f'<a href="{docs["gx"]}">Great Expectations data docs</a> (every gate\'s checks).</p>',
    ]


def morning_page(settings: Settings, ds: str) -> list[str]:
    """The KPI part of the report, from the serving file (read-only): headline, charts, paid
    channels, customers, campaigns and source freshness. Aggregates only: no personal data."""
    if not settings.warehouse_path.exists():
        return ["<p class=muted>No serving warehouse yet.</p>"]
    currency = settings.reporting_currency
    try:
        con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    except duckdb.Error as error:
        return [f"<p class=fail>The serving warehouse cannot be read: {escape(str(error))}</p>"]
    html: list[str] = []
    try:
        figures = functools.cache(lambda: headline(con, ds))
        sections = (
            lambda: _headline_html(figures(), currency),
            lambda: _charts_html(settings, ds),
            lambda: _channels_html(con, figures(), currency),
            lambda: _customers_html(con, ds, currency),
            lambda: _campaigns_html(con, figures(), currency),
            lambda: _freshness_html(settings, con, ds),
        )
        for section in sections:
            try:
                html += section()
            except duckdb.Error as error:  # a mart missing from an older serving file
                first = str(error).splitlines()[0]
                html.append(f"<p class=muted>Not in the serving file: {escape(first)}</p>")
    finally:
        con.close()
    return html


def _charts_html(settings: Settings, ds: str) -> list[str]:
    series = kpi_series(settings, ds)
    html = [f"<h2>Last {KPI_DAYS} days</h2>"]
    if not series:
        return [*html, "<p class=muted>No daily KPIs in the serving file.</p>"]
    html.append("<div class=charts>")
    for column, title, kind, unit in KPI_CHARTS:
        if column in series:
            chart = svg_chart(
                series[column],
                title,
                kind,
                unit=unit,
                currency=settings.reporting_currency,
                x_title="date (month-day)",
                tick_text=lambda day: day[5:],
            )
            html.append(f"<div class=chart>{chart}</div>")
    html.append("</div>")
    return html


# --- the report ------------------------------------------------------------------------------


def quarantined_files(settings: Settings, ds: str, record: RunRecord) -> list[dict]:
    """The files of the run with any row quarantined, or rejected whole, highest share first."""
    from marketing_warehouse.quality.gates import quarantine_shares

    rows = quarantine_shares(settings, date.fromisoformat(ds), record.extracts)
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


def ignored_entries(record: RunRecord) -> list[dict]:
    """The landing entries the run looked at and did not read (see ``loads.scan_landing``)."""
    return [e for e in record.landing_scan if e["ignored_reason"]]


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
    settings: Settings, ds: str, succeeded: bool | None, record: RunRecord | None = None
) -> str:
    """The report's page; ``record``: what the run's tasks returned (by default the run
    folder's record of it; ``published`` is empty when the run did not publish)."""
    run = settings.layout.run(ds)
    record = record or run.record()
    extracts, published = record.extracts, record.published
    state = {True: "SUCCESS", False: "FAILED", None: "RUNNING"}[succeeded]
    css_state = {True: "ok", False: "fail", None: "warn"}[succeeded]
    html = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>Marketing warehouse run {escape(ds)}</title><style>{CSS}</style></head><body>",
        f"<h1>Marketing warehouse run for {escape(ds)}: <span class={css_state}>{state}</span></h1>",
        f"<small>Run folder: {escape(str(run.root))}</small>",
    ]
    # the morning page: what the marts say, then what the run did
    source = "this run" if published else "the last published version"
    html.append(f"<p><small>KPIs from {source} of the serving warehouse.</small></p>")
    html += morning_page(settings, ds)
    html += _links_html(settings)
    html.append("<h2 style='margin-top:3rem'>The run</h2>")

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

    shares = quarantined_files(settings, ds, record)
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
    ignored = ignored_entries(record)
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
    for stage in GATE_STAGES:
        info = record.gates.get(stage)
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

    html += _exports_html(published)
    html.append("</body></html>")
    return "\n".join(html)


def audience_exports(published: dict) -> tuple[list[dict], list[dict], str]:
    """The audiences exported by a published run (members per arm), their files (layout, arm,
    rows) and the folder; empty when the run exported none."""
    exports = (published or {}).get("audience_exports") or {}
    return exports.get("audiences", []), exports.get("files", []), exports.get("folder", "")


def _exports_html(published: dict) -> list[str]:
    audiences, files, folder = audience_exports(published)
    if not published:
        return []
    html = [f"<h2>Audience exports <small>{escape(folder)}</small></h2>"]
    if not audiences:
        return [*html, "<p class=muted>No audience had members in this snapshot.</p>"]
    html.append(
        _table(
            ["audience", "channel", "treatment", "control"],
            [
                [escape(a["audience"]), escape(a["channel"]), a["treatment"], a["control"]]
                for a in audiences
            ],
            {2, 3},
        )
    )
    html.append(
        _table(
            ["file", "layout", "arm", "rows"],
            [[escape(f["file"]), escape(f["layout"]), escape(f["arm"]), f["rows"]] for f in files],
            {3},
        )
    )
    return html


def write(
    settings: Settings,
    ds: str,
    succeeded: bool | None,
    record: RunRecord | None = None,
    target: Path | None = None,
) -> Path:
    """Write (or rewrite) the run's report (to ``target``, default the run folder's report) and
    return its path; ``record`` as for ``build_html``."""
    target = target or settings.layout.run(ds).report
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text(build_html(settings, ds, succeeded, record), "utf-8")
    tmp.replace(target)
    return target
