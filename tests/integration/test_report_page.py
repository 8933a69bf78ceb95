"""The run report as the morning page, on a real dbt build of demo exports across a month's end:
every figure it shows is reconciled with sums the test computes itself from other tables (orders
from fct_orders, not kpi_daily; spend and budgets from the build's intermediate models)."""

from __future__ import annotations

import itertools
import os
import re
from datetime import date
from html.parser import HTMLParser

import duckdb
import pytest

from marketing_warehouse.config import load_settings
from marketing_warehouse.layout import RunRecord
from marketing_warehouse.ops import report
from marketing_warehouse.serve.publish import publish

pytestmark = pytest.mark.integration
#: 12 demo days, 2026-10-25 to 2026-11-05: the month to date (5 days) and the 5 days before it
#: both have orders, and October and November both have a budget.
DS = "2026-11-05"
DAYS = 12
CURRENT = (date(2026, 11, 1), date(2026, 11, 5))
PREVIOUS = (date(2026, 10, 27), date(2026, 10, 31))
BI_URL = "http://bi.example.test:9000"


class Page(HTMLParser):
    """The figures (``data-metric`` cells), links, asset references and text of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: dict[str, str] = {}
        self.links: list[str] = []
        self.assets: list[str] = []
        self.text: list[str] = []
        self.tags: list[str] = []
        self.svgs: list[list[tuple[str, dict, str]]] = []
        self._open: str | None = None
        self._attrs: dict = {}

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "svg":
            self.svgs.append([])
        if "data-metric" in attrs:
            self._open = attrs["data-metric"]
            self.metrics[self._open] = ""
        if tag == "a":
            self.links.append(attrs.get("href", ""))
        for name in ("src", "srcset", "poster"):
            if name in attrs:
                self.assets.append(attrs[name])
        if tag == "link":
            self.assets.append(attrs.get("href", ""))
        self._tag, self._attrs = tag, attrs

    def handle_endtag(self, tag) -> None:
        if tag in ("td", "b"):
            self._open = None

    def handle_data(self, data) -> None:
        self.text.append(data)
        if self._open:
            self.metrics[self._open] += data
        if self.svgs and self._tag == "text":
            self.svgs[-1].append((self._tag, self._attrs, data))


def number(text: str) -> float:
    return float(re.sub(r"[^0-9.\-]", "", text))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A dbt build of 12 demo days, published (about 30 s on 2 cores), and its report."""
    from marketing_warehouse.ingest.contracts import load_contracts
    from marketing_warehouse.ingest.extract import utc_now
    from marketing_warehouse.ingest.loads import load_source
    from marketing_warehouse.tools import demo
    from marketing_warehouse.transform.dbt_tasks import run_dbt

    root = tmp_path_factory.mktemp("report_page")
    settings = load_settings({"MWH_DATA_DIR": str(root / "data"), "MWH_BI_URL": BI_URL + "/"})
    demo.generate(settings.landing_dir, date.fromisoformat(DS), DAYS, seed=3, scale=0.01)
    for folder in sorted(settings.landing_dir.iterdir()):
        for contract in load_contracts():
            load_source(settings, contract, date.fromisoformat(folder.name), utc_now())
    result = run_dbt(settings, ["build"], dict(os.environ))
    assert result.returncode == 0, result.stdout[-4000:]
    publish(settings, date.fromisoformat(DS), "run_1")
    path = report.write(settings, DS, True, RunRecord(published={"row_counts": {}}))
    page = Page()
    page.feed(path.read_text("utf-8"))
    serving = duckdb.connect(str(settings.warehouse_path), read_only=True)
    build = duckdb.connect(str(settings.build_path), read_only=True)
    yield settings, page, serving, build
    serving.close()
    build.close()


def one(con, sql: str, params=()) -> tuple:
    return con.execute(sql, list(params)).fetchone()


def test_headline_sales_reconcile_with_the_orders(served):
    _, page, serving, _ = served
    for key, (first, last) in (("current", CURRENT), ("previous", PREVIOUS)):
        revenue, orders, new = one(
            serving,
            "select sum(total_amount_reporting), count(*), count(*) filter (where is_first_order) "
            "from marts.fct_orders where is_revenue_order and order_date between ? and ?",
            (first, last),
        )
        assert orders > 0 and new > 0, key  # the fixture's periods both have orders
        assert page.metrics[f"revenue.{key}"] == f"{revenue:,.2f} EUR"
        assert page.metrics[f"orders.{key}"] == f"{orders:,}"  # a count, not 33.00
        assert page.metrics[f"new_customers.{key}"] == f"{new:,}"
        assert number(page.metrics[f"average_order_value.{key}"]) == round(
            float(revenue) / orders, 2
        )
    assert page.metrics["card.revenue"] == page.metrics["revenue.current"]
    assert page.metrics["card.orders"] == page.metrics["orders.current"]


def test_targets_and_budget_are_the_months_prorated_to_the_period(served):
    _, page, _, build = served
    budget, target_revenue, target_new = one(
        build,
        "select sum(budget_amount_reporting), sum(target_revenue_amount_reporting), "
        "sum(target_new_customers) from intermediate.int_budgets_converted "
        "where month = date '2026-11-01'",
    )
    assert budget and target_revenue and target_new
    share = 5 / 30
    assert number(page.metrics["revenue.target"]) == round(float(target_revenue) * share, 2)
    assert number(page.metrics["new_customers.target"]) == round(target_new * share)
    assert number(page.metrics["spend.target"]) == round(float(budget) * share, 2)
    revenue = number(page.metrics["revenue.current"])
    attained = revenue / (float(target_revenue) * share) * 100
    assert number(page.metrics["revenue.attainment"]) == round(attained, 1)


def test_spend_roas_and_cac_reconcile_with_the_ad_reports(served):
    _, page, _, build = served
    for key, month in (("current", "2026-11-01"), ("previous", "2026-10-01")):
        [spend] = one(
            build,
            "select sum(spend_amount_reporting) from intermediate.int_ad_spend_converted "
            "where date_trunc('month', report_date) = ?::date",
            (month,),
        )
        paid = [
            r[0]
            for r in build.execute(
                "select distinct channel from intermediate.int_ad_spend_converted"
            ).fetchall()
        ]
        revenue, new = one(
            build,
            "select sum(orders.total_amount_reporting), "
            "count(*) filter (where orders.is_first_order) "
            "from marts.fct_orders as orders "
            "inner join intermediate.int_orders_channel_attributed as attributed "
            "using (order_id) where orders.is_revenue_order "
            "and date_trunc('month', orders.order_date) = ?::date "
            f"and attributed.channel in ({', '.join('?' for _ in paid)})",
            (month, *paid),
        )
        assert number(page.metrics[f"spend.{key}"]) == float(spend)
        assert number(page.metrics[f"roas.{key}"]) == round(float(revenue) / float(spend), 2)
        assert number(page.metrics[f"cac.{key}"]) == round(float(spend) / new, 2)
    # per channel: the query pack's ROAS and CAC, the spend of that channel's ad reports
    for channel, spend in build.execute(
        "select channel, sum(spend_amount_reporting) from intermediate.int_ad_spend_converted "
        "where report_date >= date '2026-11-01' group by channel"
    ).fetchall():
        assert number(page.metrics[f"channel.{channel}.spend"]) == float(spend)
        assert (
            f"channel.{channel}.roas" in page.metrics and f"channel.{channel}.cac" in page.metrics
        )


def test_segments_churn_and_reach_reconcile_with_the_customer_marts(served):
    _, page, serving, _ = served
    for segment, customers in serving.execute(
        "select rfm_segment, count(*) from marts.dim_customer_segments "
        "where snapshot_date = (select max(snapshot_date) from marts.dim_customer_segments) "
        "group by all"
    ).fetchall():
        assert page.metrics[f"rfm_segment.{segment}"] == f"{customers:,}", segment
    for stage, customers in serving.execute(
        "select lifecycle_stage, count(*) from marts.dim_customer_segments "
        "where snapshot_date = (select max(snapshot_date) from marts.dim_customer_segments) "
        "group by all"
    ).fetchall():
        assert page.metrics[f"lifecycle_stage.{stage}"] == f"{customers:,}", stage
    # churn of November: active in October, no revenue order in November (to date)
    active = {
        month: {c for (c,) in serving.execute(
            "select distinct customer_id from marts.fct_orders where is_revenue_order "
            "and date_trunc('month', order_date) = ?::date", [month]
        ).fetchall()}
        for month in ("2026-10-01", "2026-11-01")
    }  # fmt: skip
    churned = active["2026-10-01"] - active["2026-11-01"]
    assert page.metrics["churn.2026-11-01.active"] == f"{len(active['2026-11-01']):,}"
    assert page.metrics["churn.2026-11-01.churned"] == f"{len(churned):,}"
    rate = len(churned) / len(active["2026-10-01"]) * 100
    assert number(page.metrics["churn.2026-11-01.rate"]) == round(rate, 1)
    for channel, flag in (
        ("email", "is_email_marketable"),
        ("sms", "is_sms_marketable"),
        ("push", "is_push_reachable"),
    ):
        [reachable] = one(
            serving, f"select count(*) filter (where {flag}) from marts.dim_customers"
        )
        assert page.metrics[f"reach.{channel}"] == f"{reachable:,}", channel


def test_campaign_rates_are_rates_of_the_periods_sums(served):
    _, page, serving, _ = served
    rows = serving.execute(
        "select channel, sum(sent), sum(delivered), sum(opened), sum(clicked), "
        "sum(attributed_revenue) from marts.kpi_campaign_performance "
        "where sent_at >= timestamp '2026-11-01' and sent_at < timestamp '2026-11-06' "
        "group by channel"
    ).fetchall()
    assert rows
    for channel, sent, delivered, opened, clicked, revenue in rows:
        assert page.metrics[f"campaigns.{channel}.sent"] == f"{sent:,}"
        assert number(page.metrics[f"campaigns.{channel}.click_rate"]) == round(
            clicked / delivered * 100, 1
        )
        if channel != "sms":
            assert number(page.metrics[f"campaigns.{channel}.open_rate"]) == round(
                opened / delivered * 100, 1
            )
        assert page.metrics[f"campaigns.{channel}.revenue"] == f"{revenue:,.2f} EUR"


def test_source_freshness_is_the_age_of_each_sources_newest_landed_file(served):
    settings, page, _, _ = served
    from marketing_warehouse.ingest.contracts import load_contracts

    newest: dict[str, date] = {}
    for contract in load_contracts():
        for folder in settings.landing_dir.iterdir():
            if any(contract.matches_file(f.name) for f in folder.iterdir()):
                day = date.fromisoformat(folder.name)
                newest[contract.source] = max(newest.get(contract.source, day), day)
    assert newest
    for source, day in newest.items():
        age = (date.fromisoformat(DS) - day).days
        assert page.metrics[f"freshness.{source}"] == f"{age} days", source


def test_charts_have_labelled_axes_with_units_and_whole_counts(served):
    _, page, _, _ = served
    titles = {}
    for svg in page.svgs:
        texts = [(attrs, data) for _, attrs, data in svg]
        titles[texts[0][1]] = texts
    assert {"Revenue per day", "Orders per day", "ROAS by channel", "CAC by channel"} <= set(titles)
    for title, texts in titles.items():
        y_ticks = [d for a, d in texts if a.get("text-anchor") == "end"]
        x_ticks = [d for a, d in texts if a.get("text-anchor") == "middle"]
        assert len(y_ticks) >= 3, (title, y_ticks)  # not only min and max
        assert len(x_ticks) >= 2, (title, x_ticks)
        values = [float(t.replace(",", "").rstrip(" %")) for t in y_ticks]
        steps = {round(b - a, 6) for a, b in itertools.pairwise(values)}
        assert len(steps) == 1 and min(values) <= 0, (title, values)  # evenly spaced from 0
        if title in ("Orders per day", "New customers per day"):
            assert all("." not in t for t in y_ticks), y_ticks
            assert any(d == "count" for _, d in texts)
    units = {title: [d for _, d in texts][1] for title, texts in titles.items()}
    assert units["Revenue per day"] == "EUR" and units["CAC by channel"] == "EUR"
    assert units["Orders per day"] == "count"


def test_links_to_the_dashboards_and_docs_and_nothing_fetched(served):
    settings, page, serving, _ = served
    from marketing_warehouse.serve.docs import docs_urls

    slugs = ["executive", "acquisition", "retention", "crm", "experiments", "data-quality"]
    dashboards = [f"{BI_URL}/superset/dashboard/{slug}/" for slug in slugs]
    assert [link for link in page.links if link.startswith(BI_URL)] == dashboards
    docs = docs_urls()
    assert docs["dbt"] in page.links and docs["gx"] in page.links
    assert docs["dbt"] == "http://127.0.0.1:8081/dbt/"
    assert page.assets == [] and "script" not in page.tags and "img" not in page.tags
    html = settings.layout.run(DS).report.read_text("utf-8")
    assert "@import" not in html and "url(" not in html
    # aggregates only: no e-mail address, phone number or name of a customer on the page
    text = " ".join(page.text)
    assert "@" not in text
    for (email,) in serving.execute(
        "select email from marts.dim_customers where email is not null limit 50"
    ).fetchall():
        assert email not in html


def test_without_predictions_the_at_risk_block_says_why_in_one_line(served):
    """The fixture's build ran no predict stage (a shop too small to fit is the same case)."""
    _, page, serving, _ = served
    assert one(serving, "select count(*) from marts.customer_predictions") == (0,)
    [snapshot] = one(serving, "select max(snapshot_date) from marts.dim_customer_segments")
    text = " ".join(page.text)
    assert f"No predictions for the snapshot {snapshot}: the predict stage skips" in text
    assert not [m for m in page.metrics if m.startswith("at_risk.")]


@pytest.fixture(scope="module")
def predicted(at_risk_built, tmp_path_factory):
    """The shared build with predictions, published to a serving file of its own; the page."""
    import dataclasses

    root = tmp_path_factory.mktemp("report_predicted")
    settings = dataclasses.replace(
        load_settings({"MWH_DATA_DIR": str(root / "data")}), build_path=at_risk_built.build_path
    )
    ds = "2026-11-21"
    publish(settings, date.fromisoformat(ds), "run_1")
    page = Page()
    page.feed("".join(report.morning_page(settings, ds)))
    build = duckdb.connect(str(at_risk_built.build_path), read_only=True)
    yield page, build, settings.reporting_currency
    build.close()


def test_at_risk_bands_and_top_customers_reconcile_with_the_predictions(predicted):
    page, build, currency = predicted
    [snapshot] = one(build, "select max(snapshot_date) from marts.dim_customer_segments")
    rows = build.execute(
        "select customer_id, churn_risk, probability_alive, predicted_clv, "
        "expected_next_order_date from marts.customer_predictions where snapshot_date = ?",
        [snapshot],
    ).fetchall()
    assert rows, "the shared build has no predictions for its latest snapshot"
    bands: dict[str, list] = {}
    for _, risk, _, clv, _ in rows:
        bands.setdefault(risk, []).append(clv)
    assert {"high", "medium", "low"} == bands.keys()  # at_risk_built has every band
    for risk, values in bands.items():
        assert page.metrics[f"at_risk.{risk}.customers"] == f"{len(values):,}", risk
        total = sum(v for v in values if v is not None)
        assert page.metrics[f"at_risk.{risk}.predicted_clv"] == f"{total:,.2f} {currency}", risk
    at_risk = sorted(
        (r for r in rows if r[1] in ("high", "medium")),
        key=lambda r: (r[3] is None, -(r[3] or 0), r[0]),
    )[: report.AT_RISK_TOP]
    for rank, (customer_id, _, alive, clv, next_order) in enumerate(at_risk, start=1):
        assert page.metrics[f"at_risk.{rank}.customer"] == customer_id, rank
        assert number(page.metrics[f"at_risk.{rank}.probability"]) == round(alive * 100, 1)
        assert page.metrics[f"at_risk.{rank}.predicted_clv"] == f"{clv:,.2f} {currency}", rank
        expected = "none within the CLV horizon" if next_order is None else str(next_order)
        assert page.metrics[f"at_risk.{rank}.next_order"] == expected, rank
    assert f"at_risk.{len(at_risk) + 1}.predicted_clv" not in page.metrics
