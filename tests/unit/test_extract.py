"""Extraction of one landed file: typing, every quarantine reason, and row conservation."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from conftest import order_row, write_shopify

from marketing_warehouse.contracts import contract_for
from marketing_warehouse.demo import SHOPIFY_HEADER
from marketing_warehouse.extract import FileRejected, extract_file

CONTRACT = contract_for("shopify__order_lines")
LOADED_AT = datetime(2026, 11, 22, 2, 0, 0)


def run(path: Path, tmp_path: Path):
    out, quarantine = tmp_path / "out.parquet", tmp_path / "q.parquet"
    result = extract_file(path, CONTRACT, date(2026, 11, 21), out, quarantine, LOADED_AT)
    rows = duckdb.sql(f"select * from read_parquet('{out}') order by _row_number").fetchall()
    cols = duckdb.sql(f"select * from read_parquet('{out}')").columns
    loaded = [dict(zip(cols, r, strict=True)) for r in rows]
    quarantined = []
    if quarantine.exists():
        q = duckdb.sql(f"select * from read_parquet('{quarantine}') order by row_number")
        quarantined = [dict(zip(q.columns, r, strict=True)) for r in q.fetchall()]
    assert result.rows_landed == result.rows_loaded + result.rows_quarantined
    assert result.rows_loaded == len(loaded)
    assert result.rows_quarantined == len(quarantined)
    return result, loaded, quarantined


def test_types_values_and_converts_offsets_to_utc(tmp_path):
    path = write_shopify(
        tmp_path / "shopify_orders_export.csv",
        [
            order_row(
                "#1",
                " Alice@Example.COM ",
                "2026-11-01 23:30:00 -0500",
                Total="67.32",
                Currency="eur",
                **{"Accepts Marketing": "yes"},
            ),
            order_row("#1", "alice@example.com", "2026-11-01 23:30:00 -0500", qty="2"),
            order_row("#2", "bob@example.com", "1762000000000", Total="1.234,50", Currency="EUR"),
            order_row("#3", "carol@example.com", "2026-11-03", Total="1,234.50", Currency="EUR"),
        ],
    )
    result, loaded, quarantined = run(path, tmp_path)
    assert (result.rows_landed, result.rows_loaded, quarantined) == (4, 4, [])
    first = loaded[0]
    assert first["created_at"] == datetime(2026, 11, 2, 4, 30)  # -05:00 -> UTC
    assert first["currency"] == "EUR"
    assert first["total_amount"] == Decimal("67.32")
    assert first["accepts_marketing"] is True
    assert first["_row_number"] == 1 and first["_source_file"] == path.name
    assert loaded[1]["lineitem_quantity"] == 2 and loaded[1]["total_amount"] is None
    assert loaded[2]["created_at"] == datetime(2025, 11, 1, 12, 26, 40)  # epoch milliseconds
    assert loaded[2]["total_amount"] == Decimal("1234.50")  # decimal comma
    assert loaded[3]["total_amount"] == Decimal("1234.50")  # thousands comma
    assert loaded[3]["created_at"] == datetime(2026, 11, 3)
    assert "Billing Street" in result.unknown_columns  # reported, not fatal


@pytest.mark.parametrize(
    ("row", "reason", "detail"),
    [
        (order_row("", "a@x.com", "2026-11-01 10:00:00 +0000"), "missing_required_value", "Name"),
        (order_row("#9", "a@x.com", "31/31/2026"), "invalid_timestamp", "Created at"),
        (
            order_row("#9", "a@x.com", "2026-11-01", qty="two"),
            "invalid_number",
            "Lineitem quantity",
        ),
        (order_row("#9", "a@x.com", "2026-11-01", qty="-1"), "out_of_range", "below the minimum"),
        (order_row("#9", "a@x.com", "2026-11-01", Currency="XYZ"), "unknown_currency", "XYZ"),
        (
            order_row("#9", "a@x.com", "2026-11-01", Total="12.3.4", Currency="EUR"),
            "invalid_number",
            "Total",
        ),
        (
            order_row("#9", "a@x.com", "2026-11-01", **{"Accepts Marketing": "maybe"}),
            "invalid_boolean",
            "Accepts Marketing",
        ),
        (dict(zip(SHOPIFY_HEADER, SHOPIFY_HEADER, strict=True)), "repeated_header", "header row"),
    ],
)
def test_each_row_reason_is_quarantined_with_the_raw_row(tmp_path, row, reason, detail):
    good = order_row("#1", "a@x.com", "2026-11-01 10:00:00 +0000")
    path = write_shopify(tmp_path / "shopify_orders.csv", [good, row, good])
    result, loaded, quarantined = run(path, tmp_path)
    assert result.rows_landed == 3 and len(loaded) == 2
    assert [q["reason_code"] for q in quarantined] == [reason]
    assert quarantined[0]["row_number"] == 2
    assert detail in quarantined[0]["reason_detail"]
    raw = json.loads(quarantined[0]["raw_content"])
    assert (raw["Name"] or "") == row["Name"]  # an empty cell is read as null
    assert result.quarantine_reasons == {reason: 1}


def test_one_bad_line_holds_back_the_whole_order(tmp_path):
    # Order #7's first row (with the totals) has a broken date: its second line must not load
    # alone, or the order would reappear without totals and with the wrong item count.
    path = write_shopify(
        tmp_path / "shopify_orders.csv",
        [
            order_row("#6", "a@x.com", "2026-11-01 10:00:00 +0000", Total="10", Currency="EUR"),
            order_row("#7", "b@x.com", "31/02/2026 25:61", Total="20", Currency="EUR"),
            order_row("#7", "b@x.com", "2026-11-01 11:00:00 +0000", qty="2"),
            order_row("#8", "c@x.com", "2026-11-01 12:00:00 +0000", Total="30", Currency="EUR"),
        ],
    )
    result, loaded, quarantined = run(path, tmp_path)
    assert [r["order_name"] for r in loaded] == ["#6", "#8"]
    assert [(q["row_number"], q["reason_code"]) for q in quarantined] == [
        (2, "invalid_timestamp"),
        (3, "incomplete_record"),
    ]
    assert "#7" in quarantined[1]["reason_detail"]
    assert result.quarantine_reasons == {"invalid_timestamp": 1, "incomplete_record": 1}


def test_malformed_row_is_quarantined_with_its_line(tmp_path):
    path = write_shopify(
        tmp_path / "shopify_orders.csv", [order_row("#1", "a@x.com", "2026-11-01")]
    )
    with path.open("a", encoding="utf-8") as handle:
        handle.write("#2,b@x.com,too,few,columns\n")
    result, loaded, quarantined = run(path, tmp_path)
    assert (result.rows_landed, len(loaded)) == (2, 1)
    assert quarantined[0]["reason_code"] == "malformed_row"
    assert quarantined[0]["row_number"] == 3  # physical line in the file
    assert quarantined[0]["raw_content"].startswith("#2,b@x.com")


def test_eu_export_semicolons_bom_and_decimal_comma(tmp_path):
    path = write_shopify(
        tmp_path / "shopify_orders.csv",
        [order_row("#1", "a@x.com", "2026-11-01 10:00:00 +0100", Total="67,32", Currency="EUR")],
        delimiter=";",
        encoding="utf-8-sig",
    )
    result, loaded, _ = run(path, tmp_path)
    assert (result.delimiter, result.encoding) == (";", "utf-8-sig")
    assert loaded[0]["order_name"] == "#1"
    assert loaded[0]["total_amount"] == Decimal("67.32")


def test_windows_1252_file_is_transcoded(tmp_path):
    path = write_shopify(
        tmp_path / "shopify_orders.csv",
        [order_row("#1", "a@x.com", "2026-11-01", **{"Billing Name": "Zoë Müller"})],
        encoding="cp1252",
    )
    result, loaded, _ = run(path, tmp_path)
    assert result.encoding == "cp1252"
    assert loaded[0]["billing_name"] == "Zoë Müller"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "empty_file"),
        (",".join(SHOPIFY_HEADER) + "\n", "empty_file"),
        ("Name,Email,Total\n#1,a@x.com,3\n", "missing_required_column"),
        ("Name,Name,Created at,Lineitem quantity\n#1,#1,2026-11-01,1\n", "duplicate_column"),
    ],
)
def test_whole_file_rejections_name_the_file(tmp_path, content, reason):
    path = tmp_path / "shopify_orders_bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(FileRejected) as caught:
        extract_file(
            path,
            CONTRACT,
            date(2026, 11, 21),
            tmp_path / "o.parquet",
            tmp_path / "q.parquet",
            LOADED_AT,
        )
    assert caught.value.reason == reason
    assert path.name in caught.value.message


def test_missing_column_message_lists_what_was_found(tmp_path):
    path = tmp_path / "shopify_orders_bad.csv"
    path.write_text("Name,Email,Total\n#1,a@x.com,3\n", encoding="utf-8")
    with pytest.raises(FileRejected, match=r"'Created at'.*found 'Name', 'Email', 'Total'"):
        extract_file(
            path,
            CONTRACT,
            date(2026, 11, 21),
            tmp_path / "o.parquet",
            tmp_path / "q.parquet",
            LOADED_AT,
        )
