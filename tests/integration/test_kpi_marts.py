"""dbt build on hand-written exports of every marketing tool; each KPI below is worked out by hand.

Shopify orders (all UTC, EUR unless noted; "first" = the customer's first revenue order):
  #2001 alice 2026-11-02 10:00  100.00  web       WELCOME10   first
  #2002 bob   2026-11-03 12:00   50.00  facebook              first  (Source facebook -> meta_ads)
  #2003 carol 2026-11-04 09:00   80.00  web                   first  (clicked e-mail C1 on Nov 2)
  #2004 dave  2026-11-05 10:00   60.00  web                   first  (received SMS C2 on Nov 4)
  #2005 alice 2026-11-10 10:00   40.00  web                          (repeat order of alice)
  #2006 dave  2026-11-20 10:00   30.00  web       WELCOME10          (no touch in the last 5 days)
  #2007 erin  2026-11-03 15:00   USD 70.00 x 0.90 = 63.00  google   VIP20   first  (-> google_ads)
  #2008 frank 2026-11-06 10:00   20.00  voided and cancelled: not revenue
  #2009 ivy   2026-11-09 09:31   25.00  web                   first  (clicked SMS C2 on Nov 4
                                         09:30: 5 days and 1 minute earlier, outside the window)

FX workbook (1 From = Rate EUR): GBP 1.15 on Fri Oct 30, GBP 1.20 and USD 0.90 on Mon Nov 2.
Tuesday Nov 3 has no rate and takes Monday's (7-day lookback); Sunday Nov 1 takes Friday's.
"""

from __future__ import annotations

import json
import math
import os
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from conftest import order_row, write_shopify

from marketing_warehouse.ingest.contracts import load_contracts
from marketing_warehouse.ingest.extract import utc_now
from marketing_warehouse.ingest.loads import load_source
from marketing_warehouse.tools.demo import write_fx_workbook
from marketing_warehouse.tools.demo_marketing import write_workbook
from marketing_warehouse.transform.dbt_tasks import run_dbt

pytestmark = pytest.mark.integration

D = Decimal
RUN_DATE = date(2026, 11, 20)


def order(name, email, created, total, source="web", **extra):
    fields = {"Currency": "EUR", "Total": total, "Financial Status": "paid", "Source": source}
    return order_row(name, email, f"{created} +0000", **(fields | extra))


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


GOOGLE_HEADER = "Day,Campaign,Campaign ID,Currency code,Impr.,Clicks,Cost,Conversions,Conv. value"
META_HEADER = (
    "Reporting starts,Reporting ends,Campaign name,Campaign ID,Day,Currency,Impressions,"
    "Link clicks,Amount spent (GBP),Results,Purchases conversion value"
)
KLAVIYO_EVENTS_HEADER = (
    "Event ID,Metric,Timestamp,Campaign ID,Channel,Email,Phone Number,Profile ID"
)


def write_google_report(path: Path, rows: list[str]) -> None:
    """Google Ads' download: a title line, a date-range line, the header, rows, a total row."""
    write_lines(
        path,
        [
            "Campaign report",
            "November 2, 2026 - November 3, 2026",
            GOOGLE_HEADER,
            *rows,
            'Total: Account,,,EUR,"9,999",999,999.00,9.00,999.00',
        ],
    )


def voucher(rid, obj, at, result, campaign=None, code=None, email=None, order=None, **extra):
    record = {"id": rid, "object": obj, "date": at, "result": result, **extra}
    if code:
        record["voucher"] = {"code": code, "campaign": campaign}
    if email:
        record["customer"] = {"source_id": email, "email": email}
    if order:
        number, amount, discount, currency = order
        record["order"] = {
            "id": number,
            "amount": amount,
            "discount_amount": discount,
            "currency": currency,
        }
    return record


def land_fixture(landing: Path) -> None:
    shopify = [
        order(
            "#2001", "alice@example.com", "2026-11-02 10:00:00", "100.00", Discount_Code="WELCOME10"
        ),
        order("#2002", "bob@example.com", "2026-11-03 12:00:00", "50.00", source="facebook"),
        order("#2003", " Carol@Example.com ", "2026-11-04 09:00:00", "80.00"),
        order("#2004", "dave@example.com", "2026-11-05 10:00:00", "60.00"),
        order("#2005", "alice@example.com", "2026-11-10 10:00:00", "40.00"),
        order(
            "#2006", "dave@example.com", "2026-11-20 10:00:00", "30.00", Discount_Code="WELCOME10"
        ),
        order(
            "#2007",
            "erin@example.com",
            "2026-11-03 15:00:00",
            "70.00",
            source="google",
            Currency="USD",
            Discount_Code="VIP20",
        ),
        order(
            "#2008",
            "frank@example.com",
            "2026-11-06 10:00:00",
            "20.00",
            Cancelled_at="2026-11-06 12:00:00 +0000",
            **{"Financial Status": "voided"},
        ),
        order("#2009", "ivy@example.com", "2026-11-09 09:31:00", "25.00"),
    ]
    write_shopify(landing / "2026-11-20" / "shopify_orders.csv", shopify)
    write_fx_workbook(
        landing / "2026-11-02" / "fx_rates.xlsx",
        [
            (date(2026, 10, 30), "GBP", "EUR", 1.15),
            (date(2026, 11, 2), "GBP", "EUR", 1.20),
            (date(2026, 11, 2), "USD", "EUR", 0.90),
        ],
    )
    # Google Ads: Nov 3 is restated by the report delivered on Nov 4 (the latest load wins).
    write_google_report(
        landing / "2026-11-03" / "google_ads_a.csv",
        [
            '2026-11-02,Search - Brand,111,EUR,"1,000",50,25.00,2.00,150.00',
            '2026-11-03,Search - Brand,111,EUR,"3,000",100,75.00,3.00,210.00',
        ],
    )
    write_google_report(
        landing / "2026-11-04" / "google_ads_b.csv",
        ['2026-11-03,Search - Brand,111,EUR,"3,000",150,95.00,4.00,280.00'],
    )
    write_lines(
        landing / "2026-11-04" / "meta_ads.csv",
        [
            META_HEADER,
            "2026-11-02,2026-11-03,Prospecting,222,2026-11-02,GBP,2000,20,10.00,1,30.00",
            "2026-11-02,2026-11-03,Prospecting,222,2026-11-03,GBP,2000,30,15.00,0,0.00",
        ],
    )
    write_workbook(
        landing / "2026-11-01" / "marketing_budget.xlsx",
        {
            "plan": [
                [
                    "Month",
                    "Channel",
                    "Budget",
                    "Currency",
                    "Target new customers",
                    "Target revenue",
                ],
                ["2026-11", "Google Ads", 200, "EUR", 4, 400],
                ["2026-11", "meta_ads", 100, "GBP", 2, 200],
                ["2026-11", "Email", 50, "EUR", 2, 100],
            ]
        },
    )
    write_lines(
        landing / "2026-11-04" / "klaviyo_campaigns.csv",
        [
            "Campaign ID,Campaign Name,Channel,Send Time,Subject,List,Total Recipients",
            "C1,November news,Email,2026-11-02 09:00:00+0000,News,Newsletter,4",
            "C2,November SMS,SMS,2026-11-04 09:00:00+0000,,SMS list,2",
        ],
    )
    events = [
        "e01,Received Email,2026-11-02T09:00:00+00:00,C1,Email,carol@example.com,,p_carol",
        "e02,Opened Email,2026-11-02T10:00:00+00:00,C1,Email,carol@example.com,,p_carol",
        "e03,Clicked Email,2026-11-02T10:05:00+00:00,C1,Email,carol@example.com,,p_carol",
        "e04,Received Email,2026-11-02T09:00:00+00:00,C1,Email,dave@example.com,,p_dave",
        "e05,Opened Email,2026-11-02T12:00:00+00:00,C1,Email,DAVE@example.com,,p_dave",
        "e06,Received Email,2026-11-02T09:00:00+00:00,C1,Email,gina@example.com,,p_gina",
        "e07,Unsubscribed,2026-11-02T13:00:00+00:00,C1,Email,gina@example.com,,p_gina",
        "e08,Bounced Email,2026-11-02T09:01:00+00:00,C1,Email,hank@example.com,,p_hank",
        "e09,Received SMS,2026-11-04T09:00:00+00:00,C2,SMS,dave@example.com,+4915100001,p_dave",
        "e10,Received SMS,2026-11-04T09:00:00+00:00,C2,SMS,ivy@example.com,+4915100002,p_ivy",
        "e11,Clicked SMS,2026-11-04T09:30:00+00:00,C2,SMS,ivy@example.com,+4915100002,p_ivy",
    ]
    write_lines(landing / "2026-11-04" / "klaviyo_events.csv", [KLAVIYO_EVENTS_HEADER, *events])
    # the next export repeats carol's open: counted once
    write_lines(landing / "2026-11-05" / "klaviyo_events.csv", [KLAVIYO_EVENTS_HEADER, events[1]])
    redemptions = [
        voucher("r1", "redemption", "2026-11-02T09:59:30.000Z", "SUCCESS", "WELCOME", "WELCOME10",
                "alice@example.com", ("#2001", 11000, 1000, "EUR")),
        voucher("r2", "redemption", "2026-11-03T14:59:30.000Z", "SUCCESS", "VIP", "VIP20",
                "erin@example.com", ("#2007", 8500, 1500, "USD")),
        voucher("r3", "redemption", "2026-11-06T09:59:30.000Z", "SUCCESS", "WELCOME", "WELCOME10",
                "frank@example.com", ("#2008", 2500, 500, "EUR")),
        voucher("rr3", "redemption_rollback", "2026-11-06T12:00:00.000Z", "SUCCESS", "WELCOME",
                "WELCOME10", "frank@example.com", ("#2008", 2500, 500, "EUR"), redemption="r3"),
        voucher("r4", "redemption", "2026-11-07T08:00:00.000Z", "FAILURE", "WELCOME", "WELCOME10",
                failure_code="voucher_expired"),
        voucher("r5", "redemption", "2026-11-20T09:59:30.000Z", "SUCCESS", "WELCOME", "WELCOME10",
                "dave@example.com", ("#2006", 3300, 300, "EUR")),
    ]  # fmt: skip
    path = landing / "2026-11-20" / "voucher_redemptions.json"
    path.write_text(json.dumps({"object": "list", "redemptions": redemptions}), "utf-8")
    fillers = [f"filler{i:02d}@example.com" for i in range(1, 40)]
    assignments = [["Experiment", "Email", "Variant", "Assigned at"]]
    start = datetime(2026, 11, 2)
    # EXP-1: 10 control (alice converts; ivy buys after the end; frank's order is not revenue),
    # 10 treatment (bob, carol, erin convert; dave bought before his assignment on Nov 6).
    for email in ["alice@example.com", "ivy@example.com", "frank@example.com", *fillers[:7]]:
        assignments.append(["EXP-1", email, "Control", start])
    for email in ["bob@example.com", "carol@example.com", "erin@example.com", *fillers[7:13]]:
        assignments.append(["EXP-1", email, "treatment", start])
    assignments.append(["EXP-1", "dave@example.com", "treatment", datetime(2026, 11, 6)])
    # EXP-2: 32 in a (carol converts), 8 in b (alice and bob convert): a 32/8 split.
    for email in ["carol@example.com", *fillers[:31]]:
        assignments.append(["EXP-2", email, "a", start])
    for email in ["alice@example.com", "bob@example.com", *fillers[31:37]]:
        assignments.append(["EXP-2", email, "b", start])
    # EXP-3 is judged on a metric the mart does not compute.
    assignments += [
        ["EXP-3", "alice@example.com", "a", None],
        ["EXP-3", "bob@example.com", "b", None],
    ]
    plan = [
        ["Experiment", "Hypothesis", "Start", "End", "Primary metric", "Minimum sample per variant",
         "Control variant"],
        ["EXP-1", "Banner", date(2026, 11, 2), date(2026, 11, 8), "Conversion", 12, "control"],
        ["EXP-2", "Popup", date(2026, 11, 1), date(2026, 11, 30), "conversion", 10, "a"],
        ["EXP-3", "Price", date(2026, 11, 1), date(2026, 11, 30), "revenue_per_user", 1, "a"],
    ]  # fmt: skip
    write_workbook(
        landing / "2026-11-01" / "experiments.xlsx", {"plan": plan, "assignments": assignments}
    )


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    from marketing_warehouse.config import load_settings

    root = tmp_path_factory.mktemp("kpi")
    settings = load_settings({"MWH_DATA_DIR": str(root / "data")})
    land_fixture(settings.landing_dir)
    for contract in load_contracts():
        load_source(settings, contract, RUN_DATE, utc_now())
    result = run_dbt(settings, ["build"], dict(os.environ))
    assert result.returncode == 0, result.stdout[-4000:]
    con = duckdb.connect(str(settings.build_path), read_only=True)
    bad = con.sql(
        "select source_file, reason_code, reason_detail from audit.quarantine "
        "where reason_code <> 'summary_row'"
    ).fetchall()
    assert bad == []  # every hand-written row is valid (Google's total rows aside)
    yield con
    con.close()


def rows(con, sql):
    rel = con.sql(sql)
    return [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]


def approx(row: dict) -> dict:
    """Floats compared to 6 decimals; everything else exactly."""
    return {k: pytest.approx(v, abs=1e-6) if isinstance(v, float) else v for k, v in row.items()}


def test_channel_performance_by_hand(warehouse):
    got = rows(
        warehouse,
        "select month::varchar as month, channel, spend, impressions, clicks, ctr, cpc, "
        "platform_conversions as p_conv, platform_conversion_value as p_value, platform_roas, "
        "conversions, attributed_revenue as revenue, roas, new_customers as new, cac, budget, "
        "target_new_customers as t_new, target_revenue as t_rev, budget_attainment as b_att, "
        "new_customers_attainment as n_att, revenue_attainment as r_att "
        "from marts.kpi_channel_performance order by channel",
    )
    nothing = dict.fromkeys(
        [
            "spend",
            "impressions",
            "clicks",
            "ctr",
            "cpc",
            "p_conv",
            "p_value",
            "platform_roas",
            "roas",
            "cac",
            "budget",
            "t_new",
            "t_rev",
            "b_att",
            "n_att",
            "r_att",
        ]
    )
    expected = [
        # carol's order (last touch: her click on e-mail C1); budget 50.00 EUR, targets 2 / 100.00
        nothing
        | {
            "month": "2026-11-01",
            "channel": "email",
            "conversions": 1,
            "revenue": D("80.00"),
            "new": 1,
            "budget": D("50.00"),
            "t_new": 2,
            "t_rev": D("100.00"),
            "n_att": 1 / 2,
            "r_att": 80 / 100,
        },
        # spend 25.00 (Nov 2) + 95.00 (Nov 3 as restated) = 120.00; impressions 1,000 + 3,000;
        # clicks 50 + 150 = 200: CTR 200 / 4000 = 0.05, CPC 120 / 200 = 0.60; platform
        # conversions 2 + 4, value 150 + 280 = 430, platform ROAS 430 / 120. Warehouse: erin's
        # order (Source google) USD 70 x 0.90 = 63.00, ROAS 63 / 120 = 0.525, CAC 120 / 1.
        # Budget "Google Ads" 200 EUR: attainment 120 / 200, 1 / 4 new, 63 / 400 revenue.
        {
            "month": "2026-11-01",
            "channel": "google_ads",
            "spend": D("120.00"),
            "impressions": 4000,
            "clicks": 200,
            "ctr": 0.05,
            "cpc": D("0.6000"),
            "p_conv": D("6.000000"),
            "p_value": D("430.00"),
            "platform_roas": 430 / 120,
            "conversions": 1,
            "revenue": D("63.00"),
            "roas": 0.525,
            "new": 1,
            "cac": D("120.00"),
            "budget": D("200.00"),
            "t_new": 4,
            "t_rev": D("400.00"),
            "b_att": 0.6,
            "n_att": 0.25,
            "r_att": 63 / 400,
        },
        # GBP 10.00 x 1.20 (Nov 2) + 15.00 x 1.20 (Nov 3 takes Monday's rate) = 30.00 EUR;
        # CTR 50 / 4000 = 0.0125, CPC 30 / 50 = 0.60; platform value 30 GBP = 36.00 EUR, ROAS 1.2.
        # bob's order (Source facebook) 50.00: ROAS 50 / 30, CAC 30.00. Budget 100 GBP at the
        # rate of Sun Nov 1 = Friday's 1.15 -> 115.00; target revenue 200 GBP -> 230.00.
        {
            "month": "2026-11-01",
            "channel": "meta_ads",
            "spend": D("30.00"),
            "impressions": 4000,
            "clicks": 50,
            "ctr": 0.0125,
            "cpc": D("0.6000"),
            "p_conv": D("1.000000"),
            "p_value": D("36.00"),
            "platform_roas": 1.2,
            "conversions": 1,
            "revenue": D("50.00"),
            "roas": 50 / 30,
            "new": 1,
            "cac": D("30.00"),
            "budget": D("115.00"),
            "t_new": 2,
            "t_rev": D("230.00"),
            "b_att": 30 / 115,
            "n_att": 0.5,
            "r_att": 50 / 230,
        },
        # alice #2001 100 (first) + #2005 40, dave #2006 30 (no touch within 5 days), ivy 25 (first,
        # one minute outside the window of her SMS click)
        nothing
        | {
            "month": "2026-11-01",
            "channel": "online_store",
            "conversions": 4,
            "revenue": D("195.00"),
            "new": 2,
        },
        # dave's first order: his latest touch is SMS C2 (Nov 4), not his e-mail open on Nov 2
        nothing
        | {
            "month": "2026-11-01",
            "channel": "sms",
            "conversions": 1,
            "revenue": D("60.00"),
            "new": 1,
        },
    ]
    assert got == [approx(r) for r in expected]


def test_channel_revenue_reconciles_with_orders(warehouse):
    channels = warehouse.sql(
        "select sum(attributed_revenue), sum(conversions), sum(new_customers) "
        "from marts.kpi_channel_performance"
    ).fetchone()
    orders = warehouse.sql(
        "select sum(total_amount_reporting), count(*), count(*) filter (where is_first_order) "
        "from marts.fct_orders where is_revenue_order"
    ).fetchone()
    assert channels == orders == (D("448.00"), 8, 6)


def test_campaign_performance_by_hand(warehouse):
    got = rows(
        warehouse,
        "select campaign_id, channel, recipients_reported as reported, sent, delivered, bounced, "
        "opened, clicked, unsubscribed, delivery_rate, bounce_rate, open_rate, click_rate, "
        "unsubscribe_rate, attribution_window_days as window, conversions, converted_recipients "
        "as converted, conversion_rate, attributed_revenue as revenue, revenue_per_recipient as rpr "
        "from marts.kpi_campaign_performance order by campaign_id",
    )
    expected = [
        # C1: carol, dave, gina delivered (gina unsubscribed), hank bounced -> sent 4; carol and dave
        # opened, carol clicked. Only carol's order is C1's: dave's next order has a later touch.
        {
            "campaign_id": "C1",
            "channel": "email",
            "reported": 4,
            "sent": 4,
            "delivered": 3,
            "bounced": 1,
            "opened": 2,
            "clicked": 1,
            "unsubscribed": 1,
            "delivery_rate": 3 / 4,
            "bounce_rate": 1 / 4,
            "open_rate": 2 / 3,
            "click_rate": 1 / 3,
            "unsubscribe_rate": 1 / 3,
            "window": 5,
            "conversions": 1,
            "converted": 1,
            "conversion_rate": 1 / 3,
            "revenue": D("80.00"),
            "rpr": D("26.6667"),  # 80.00 / 3 delivered
        },
        # C2: dave and ivy received, ivy clicked; dave's order 60.00 (received SMS is a touch);
        # ivy's order came 5 days and 1 minute after her click: not attributed.
        {
            "campaign_id": "C2",
            "channel": "sms",
            "reported": 2,
            "sent": 2,
            "delivered": 2,
            "bounced": 0,
            "opened": 0,
            "clicked": 1,
            "unsubscribed": 0,
            "delivery_rate": 1.0,
            "bounce_rate": 0.0,
            "open_rate": None,  # SMS opens are not tracked
            "click_rate": 0.5,
            "unsubscribe_rate": 0.0,
            "window": 5,
            "conversions": 1,
            "converted": 1,
            "conversion_rate": 0.5,
            "revenue": D("60.00"),
            "rpr": D("30.0000"),
        },
    ]
    assert got == [approx(r) for r in expected]


def test_coupon_performance_by_hand(warehouse):
    got = rows(
        warehouse,
        "select voucher_campaign as campaign, redemption_attempts as attempts, "
        "redemptions_succeeded as ok, redemptions_failed as failed, redemptions_rolled_back as rb, "
        "net_redemptions as net, redemption_rate, rollback_rate, discount_cost, orders, revenue, "
        "new_customer_share, new_customers as new, repeat_customers as repeat, "
        "repeat_purchase_rate from marts.kpi_coupon_performance order by 1",
    )
    expected = [
        # VIP: erin's USD 15.00 discount x 0.90 (Nov 3 takes Monday's rate) = 13.50; her order
        # 63.00 is her first; she has not bought again.
        {
            "campaign": "VIP",
            "attempts": 1,
            "ok": 1,
            "failed": 0,
            "rb": 0,
            "net": 1,
            "redemption_rate": 1.0,
            "rollback_rate": 0.0,
            "discount_cost": D("13.50"),
            "orders": 1,
            "revenue": D("63.00"),
            "new_customer_share": 1.0,
            "new": 1,
            "repeat": 0,
            "repeat_purchase_rate": 0.0,
        },
        # WELCOME: r1 alice, r3 frank (rolled back), r4 failed, r5 dave -> 4 attempts, 3 succeeded,
        # rate 3 / 4, rollback 1 / 3; cost 10.00 + 3.00 (frank's 5.00 was rolled back); orders
        # #2001 100.00 (alice's first) + #2006 30.00 (dave's second): share 1 / 2; alice bought
        # again on Nov 10: repeat rate 1 / 1.
        {
            "campaign": "WELCOME",
            "attempts": 4,
            "ok": 3,
            "failed": 1,
            "rb": 1,
            "net": 2,
            "redemption_rate": 0.75,
            "rollback_rate": 1 / 3,
            "discount_cost": D("13.00"),
            "orders": 2,
            "revenue": D("130.00"),
            "new_customer_share": 0.5,
            "new": 1,
            "repeat": 1,
            "repeat_purchase_rate": 1.0,
        },
    ]
    assert got == [approx(r) for r in expected]


def two_sided_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def test_experiments_by_hand(warehouse):
    got = {
        (r["experiment_id"], r["variant"]): r
        for r in rows(warehouse, "select * from marts.kpi_experiments")
    }
    assert sorted(got) == [
        ("EXP-1", "control"),
        ("EXP-1", "treatment"),
        ("EXP-2", "a"),
        ("EXP-2", "b"),
        ("EXP-3", "a"),
        ("EXP-3", "b"),
    ]

    # EXP-1 control: 10 participants, alice converts (ivy's order is after the end, frank's is not
    # revenue): p_c = 0.1. Treatment: 10 participants, bob, carol and erin convert (dave's order is
    # before his assignment): p = 0.3. Revenue 50 + 80 + 63 = 193.00 -> 19.30 per participant.
    control, treatment = got["EXP-1", "control"], got["EXP-1", "treatment"]
    assert (control["participants"], control["conversions"]) == (10, 1)
    assert (treatment["participants"], treatment["conversions"]) == (10, 3)
    assert treatment["revenue_per_participant"] == D("19.3000")
    assert control["revenue_per_participant"] == D("10.0000")
    # pooled P = 4 / 20 = 0.2, SE = sqrt(0.2 x 0.8 x (1/10 + 1/10)) = 0.178885, z = 0.2 / SE
    z = 0.2 / math.sqrt(0.2 * 0.8 * (1 / 10 + 1 / 10))
    assert round(z, 4) == 1.1180
    assert round(two_sided_p(z), 4) == 0.2636
    # unpooled SE = sqrt(0.3 x 0.7 / 10 + 0.1 x 0.9 / 10) = sqrt(0.03); CI = 0.2 +- 1.959964 SE
    half = 1.959964 * math.sqrt(0.03)
    assert (round(0.2 - half, 4), round(0.2 + half, 4)) == (-0.1395, 0.5395)
    assert approx(treatment) == treatment | {
        "conversion_rate": 0.3,
        "control_conversion_rate": 0.1,
        "absolute_uplift": 0.2,
        "relative_uplift": 2.0,
        "z_score": z,
        "p_value": two_sided_p(z),
        "absolute_uplift_ci_lower": 0.2 - half,
        "absolute_uplift_ci_upper": 0.2 + half,
        "is_significant": False,
        "srm_chi_square": 0.0,  # 10 / 10 as planned
        "has_sample_ratio_mismatch": False,
        "is_below_minimum_sample": True,  # 10 < 12
        "has_implausible_uplift": True,  # +200 % > +100 %
    }
    assert control["absolute_uplift"] is None and control["p_value"] is None
    assert control["is_significant"] is False and control["is_below_minimum_sample"] is True

    # EXP-2: a 1 / 32 = 0.03125, b 2 / 8 = 0.25; pooled 3 / 40 = 0.075;
    # SE = sqrt(0.075 x 0.925 x (1/8 + 1/32)) = 0.104115, z = 0.21875 / SE = 2.1011, p = 0.0356.
    z2 = 0.21875 / math.sqrt(0.075 * 0.925 * (1 / 8 + 1 / 32))
    assert (round(z2, 4), round(two_sided_p(z2), 4)) == (2.1011, 0.0356)
    # SRM: expected 20 / 20; chi2 = (32 - 20)^2 / 20 + (8 - 20)^2 / 20 = 14.4, 1 df:
    # p = erfc(sqrt(14.4 / 2)) = 0.0001 < 0.001 -> mismatch on both rows.
    srm_p = math.erfc(math.sqrt(14.4 / 2))
    assert round(srm_p, 4) == 0.0001
    half2 = 1.959964 * math.sqrt(0.25 * 0.75 / 8 + 0.03125 * 0.96875 / 32)
    b = got["EXP-2", "b"]
    assert approx(b) == b | {
        "participants": 8,
        "conversions": 2,
        "conversion_rate": 0.25,
        "control_conversion_rate": 0.03125,
        "absolute_uplift": 0.21875,
        "relative_uplift": 7.0,
        "p_value": two_sided_p(z2),
        "absolute_uplift_ci_lower": 0.21875 - half2,
        "absolute_uplift_ci_upper": 0.21875 + half2,
        "is_significant": True,
        "srm_chi_square": 14.4,
        "srm_p_value": srm_p,
        "has_sample_ratio_mismatch": True,
        "is_below_minimum_sample": True,  # 8 < 10
        "has_implausible_uplift": True,
    }
    a = got["EXP-2", "a"]
    assert (a["participants"], a["is_below_minimum_sample"], a["has_sample_ratio_mismatch"]) == (
        32,
        False,
        True,
    )

    # The plan has no "Conversion window days" column (the layout before it): it loads, every
    # experiment gets the dbt var's window, which reaches past each end date here.
    from marketing_warehouse.config import load_settings

    window = load_settings({}).dbt_var("experiment_conversion_window_days")
    assert {r["conversion_window_days"] for r in got.values()} == {window}
    assert window >= (date(2026, 11, 30) - date(2026, 11, 2)).days

    # EXP-3's metric is not computed: participants only, statistics null, flagged unsupported.
    for variant in ("a", "b"):
        row = got["EXP-3", variant]
        assert row["is_primary_metric_supported"] is False
        assert row["primary_metric_kind"] == "unknown"
        assert row["participants"] == 1
        assert row["conversions"] is None and row["p_value"] is None
        assert row["is_significant"] is False


def test_rates_stay_within_zero_and_one(warehouse):
    checks = {
        "kpi_channel_performance": ["ctr"],
        "kpi_campaign_performance": [
            "delivery_rate",
            "bounce_rate",
            "open_rate",
            "click_rate",
            "unsubscribe_rate",
            "conversion_rate",
        ],
        "kpi_coupon_performance": [
            "redemption_rate",
            "rollback_rate",
            "new_customer_share",
            "repeat_purchase_rate",
        ],
        "kpi_experiments": ["conversion_rate", "p_value", "srm_p_value"],
    }
    for mart, columns in checks.items():
        for column in columns:
            outside = warehouse.sql(
                f"select count(*) from marts.{mart} where {column} < 0 or {column} > 1"
            ).fetchone()[0]
            assert outside == 0, (mart, column)


def test_ad_spend_without_a_rate_is_quarantined_and_left_out(tmp_path):
    """Meta spend in CHF whose only CHF rate is 8 days older than the report day: never a silent
    1.0; the row is left out of the ad spend and in audit.quarantine (missing_fx_rate)."""
    from marketing_warehouse.config import load_settings

    settings = load_settings({"MWH_DATA_DIR": str(tmp_path / "data")})
    write_lines(
        settings.landing_dir / "2026-11-03" / "meta_ads.csv",
        [
            META_HEADER.replace("(GBP)", "(CHF)"),
            "2026-11-03,2026-11-03,Prospecting,222,2026-11-03,CHF,2000,20,10.00,1,30.00",
        ],
    )
    write_fx_workbook(
        settings.landing_dir / "2026-11-03" / "fx_rates.xlsx",
        [(date(2026, 10, 26), "CHF", "EUR", 1.05)],  # 8 days before: too old
    )
    for contract in load_contracts():
        load_source(settings, contract, date(2026, 11, 3), utc_now())
    result = run_dbt(
        settings, ["build", "--select", "+int_ad_spend_converted", "+audit"], dict(os.environ)
    )
    assert result.returncode == 0, result.stdout[-3000:]
    con = duckdb.connect(str(settings.build_path), read_only=True)
    try:
        spend = con.sql("select count(*) from intermediate.int_ad_spend_converted").fetchone()[0]
        quarantined = con.sql(
            "select source, source_file, row_number, reason_code, reason_detail "
            "from audit.quarantine where reason_code = 'missing_fx_rate'"
        ).fetchall()
    finally:
        con.close()
    assert spend == 0
    ((source, name, row, reason, detail),) = quarantined
    assert (source, name, row, reason) == ("meta_ads", "meta_ads.csv", 1, "missing_fx_rate")
    assert detail.startswith(
        'column "currency": no CHF->EUR rate on or up to 7 days before 2026-11-03 (column '
        '"report_date"); set MWH_REPORTING_CURRENCY=CHF'
    )


def test_amounts_of_millions_convert_without_overflow(tmp_path):
    """A yearly revenue target of 12 million USD converts exactly (1 USD = 0.9123 EUR)."""
    from marketing_warehouse.config import load_settings

    settings = load_settings({"MWH_DATA_DIR": str(tmp_path / "data")})
    header = ["Month", "Channel", "Budget", "Currency", "Target new customers", "Target revenue"]
    write_workbook(
        settings.landing_dir / "2026-11-01" / "marketing_budget.xlsx",
        {"plan": [header, ["2026-11", "Google Ads", 2_500_000, "USD", 40_000, 12_000_000.55]]},
    )
    write_fx_workbook(
        settings.landing_dir / "2026-11-01" / "fx_rates.xlsx",
        [(date(2026, 11, 1), "USD", "EUR", 0.9123)],
    )
    for contract in load_contracts():
        load_source(settings, contract, date(2026, 11, 1), utc_now())
    result = run_dbt(settings, ["build", "--select", "+int_budgets_converted"], dict(os.environ))
    assert result.returncode == 0, result.stdout[-3000:]
    con = duckdb.connect(str(settings.build_path), read_only=True)
    row = con.execute(
        "select budget_amount_reporting, target_revenue_amount_reporting "
        "from intermediate.int_budgets_converted"
    ).fetchone()
    con.close()
    # 2,500,000 x 0.9123 = 2,280,750.00; 12,000,000.55 x 0.9123 = 10,947,600.501765 -> .50
    assert row == (Decimal("2280750.00"), Decimal("10947600.50"))


def _build_landing(tmp_path: Path, land) -> tuple:
    """Load every source of a landing for RUN_DATE and run a whole ``dbt build``."""
    from marketing_warehouse.config import load_settings

    settings = load_settings({"MWH_DATA_DIR": str(tmp_path / "data")})
    land(settings.landing_dir)
    results = [
        r
        for contract in load_contracts()
        for r in load_source(settings, contract, RUN_DATE, utc_now())
    ]
    return settings, results, run_dbt(settings, ["build"], dict(os.environ))


def _null_dates(con) -> dict[str, int]:
    """Rows with a null value in a mart's date-grain column (date, month, *_date)."""
    columns = con.sql(
        "select table_name, column_name from information_schema.columns "
        "where table_schema = 'marts' and data_type = 'DATE' "
        "and (column_name in ('date', 'month', 'report_date', 'order_date') "
        "or column_name like '%\\_month' escape '\\')"
    ).fetchall()
    found = {}
    for table, column in columns:
        n = con.sql(f'select count(*) from marts.{table} where "{column}" is null').fetchone()[0]
        if n:
            found[f"{table}.{column}"] = n
    return found


def _land_ads_at_finer_grains(landing: Path) -> dict[str, int]:
    """Ads only (no orders, no FX: every account in EUR), below and at the campaign grain.

    * Nov 16: a Meta campaign-level export of Nov 14-15 (overlaps the ad-level export below,
      which was delivered later and wins for those days);
    * Nov 18: a Meta ad-level export broken down by age and gender, Nov 14-17;
    * Nov 17: a Google Ads ad group download of Nov 13-16, then a campaign-level original of
      Nov 15 for campaign 7009 and, landed an hour later into the same folder under a name that
      sorts first, its correction."""
    from ad_exports import write_google_ad_groups, write_meta_ad_level

    meta = {"6001": "Prospecting DE", "6002": "Retargeting", "6003": "Lookalike 2%"}
    landed = {}
    write_lines(
        landing / "2026-11-16" / "meta_ads_campaigns.csv",
        [
            "Reporting starts,Reporting ends,Campaign name,Campaign ID,Day,Currency,Impressions,"
            "Link clicks,Amount spent (EUR),Results,Purchases conversion value",
            "2026-11-14,2026-11-15,Prospecting DE,6001,2026-11-14,EUR,1000,10,11.00,1,20.00",
            "2026-11-14,2026-11-15,Prospecting DE,6001,2026-11-15,EUR,1100,11,12.00,0,0.00",
            "2026-11-14,2026-11-15,Retargeting,6002,2026-11-14,EUR,900,9,9.50,0,0.00",
        ],
    )
    landed["meta_ads_campaigns.csv"] = 3
    landed["meta_ads_ads_age_gender.csv"] = write_meta_ad_level(
        landing / "2026-11-18" / "meta_ads_ads_age_gender.csv", date(2026, 11, 14), 4, meta
    )
    landed["google_ads_ad_groups.csv"] = write_google_ad_groups(
        landing / "2026-11-17" / "google_ads_ad_groups.csv",
        date(2026, 11, 13),
        4,
        {"7001": "Search | Brand", "7002": "Search | Generic"},
    )
    header = GOOGLE_HEADER
    for name, cost in (("google_ads_z_original.csv", "10.00"), ("google_ads_a_fix.csv", "12.00")):
        write_lines(
            landing / "2026-11-17" / name,
            ["Campaign report", "November 15, 2026", header,
             f"2026-11-15,Shopping,7009,EUR,500,5,{cost},0.00,0.00"],
        )  # fmt: skip
        landed[name] = 1
    original = landing / "2026-11-17" / "google_ads_z_original.csv"
    fix = landing / "2026-11-17" / "google_ads_a_fix.csv"
    os.utime(original, (1_795_000_000, 1_795_000_000))
    os.utime(fix, (1_795_003_600, 1_795_003_600))  # an hour later
    return landed


def test_ad_exports_below_the_campaign_grain_add_up(tmp_path):
    """Ad-level and ad-group exports are summed to the campaign and day within their file; across
    files the latest delivery wins per campaign and day (folder, then landing time, whatever the
    file name). A landing of ad reports only builds every mart, none with a null date."""
    from ad_exports import expected_ad_totals

    landed = {}
    settings, results, result = _build_landing(
        tmp_path, lambda landing: landed.update(_land_ads_at_finer_grains(landing))
    )
    assert result.returncode == 0, result.stdout[-4000:]
    by_file = {r.source_file: (r.status, r.rows_loaded, r.quarantine_reasons) for r in results}
    totals = {"summary_row": 2}  # Google's two "Total:" rows
    assert by_file == {
        name: ("loaded", n, totals if name == "google_ads_ad_groups.csv" else {})
        for name, n in landed.items()
    }
    assert landed["meta_ads_ads_age_gender.csv"] == 3 * 2 * 2 * 4 * 6 * 3  # 1,728 rows

    expected = expected_ad_totals(settings.landing_dir)
    con = duckdb.connect(str(settings.build_path), read_only=True)
    try:
        got = {
            (platform, day): {"spend": spend, "impressions": impressions, "clicks": clicks}
            for platform, day, spend, impressions, clicks in con.sql(
                "select ad_platform, report_date::varchar, sum(spend_amount_reporting), "
                "sum(impressions), sum(clicks) from intermediate.int_ad_spend_converted "
                "group by 1, 2"
            ).fetchall()
        }
        assert got == expected
        # the correction landed last wins over the original, whatever their names
        assert con.sql(
            "select spend_amount, source_file from intermediate.int_ad_spend_converted "
            "where campaign_id = '7009'"
        ).fetchall() == [(D("12.00"), "google_ads_a_fix.csv")]
        channels = {
            channel: (spend, impressions, clicks)
            for channel, spend, impressions, clicks in con.sql(
                "select channel, spend, impressions, clicks from marts.kpi_channel_performance "
                "where spend is not null"
            ).fetchall()
        }
        want = {}
        for (platform, _), metrics in expected.items():
            spend, impressions, clicks = want.get(platform, (D(0), 0, 0))
            want[platform] = (
                spend + metrics["spend"],
                impressions + metrics["impressions"],
                clicks + metrics["clicks"],
            )
        assert channels == want
        assert con.sql("select count(*) from marts.kpi_daily").fetchone()[0] == 0
        assert _null_dates(con) == {}
    finally:
        con.close()


def _land_orders_only(landing: Path) -> None:
    """Shopify orders only (EUR, no FX needed), delivered three times in one folder: the export,
    the same bytes under the name a browser gives a second download, and the same rows saved
    again as UTF-16 with CRLF line ends."""
    shopify = [
        order("#3001", "alice@example.com", "2026-11-17 10:00:00", "100.00"),
        order("#3002", "bob@example.com", "2026-11-19 12:00:00", "50.00"),
    ]
    export = write_shopify(landing / "2026-11-20" / "shopify_orders.csv", shopify)
    (landing / "2026-11-20" / "shopify_orders (1).csv").write_bytes(export.read_bytes())
    text = export.read_text("utf-8").replace("\n", "\r\n")
    (landing / "2026-11-20" / "shopify_orders_utf16.csv").write_bytes(text.encode("utf-16"))


def test_a_landing_of_orders_only_builds_every_mart(tmp_path):
    """The same content under two names in one folder is a skipped duplicate, and the build (the
    load ledger's key test) passes; so are the same rows in other bytes. No ad report, no
    spreadsheet: the marts they feed are empty, none has a null date."""
    settings, results, result = _build_landing(tmp_path, _land_orders_only)
    assert result.returncode == 0, result.stdout[-4000:]
    assert sorted((r.source_file, r.status, r.rows_loaded) for r in results) == [
        ("shopify_orders (1).csv", "loaded", 2),  # first by name
        ("shopify_orders.csv", "skipped_duplicate", 0),
        ("shopify_orders_utf16.csv", "skipped_duplicate", 0),
    ]
    con = duckdb.connect(str(settings.build_path), read_only=True)
    try:
        assert con.sql(
            "select date::varchar, orders, revenue from marts.kpi_daily order by 1"
        ).fetchall() == [
            ("2026-11-17", 1, D("100.00")),
            ("2026-11-18", 0, D("0.00")),
            ("2026-11-19", 1, D("50.00")),
        ]
        assert con.sql("select count(*) from intermediate.int_ad_spend_converted").fetchone() == (
            0,
        )
        assert _null_dates(con) == {}
    finally:
        con.close()


def _land_spreadsheets_only(landing: Path) -> None:
    header = ["Month", "Channel", "Budget", "Currency", "Target new customers", "Target revenue"]
    write_workbook(
        landing / "2026-11-01" / "marketing_budget.xlsx",
        {"plan": [header, ["2026-11", "Google Ads", 200, "USD", 4, 400]]},
    )
    write_fx_workbook(
        landing / "2026-11-01" / "fx_rates.xlsx", [(date(2026, 11, 1), "USD", "EUR", 0.90)]
    )
    plan = [
        ["Experiment", "Hypothesis", "Start", "End", "Primary metric", "Minimum sample per variant",
         "Control variant"],
        ["EXP-9", "Banner", date(2026, 11, 2), date(2026, 11, 8), "conversion", 10, "a"],
    ]  # fmt: skip
    assignments = [
        ["Experiment", "Email", "Variant", "Assigned at"],
        ["EXP-9", "alice@example.com", "a", datetime(2026, 11, 2)],
        ["EXP-9", "bob@example.com", "b", datetime(2026, 11, 2)],
    ]
    write_workbook(
        landing / "2026-11-01" / "experiments.xlsx", {"plan": plan, "assignments": assignments}
    )


def test_a_landing_of_spreadsheets_only_builds_every_mart(tmp_path):
    settings, results, result = _build_landing(tmp_path, _land_spreadsheets_only)
    assert result.returncode == 0, result.stdout[-4000:]
    assert {r.status for r in results} == {"loaded"}
    con = duckdb.connect(str(settings.build_path), read_only=True)
    try:
        assert con.sql(
            "select month::varchar, channel, budget, spend from marts.kpi_channel_performance"
        ).fetchall() == [("2026-11-01", "google_ads", D("180.00"), None)]
        assert con.sql("select count(*) from marts.kpi_daily").fetchone() == (0,)
        assert _null_dates(con) == {}
    finally:
        con.close()


# An experiment judged on a product event: who returned within 7 days of the assignment.
RV_START, RV_END, RV_WINDOW = date(2026, 11, 2), date(2026, 11, 15), 7
RV_ASSIGNED = datetime(2026, 11, 2, 9, 0)


def _return_visit_participants() -> list[dict]:
    """The participants of EXP-RV and what each did: return_visit events (UTC ISO time, and whether
    the event carries the e-mail or only the user id) and revenue orders (time, total)."""
    people = []
    for i in range(22):
        people.append({"email": f"ctl{i:02d}@example.com", "variant": "Control", "uid": f"uc{i}"})
    for i in range(18):
        people.append({"email": f"vb{i:02d}@example.com", "variant": "Variant B", "uid": f"ub{i}"})
    ctl = people[:22]
    vb = people[22:]
    for person in people:
        person |= {"assigned": RV_ASSIGNED, "visits": [], "orders": []}
    # Control: 4 return within the window (two by user id only); one returns on day 8 (late),
    # one before the assignment, one after the end date (late for the window too).
    for person, at, by_uid in [
        (ctl[0], "2026-11-03T10:00:00Z", False),
        (ctl[1], "2026-11-05T10:00:00Z", True),
        (ctl[2], "2026-11-09T23:00:00Z", True),  # day 7 after 2 Nov: inside
        (ctl[3], "2026-11-04T10:00:00Z", False),
        (ctl[4], "2026-11-10T08:00:00Z", False),  # day 8: outside
        (ctl[5], "2026-11-02T08:00:00Z", False),  # before the assignment at 09:00
    ]:
        person["visits"].append((at, by_uid))
    ctl[6]["assigned"] = datetime(2026, 11, 12, 9, 0)
    ctl[6]["visits"].append(("2026-11-16T10:00:00Z", False))  # within 7 days, after the end
    # Variant B: 9 return within the window (ub3 twice: one converter), three by user id only.
    for person, at, by_uid in [
        (vb[0], "2026-11-02T12:00:00Z", False),
        (vb[1], "2026-11-03T12:00:00Z", True),
        (vb[2], "2026-11-04T12:00:00Z", False),
        (vb[3], "2026-11-05T12:00:00Z", True),
        (vb[3], "2026-11-06T12:00:00Z", True),
        (vb[4], "2026-11-06T12:00:00Z", False),
        (vb[5], "2026-11-07T12:00:00Z", False),
        (vb[6], "2026-11-08T12:00:00Z", True),
        (vb[7], "2026-11-09T12:00:00Z", False),
        (vb[8], "2026-11-09T20:00:00Z", False),
    ]:
        person["visits"].append((at, by_uid))
    # Revenue orders: ctl00 (30.00 in the window), vb00 (45.00 in the window, 99.00 on day 9).
    ctl[0]["orders"].append(("2026-11-03 11:00:00", "30.00"))
    vb[0]["orders"] += [("2026-11-04 11:00:00", "45.00"), ("2026-11-11 11:00:00", "99.00")]
    return people


def _land_return_visit_experiment(landing: Path) -> None:
    people = _return_visit_participants()
    write_fx_workbook(
        landing / "2026-11-01" / "fx_rates.xlsx", [(date(2026, 11, 1), "USD", "EUR", 0.90)]
    )
    orders = [
        order(f"#{3000 + n}", person["email"], at, total)
        for n, (person, (at, total)) in enumerate((p, o) for p in people for o in p["orders"])
    ]
    write_shopify(landing / "2026-11-20" / "shopify_orders.csv", orders)
    events = []
    for person in people:
        # every participant logs in once with the e-mail: the identity map ties the user id to it
        events.append({"messageId": f"login_{person['uid']}", "event": "login",
                       "timestamp": "2026-11-01T08:00:00Z", "userId": person["uid"],
                       "email": person["email"].upper()})  # fmt: skip
        for n, (at, by_uid) in enumerate(person["visits"]):
            event = {"messageId": f"rv_{person['uid']}_{n}", "event": "return_visit",
                     "timestamp": at, "properties": {"value": 500}}  # fmt: skip
            event |= {"userId": person["uid"]} if by_uid else {"email": person["email"]}
            events.append(event)
    write_lines(landing / "2026-11-20" / "product_events.jsonl", [json.dumps(e) for e in events])
    plan = [
        ["Experiment", "Hypothesis", "Start", "End", "Primary metric", "Minimum sample per variant",
         "Control variant", "Conversion window days"],
        ["EXP-RV", "Reminder", RV_START, RV_END, "return_visit", 10, "Control", RV_WINDOW],
        ["EXP-BAD", "Typo", RV_START, RV_END, "conversion", 10, "Control", "a week"],
        ["EXP-NEG", "Typo", RV_START, RV_END, "conversion", 10, "Control", -1],
        # event names match as exported, case included: not the event return_visit
        ["EXP-CASE", "Typo", RV_START, RV_END, "Return_Visit", 1, "Control", None],
    ]  # fmt: skip
    assignments = [["Experiment", "Email", "Variant", "Assigned at"]] + [
        ["EXP-RV", p["email"], p["variant"], p["assigned"]] for p in people
    ]
    assignments.append(["EXP-CASE", people[0]["email"], "Control", None])
    write_workbook(
        landing / "2026-11-01" / "experiments.xlsx", {"plan": plan, "assignments": assignments}
    )


def _converts(person: dict) -> bool:
    """A return_visit at or after the assignment, at most RV_WINDOW UTC days after its day and
    not after the end date."""
    last_day = min(RV_END, person["assigned"].date() + timedelta(days=RV_WINDOW))
    for at, _ in person["visits"]:
        when = datetime.fromisoformat(at.replace("Z", ""))
        if when >= person["assigned"] and RV_START <= when.date() <= last_day:
            return True
    return False


def test_an_experiment_on_a_product_event_reconciles_with_an_independent_computation(tmp_path):
    settings, _, result = _build_landing(tmp_path, _land_return_visit_experiment)
    assert result.returncode == 0, result.stdout[-4000:]
    people = _return_visit_participants()
    con = duckdb.connect(str(settings.build_path), read_only=True)
    try:
        # an unreadable or negative window is quarantined, naming the column; the rest loads
        quarantined = rows(
            con,
            "select reason_code, reason_detail from audit.quarantine "
            "where source = 'spreadsheets' and entity = 'experiments' order by row_number",
        )
        got = {
            (r["experiment_id"], r["variant"]): r
            for r in rows(con, "select * from marts.kpi_experiments")
        }
    finally:
        con.close()
    assert [q["reason_code"] for q in quarantined] == ["invalid_number", "out_of_range"]
    assert all("Conversion window days" in q["reason_detail"] for q in quarantined), quarantined
    assert sorted(got) == [("EXP-CASE", "Control"), ("EXP-RV", "Control"), ("EXP-RV", "Variant B")]
    unknown = got["EXP-CASE", "Control"]
    assert (unknown["primary_metric_kind"], unknown["is_primary_metric_supported"]) == (
        "unknown",
        False,
    )
    default_window = settings.dbt_var("experiment_conversion_window_days")
    assert unknown["conversions"] is None and unknown["conversion_window_days"] == default_window
    # the marts gate warns (and publishes) naming the experiment and its metric
    from marketing_warehouse.quality.gates import run_gate

    outcome = run_gate(settings, "marts", RUN_DATE, "run-1")
    flagged = {c.column: c for c in outcome.checks if c.suite == "marts/experiments"}
    assert {column: (c.severity, c.success) for column, c in flagged.items()} == {
        "unmeasured_experiment": ("warning", False),
        "audience_without_members": ("warning", True),  # no plan names an audience
    }
    flagged = [flagged["unmeasured_experiment"]]
    assert "EXP-CASE: primary metric Return_Visit" in flagged[0].sample, flagged[0].describe()

    n = {v: sum(p["variant"] == v for p in people) for v in ("Control", "Variant B")}
    x = {v: sum(p["variant"] == v and _converts(p) for p in people) for v in n}
    assert (n, x) == ({"Control": 22, "Variant B": 18}, {"Control": 4, "Variant B": 9})
    p_c, p_b = x["Control"] / n["Control"], x["Variant B"] / n["Variant B"]
    pooled = (x["Control"] + x["Variant B"]) / (n["Control"] + n["Variant B"])
    z = (p_b - p_c) / math.sqrt(pooled * (1 - pooled) * (1 / n["Control"] + 1 / n["Variant B"]))
    half = 1.959964 * math.sqrt(p_b * (1 - p_b) / n["Variant B"] + p_c * (1 - p_c) / n["Control"])
    # SRM against the equal split: expected 20 each, chi2 = (2^2 + 2^2) / 20 = 0.4, 1 df
    chi2 = sum((n[v] - 20) ** 2 / 20 for v in n)
    treatment, control = got["EXP-RV", "Variant B"], got["EXP-RV", "Control"]
    assert approx(treatment) == treatment | {
        "primary_metric": "return_visit",
        "primary_metric_kind": "product_event",
        "is_primary_metric_supported": True,
        "conversion_window_days": RV_WINDOW,
        "expected_share": 0.5,
        "participants": 18,
        "conversions": 9,
        "conversion_rate": p_b,
        "control_conversion_rate": p_c,
        "absolute_uplift": p_b - p_c,
        "relative_uplift": (p_b - p_c) / p_c,
        "z_score": z,
        "p_value": two_sided_p(z),
        "is_significant": two_sided_p(z) < 0.05,
        "absolute_uplift_ci_lower": (p_b - p_c) - half,
        "absolute_uplift_ci_upper": (p_b - p_c) + half,
        "srm_chi_square": chi2,
        "srm_p_value": math.erfc(math.sqrt(chi2 / 2)),
        "has_sample_ratio_mismatch": False,
        # revenue orders only, in the window: 45.00 (the event's value 500 and the order on
        # day 9 do not count)
        "revenue": D("45.00"),
    }
    assert control["is_control"] is True and control["conversions"] == 4
    assert control["revenue"] == D("30.00")
