"""Customer marts on a hand-written fixture from every source; each number is worked out by hand.

People (all amounts EUR unless noted, all times UTC):

  ann   Shopify #2001 2026-01-10 100.00 (WELCOME10, 10.00 off, web), #2002 2026-02-15 50.00 (web),
        #2003 2026-06-20 80.00 (web; exported again in a second file: counted once);
        Accepts Marketing yes. HubSpot 300 (created 2025-12-01, "Deutschland", marketing contact,
        SMS consent, phone "+49 151 1111"). Klaviyo p_ann received + opened an e-mail 2026-06-26.
        Product user u_ann (logs in with her e-mail once). Voucher redemption as customer shop-c1.
  ben   Shopify #2004 2026-03-05 40.00 (SPRING15, e-mail typed " BEN@Example.com "),
        #2005 2026-04-10 60.00 (VIP20, pos, billing "USA"), #2006 2026-04-12 30.00 voided and
        cancelled (not revenue). Accepts Marketing yes, but Klaviyo p_ben bounced.
  cara  HubSpot only, twice: 301 cara@ ("germany", unsubscribed from all e-mail, SMS consent,
        phone) and 302 " CARA@EXAMPLE.COM " ("DE", SMS consent). One person, a lead.
  dan   Stripe cus_dan: ch_d1 2026-05-01 9.90 paid (invoice), ch_d2 2026-06-01 9.90 paid (invoice,
        no e-mail on the row: resolved through cus_dan; also in a second export), ch_d3 2026-06-15
        9.90 failed, ch_d4 2026-06-28 USD 20.00 paid, no invoice -> 20.00 x 0.90 = 18.00 EUR.
        Card country "de". Klaviyo p_dan received a push.
  eve   Shopify #2007 2026-06-25 70.00 with no e-mail, phone "0049 151 5555", billing
        "Österreich", Accepts Marketing no. HubSpot 305 eve@ with phone "+49 151 5555": the
        order is hers by phone. Product "order_placed" event with her e-mail.
  fay   Klaviyo p_fay: received an e-mail, then unsubscribed. HubSpot 306 (marketing contact,
        country "Narnia": unknown, stays null). In the experiment's assignments.
  hal   Shopify #1990 2025-11-15 45.00 (pos, billing "  germany "), Accepts Marketing yes.
  ivy   Shopify #1995 2026-01-20 25.00 (draft order, billing " U.S.A. "), Accepts Marketing empty.
  u_anon: a product user never seen with an e-mail: unresolved, not a customer, but a DAU.

Revenue: hal 45 + ann 230 + ivy 25 + ben 100 + dan (9.90 + 9.90 + 18.00 = 37.80) + eve 70 = 507.80.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from datetime import date
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
LAST_DAY = date(2026, 6, 30)
ID = {
    name: f"md5('{name}@example.com')"
    for name in ("ann", "ben", "cara", "dan", "eve", "fay", "hal", "ivy")
}


def first(name, email, created, total, **extra):
    fields = {"Currency": "EUR", "Total": total, "Financial Status": "paid"}
    return order_row(name, email, created, **(fields | extra))


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


STRIPE = ["id", "Description", "Created date (UTC)", "Amount", "Amount Refunded", "Currency",
          "Captured", "Fee", "Status", "Customer ID", "Customer Email", "Customer Description",
          "Card Address Country", "Invoice ID"]  # fmt: skip
HUBSPOT = ["Record ID", "First Name", "Last Name", "Email", "Phone Number", "Lifecycle Stage",
           "Original Source", "Marketing contact status", "Unsubscribed from all email",
           "SMS consent", "Country/Region", "Create Date", "Last Activity Date"]  # fmt: skip
KLAVIYO = ["Event ID", "Metric", "Timestamp", "Campaign ID", "Channel", "Email", "Phone Number",
           "Profile ID"]  # fmt: skip


def write_fixture(landing: Path) -> None:
    jun29, jun30 = landing / "2026-06-29", landing / "2026-06-30"
    yes = {"Accepts Marketing": "yes"}
    orders = [
        first("#1990", "hal@example.com", "2025-11-15 10:00:00 +0000", "45.00", Source="pos",
              Billing_Country="  germany ", **yes),
        first("#1995", "ivy@example.com", "2026-01-20 10:00:00 +0000", "25.00",
              Source="shopify_draft_order", Billing_Country=" U.S.A. "),
        first("#2001", "ann@example.com", "2026-01-10 09:00:00 +0000", "100.00", Source="web",
              Discount_Code="WELCOME10", Discount_Amount="10.00", Billing_Country="DE", **yes),
        first("#2002", "ann@example.com", "2026-02-15 09:00:00 +0000", "50.00", Source="web",
              Billing_Country="DE", **yes),
        first("#2003", "ann@example.com", "2026-06-20 09:00:00 +0000", "80.00", Source="web",
              Billing_Country="DE", **yes),
        first("#2004", " BEN@Example.com ", "2026-03-05 12:00:00 +0000", "40.00", Source="web",
              Discount_Code="SPRING15", Discount_Amount="6.00", Billing_Country="United States",
              **yes),
        first("#2005", "ben@example.com", "2026-04-10 12:00:00 +0000", "60.00", Source="pos",
              Discount_Code="VIP20", Discount_Amount="12.00", Billing_Country="USA", **yes),
        first("#2006", "ben@example.com", "2026-04-12 12:00:00 +0000", "30.00", Source="web",
              Cancelled_at="2026-04-12 13:00:00 +0000", **{"Financial Status": "voided"}),
        first("#2007", "", "2026-06-25 15:00:00 +0000", "70.00", Source="web",
              Phone="0049 151 5555", Billing_Country="Österreich",
              **{"Accepts Marketing": "no"}),
    ]  # fmt: skip
    write_shopify(jun29 / "shopify_orders_a.csv", orders)
    write_shopify(jun30 / "shopify_orders_b.csv", [orders[4]])  # #2003 exported again

    d2 = ["ch_d2", "Demo Club", "2026-06-01 03:00:00", "9.90", "0.00", "eur", "true", "0.44",
          "Paid", "cus_dan", "", "Dan", "de", "in_2"]  # fmt: skip
    _csv(jun29 / "stripe_payments_a.csv", STRIPE, [
        ["ch_d1", "Demo Club", "2026-05-01 03:00:00", "9.90", "0.00", "eur", "true", "0.44",
         "Paid", "cus_dan", "dan@example.com", "Dan", "de", "in_1"],
        d2,
        ["ch_d3", "Demo Club", "2026-06-15 03:00:00", "9.90", "0.00", "eur", "false", "0.00",
         "Failed", "cus_dan", "dan@example.com", "Dan", "de", "in_3"],
    ])  # fmt: skip
    _csv(jun30 / "stripe_payments_b.csv", STRIPE, [
        d2,
        ["ch_d4", "Gift card", "2026-06-28 08:00:00", "20.00", "0.00", "usd", "true", "0.80",
         "Paid", "cus_dan", "dan@example.com", "Dan", "de", ""],
    ])  # fmt: skip
    write_fx_workbook(jun29 / "fx_rates.xlsx", [(date(2026, 6, 26), "USD", "EUR", 0.90)])

    _csv(jun30 / "hubspot_contacts.csv", HUBSPOT, [
        ["300", "Ann", "A", "ann@example.com", "+49 151 1111", "customer", "Organic search",
         "Marketing contact", "false", "true", "Deutschland", "2025-12-01 10:00", ""],
        ["301", "Cara", "C", "cara@example.com", "+49 151 3333", "lead", "Paid social",
         "Marketing contact", "true", "true", "germany", "2026-05-01 08:00", ""],
        ["302", "Cara", "C", " CARA@EXAMPLE.COM ", "", "lead", "Paid social",
         "Marketing contact", "false", "true", "DE", "2026-05-02 08:00", ""],
        ["305", "Eve", "E", "eve@example.com", "+49 151 5555", "lead", "Referrals",
         "Marketing contact", "false", "false", "Austria", "2026-06-01 08:00", ""],
        ["306", "Fay", "F", "fay@example.com", "", "subscriber", "Direct traffic",
         "Marketing contact", "false", "false", "Narnia", "2026-06-02 08:00", ""],
    ])  # fmt: skip
    _csv(jun30 / "klaviyo_events.csv", KLAVIYO, [
        ["e1", "Received Email", "2026-06-26T09:00:00+00:00", "c1", "Email", "ann@example.com", "", "p_ann"],
        ["e2", "Opened Email", "2026-06-26T09:30:00+00:00", "c1", "Email", "ann@example.com", "", "p_ann"],
        ["e3", "Bounced Email", "2026-06-26T09:01:00+00:00", "c1", "Email", "ben@example.com", "", "p_ben"],
        ["e4", "Received Email", "2026-06-05T09:00:00+00:00", "c0", "Email", "fay@example.com", "", "p_fay"],
        ["e5", "Unsubscribed", "2026-06-06T10:00:00+00:00", "c0", "Email", "fay@example.com", "", "p_fay"],
        ["e6", "Received Push", "2026-06-10T09:00:00+00:00", "c2", "Push", "dan@example.com", "", "p_dan"],
    ])  # fmt: skip
    events = [
        {"messageId": "m1", "event": "login", "timestamp": "2026-06-20T10:00:00Z",
         "userId": "u_ann", "email": "Ann@Example.com"},
        {"messageId": "m2", "event": "add_to_cart", "timestamp": "2026-06-20T10:05:00Z",
         "userId": "u_ann", "properties": {"value": 80}},
        {"messageId": "m3", "event": "login", "timestamp": "2026-06-25T08:00:00Z", "userId": "u_ann"},
        {"messageId": "m4", "event": "login", "timestamp": "2026-06-25T09:00:00Z", "userId": "u_anon"},
        {"messageId": "m5", "event": "order_placed", "timestamp": "2026-06-25T15:00:00Z",
         "email": "eve@example.com", "properties": {"value": 70}},
        {"messageId": "m6", "event": "page_view", "timestamp": "2026-06-25T16:00:00Z"},
        # u_anon's earlier visit: alone in the weekly and monthly windows, which then run out
        {"messageId": "m7", "event": "login", "timestamp": "2026-05-20T12:00:00Z", "userId": "u_anon"},
    ]  # fmt: skip
    (jun30 / "product_events.jsonl").write_text(
        "\n".join(json.dumps(e) for e in events) + "\n", "utf-8"
    )
    redemptions = {"object": "list", "redemptions": [
        {"id": "r_1", "object": "redemption", "date": "2026-01-10T08:59:30.000Z",
         "result": "SUCCESS", "voucher": {"code": "WELCOME10", "campaign": "WELCOME"},
         "customer": {"source_id": "shop-c1", "email": "ann@example.com"},
         "order": {"id": "#2001", "amount": 11000, "discount_amount": 1000, "currency": "EUR"}},
    ]}  # fmt: skip
    (jun30 / "voucher_redemptions.json").write_text(json.dumps(redemptions), "utf-8")
    write_workbook(jun30 / "experiments.xlsx", {
        "plan": [["Experiment", "Hypothesis", "Start", "End", "Primary metric",
                  "Minimum sample per variant", "Control variant"],
                 ["EXP-1", "Banner", date(2026, 6, 1), date(2026, 6, 30), "conversion", 10,
                  "control"]],
        "assignments": [["Experiment", "Email", "Variant", "Assigned at"],
                        ["EXP-1", "fay@example.com", "control", "2026-06-01 00:00:00"]],
    })  # fmt: skip


def snapshot_vars(day: str) -> list[str]:
    return ["--vars", json.dumps({"snapshot_date": day})]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from marketing_warehouse.config import load_settings

    root = tmp_path_factory.mktemp("customers")
    settings = load_settings({"MWH_DATA_DIR": str(root / "data")})
    write_fixture(settings.landing_dir)
    for contract in load_contracts():
        load_source(settings, contract, LAST_DAY, utc_now())
    # An earlier nightly run first (snapshot 2026-02-20), then the latest (2026-06-30).
    for day in ("2026-02-20", "2026-06-30"):
        result = run_dbt(settings, ["build", *snapshot_vars(day)], dict(os.environ))
        assert result.returncode == 0, result.stdout[-4000:]
    return settings


@pytest.fixture(scope="module")
def warehouse(built):
    con = duckdb.connect(str(built.build_path), read_only=True)
    yield con
    con.close()


def copy_of(built, tmp_path):
    """Settings on a copy of the build file (the module's read-only connection keeps the
    original open, and DuckDB lets no other process write to it meanwhile)."""
    from marketing_warehouse.config import load_settings

    copy = tmp_path / "build.duckdb"
    shutil.copy(built.build_path, copy)
    return load_settings({"MWH_DATA_DIR": str(built.data_dir), "MWH_BUILD_PATH": str(copy)})


def rows(con, sql):
    rel = con.sql(sql)
    return [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]


def test_quarantine_is_empty(warehouse):
    assert rows(warehouse, "select source, reason_code, reason_detail from audit.quarantine") == []


def test_identity_map_by_hand(warehouse):
    got = warehouse.sql(
        "select source, source_key, matching_rule, email, "
        "customer_id is not distinct from md5(email) as keyed_by_email "
        "from marts.dim_customer_identity_map order by source, source_key"
    ).fetchall()
    assert got == [
        ("experiments", "fay@example.com", "email", "fay@example.com", True),
        ("hubspot", "300", "email", "ann@example.com", True),
        ("hubspot", "301", "email", "cara@example.com", True),
        ("hubspot", "302", "email", "cara@example.com", True),  # the duplicate record
        ("hubspot", "305", "email", "eve@example.com", True),
        ("hubspot", "306", "email", "fay@example.com", True),
        ("klaviyo", "p_ann", "email", "ann@example.com", True),
        ("klaviyo", "p_ben", "email", "ben@example.com", True),
        ("klaviyo", "p_dan", "email", "dan@example.com", True),
        ("klaviyo", "p_fay", "email", "fay@example.com", True),
        ("product", "eve@example.com", "email", "eve@example.com", True),
        ("product", "u_ann", "email", "ann@example.com", True),  # one login carried the e-mail
        ("product", "u_anon", "unresolved", None, True),  # null = md5(null): no customer
        ("shopify", "+491515555", "phone", "eve@example.com", True),  # = HubSpot 305's phone
        ("shopify", "ann@example.com", "email", "ann@example.com", True),
        ("shopify", "ben@example.com", "email", "ben@example.com", True),
        ("shopify", "hal@example.com", "email", "hal@example.com", True),
        ("shopify", "ivy@example.com", "email", "ivy@example.com", True),
        ("stripe", "cus_dan", "email", "dan@example.com", True),
        ("vouchers", "shop-c1", "email", "ann@example.com", True),
    ]
    unresolved = warehouse.sql(
        "select customer_id from marts.dim_customer_identity_map where source_key = 'u_anon'"
    ).fetchone()
    assert unresolved == (None,)


def test_dim_customers_by_hand(warehouse):
    got = rows(
        warehouse,
        "select email, phone, country, acquisition_channel as acq, orders_count as n, "
        "lifetime_revenue as ltv, average_order_value as aov, discount_order_share as disc, "
        "is_email_marketable as em, is_sms_marketable as sms, is_push_reachable as push, "
        "stripe_customer_id as stripe, hubspot_record_id as hs, klaviyo_profile_id as kl, "
        "product_user_id as pu from marts.dim_customers order by email",
    )
    none = {"stripe": None, "hs": None, "kl": None, "pu": None}
    assert got == [
        # country: Shopify billing "DE" wins over HubSpot "Deutschland"; 230.00 / 3 = 76.67;
        # e-mail: Shopify yes + HubSpot marketing contact; SMS: HubSpot consent + phone
        {"email": "ann@example.com", "phone": "+491511111", "country": "DE",
         "acq": "online_store", "n": 3, "ltv": D("230.00"), "aov": D("76.67"),
         "disc": pytest.approx(1 / 3), "em": True, "sms": True, "push": False,
         **none, "hs": "300", "kl": "p_ann", "pu": "u_ann"},
        # "USA" -> US; #2006 is voided: 2 revenue orders, both discounted; the bounce refuses e-mail
        {"email": "ben@example.com", "phone": None, "country": "US", "acq": "online_store",
         "n": 2, "ltv": D("100.00"), "aov": D("50.00"), "disc": 1.0, "em": False,
         "sms": False, "push": False, **none, "kl": "p_ben"},
        # a lead from the CRM: record 301 unsubscribed from all e-mail; SMS consent with phone
        {"email": "cara@example.com", "phone": "+491513333", "country": "DE", "acq": None,
         "n": 0, "ltv": D("0"), "aov": None, "disc": None, "em": False, "sms": True,
         "push": False, **none, "hs": "301"},
        # 9.90 + 9.90 + 18.00 (USD 20.00 x 0.90); the failed payment is not revenue
        {"email": "dan@example.com", "phone": None, "country": "DE", "acq": "subscription",
         "n": 3, "ltv": D("37.80"), "aov": D("12.60"), "disc": 0.0, "em": False,
         "sms": False, "push": True, **none, "stripe": "cus_dan", "kl": "p_dan"},
        # her order came by phone; Shopify "no" refuses e-mail despite HubSpot's marketing contact
        {"email": "eve@example.com", "phone": "+491515555", "country": "AT",
         "acq": "online_store", "n": 1, "ltv": D("70.00"), "aov": D("70.00"), "disc": 0.0,
         "em": False, "sms": False, "push": False, **none, "hs": "305"},
        # "Narnia" is unknown: null; the Klaviyo unsubscribe beats HubSpot's marketing contact
        {"email": "fay@example.com", "phone": None, "country": None, "acq": None, "n": 0,
         "ltv": D("0"), "aov": None, "disc": None, "em": False, "sms": False, "push": False,
         **none, "hs": "306", "kl": "p_fay"},
        {"email": "hal@example.com", "phone": None, "country": "DE", "acq": "point_of_sale",
         "n": 1, "ltv": D("45.00"), "aov": D("45.00"), "disc": 0.0, "em": True,
         "sms": False, "push": False, **none},
        # " U.S.A. " -> US; Accepts Marketing empty is no consent
        {"email": "ivy@example.com", "phone": None, "country": "US", "acq": "draft_order",
         "n": 1, "ltv": D("25.00"), "aov": D("25.00"), "disc": 0.0, "em": False,
         "sms": False, "push": False, **none},
    ]  # fmt: skip


def test_country_spellings_normalise_to_iso_codes(warehouse):
    got = warehouse.sql(
        "select distinct country_raw, country_code from intermediate.int_customer_identities "
        "where country_raw is not null order by 1"
    ).fetchall()
    # extraction already trimmed "  germany " and " U.S.A. "; the macro drops the dots
    assert got == [
        ("Austria", "AT"),
        ("DE", "DE"),
        ("Deutschland", "DE"),
        ("Narnia", None),  # unknown: stays null
        ("U.S.A.", "US"),
        ("USA", "US"),
        ("United States", "US"),
        ("de", "DE"),  # Stripe's card country
        ("germany", "DE"),
        ("Österreich", "AT"),
    ]


def test_dim_customers_first_seen_and_last_activity(warehouse):
    got = warehouse.sql(
        "select email, first_seen_at::varchar, last_activity_at::varchar "
        "from marts.dim_customers order by email"
    ).fetchall()
    assert got == [
        # HubSpot created her before her first order; the e-mail open is her latest activity
        ("ann@example.com", "2025-12-01 10:00:00", "2026-06-26 09:30:00"),
        ("ben@example.com", "2026-03-05 12:00:00", "2026-04-12 12:00:00"),  # the voided order
        ("cara@example.com", "2026-05-01 08:00:00", None),  # nothing but CRM records
        ("dan@example.com", "2026-05-01 03:00:00", "2026-06-28 08:00:00"),
        ("eve@example.com", "2026-06-01 08:00:00", "2026-06-25 15:00:00"),
        ("fay@example.com", "2026-06-01 00:00:00", None),  # assignment; deliveries are no activity
        ("hal@example.com", "2025-11-15 10:00:00", "2025-11-15 10:00:00"),
        ("ivy@example.com", "2026-01-20 10:00:00", "2026-01-20 10:00:00"),
    ]


def test_fct_orders_stripe_payments_and_phone_match(warehouse):
    got = rows(
        warehouse,
        "select order_id, channel, financial_status as status, is_revenue_order as rev, "
        "is_first_order as first, total_amount_reporting as eur, "
        "customer_id = md5('dan@example.com') as is_dan from marts.fct_orders "
        "where source_system = 'stripe' order by order_id",
    )
    assert got == [
        {"order_id": "stripe-ch_d1", "channel": "subscription", "status": "paid", "rev": True,
         "first": True, "eur": D("9.90"), "is_dan": True},
        # no e-mail on the row: resolved through the Stripe customer; in two exports, once here
        {"order_id": "stripe-ch_d2", "channel": "subscription", "status": "paid", "rev": True,
         "first": False, "eur": D("9.90"), "is_dan": True},
        {"order_id": "stripe-ch_d3", "channel": "subscription", "status": "failed",
         "rev": False, "first": None, "eur": D("9.90"), "is_dan": True},
        {"order_id": "stripe-ch_d4", "channel": "stripe", "status": "paid", "rev": True,
         "first": False, "eur": D("18.00"), "is_dan": True},
    ]  # fmt: skip
    eve = warehouse.sql(
        "select customer_id = md5('eve@example.com'), is_first_order from marts.fct_orders "
        "where order_id = 'shopify-#2007'"
    ).fetchone()
    assert eve == (True, True)
    assert warehouse.sql("select count(*) from marts.fct_orders").fetchone()[0] == 13


SEGMENT_SQL = (
    "select email, recency_days as rec, frequency as f, monetary as m, r_score as r, "
    "f_score as fs, m_score as ms, rfm_segment as seg, lifecycle_stage as life, "
    "value_tier as tier, is_discount_driven as disc, reachable_channels as ch "
    "from marts.dim_customer_segments join marts.dim_customers using (customer_id) "
    "where snapshot_date = date '{day}' order by email"
)


def test_customer_segments_latest_snapshot_by_hand(warehouse):
    """Snapshot 2026-06-30. M scores: monetary sorted ivy 25 < dan 37.80 < hal 45 < eve 70 <
    ben 100 < ann 230, cume_dist k/6, ceil(5 k / 6) = 1, 2, 3, 4, 5, 5."""
    got = rows(warehouse, SEGMENT_SQL.format(day="2026-06-30"))
    lead = {"rec": None, "f": 0, "m": D("0"), "r": None, "fs": None, "ms": None, "seg": None,
            "life": "lead", "tier": "none", "disc": False}  # fmt: skip
    assert got == [
        # last order Jun 20 (10 days: R5), 3 orders (F3); Feb 15 -> Jun 20 = 125 days > 90
        {"email": "ann@example.com", "rec": 10, "f": 3, "m": D("230.00"), "r": 5, "fs": 3,
         "ms": 5, "seg": "potential_loyalist", "life": "reactivated", "tier": "high",
         "disc": False, "ch": "email,sms"},
        # Apr 10 -> Jun 30 = 81 days: R3 and at_risk (> 60); 2 of 2 orders discounted
        {"email": "ben@example.com", "rec": 81, "f": 2, "m": D("100.00"), "r": 3, "fs": 2,
         "ms": 5, "seg": "needs_attention", "life": "at_risk", "tier": "high", "disc": True,
         "ch": None},
        {"email": "cara@example.com", **lead, "ch": "sms"},
        # Jun 28: 2 days; first order May 1 (60 days: not new); Jun 1 -> Jun 28 = 27 days
        {"email": "dan@example.com", "rec": 2, "f": 3, "m": D("37.80"), "r": 5, "fs": 3,
         "ms": 2, "seg": "potential_loyalist", "life": "active", "tier": "low", "disc": False,
         "ch": "push"},
        {"email": "eve@example.com", "rec": 5, "f": 1, "m": D("70.00"), "r": 5, "fs": 1,
         "ms": 4, "seg": "new", "life": "new", "tier": "medium", "disc": False, "ch": None},
        {"email": "fay@example.com", **lead, "ch": None},
        # Nov 15 -> Jun 30 = 227 days > 180: R1
        {"email": "hal@example.com", "rec": 227, "f": 1, "m": D("45.00"), "r": 1, "fs": 1,
         "ms": 3, "seg": "lost", "life": "churned", "tier": "medium", "disc": False,
         "ch": "email"},
        # Jan 20 -> Jun 30 = 161 days: R2
        {"email": "ivy@example.com", "rec": 161, "f": 1, "m": D("25.00"), "r": 2, "fs": 1,
         "ms": 1, "seg": "hibernating", "life": "churned", "tier": "low", "disc": False,
         "ch": None},
    ]  # fmt: skip


def test_customer_segments_earlier_snapshot_is_point_in_time(warehouse):
    """Snapshot 2026-02-20 sees hal, ann (Jan 10, Feb 15) and ivy only. M: ivy 25 (1/3 -> 2),
    hal 45 (2/3 -> 4), ann 150 (3/3 -> 5). Everybody else is still a lead."""
    got = rows(warehouse, SEGMENT_SQL.format(day="2026-02-20"))
    by_email = {r.pop("email"): r for r in got}
    assert len(by_email) == 8  # every customer of dim_customers
    # Jan 10 -> Feb 20 = 41 days since the first order (not new); Jan 10 -> Feb 15 = 36 days;
    # 1 of 2 orders discounted: 1 >= 0.5 x 2, so discount-driven (she was not by June)
    assert by_email["ann@example.com"] == {
        "rec": 5, "f": 2, "m": D("150.00"), "r": 5, "fs": 2, "ms": 5,
        "seg": "potential_loyalist", "life": "active", "tier": "high", "disc": True,
        "ch": "email,sms",
    }  # fmt: skip
    # Jan 20 -> Feb 20 = 31 days: R4, F1 -> promising; first order 31 days ago -> active
    assert (by_email["ivy@example.com"]["seg"], by_email["ivy@example.com"]["life"]) == (
        "promising",
        "active",
    )
    assert by_email["ivy@example.com"]["ms"] == 2
    # Nov 15 -> Feb 20 = 97 days: R2, F1 -> hibernating; > 90 days -> churned
    hal = by_email["hal@example.com"]
    assert (hal["rec"], hal["r"], hal["ms"], hal["seg"], hal["life"]) == (
        97,
        2,
        4,
        "hibernating",
        "churned",
    )
    for email in ("ben", "cara", "dan", "eve", "fay"):
        assert by_email[f"{email}@example.com"]["life"] == "lead"


def test_segment_transitions_between_snapshots(warehouse):
    """Feb 20 -> Jun 30: ann stays potential_loyalist, ivy promising -> hibernating, hal
    hibernating -> lost; ben, dan and eve were leads (no segment) and now have one."""
    got = warehouse.sql(
        """
        select earlier.rfm_segment as before, later.rfm_segment as after, count(*) as n
        from marts.dim_customer_segments as earlier
        join marts.dim_customer_segments as later using (customer_id)
        where earlier.snapshot_date = '2026-02-20' and later.snapshot_date = '2026-06-30'
            and later.frequency > 0
        group by all order by all
        """
    ).fetchall()
    assert got == [
        ("hibernating", "lost", 1),
        ("potential_loyalist", "potential_loyalist", 1),
        ("promising", "hibernating", 1),
        (None, "needs_attention", 1),  # ben
        (None, "new", 1),  # eve
        (None, "potential_loyalist", 1),  # dan
    ]


def test_kpi_daily_active_users_by_hand(warehouse):
    got = rows(
        warehouse,
        "select date::varchar as d, orders, revenue, new_customers as new, "
        "returning_customers as ret, discount_cost as disc, active_users as dau, "
        "weekly_active_users as wau, monthly_active_users as mau from marts.kpi_daily "
        "where date in ('2026-01-10', '2026-05-20', '2026-05-26', '2026-05-27', '2026-06-18', "
        "'2026-06-19', '2026-06-20', '2026-06-24', '2026-06-25', '2026-06-28') "
        "order by date",
    )
    assert got == [
        {"d": "2026-01-10", "orders": 1, "revenue": D("100.00"), "new": 1, "ret": 0,
         "disc": D("10.00"), "dau": 0, "wau": 0, "mau": 0},
        # u_anon visits on May 20: counted that week (May 20-26) and for 30 days (to Jun 18)
        {"d": "2026-05-20", "orders": 0, "revenue": D("0"), "new": 0, "ret": 0,
         "disc": D("0"), "dau": 1, "wau": 1, "mau": 1},
        {"d": "2026-05-26", "orders": 0, "revenue": D("0"), "new": 0, "ret": 0,
         "disc": D("0"), "dau": 0, "wau": 1, "mau": 1},
        {"d": "2026-05-27", "orders": 0, "revenue": D("0"), "new": 0, "ret": 0,
         "disc": D("0"), "dau": 0, "wau": 0, "mau": 1},
        {"d": "2026-06-18", "orders": 0, "revenue": D("0"), "new": 0, "ret": 0,
         "disc": D("0"), "dau": 0, "wau": 0, "mau": 1},
        {"d": "2026-06-19", "orders": 0, "revenue": D("0"), "new": 0, "ret": 0,
         "disc": D("0"), "dau": 0, "wau": 0, "mau": 0},
        # u_ann logs in (and adds to cart): one user
        {"d": "2026-06-20", "orders": 1, "revenue": D("80.00"), "new": 0, "ret": 1,
         "disc": D("0.00"), "dau": 1, "wau": 1, "mau": 1},
        {"d": "2026-06-24", "orders": 0, "revenue": D("0"), "new": 0, "ret": 0,
         "disc": D("0"), "dau": 0, "wau": 1, "mau": 1},
        # ann (u_ann), u_anon and eve (by e-mail); the event without user and e-mail is anonymous
        {"d": "2026-06-25", "orders": 1, "revenue": D("70.00"), "new": 1, "ret": 0,
         "disc": D("0.00"), "dau": 3, "wau": 3, "mau": 3},
        # dan's USD 20.00 x 0.90
        {"d": "2026-06-28", "orders": 1, "revenue": D("18.00"), "new": 0, "ret": 1,
         "disc": D("0.00"), "dau": 0, "wau": 3, "mau": 3},
    ]  # fmt: skip
    # 2025-11-15 .. 2026-06-28: 16 + 31 + 31 + 28 + 31 + 30 + 31 + 28 days
    assert warehouse.sql("select count(*) from marts.kpi_daily").fetchone()[0] == 226


def test_kpi_cohort_retention_by_hand(warehouse):
    got = warehouse.sql(
        "select cohort_month::varchar, months_since_first_order, cohort_size, "
        "retained_customers, retention_rate, cumulative_revenue_per_customer "
        "from marts.kpi_cohort_retention order by 1, 2"
    ).fetchall()
    assert got == [
        # hal alone; nobody came back in the 7 months since
        *[("2025-11-01", k, 1, int(k == 0), float(k == 0), D("45.00")) for k in range(8)],
        # ann + ivy: 100 + 25 in Jan; ann 50 in Feb; nothing Mar-May; ann 80 in Jun
        ("2026-01-01", 0, 2, 2, 1.0, D("62.50")),
        ("2026-01-01", 1, 2, 1, 0.5, D("87.50")),
        ("2026-01-01", 2, 2, 0, 0.0, D("87.50")),
        ("2026-01-01", 3, 2, 0, 0.0, D("87.50")),
        ("2026-01-01", 4, 2, 0, 0.0, D("87.50")),
        ("2026-01-01", 5, 2, 1, 0.5, D("127.50")),
        ("2026-03-01", 0, 1, 1, 1.0, D("40.00")),  # ben
        ("2026-03-01", 1, 1, 1, 1.0, D("100.00")),
        ("2026-03-01", 2, 1, 0, 0.0, D("100.00")),
        ("2026-03-01", 3, 1, 0, 0.0, D("100.00")),
        ("2026-05-01", 0, 1, 1, 1.0, D("9.90")),  # dan
        ("2026-05-01", 1, 1, 1, 1.0, D("37.80")),
        ("2026-06-01", 0, 1, 1, 1.0, D("70.00")),  # eve
    ]


def test_kpi_retention_churn_by_hand(warehouse):
    """Active per month: Nov hal; Dec -; Jan ann, ivy; Feb ann; Mar ben; Apr ben; May dan;
    Jun ann (back after Feb), dan, eve (new)."""
    got = warehouse.sql(
        "select month::varchar, active_previous_month, active_customers, new_customers, "
        "retained_customers, reactivated_customers, churned_customers, churn_rate, "
        "retention_rate, is_complete_month from marts.kpi_retention_churn order by month"
    ).fetchall()
    assert got == [
        ("2025-11-01", 0, 1, 1, 0, 0, 0, None, None, True),
        ("2025-12-01", 1, 0, 0, 0, 0, 1, 1.0, 0.0, True),
        ("2026-01-01", 0, 2, 2, 0, 0, 0, None, None, True),
        ("2026-02-01", 2, 1, 0, 1, 0, 1, 0.5, 0.5, True),
        ("2026-03-01", 1, 1, 1, 0, 0, 1, 1.0, 0.0, True),
        ("2026-04-01", 1, 1, 0, 1, 0, 0, 0.0, 1.0, True),
        ("2026-05-01", 1, 1, 1, 0, 0, 1, 1.0, 0.0, True),
        ("2026-06-01", 1, 3, 1, 1, 1, 0, 0.0, 1.0, False),  # last order Jun 28
    ]


def test_kpi_channel_coverage_by_hand(warehouse):
    """8 customers. email: ann, hal; sms: ann, cara; push: dan. Active in the 30 days up to
    Jun 30: ann (Jun 26), dan (Jun 28), eve (Jun 25). On Feb 20 (window Jan 22 - Feb 20):
    ann (Feb 15); ivy's Jan 20 is too old. Reachability is today's consent in both snapshots."""
    got = warehouse.sql(
        "select date::varchar, channel, customers, reachable_customers, coverage_share, "
        "reachable_active_customers, reachable_active_share "
        "from marts.kpi_channel_coverage order by 1, 2"
    ).fetchall()
    assert got == [
        ("2026-02-20", "email", 8, 2, 0.25, 1, 0.5),
        ("2026-02-20", "push", 8, 1, 0.125, 0, 0.0),
        ("2026-02-20", "sms", 8, 2, 0.25, 1, 0.5),
        ("2026-06-30", "email", 8, 2, 0.25, 1, 0.5),
        ("2026-06-30", "push", 8, 1, 0.125, 1, 1.0),
        ("2026-06-30", "sms", 8, 2, 0.25, 1, 0.5),
    ]


def test_revenue_and_customers_reconcile(warehouse):
    kpi = warehouse.sql("select sum(revenue) from marts.kpi_daily").fetchone()[0]
    fct = warehouse.sql(
        "select sum(total_amount_reporting) from marts.fct_orders where is_revenue_order"
    ).fetchone()[0]
    # from staging: the latest copy of each order / payment, revenue statuses, converted by hand
    staging = warehouse.sql(
        """
        with first_rows as (
            select * from staging.stg_shopify__order_lines
            qualify source_row_number
                = min(source_row_number) over (partition by file_hash, order_name)
        ), shopify as (
            select total_amount, financial_status, cancelled_at
            from first_rows
            qualify row_number() over (
                partition by order_name order by load_date desc, source_file desc) = 1
        ), stripe as (
            select amount, currency, status, is_captured from staging.stg_stripe__payments
            qualify row_number() over (
                partition by payment_id order by load_date desc, source_file desc) = 1
        )
        select
            (select sum(total_amount) from shopify where cancelled_at is null
                and financial_status in ('paid', 'partially_paid', 'partially_refunded', 'refunded'))
            + (select sum(amount * case currency when 'USD' then 0.90 else 1 end) from stripe
                where status in ('paid', 'refunded') and is_captured)
        """
    ).fetchone()[0]
    assert kpi == fct == staging == D("507.80")
    latest = warehouse.sql(
        "select customer_id from marts.dim_customer_segments "
        "where snapshot_date = (select max(snapshot_date) from marts.dim_customer_segments) "
        "except select customer_id from marts.dim_customers"
    ).fetchall()
    counts = warehouse.sql(
        "select (select count(*) from marts.dim_customer_segments where snapshot_date = "
        "'2026-06-30'), (select count(*) from marts.dim_customers)"
    ).fetchone()
    assert latest == [] and counts == (8, 8)


def test_rerun_replaces_the_snapshot_and_full_refresh_gives_the_same(built, tmp_path):
    """On a copy of the build file: re-running 2026-06-30 keeps one snapshot of it (and the
    history); a full refresh keeps only the current snapshot, with the same rows."""
    settings = copy_of(built, tmp_path)
    copy = settings.build_path
    select = ["--select", "dim_customer_segments"]

    def snapshot(con, day):
        return con.sql(
            f"select * from marts.dim_customer_segments where snapshot_date = '{day}' order by all"
        ).fetchall()

    con = duckdb.connect(str(copy), read_only=True)
    before = snapshot(con, "2026-06-30")
    con.close()
    again = run_dbt(settings, ["run", *select, *snapshot_vars("2026-06-30")], dict(os.environ))
    assert again.returncode == 0, again.stdout[-3000:]
    con = duckdb.connect(str(copy), read_only=True)
    per_date = con.sql(
        "select snapshot_date::varchar, count(*) from marts.dim_customer_segments group by 1 order by 1"
    ).fetchall()
    assert per_date == [("2026-02-20", 8), ("2026-06-30", 8)]
    assert snapshot(con, "2026-06-30") == before
    con.close()
    full = run_dbt(
        settings,
        ["run", *select, "--full-refresh", *snapshot_vars("2026-06-30")],
        dict(os.environ),
    )
    assert full.returncode == 0, full.stdout[-3000:]
    con = duckdb.connect(str(copy), read_only=True)
    assert snapshot(con, "2026-06-30") == before
    assert con.sql("select count(*) from marts.dim_customer_segments").fetchone()[0] == 8
    con.close()


def test_dbt_docs_generate(built, tmp_path):
    result = run_dbt(copy_of(built, tmp_path), ["docs", "generate"], dict(os.environ))
    assert result.returncode == 0, result.stdout[-3000:]
