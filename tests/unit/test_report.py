"""The per-run HTML report on a small fixture: real extraction results, gate results, a serving file."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import date, timedelta
from html.parser import HTMLParser

import duckdb
import pytest
from conftest import order_row, write_shopify

from marketing_warehouse import pipeline
from marketing_warehouse.ops import report, summary

DS = "2026-11-21"


class Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)

    def handle_data(self, data) -> None:
        self.text.append(data)


@pytest.fixture
def run(settings, monkeypatch):
    """A run of ``DS``: two Shopify files (one row quarantined, one file rejected), gates, marts."""
    for key, value in (("MWH_DATA_DIR", str(settings.data_dir)),):
        monkeypatch.setenv(key, value)
    folder = settings.landing_dir / DS
    write_shopify(
        folder / "shopify_orders_a.csv",
        [
            order_row("#1", "a@x.com", f"{DS} 10:00:00 +0000", Total="10", Currency="EUR"),
            order_row("#2", "b@x.com", "yesterday", Total="20", Currency="EUR"),
            order_row("#3", "c@x.com", f"{DS} 11:00:00 +0000", **{"Billing Name": "=HYPERLINK(1)"}),
        ],
    )
    (folder / "shopify_orders_<script>.csv").write_text("Order,Mail\n#9,x\n", "utf-8")
    pipeline.extract_source("shopify__order_lines", DS, settings)
    validation = settings.layout.run(DS).validation_dir
    validation.mkdir(parents=True)
    for stage, status, critical in (("raw", "pass", []), ("staging", "fail", ["fx <coverage>"])):
        (validation / f"{stage}.json").write_text(
            json.dumps(
                {
                    "stage": stage,
                    "status": status,
                    "checks": 7,
                    "failed_critical": critical,
                    "failed_warning": ["freshness 2 days"] if stage == "raw" else [],
                    "docs_index": "",
                }
            )
        )
    return settings


def serve(settings, days: int = 40) -> None:
    settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute("create schema marts")
    con.execute(
        "create table marts.kpi_daily as select d::date as date, 'EUR' as reporting_currency, "
        "(i % 7 + 1) as orders, (i % 7 + 1) * 42.5 as revenue, i % 3 as new_customers, "
        "(i % 7 + 1) * 42.5 as net_revenue, 42.5 as average_order_value, 0 as returning_customers "
        f"from (select unnest(range(date '{DS}' - interval {days - 1} day, "
        f"date '{DS}' + interval 1 day, interval 1 day)) as d, "
        f"unnest(range({days})) as i)"
    )
    con.close()


def parse(path) -> Collect:
    parser = Collect()
    parser.feed(path.read_text("utf-8"))
    return parser


def test_failed_run_report_counts_reasons_gates_and_charts(run):
    serve(run)
    path = report.write(run, DS, succeeded=False)
    assert path == run.layout.run(DS).report
    html = path.read_text("utf-8")
    page = parse(path)
    text = " ".join(page.text)
    assert "FAILED" in text
    assert "shopify__order_lines" in text
    # landed 3 (+1 rejected file), loaded 2, quarantined: one row + one file
    assert "invalid_timestamp" in text and "missing_required_column" in text
    assert "Billing Name" in text  # formula-like values listed
    assert "STAGING" not in text and "FAIL" in text and "fx <coverage>" in text
    assert "WARN" in text and "freshness 2 days" in text
    assert "Not published this run" in text
    assert page.tags.count("svg") == 4 and page.tags.count("rect") == 2 * 30
    assert "last published version" in text
    # self-contained and escaped: no script, no external resource, the odd file name is text
    assert "script" not in page.tags and "<script>" not in html.replace("&lt;script&gt;", "")
    assert "src=" not in html and "<link" not in html and "@import" not in html
    # the only links: the BI dashboards and the served docs (pages a user opens, not assets)
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert len(hrefs) == 8, hrefs
    for href in hrefs:
        assert href.startswith((f"{run.bi_url}/superset/dashboard/", "http://127.0.0.1:8081/"))
    assert "shopify_orders_&lt;script&gt;.csv" in html


def test_published_run_report_and_summary_point_to_it(run):
    serve(run)
    run.layout.run(DS).publish_record.write_text(
        json.dumps({"row_counts": {"marts.kpi_daily": 40, "audit.quarantine": 2}})
    )
    text = summary.build(run, DS, True)
    path = run.layout.run(DS).report
    assert f"Run report: {path}" in text
    page = " ".join(parse(path).text)
    assert "SUCCESS" in page and "marts.kpi_daily" in page and "from this run" in page
    first = (date.fromisoformat(DS) - timedelta(days=report.KPI_DAYS - 1)).isoformat()
    assert first in page and DS in page  # the charts' x labels


def test_the_report_task_shows_what_the_tasks_returned_without_the_run_folder(run):
    """The DAG's report task is handed what extraction, ``prepare``, the gates and publish
    returned (through XCom, as JSON); it reads none of the run folder's record."""
    import shutil

    serve(run)
    (run.landing_dir / DS / "orders.txt").write_text("notes", "utf-8")
    folder = run.layout.run(DS)
    kept = folder.record()
    scan = pipeline.write_landing_scan(run, DS)
    handed = json.loads(
        json.dumps(
            {"extracts": kept.extracts, "landing_scan": scan, "gates": list(kept.gates.values())}
        )
    )
    shutil.rmtree(folder.root)
    path = pipeline.run_report(DS, {"row_counts": {"marts.kpi_daily": 40}}, run, **handed)
    assert path == str(folder.report)
    assert sorted(p.name for p in folder.root.iterdir()) == ["report.html"]
    page = " ".join(parse(folder.report).text)
    assert "SUCCESS" in page and "marts.kpi_daily" in page and "from this run" in page
    assert "Not published this run" not in page
    # extraction: 3 rows landed in shopify_orders_a.csv, one quarantined; one file rejected
    assert "invalid_timestamp" in page and "missing_required_column" in page
    assert "33.33%" in page and "100.00%" in page
    assert "Ignored landing entries (1)" in page and f"{DS}/orders.txt" in page
    assert "fx <coverage>" in page and "freshness 2 days" in page  # the gates' failures


def test_report_before_any_warehouse_exists(settings):
    path = report.write(settings, DS, succeeded=None)
    page = " ".join(parse(path).text)
    assert "No extraction results" in page and "No serving warehouse yet" in page


def test_chart_handles_negative_and_flat_series():
    svg = report.svg_chart([("a", -5.0), ("b", 0.0), ("c", 5.0)], "Net", "bar")
    assert svg.count("<rect") == 3 and 'height="-' not in svg
    assert "no data" in report.svg_chart([], "Empty")
    assert "<polyline" in report.svg_chart([("a", 3.0), ("b", 3.0)], "Flat")


def test_summary_and_report_show_each_files_quarantined_share_and_the_ignored_entries(run):
    landing = run.landing_dir
    (landing / "exports").mkdir()
    (landing / "exports" / "shopify_orders_old.csv").write_text("Name\n#1\n", "utf-8")
    (landing / DS / "orders.txt").write_text("notes", "utf-8")
    pipeline.write_landing_scan(run, DS)
    text = summary.build(run, DS, False, "no task ran: nothing was extracted or published")
    assert "FAILED\n  no task ran: nothing was extracted or published" in text
    # shopify_orders_a.csv: 3 rows landed, the one with created_at "yesterday" quarantined
    assert (
        f"33.33%  shopify__order_lines/{DS}/shopify_orders_a.csv: 1 of 3 rows quarantined" in text
    )
    assert "top reasons invalid_timestamp 1" in text
    assert "rows and reasons: .venv/bin/mwh query" in text and "row_number, reason_code" in text
    assert f"100.00%  shopify__order_lines/{DS}/shopify_orders_<script>.csv: rejected whole" in text
    assert text.index("100.00%") < text.index("33.33%")  # highest share first
    assert "Ignored landing entries (2; no run reads them):" in text
    assert "WARN exports/shopify_orders_old.csv: not in a YYYY-MM-DD folder" in text
    assert f"WARN {DS}/orders.txt: its name matches no source's file pattern (no_contract)" in text
    assert "No serving warehouse yet: nothing to query" in text and "Try it" not in text
    page = " ".join(parse(run.layout.run(DS).report).text)
    assert "Quarantined share per file" in page and "33.33%" in page and "100.00%" in page
    assert "Ignored landing entries (2)" in page
    assert "exports/shopify_orders_old.csv" in page and f"{DS}/orders.txt" in page


def _texts(svg: str) -> list[str]:
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg)


def test_chart_axes_have_round_ticks_units_and_whole_counts():
    """The y axis is labelled at round values from 0 (not only min and max), counts as whole
    numbers, the unit as the axis title; the x axis labels about six points."""
    days = [(f"2026-11-{d:02d}", float(d % 7 * 3 + 1)) for d in range(1, 31)]
    svg = report.svg_chart(days, "Orders per day", "bar", unit="count", tick_text=lambda d: d[5:])
    texts = _texts(svg)
    assert texts[:2] == ["Orders per day", "count"]
    assert texts[2:7] == ["0", "5", "10", "15", "20"]  # max 19: round steps of 5
    x_labels = [t for t in texts[7:] if t.startswith("11-")]
    assert x_labels[0] == "11-01" and x_labels[-1] == "11-30" and 4 <= len(x_labels) <= 7
    assert "19.00" not in svg and ": 19<" in svg  # tooltips show counts whole too
    money = report.svg_chart(
        [("a", 1234.5), ("b", 3870.0)], "Revenue", unit="currency", currency="EUR"
    )
    assert _texts(money)[1:7] == ["EUR", "0", "1,000", "2,000", "3,000", "4,000"]
    assert "3,870.00 EUR" in money
    shares = report.svg_chart([("x", 0.12), ("y", 0.475)], "Churn", "bar", unit="share")
    assert _texts(shares)[1:6] == ["%", "0 %", "20 %", "40 %", "60 %"]
    assert report.nice_ticks(0, 0.75) == [0, 0.2, 0.4, 0.6, 0.8]
    assert report.nice_ticks(-3, 7) == [-5, -2.5, 0, 2.5, 5, 7.5]


def test_figures_are_formatted_by_unit():
    assert report.fmt(33.0, "count") == "33" and report.fmt(1234, "count") == "1,234"
    assert report.fmt(1234.5, "currency", "EUR") == "1,234.50 EUR"
    assert report.fmt(0.4756, "share") == "47.6 %" and report.fmt(None, "share") == "n/a"
    assert report.change(110, 100) == "+10.0 %" and report.change(90, 100) == "-10.0 %"
    assert report.change(5, 0) == "n/a" and report.change(5, None) == "n/a"


def test_the_period_is_the_month_to_date_and_the_as_many_days_before():
    current, previous = report.periods("2026-03-05")
    assert (current.first, current.last, current.days) == (date(2026, 3, 1), date(2026, 3, 5), 5)
    assert (previous.first, previous.last) == (date(2026, 2, 24), date(2026, 2, 28))
    current, previous = report.periods("2026-03-31")
    assert previous.first == date(2026, 1, 29) and previous.days == 31


def test_a_source_is_stale_after_the_marts_gates_freshness_limit(settings, tmp_path):
    """The report marks a source whose newest landed data is older than the days the marts
    gate allows (expectations/marts/reconciliation.json), read from there, not repeated."""
    import shutil

    suite = json.loads((settings.expectations_dir / "marts" / "reconciliation.json").read_text())
    [limit] = [
        e["kwargs"]["max_value"]
        for e in suite["expectations"]
        if e["kwargs"].get("column") == "kpi_days_behind_run"
    ]
    assert report.stale_after_days(settings) == limit
    copy = tmp_path / "expectations"
    shutil.copytree(settings.expectations_dir, copy)
    for e in suite["expectations"]:
        if e["kwargs"].get("column") == "kpi_days_behind_run":
            e["kwargs"]["max_value"] = 5
    (copy / "marts" / "reconciliation.json").write_text(json.dumps(suite))
    changed = dataclasses.replace(settings, expectations_override=copy)
    assert report.stale_after_days(changed) == 5
    con = duckdb.connect()
    con.execute(
        "create schema audit; create table audit.load_ledger as select * from (values "
        "('shopify', date '2026-11-21', 'loaded'), ('stripe', date '2026-11-18', 'loaded'), "
        "('hubspot', date '2026-11-10', 'loaded'), ('hubspot', date '2026-11-21', 'rejected')) "
        "as t(source, load_date, status)"
    )
    html = "".join(report._freshness_html(changed, con, DS))
    assert 'class="n ok" data-metric="freshness.shopify">0 days' in html
    assert 'class="n ok" data-metric="freshness.stripe">3 days' in html  # within 5
    assert 'class="n warn" data-metric="freshness.hubspot">11 days' in html  # rejected: not new
    assert 'class="n fail" data-metric="freshness.klaviyo">never loaded' in html


def test_a_failed_mwh_run_keeps_the_report_of_the_run_that_published_the_date(settings):
    """`mwh run` published 2026-11-21; a later `mwh run` of the same date fails. Its summary
    writes the failure's report beside the published run's report, which stays as it was."""
    from pathlib import Path

    from conftest import make_build_db

    make_build_db(settings, 1)
    published = pipeline.publish(DS, "manual__2026-11-21T00:00:00+00:00", settings)
    good = Path(pipeline.run_report(DS, published, settings))
    before = good.read_text("utf-8")
    assert "SUCCESS" in before

    text = summary.build(settings, DS, False, "raw gate failed")

    folder = settings.layout.run(DS)
    assert good.read_text("utf-8") == before
    assert "FAILED" in folder.failed_report.read_text("utf-8")
    assert f"Run report: {folder.failed_report}" in text
