"""Demo exports of the marketing tools, in their real layouts, sharing the shop's customers.

Each writer produces one landed file per day (or per delivery) exactly as a user would download it,
including each tool's quirks: Stripe's lower-case currencies, HubSpot's free-text countries and
portal-local dates, Google Ads' title lines and total rows, Meta's currency in the spend header,
Voucherify's minor-unit amounts in JSON, epoch-millisecond timestamps in product events.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

COUNTRY_SPELLINGS = {
    "DE": ["Germany", "germany", "DE", "Deutschland", " Germany "],
    "FR": ["France", "FR", "france"],
    "NL": ["Netherlands", "The Netherlands", "NL", "Holland"],
    "AT": ["Austria", "Österreich", "AT"],
    "IT": ["Italy", "Italia", "IT"],
    "ES": ["Spain", "España", "ES"],
    "BE": ["Belgium", "Belgique", "BE"],
    "US": ["United States", "USA", "US"],
}
GOOGLE_CAMPAIGNS = [("Search - Brand", "18000000001"), ("Search - Generic", "18000000002"),
                    ("Performance Max", "18000000003")]  # fmt: skip
META_CAMPAIGNS = [("Prospecting - Lookalike", "23850000000000001"),
                  ("Retargeting - Cart", "23850000000000002")]  # fmt: skip
CHANNELS = ("email", "sms", "push")


@dataclass(frozen=True)
class Order:
    """What other tools see of a Shopify order."""

    number: int
    email: str
    created: datetime
    total: float
    currency: str
    discount_code: str


def _write_csv(path: Path, header: list[str], rows: list[list[object]], **fmt) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    encoding = fmt.pop("encoding", "utf-8")
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n", **fmt)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _messy_email(rng: random.Random, email: str) -> str:
    roll = rng.random()
    if roll < 0.05:
        return email.upper()
    if roll < 0.10:
        return f" {email.capitalize()} "
    return email


def stripe_day(rng, day: date, subscribers: list, folder: Path) -> Path:
    header = ["id", "Description", "Seller Message", "Created date (UTC)", "Amount",
              "Amount Refunded", "Currency", "Captured", "Converted Amount", "Fee", "Mode",
              "Status", "Statement Descriptor", "Customer ID", "Customer Description",
              "Customer Email", "Card Address Country", "Invoice ID"]  # fmt: skip
    rows = []
    for customer in subscribers:
        if (customer.index // 7) % 28 != day.toordinal() % 28:  # monthly-ish renewal per subscriber
            continue
        failed = rng.random() < 0.06
        refunded = not failed and rng.random() < 0.03
        created = datetime(day.year, day.month, day.day, 3) + timedelta(minutes=rng.randrange(600))
        rows.append([
            f"ch_{rng.getrandbits(64):016x}", "Demo Club membership",
            "Payment complete." if not failed else "Your card was declined.",
            created.strftime("%Y-%m-%d %H:%M:%S"), "9.90", "9.90" if refunded else "0.00",
            "eur" if customer.country != "US" else "usd", "false" if failed else "true", "9.90",
            "0.44", "Live", "Failed" if failed else "Refunded" if refunded else "Paid",
            "DEMO CLUB", f"cus_{customer.index:08d}", customer.name,
            _messy_email(rng, customer.email), customer.country, f"in_{rng.getrandbits(48):012x}",
        ])  # fmt: skip
    return _write_csv(folder / f"stripe_payments_{day.isoformat()}.csv", header, rows)


def hubspot_day(rng, day: date, customers: list, folder: Path, first_day: date) -> Path:
    header = ["Record ID", "First Name", "Last Name", "Email", "Phone Number", "Lifecycle Stage",
              "Original Source", "Marketing contact status", "Unsubscribed from all email",
              "SMS consent", "Country/Region", "Create Date", "Last Activity Date"]  # fmt: skip
    # first delivery: everybody known so far; afterwards: contacts changed that day
    chosen = (
        customers if day == first_day else rng.sample(customers, k=max(1, len(customers) // 30))
    )
    # contacts were created in 2025, or in the year before the demo's first day for an older
    # history: never after the export that lists them
    since = min(
        datetime(2025, 1, 1),
        datetime(first_day.year, first_day.month, first_day.day) - timedelta(days=366),
    )
    rows = []
    us_style = day.toordinal() % 7 == 0  # an export from a US-locale portal user
    for customer in chosen:
        if customer.index % 10 == 9:
            continue  # not every buyer is in the CRM
        first, last = customer.name.split(" ", 1)
        created = since + timedelta(hours=customer.index * 7 % 8000)
        fmt = "%m/%d/%Y %H:%M" if us_style else "%Y-%m-%d %H:%M"
        rows.append([
            str(100000 + customer.index), first, last, _messy_email(rng, customer.email),
            f"+49151{customer.index:07d}" if customer.index % 3 else "",
            rng.choice(["customer", "customer", "lead", "subscriber"]),
            rng.choice(["Organic search", "Paid social", "Paid search", "Email marketing", "Direct traffic", "Referrals"]),
            "Marketing contact" if customer.accepts_marketing else "Non-marketing contact",
            "true" if customer.index % 17 == 0 else "false",
            "true" if customer.index % 4 == 0 else "false",
            rng.choice(COUNTRY_SPELLINGS.get(customer.country, [customer.country])),
            created.strftime(fmt), datetime(day.year, day.month, day.day, 12).strftime(fmt),
        ])  # fmt: skip
        if customer.index % 50 == 0:  # the same person entered twice, e-mail typed differently
            rows.append(
                [
                    str(900000 + customer.index),
                    *rows[-1][1:3],
                    customer.email.upper(),
                    *rows[-1][4:],
                ]
            )
    return _write_csv(folder / f"hubspot_contacts_{day.isoformat()}.csv", header, rows)


def klaviyo_day(rng, day: date, customers: list, folder: Path, campaign_no: int) -> list[Path]:
    """A campaign on Tuesdays and Fridays; events for its recipients over the next days."""
    written = []
    if day.weekday() not in (1, 4):
        return written
    channel = CHANNELS[campaign_no % 3]
    campaign_id = f"01J{campaign_no:05d}CAMPAIGN"
    sent = datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC)
    marketable = [c for c in customers if c.accepts_marketing]
    recipients = rng.sample(marketable, k=max(1, int(len(marketable) * 0.6)))
    label = {"email": "Email", "sms": "SMS", "push": "Push"}[channel]
    written.append(_write_csv(
        folder / f"klaviyo_campaigns_{day.isoformat()}.csv",
        ["Campaign ID", "Campaign Name", "Channel", "Send Time", "Subject", "List", "Total Recipients"],
        [[campaign_id, f"Newsletter {campaign_no}", label, sent.strftime("%Y-%m-%d %H:%M:%S%z"),
          f"News #{campaign_no}", "Newsletter", len(recipients)]],
    ))  # fmt: skip
    rows = []
    for customer in recipients:

        def event(metric, minutes, _c=customer):
            at = sent + timedelta(minutes=minutes)
            rows.append([f"evt_{rng.getrandbits(64):016x}", metric, at.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
                         campaign_id, label, _messy_email(rng, _c.email), "", f"prof_{_c.index:07d}"])  # fmt: skip

        if channel == "email" and rng.random() < 0.015:
            event("Bounced Email", 1)
            continue
        event(f"Received {label}", 0)
        if channel != "sms" and rng.random() < 0.35:
            event(f"Opened {label}", rng.randrange(5, 600))
            if rng.random() < 0.18 and channel == "email":
                event("Clicked Email", rng.randrange(600, 900))
        elif channel == "sms" and rng.random() < 0.08:
            event("Clicked SMS", rng.randrange(5, 300))
        if rng.random() < 0.005:
            event("Unsubscribed", rng.randrange(900, 1200))
    header = [
        "Event ID",
        "Metric",
        "Timestamp",
        "Campaign ID",
        "Channel",
        "Email",
        "Phone Number",
        "Profile ID",
    ]
    written.append(_write_csv(folder / f"klaviyo_events_{day.isoformat()}.csv", header, rows))
    return written


def ads_day(rng, day: date, folder: Path, scale: float = 0.01) -> list[Path]:
    """Daily Google and Meta reports; spend sized to land near the budget workbook's plan."""
    google_volume, meta_volume = scale * 22, scale * 28
    google_rows = []
    for name, cid in GOOGLE_CAMPAIGNS:
        impressions = max(1, int(rng.randrange(2000, 9000) * google_volume))
        clicks = int(impressions * rng.uniform(0.02, 0.06))
        cost = round(clicks * rng.uniform(0.4, 1.2), 2)
        conversions = round(clicks * rng.uniform(0.02, 0.05), 2)
        google_rows.append([day.isoformat(), name, cid, "EUR", f"{impressions:,}", f"{clicks:,}",
                            f"{cost:,.2f}", f"{conversions:.2f}", f"{conversions * 68:,.2f}"])  # fmt: skip
    total = [sum(float(str(r[i]).replace(",", "")) for r in google_rows) for i in (4, 5, 6, 7, 8)]
    google_rows.append(["Total: Account", "", "", "EUR", *(f"{v:,.2f}" for v in total)])
    preamble = [
        "Campaign report",
        f"{day:%B} {day.day}, {day.year} - {day:%B} {day.day}, {day.year}",
    ]
    google = folder / f"google_ads_campaigns_{day.isoformat()}.csv"
    google.parent.mkdir(parents=True, exist_ok=True)
    with google.open("w", encoding="utf-8", newline="") as handle:
        for line in preamble:
            handle.write(line + "\n")
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["Day", "Campaign", "Campaign ID", "Currency code", "Impr.", "Clicks",
                         "Cost", "Conversions", "Conv. value"])  # fmt: skip
        writer.writerows(google_rows)
    meta_rows = []
    for name, cid in META_CAMPAIGNS:
        impressions = max(1, int(rng.randrange(5000, 20000) * meta_volume))
        clicks = int(impressions * rng.uniform(0.008, 0.02))
        spent = round(impressions / 1000 * rng.uniform(5, 11), 2)
        results = int(rng.randrange(0, 8) * meta_volume + rng.random())
        meta_rows.append([day.isoformat(), day.isoformat(), name, cid, day.isoformat(), "GBP",
                          impressions, clicks, f"{spent:.2f}", results, f"{results * 61.5:.2f}"])  # fmt: skip
    meta = _write_csv(
        folder / f"meta_ads_report_{day.isoformat()}.csv",
        ["Reporting starts", "Reporting ends", "Campaign name", "Campaign ID", "Day", "Currency",
         "Impressions", "Link clicks", "Amount spent (GBP)", "Results", "Purchases conversion value"],
        meta_rows,
    )  # fmt: skip
    return [google, meta]


def vouchers_day(rng, day: date, orders: list[Order], folder: Path) -> Path | None:
    records = []
    for order in orders:
        if not order.discount_code:
            continue
        base = {
            "voucher": {"code": order.discount_code, "campaign": order.discount_code.rstrip("0123456789") or "PROMO"},
            "customer": {"source_id": order.email, "email": order.email},
            "order": {"id": f"#{order.number}", "amount": round(order.total * 100),
                      "discount_amount": round(order.total * 100 * 0.1), "currency": order.currency},
        }  # fmt: skip
        rid = f"r_{rng.getrandbits(48):012x}"
        at = order.created - timedelta(seconds=30)
        records.append({"id": rid, "object": "redemption", "date": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                        "result": "SUCCESS", **base})  # fmt: skip
        if rng.random() < 0.04:
            records.append({"id": f"rr_{rng.getrandbits(48):012x}", "object": "redemption_rollback",
                            "date": (at + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                            "result": "SUCCESS", "redemption": rid, **base})  # fmt: skip
    for _ in range(max(0, len(records) // 5)):  # expired or exhausted codes tried at checkout
        records.append({"id": f"r_{rng.getrandbits(48):012x}", "object": "redemption",
                        "date": f"{day.isoformat()}T{rng.randrange(24):02d}:00:00.000Z",
                        "result": "FAILURE", "failure_code": rng.choice(["voucher_expired", "quantity_exceeded"]),
                        "voucher": {"code": "SPRING15", "campaign": "SPRING"}})  # fmt: skip
    if not records:
        return None
    path = folder / f"voucher_redemptions_{day.isoformat()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"object": "list", "redemptions": records}, indent=1), "utf-8")
    return path


def events_day(
    rng, day: date, customers: list, orders: list[Order], folder: Path, scale: float
) -> Path:
    lines = []
    # 2.5 % of customers use the product on a day: ~2 M product events a year at scale 1
    active = rng.sample(customers, k=max(1, int(len(customers) * 0.025)))
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)

    def emit(customer_email: str | None, user_id: str | None, name: str, at: datetime, value=None):
        record = {"messageId": f"m_{rng.getrandbits(64):016x}", "event": name,
                  "context": {"device": rng.choice(["ios", "android", "web", "web"])}}  # fmt: skip
        record["timestamp"] = (
            int(at.timestamp() * 1000)
            if rng.random() < 0.5
            else at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        )
        if user_id:
            record["userId"] = user_id
        if customer_email:
            record["email"] = customer_email
        if value is not None:
            record["properties"] = {"value": value}
        lines.append(json.dumps(record))

    for customer in active:
        at = start + timedelta(seconds=rng.randrange(86400))
        uid = f"u{customer.index:07d}"
        emit(customer.email if rng.random() < 0.5 else None, uid, "login", at)
        if rng.random() < 0.4:
            emit(
                None, uid, "add_to_cart", at + timedelta(minutes=3), round(rng.uniform(15, 120), 2)
            )
            if rng.random() < 0.5:
                emit(None, uid, "abandoned_cart", at + timedelta(minutes=45))
    for order in orders:
        emit(order.email, None, "order_placed", order.created, order.total)
    path = folder / f"product_events_{day.isoformat()}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def write_workbook(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
        sheet.append([None] * len(rows[0]))  # blank trailing rows, as people leave them
        sheet.append([None] * len(rows[0]))
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)
    fix_xlsx_timestamps(path)
    return path


def budgets(first_day: date, end_date: date, folder: Path, scale: float) -> Path:
    rows = [["Month", "Channel", "Budget", "Currency", "Target new customers", "Target revenue"]]
    month = first_day.replace(day=1)
    while month <= end_date:
        for channel, budget in (
            ("google_ads", 3000),
            ("meta_ads", 2000),
            ("email", 400),
            ("sms", 300),
        ):
            rows.append([month.strftime("%Y-%m"), channel, round(budget * scale * 100, 2), "EUR",
                         int(120 * scale * 100 * budget / 5700), round(budget * scale * 100 * 4, 2)])  # fmt: skip
        month = (month + timedelta(days=32)).replace(day=1)
    return write_workbook(folder / "marketing_budget.xlsx", {"plan": rows})


def experiments(first_day: date, end_date: date, customers: list, folder: Path, rng) -> Path:
    """The experiment plan workbook: EXP-001 is judged on a revenue order (conversion, the default
    window), EXP-002 on the product event "login" within 7 days of the assignment."""
    # a week after the first delivery; a short demo (fewer than 9 days) starts the day before the end
    start = min(first_day + timedelta(days=7), end_date - timedelta(days=1))
    assigned = datetime(start.year, start.month, start.day, 0, 0)
    plan = [
        ["Experiment", "Hypothesis", "Start", "End", "Primary metric", "Minimum sample per variant", "Control variant", "Conversion window days"],
        ["EXP-001 free shipping banner", "A free-shipping banner raises conversion", start, end_date,
         "conversion", 100, "control", None],
        ["EXP-002 login reminder", "A reminder e-mail brings users back within a week", start,
         end_date, "login", 100, "Control", 7],
    ]  # fmt: skip
    assignments = [["Experiment", "Email", "Variant", "Assigned at"]]
    for customer in customers:
        variant = "treatment" if rng.random() < 0.5 else "control"
        assignments.append(["EXP-001 free shipping banner", customer.email, variant, assigned])
    for customer in customers:
        variant = "Variant B" if rng.random() < 0.5 else "Control"
        assignments.append(["EXP-002 login reminder", customer.email, variant, assigned])
    return write_workbook(
        folder / "experiments_plan.xlsx", {"plan": plan, "assignments": assignments}
    )


def fix_xlsx_timestamps(target: Path) -> None:
    """Give an openpyxl workbook fixed timestamps (openpyxl stamps the current time into its
    properties), so the same seed gives byte-identical files and the same content hash."""
    import re
    import zipfile

    fixed = "2000-01-01T00:00:00Z"
    with zipfile.ZipFile(target) as src:
        items = [(info, src.read(info.filename)) for info in src.infolist()]
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for info, data in items:
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", fixed.encode(), data)
            info.date_time = (2000, 1, 1, 0, 0, 0)
            dst.writestr(info, data)
