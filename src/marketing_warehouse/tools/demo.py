"""Deterministic demo exports in each tool's real layout, written into dated landing folders.

Same seed, same dates, same scale: byte-identical files. ``scale=1`` is about 100 k customers and
1 M Shopify order lines over a year; the default demo is a small slice of that.
"""

from __future__ import annotations

import csv
import itertools
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

from marketing_warehouse.layout import landing_day
from marketing_warehouse.tools import demo_marketing as marketing
from marketing_warehouse.tools.demo_marketing import Order, fix_xlsx_timestamps

SHOPIFY_HEADER = [
    "Name", "Email", "Financial Status", "Paid at", "Fulfillment Status", "Fulfilled at",
    "Accepts Marketing", "Currency", "Subtotal", "Shipping", "Taxes", "Total", "Discount Code",
    "Discount Amount", "Shipping Method", "Created at", "Lineitem quantity", "Lineitem name",
    "Lineitem price", "Lineitem compare at price", "Lineitem sku", "Lineitem requires shipping",
    "Lineitem taxable", "Lineitem fulfillment status", "Billing Name", "Billing Street",
    "Billing Address1", "Billing Address2", "Billing Company", "Billing City", "Billing Zip",
    "Billing Province", "Billing Country", "Billing Phone", "Shipping Name", "Shipping Street",
    "Shipping Address1", "Shipping Address2", "Shipping Company", "Shipping City", "Shipping Zip",
    "Shipping Province", "Shipping Country", "Shipping Phone", "Notes", "Note Attributes",
    "Cancelled at", "Payment Method", "Payment Reference", "Refunded Amount", "Vendor",
    "Outstanding Balance", "Employee", "Location", "Device ID", "Id", "Tags", "Risk Level",
    "Source", "Lineitem discount", "Tax 1 Name", "Tax 1 Value", "Phone", "Receipt Number",
    "Duties", "Billing Province Name", "Shipping Province Name", "Payment ID",
    "Payment Terms Name", "Next Payment Due At", "Payment References",
]  # fmt: skip

PRODUCTS = [
    ("Organic Cotton Tee", "TEE-ORG", 24.90),
    ("Merino Hoodie", "HOOD-MER", 89.00),
    ("Canvas Tote", "TOTE-CNV", 19.50),
    ("Running Socks 3-pack", "SOCK-RUN3", 14.95),
    ("Rain Jacket", "JKT-RAIN", 129.00),
    ("Wool Beanie", "BEAN-WOOL", 29.00),
    ("Linen Shirt", "SHRT-LIN", 59.00),
    ("Trail Shorts", "SHRT-TRL", 44.00),
]
FIRST = ["Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hugo", "Ida", "Jonas", "Lena",
         "Max", "Nora", "Oskar", "Paula", "Rafael", "Sofia", "Tom", "Uma", "Vera"]  # fmt: skip
LAST = ["Schmidt", "Muller", "Rossi", "Garcia", "Martin", "Smith", "Novak", "Jensen", "Dubois",
        "Kowalski", "Silva", "Meyer", "Bauer", "Costa", "Berg"]  # fmt: skip
COUNTRIES = [("DE", "Berlin", 0.40), ("FR", "Paris", 0.15), ("NL", "Amsterdam", 0.12),
             ("AT", "Vienna", 0.10), ("IT", "Milan", 0.08), ("ES", "Madrid", 0.08),
             ("BE", "Brussels", 0.07)]  # fmt: skip
DISCOUNTS = [("WELCOME10", 0.10), ("SPRING15", 0.15), ("VIP20", 0.20)]
OFFSETS = [timezone(timedelta(hours=h)) for h in (1, 1, 1, 2, 0, -5)]
#: Order currencies and their weights, and the demo's reference rates to EUR.
CURRENCIES = [("EUR", 85), ("USD", 10), ("GBP", 5)]
RATES_TO_EUR = {"USD": 0.92, "GBP": 1.17, "CHF": 1.05}


@dataclass(frozen=True)
class Customer:
    index: int
    email: str
    name: str
    country: str
    city: str
    accepts_marketing: bool
    weight: float  # relative purchase propensity


def _customers(rng: random.Random, count: int) -> list[Customer]:
    customers = []
    for i in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        country, city, _ = rng.choices(COUNTRIES, weights=[c[2] for c in COUNTRIES])[0]
        customers.append(
            Customer(
                index=i,
                email=f"{first}.{last}.{i}@example.com".lower(),
                name=f"{first} {last}",
                country=country,
                city=city,
                accepts_marketing=rng.random() < 0.6,
                weight=rng.paretovariate(1.5),
            )
        )
    return customers


def _money(value: float) -> str:
    return f"{value:.2f}"


#: Column positions of the Shopify export, so a row is built as a list, not a dict per line.
_COLUMN = {h: i for i, h in enumerate(SHOPIFY_HEADER)}


def _cum_weights(customers: list[Customer]) -> list[float]:
    """Cumulative purchase propensities: computed once per demo, not once per day or order."""
    return list(itertools.accumulate(c.weight for c in customers))


def _row(values: dict[str, str]) -> list[str]:
    row = [""] * len(SHOPIFY_HEADER)
    for header, value in values.items():
        row[_COLUMN[header]] = value
    return row


def _shopify_day(
    rng: random.Random,
    day: date,
    customers: list[Customer],
    orders: int,
    next_number: int,
    cum_weights: list[float] | None = None,
) -> tuple[list[list[str]], int, list]:
    rows: list[list[str]] = []
    placed: list[Order] = []
    if cum_weights is None:
        cum_weights = _cum_weights(customers)
    for _ in range(orders):
        customer = rng.choices(customers, cum_weights=cum_weights)[0]
        number = next_number
        next_number += 1
        created = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
            seconds=rng.randrange(86400)
        )
        local = created.astimezone(rng.choice(OFFSETS))
        lines = [
            (rng.choice(PRODUCTS), rng.choices([1, 2, 3], weights=[80, 15, 5])[0])
            for _ in range(rng.choices([1, 2, 3, 4], weights=[55, 25, 12, 8])[0])
        ]
        subtotal = round(sum(p[2] * q for p, q in lines), 2)
        code, rate = rng.choice(DISCOUNTS) if rng.random() < 0.2 else ("", 0.0)
        discount = round(subtotal * rate, 2)
        shipping = 0.0 if subtotal >= 75 else 4.95
        taxes = round((subtotal - discount + shipping) * 0.19 / 1.19, 2)
        total = round(subtotal - discount + shipping, 2)
        status = rng.choices(["paid", "refunded", "partially_refunded"], weights=[92, 5, 3])[0]
        refunded = (
            total if status == "refunded" else round(total * 0.3, 2) if status != "paid" else 0
        )
        stamp = local.strftime("%Y-%m-%d %H:%M:%S %z")
        currency = rng.choices([c for c, _ in CURRENCIES], weights=[w for _, w in CURRENCIES])[0]
        placed.append(Order(number, customer.email, created, total, currency, code))
        email = customer.email
        if rng.random() < 0.08:  # typed differently at checkout
            email = f" {email.title()} " if rng.random() < 0.5 else email.upper()
        for position, ((name, sku, price), qty) in enumerate(lines):
            row = {
                "Name": f"#{number}",
                "Email": email,
                "Created at": stamp,
                "Lineitem quantity": str(qty),
                "Lineitem name": name,
                "Lineitem price": _money(price),
                "Lineitem compare at price": "",
                "Lineitem sku": sku,
                "Lineitem requires shipping": "true",
                "Lineitem taxable": "true",
                "Lineitem fulfillment status": "fulfilled",
                "Vendor": "Demo Outfitters",
                "Lineitem discount": _money(round(price * qty * rate, 2)),
            }
            if position == 0:
                row.update(
                    {
                        "Financial Status": status,
                        "Paid at": stamp,
                        "Fulfillment Status": "fulfilled",
                        "Fulfilled at": stamp,
                        "Accepts Marketing": "yes" if customer.accepts_marketing else "no",
                        "Currency": currency,
                        "Subtotal": _money(subtotal),
                        "Shipping": _money(shipping),
                        "Taxes": _money(taxes),
                        "Total": _money(total),
                        "Discount Code": code,
                        "Discount Amount": _money(discount),
                        "Shipping Method": "Standard",
                        "Billing Name": customer.name,
                        "Billing City": customer.city,
                        "Billing Country": customer.country,
                        "Shipping Name": customer.name,
                        "Shipping City": customer.city,
                        "Shipping Country": customer.country,
                        "Payment Method": rng.choice(
                            ["Shopify Payments", "PayPal Express Checkout"]
                        ),
                        "Refunded Amount": _money(refunded),
                        "Id": str(5_000_000_000 + number),
                        "Risk Level": "Low",
                        "Source": rng.choice(
                            ["web", "web", "web", "google", "facebook", "instagram", "pos"]
                        ),
                    }
                )
            rows.append(_row(row))
    return rows, next_number, placed


def _break_a_row(rng: random.Random, row: list[str]) -> list[str]:
    """A truly invalid row, as real exports occasionally contain."""
    broken = list(row)
    index = {h: i for i, h in enumerate(SHOPIFY_HEADER)}
    kind = rng.randrange(4)
    if kind == 0:
        broken[index["Created at"]] = "31/02/2026 25:61"
    elif kind == 1:
        broken[index["Currency"]] = "EURO"
    elif kind == 2 or broken[index["Financial Status"]]:
        # an order's first row carries its totals: without its Name the rest of the order would
        # load without totals, so a first row gets a bad quantity instead
        broken[index["Lineitem quantity"]] = "-2"
    else:
        broken[index["Name"]] = ""
    return broken


def _write_shopify(path: Path, rows: list[list[str]], eu_style: bool) -> None:
    """Shopify's CSV; an EU-locale spreadsheet round-trip gives ';', decimal commas and a BOM."""
    with path.open("w", encoding="utf-8-sig" if eu_style else "utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n", delimiter=";" if eu_style else ",")
        writer.writerow(SHOPIFY_HEADER)
        for row in rows:
            if eu_style:
                row = [
                    v.replace(".", ",") if v[:1].isdigit() and v.replace(".", "").isdigit() else v
                    for v in row
                ]
            writer.writerow(row)


def default_days(scale: float, configured: int = 60) -> int:
    """Days of history for a scale: a year from scale 0.1 (the volumes are per year), else
    ``configured`` (MWH_DEMO_DAYS)."""
    return 365 if scale >= 0.1 else configured


def generate(
    landing_dir: Path, end_date: date, days: int, seed: int = 42, scale: float = 0.01
) -> list[Path]:
    """Write ``days`` daily landing folders ending at ``end_date``; return the files written."""
    rng = random.Random(seed)
    customers = _customers(rng, max(20, int(100_000 * scale)))
    # ~1 M order lines a year at scale 1: about 1.6 lines per order -> ~1,700 orders a day.
    orders_per_day = max(3.0, 1_700 * scale)
    written: list[Path] = []
    next_number = 1001
    first_day = end_date - timedelta(days=days - 1)
    subscribers = [c for c in customers if c.index % 7 == 0]
    cum_weights = _cum_weights(customers)
    campaign_no = 0
    previous_file: Path | None = None
    for offset in range(days - 1, -1, -1):
        day = end_date - timedelta(days=offset)
        folder = landing_day(landing_dir, day)
        folder.mkdir(parents=True, exist_ok=True)
        weekday_boost = 1.25 if day.weekday() >= 5 else 1.0
        count = max(1, round(rng.gauss(orders_per_day * weekday_boost, orders_per_day * 0.15)))
        rows, next_number, orders = _shopify_day(
            rng, day, customers, count, next_number, cum_weights
        )
        rows = [_break_a_row(rng, r) if rng.random() < 0.003 else r for r in rows]
        target = folder / f"shopify_orders_export_{day.isoformat()}.csv"
        _write_shopify(target, rows, eu_style=offset % 10 == 5)
        written.append(target)
        if previous_file is not None and offset % 15 == 7:  # yesterday's export sent again
            resent = folder / f"shopify_orders_export_{day.isoformat()}_resent.csv"
            resent.write_bytes(previous_file.read_bytes())
            written.append(resent)
        previous_file = target
        fx_rows = fx_rates_day(rng, day)
        if fx_rows:
            fx_target = folder / f"fx_rates_{day.isoformat()}.xlsx"
            write_fx_workbook(fx_target, fx_rows)
            written.append(fx_target)
        written.append(marketing.stripe_day(rng, day, subscribers, folder))
        written.append(marketing.hubspot_day(rng, day, customers, folder, first_day))
        klaviyo = marketing.klaviyo_day(rng, day, customers, folder, campaign_no)
        campaign_no += bool(klaviyo)
        written += klaviyo
        written += marketing.ads_day(rng, day, folder, scale)
        vouchers = marketing.vouchers_day(rng, day, orders, folder)
        if vouchers:
            written.append(vouchers)
        written.append(marketing.events_day(rng, day, customers, orders, folder, scale))
    # the first day's orders may fall on a weekend: give the first delivery a week of history
    history = [r for d in range(7, 0, -1) for r in fx_rates_day(rng, first_day - timedelta(days=d))]
    write_fx_workbook(landing_day(landing_dir, first_day) / "fx_rates_history.xlsx", history)
    written.append(landing_day(landing_dir, first_day) / "fx_rates_history.xlsx")
    written.append(
        marketing.budgets(first_day, end_date, landing_day(landing_dir, first_day), scale)
    )
    written.append(
        marketing.experiments(
            first_day, end_date, customers, landing_day(landing_dir, first_day), rng
        )
    )
    return written


def fx_rates_day(rng: random.Random, day: date) -> list[tuple[date, str, str, float]]:
    """One business day of rates to EUR (none on weekends: the marts look back up to 7 days)."""
    if day.weekday() >= 5:
        return []
    return [
        (day, code, "EUR", round(base * (1 + rng.uniform(-0.02, 0.02)), 6))
        for code, base in RATES_TO_EUR.items()
    ]


def write_fx_workbook(target: Path, rows: list[tuple[date, str, str, float]]) -> None:
    """The finance team's workbook: a title-free header row, data, then a few blank rows."""
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "rates"
    sheet.append(["Date", "From", "To", "Rate"])
    for row in rows:
        sheet.append(list(row))
    for _ in range(3):
        sheet.append([None, None, None, None])
    target.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(target)
    # openpyxl stamps the current time into the workbook's properties; fix it so the same
    # seed gives byte-identical files (and the load ledger sees the same content hash).
    fix_xlsx_timestamps(target)


def landing_is_empty(landing_dir: Path) -> bool:
    return not landing_dir.exists() or not any(p.is_file() for p in landing_dir.rglob("*"))
