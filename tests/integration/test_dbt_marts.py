"""dbt build on a hand-written Shopify fixture; every number below is worked out by hand.

Orders (Shopify local time -> UTC order date):
  #1001 alice  2026-11-01 10:00 +0100 -> Nov 1   2 lines, total 67.32, discount WELCOME10 6.93, paid
  #1002 bob    2026-11-01 23:30 -0500 -> Nov 2   total 89.00, paid
  #1003 ALICE  2026-11-03 12:00 +0000 -> Nov 3   total 50.00, refunded 50.00 (status refunded)
  #1004 carol  2026-11-03 13:00 +0000 -> Nov 3   total 30.00, voided and cancelled: not revenue
  #1005 dave   2026-11-01 12:00 +0000 -> Nov 1   total USD 100.00, paid
  #1001 again in the Nov 2 file (a re-exported order): counted once.

FX workbooks: USD->EUR 0.90 on Fri 2026-10-30 (delivered Oct 30), restated as 0.91 in the Nov 2
delivery; nothing for the weekend. #1005 (a Sunday) takes Friday's latest rate: 100.00 x 0.91 = 91.00.
"""

from __future__ import annotations

import os
from datetime import date
from decimal import Decimal

import duckdb
import pytest
from conftest import order_row, write_shopify

from marketing_warehouse.ingest.contracts import load_contracts
from marketing_warehouse.ingest.extract import utc_now
from marketing_warehouse.ingest.loads import load_source
from marketing_warehouse.tools.demo import write_fx_workbook
from marketing_warehouse.transform.dbt_tasks import run_dbt

pytestmark = pytest.mark.integration


def first(name, email, created, total, **extra):
    fields = {"Currency": "EUR", "Total": total, "Financial Status": "paid"}
    return order_row(name, email, created, **(fields | extra))


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    from marketing_warehouse.config import load_settings

    root = tmp_path_factory.mktemp("dbt")
    settings = load_settings({"MWH_DATA_DIR": str(root / "data")})
    nov1 = [
        first(
            "#1001",
            "alice@example.com",
            "2026-11-01 10:00:00 +0100",
            "67.32",
            qty="2",
            Discount_Code="WELCOME10",
            Discount_Amount="6.93",
            Source="web",
            Billing_Country="DE",
            **{"Accepts Marketing": "yes"},
        ),
        order_row(
            "#1001",
            "alice@example.com",
            "2026-11-01 10:00:00 +0100",
            **{"Lineitem name": "Canvas Tote", "Lineitem price": "19.50"},
        ),
        first(
            "#1002",
            "bob@example.com",
            "2026-11-01 23:30:00 -0500",
            "89.00",
            Source="pos",
            Billing_Country="FR",
        ),
        first(
            "#1005",
            "dave@example.com",
            "2026-11-01 12:00:00 +0000",
            "100.00",
            Source="web",
            Billing_Country="US",
            Currency="USD",
        ),
    ]
    nov2 = [nov1[0], nov1[1]]  # order #1001 exported again
    nov3 = [
        first(
            "#1003",
            " ALICE@example.com ",
            "2026-11-03 12:00:00 +0000",
            "50.00",
            Source="web",
            Refunded_Amount="50.00",
            Billing_Country="DE",
            **{"Financial Status": "refunded", "Accepts Marketing": "no"},
        ),
        first(
            "#1004",
            "carol@example.com",
            "2026-11-03 13:00:00 +0000",
            "30.00",
            Cancelled_at="2026-11-03 14:00:00 +0000",
            Billing_Country="AT",
            **{"Financial Status": "voided"},
        ),
    ]
    for day, rows in (("2026-11-01", nov1), ("2026-11-02", nov2), ("2026-11-03", nov3)):
        write_shopify(settings.landing_dir / day / f"shopify_orders_{day}.csv", rows)
    write_fx_workbook(
        settings.landing_dir / "2026-10-30" / "fx_rates_a.xlsx",
        [(date(2026, 10, 30), "USD", "EUR", 0.90), (date(2026, 10, 30), "GBP", "EUR", 1.15)],
    )
    write_fx_workbook(
        settings.landing_dir / "2026-11-02" / "fx_rates_b.xlsx",
        [(date(2026, 10, 30), "USD", "EUR", 0.91)],
    )
    for contract in load_contracts():
        load_source(settings, contract, date(2026, 11, 3), utc_now())
    result = run_dbt(settings, ["build"], dict(os.environ))
    assert result.returncode == 0, result.stdout[-4000:]
    con = duckdb.connect(str(settings.build_path), read_only=True)
    yield con
    con.close()


def rows(con, sql):
    rel = con.sql(sql)
    return [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]


def test_fct_orders_deduplicates_and_flags_revenue(warehouse):
    got = rows(
        warehouse,
        "select order_id, order_date::varchar as d, is_revenue_order, "
        "is_first_order, channel from marts.fct_orders order by order_id",
    )
    assert got == [
        {
            "order_id": "shopify-#1001",
            "d": "2026-11-01",
            "is_revenue_order": True,
            "is_first_order": True,
            "channel": "online_store",
        },
        {
            "order_id": "shopify-#1002",
            "d": "2026-11-02",
            "is_revenue_order": True,
            "is_first_order": True,
            "channel": "point_of_sale",
        },
        {
            "order_id": "shopify-#1003",
            "d": "2026-11-03",
            "is_revenue_order": True,
            "is_first_order": False,
            "channel": "online_store",
        },
        {
            "order_id": "shopify-#1004",
            "d": "2026-11-03",
            "is_revenue_order": False,
            "is_first_order": None,
            "channel": "direct",
        },
        {
            "order_id": "shopify-#1005",
            "d": "2026-11-01",
            "is_revenue_order": True,
            "is_first_order": True,
            "channel": "online_store",
        },
    ]
    fx = warehouse.sql(
        "select currency, total_amount, fx_rate, total_amount_reporting from marts.fct_orders "
        "where order_id = 'shopify-#1005'"
    ).fetchone()
    assert fx == ("USD", Decimal("100.000000"), Decimal("0.910000"), Decimal("91.00"))
    items = warehouse.sql(
        "select items_count from marts.fct_orders where order_id = 'shopify-#1001'"
    )
    assert items.fetchone()[0] == 3  # 2 tees + 1 tote, counted once despite two exports


def test_kpi_daily_by_hand(warehouse):
    got = rows(
        warehouse,
        "select date::varchar as date, orders, revenue, refunds, net_revenue, "
        "average_order_value as aov, new_customers as new, "
        "returning_customers as ret, discount_cost from marts.kpi_daily order by date",
    )
    D = Decimal
    assert got == [
        {
            # alice 67.32 + dave 91.00 (USD 100.00 x 0.91)
            "date": "2026-11-01",
            "orders": 2,
            "revenue": D("158.32"),
            "refunds": D("0.00"),
            "net_revenue": D("158.32"),
            "aov": D("79.16"),
            "new": 2,
            "ret": 0,
            "discount_cost": D("6.93"),
        },
        {
            "date": "2026-11-02",
            "orders": 1,
            "revenue": D("89.00"),
            "refunds": D("0.00"),
            "net_revenue": D("89.00"),
            "aov": D("89.00"),
            "new": 1,
            "ret": 0,
            "discount_cost": D("0.00"),
        },
        {
            "date": "2026-11-03",
            "orders": 1,
            "revenue": D("50.00"),
            "refunds": D("50.00"),
            "net_revenue": D("0.00"),
            "aov": D("50.00"),
            "new": 0,
            "ret": 1,
            "discount_cost": D("0.00"),
        },
    ]


def test_dim_customers_by_hand(warehouse):
    got = rows(
        warehouse,
        "select email, country, orders_count, lifetime_revenue, average_order_value as aov, "
        "discount_order_share as disc, acquisition_channel as acq, is_email_marketable as mkt, "
        "first_order_at::varchar as first_order from marts.dim_customers order by email",
    )
    D = Decimal
    assert got == [
        # alice: #1001 (67.32, discount) + #1003 (50.00) -> 117.32 / 2 = 58.66; latest order says "no"
        {
            "email": "alice@example.com",
            "country": "DE",
            "orders_count": 2,
            "lifetime_revenue": D("117.32"),
            "aov": D("58.66"),
            "disc": 0.5,
            "acq": "online_store",
            "mkt": False,
            "first_order": "2026-11-01 09:00:00",
        },
        {
            "email": "bob@example.com",
            "country": "FR",
            "orders_count": 1,
            "lifetime_revenue": D("89.00"),
            "aov": D("89.00"),
            "disc": 0.0,
            "acq": "point_of_sale",
            "mkt": False,
            "first_order": "2026-11-02 04:30:00",
        },
        # carol only has a cancelled order: a customer, but no revenue
        {
            "email": "carol@example.com",
            "country": "AT",
            "orders_count": 0,
            "lifetime_revenue": D("0"),
            "aov": None,
            "disc": None,
            "acq": "direct",
            "mkt": False,
            "first_order": None,
        },
        {
            "email": "dave@example.com",
            "country": "US",
            "orders_count": 1,
            "lifetime_revenue": D("91.00"),
            "aov": D("91.00"),
            "disc": 0.0,
            "acq": "online_store",
            "mkt": False,
            "first_order": "2026-11-01 12:00:00",
        },
    ]


def test_revenue_reconciles_across_layers(warehouse):
    kpi = warehouse.sql("select sum(revenue) from marts.kpi_daily").fetchone()[0]
    fct = warehouse.sql(
        "select sum(total_amount_reporting) from marts.fct_orders where is_revenue_order"
    ).fetchone()[0]
    assert kpi == fct == Decimal("297.32")


def _fx_gap_landing(tmp_path, eur_orders: int, jpy_orders: int, eur_campaigns: int):
    """A Shopify export of ``eur_orders`` EUR orders then ``jpy_orders`` JPY orders (one line each),
    an FX workbook whose only JPY rate is too old for them (10 days before), and a Google Ads
    report with one JPY campaign (its second row) among ``eur_campaigns`` EUR campaigns spending
    40.00, 41.00, ...; everything loaded. Returns the settings, the EUR order totals, the EUR ad
    spends and the export's file name."""
    from marketing_warehouse.config import load_settings

    settings = load_settings({"MWH_DATA_DIR": str(tmp_path / "data")})
    day = settings.landing_dir / "2026-11-22"
    eur = [Decimal("10.00") + i for i in range(eur_orders)]
    orders = [
        first(f"#{5001 + i}", f"e{i}@example.com", "2026-11-22 09:00:00 +0000", str(total))
        for i, total in enumerate(eur)
    ] + [
        first(
            f"#{6001 + i}", f"j{i}@example.com", "2026-11-22 09:00:00 +0900", "5000", Currency="JPY"
        )
        for i in range(jpy_orders)
    ]
    write_shopify(day / "shopify_orders_2026-11-22.csv", orders)
    write_fx_workbook(
        day / "fx_rates_2026-11.xlsx",
        [(date(2026, 11, 12), "JPY", "EUR", 0.0061), (date(2026, 11, 20), "USD", "EUR", 0.92)],
    )
    header = "Day,Campaign,Campaign ID,Currency code,Impr.,Clicks,Cost,Conversions,Conv. value"
    spend = [Decimal("40.00") + i for i in range(eur_campaigns)]
    ads = [
        f"2026-11-22,Campaign {i},{18000000001 + i},EUR,1000,50,{cost},2.00,120.00"
        for i, cost in enumerate(spend)
    ]
    ads.insert(1, "2026-11-22,Search - Tokyo,18000000999,JPY,800,30,6000,1.00,9000")
    (day / "google_ads_campaigns_2026-11-22.csv").write_text("\n".join([header, *ads]) + "\n")
    for contract in load_contracts():
        load_source(settings, contract, date(2026, 11, 22), utc_now())
    return settings, eur, spend, "shopify_orders_2026-11-22.csv"


def test_an_order_and_an_ad_row_without_a_rate_are_quarantined_and_the_run_goes_on(tmp_path):
    """One JPY order among 30 EUR orders, with no JPY rate within the 7-day look-back: the order
    and the JPY ad row are left out of the marts and listed in audit.quarantine (missing_fx_rate,
    file, row number, what to do); revenue is the sum of the EUR orders; the staging gate warns
    (1 of 31 orders, 1 of 10 ad rows: under the share that stops the raw gate) and does not stop
    the run."""
    from marketing_warehouse.quality.gates import enforce, run_gate

    settings, eur, spend, export = _fx_gap_landing(
        tmp_path, eur_orders=30, jpy_orders=1, eur_campaigns=9
    )
    result = run_dbt(settings, ["build"], dict(os.environ))
    assert result.returncode == 0, result.stdout[-4000:]

    con = duckdb.connect(str(settings.build_path), read_only=True)
    try:
        quarantined = rows(
            con,
            "select source, entity, source_file, row_number, reason_code, reason_detail, "
            "raw_content from audit.quarantine where reason_code = 'missing_fx_rate' "
            "order by source, row_number",
        )
        fct = con.sql(
            "select count(*), sum(total_amount_reporting), count(*) filter (where currency = 'JPY') "
            "from marts.fct_orders"
        ).fetchone()
        kpi = con.sql("select sum(revenue), sum(orders) from marts.kpi_daily").fetchone()
        ads = con.sql(
            "select count(*) filter (where currency = 'JPY'), count(*), sum(spend_amount_reporting)"
            " from intermediate.int_ad_spend_converted"
        ).fetchone()
    finally:
        con.close()
    how = (
        "set MWH_REPORTING_CURRENCY=JPY if every amount is in JPY, or land an FX workbook "
        "(fx_rates*.xlsx: Date, From, To, Rate) with JPY->EUR rates for that date"
    )
    assert quarantined == [
        {
            "source": "google_ads",
            "entity": "campaign_stats",
            "source_file": "google_ads_campaigns_2026-11-22.csv",
            "row_number": 2,
            "reason_code": "missing_fx_rate",
            "reason_detail": 'column "currency": no JPY->EUR rate on or up to 7 days before '
            f'2026-11-22 (column "report_date"); {how}',
            "raw_content": None,
        },
        {
            "source": "shopify",
            "entity": "order_lines",
            "source_file": export,
            "row_number": 31,  # the 31st data row of the export
            "reason_code": "missing_fx_rate",
            "reason_detail": 'column "currency": no JPY->EUR rate on or up to 7 days before '
            f'2026-11-22 (column "created_at"); {how}',
            "raw_content": None,
        },
    ]
    # the JPY order (created 2026-11-22 09:00 +0900, i.e. 00:00 UTC) is not in the marts
    assert fct == (30, sum(eur), 0)
    assert kpi == (sum(eur), 30)
    assert ads == (0, 9, sum(spend))

    outcome = run_gate(settings, "staging", date(2026, 11, 22), "run-1")
    assert outcome.status == "warn"
    enforce(outcome)  # a warning: the run goes on
    (warning,) = [c for c in outcome.failures("warning") if c.suite == "staging/fx_rate_coverage"]
    assert (
        "shopify__order_lines: JPY->EUR: no rate for 1 of 31 rows, dated 2026-11-22 to "
        "2026-11-22 (a rate may be at most 7 days older); they are quarantined "
        "(missing_fx_rate) and left out of the marts"
    ) in warning.describe()
    assert "google_ads__campaign_stats: JPY->EUR: no rate for 1 of 10 rows" in warning.describe()
    assert "@example.com" not in warning.describe()
    # the run summary and the HTML report list them as quarantined by the build
    from marketing_warehouse.ops import report, summary

    lines = "\n".join(summary.missing_fx_lines(settings))
    assert (
        "shopify__order_lines JPY: 1 row(s) dated 2026-11-22 to 2026-11-22, left out of the marts"
    ) in lines
    assert "google_ads__campaign_stats JPY: 1 row(s)" in lines and how in lines
    html = report.build_html(settings, "2026-11-22", True)
    assert "rows without an FX rate" in html and "<td>shopify__order_lines</td>" in html


def test_most_orders_without_a_rate_stop_the_run_at_the_staging_gate(tmp_path):
    """25 of 30 orders in JPY without a rate: above the quarantined share that stops the raw gate
    (raw/quarantine_share), so the staging gate is critical and names pair, rows, dates and what
    to do; the build itself still succeeds (the rows are quarantined, not a failed test)."""
    from marketing_warehouse.quality.gates import GateFailed, enforce, run_gate, suite_parameters

    settings, *_ = _fx_gap_landing(tmp_path, eur_orders=5, jpy_orders=25, eur_campaigns=2)
    result = run_dbt(settings, ["build", "--select", "staging", "audit"], dict(os.environ))
    assert result.returncode == 0, result.stdout[-3000:]
    assert suite_parameters(settings)["quarantine_share_critical"] < 25 / 30

    outcome = run_gate(settings, "staging", date(2026, 11, 22), "run-1")
    with pytest.raises(GateFailed) as failed:
        enforce(outcome)
    message = str(failed.value)
    assert "staging/fx_rate_coverage" in message and "missing_share" in message
    assert "max_value=0.2" in message
    assert (
        "shopify__order_lines: JPY->EUR: no rate for 25 of 30 rows, dated 2026-11-22 to "
        "2026-11-22 (a rate may be at most 7 days older); they are quarantined "
        "(missing_fx_rate) and left out of the marts: set MWH_REPORTING_CURRENCY=JPY if the "
        "shop sells in JPY only, or land an FX workbook (fx_rates*.xlsx: Date, From, To, Rate) "
        "with JPY->EUR rates for those dates"
    ) in message
    # the Google Ads report (1 JPY row of 3) is over the share too, and says so
    assert "google_ads__campaign_stats: JPY->EUR: no rate for 1 of 3 rows" in message


def test_a_one_currency_shop_without_fx_says_which_rates_are_missing_and_what_to_do(tmp_path):
    """A USD-only shop on the default reporting currency (EUR) with no FX workbook: the staging
    gate names the currency pair, the rows and dates without a rate and both ways out; with
    MWH_REPORTING_CURRENCY=USD the same staging passes."""
    from marketing_warehouse.config import load_settings
    from marketing_warehouse.quality.gates import GateFailed, enforce, run_gate

    settings = load_settings({"MWH_DATA_DIR": str(tmp_path / "data")})
    landing = settings.landing_dir / "2026-11-20"
    created = [
        "2026-11-14 10:00:00 +0000",
        "2026-11-16 23:30:00 -0500",
        "2026-11-19 08:00:00 +0000",
    ]
    write_shopify(
        landing / "shopify_orders.csv",
        [
            first(f"#{4001 + i}", f"c{i}@example.com", at, "20.00", Currency="USD")
            for i, at in enumerate(created)
        ],
    )
    for contract in load_contracts():
        load_source(settings, contract, date(2026, 11, 20), utc_now())
    # the DAG's dbt_staging task group: staging and audit (audit.fx_rate_coverage)
    result = run_dbt(settings, ["build", "--select", "staging", "audit"], dict(os.environ))
    assert result.returncode == 0, result.stdout[-3000:]

    outcome = run_gate(settings, "staging", date(2026, 11, 20), "run-1")
    with pytest.raises(GateFailed) as failed:
        enforce(outcome)
    message = str(failed.value)
    assert "staging/fx_rate_coverage" in message
    assert (
        "shopify__order_lines: USD->EUR: no rate for 3 of 3 rows, dated 2026-11-14 to "
        "2026-11-19 (a rate may be at most 7 days older); they are quarantined (missing_fx_rate) "
        "and left out of the marts: set MWH_REPORTING_CURRENCY=USD if the shop sells in USD "
        "only, or land an FX workbook (fx_rates*.xlsx: Date, From, To, Rate) with USD->EUR "
        "rates for those dates"
    ) in message
    assert "@example.com" not in message

    in_usd = load_settings(
        {"MWH_DATA_DIR": str(tmp_path / "data"), "MWH_REPORTING_CURRENCY": "USD"}
    )
    assert run_gate(in_usd, "staging", date(2026, 11, 20), "run-2").status == "pass"
