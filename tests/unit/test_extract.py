"""Extraction of one landed file: typing, every quarantine reason, and row conservation."""

from __future__ import annotations

import csv
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from conftest import order_row, write_shopify

from marketing_warehouse.ingest.contracts import contract_for
from marketing_warehouse.ingest.extract import FileRejected, extract_file, file_preview, file_sha256
from marketing_warehouse.ingest.quarantine import QUARANTINE_SCHEMA
from marketing_warehouse.tools.demo import SHOPIFY_HEADER

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
        # every quarantine file has the declared columns and types (an engine that merges the
        # files' schemas, as Spark does, fails on a DOUBLE row_number beside a BIGINT one)
        assert dict(zip(q.columns, map(str, q.types), strict=True)) == QUARANTINE_SCHEMA
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


# --- values: day-month order, plausibility and row rules -------------------------------------

META_HEADER = ["Reporting starts", "Reporting ends", "Campaign name", "Campaign ID", "Day",
               "Currency", "Impressions", "Link clicks", "Amount spent (USD)", "Results",
               "Purchases conversion value"]  # fmt: skip
STRIPE_HEADER = ["id", "Description", "Seller Message", "Created date (UTC)", "Amount",
                 "Amount Refunded", "Currency", "Captured", "Converted Amount", "Fee", "Mode",
                 "Status", "Statement Descriptor", "Customer ID", "Customer Description",
                 "Customer Email", "Card Address Country", "Invoice ID"]  # fmt: skip


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_xlsx(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for name, table in sheets.items():
        sheet = book.create_sheet(name)
        for row in table:
            sheet.append(row)
    book.save(path)
    return path


def extract(path: Path, key: str, tmp_path: Path, day: date = date(2026, 11, 21), **kwargs):
    """(result, loaded rows, quarantined rows) of ``path`` under contract ``key``."""
    out, quarantine = tmp_path / f"{path.stem}.parquet", tmp_path / f"{path.stem}.q.parquet"
    result = extract_file(path, contract_for(key), day, out, quarantine, LOADED_AT, **kwargs)
    loaded = duckdb.sql(f"select * from read_parquet('{out}') order by _row_number")
    quarantined = []
    if quarantine.exists():
        q = duckdb.sql(f"select * from read_parquet('{quarantine}') order by row_number")
        quarantined = [dict(zip(q.columns, r, strict=True)) for r in q.fetchall()]
        # every quarantine file has the declared columns and types (an engine that merges the
        # files' schemas, as Spark does, fails on a DOUBLE row_number beside a BIGINT one)
        assert dict(zip(q.columns, map(str, q.types), strict=True)) == QUARANTINE_SCHEMA
    rows = [dict(zip(loaded.columns, r, strict=True)) for r in loaded.fetchall()]
    assert result.rows_landed == result.rows_loaded + result.rows_quarantined
    assert (result.rows_loaded, result.rows_quarantined) == (len(rows), len(quarantined))
    return result, rows, quarantined


def meta_row(day: str, impressions: int = 1200, clicks: int = 31) -> list[object]:
    return ["11/01/2026", "11/20/2026", "Black Friday - prospecting", "120210000000001", day,
            "USD", impressions, clicks, "84.20", 3, "184.50"]  # fmt: skip


def test_meta_export_with_us_dates_reads_them_month_first(tmp_path):
    # 11/05/2026 could be 11 May; 11/18/2026 in the same file says the file writes months first
    path = write_csv(
        tmp_path / "meta_ads_report.csv",
        META_HEADER,
        [meta_row("11/05/2026"), meta_row("11/18/2026"), meta_row("11/09/2026")],
    )
    result, loaded, quarantined = extract(path, "meta_ads__campaign_stats", tmp_path)
    assert quarantined == []
    assert [r["report_date"] for r in loaded] == [
        date(2026, 11, 5),
        date(2026, 11, 18),
        date(2026, 11, 9),
    ]
    assert loaded[0]["reporting_starts"] == date(2026, 11, 1)
    assert (result.date_order, result.date_order_assumed) == ("month_first", False)


def fx_table(*rows: list[object]) -> list[list[object]]:
    return [["Date", "From", "To", "Rate"], *rows]


def test_fx_workbook_with_uk_text_dates_reads_every_row_day_first(tmp_path):
    path = write_xlsx(
        tmp_path / "fx_rates_nov.xlsx",
        {
            "rates": fx_table(
                ["05/11/2026", "USD", "EUR", 0.9312], ["21/11/2026", "USD", "EUR", 0.94]
            )
        },
    )
    result, loaded, quarantined = extract(path, "spreadsheets__fx_rates", tmp_path)
    assert quarantined == []
    assert [r["rate_date"] for r in loaded] == [date(2026, 11, 5), date(2026, 11, 21)]
    assert (result.date_order, result.date_order_assumed) == ("day_first", False)


def test_a_file_whose_dates_all_read_both_ways_uses_the_contract_default_and_says_so(
    tmp_path, caplog
):
    path = write_xlsx(
        tmp_path / "fx_rates_early_nov.xlsx",
        {"rates": fx_table(["05/11/2026", "USD", "EUR", 0.93], ["06/11/2026", "USD", "EUR", 0.94])},
    )
    with caplog.at_level("WARNING"):
        result, loaded, _ = extract(path, "spreadsheets__fx_rates", tmp_path)
    assert [r["rate_date"] for r in loaded] == [date(2026, 11, 5), date(2026, 11, 6)]
    assert (result.date_order, result.date_order_assumed) == ("day_first", True)
    assert "fx_rates_early_nov.xlsx" in caplog.text and "read as day first" in caplog.text


def test_iso_dates_need_no_day_month_order(tmp_path, caplog):
    path = write_csv(tmp_path / "meta_ads_iso.csv", META_HEADER, [meta_row("2026-11-05")])
    with caplog.at_level("WARNING"):
        result, loaded, _ = extract(path, "meta_ads__campaign_stats", tmp_path)
    assert loaded[0]["report_date"] == date(2026, 11, 5)
    # the Reporting starts/ends columns (11/01, 11/20) tell month first
    assert (result.date_order, result.date_order_assumed) == ("month_first", False)
    assert caplog.text == ""


def test_a_file_with_dates_in_both_orders_is_rejected_whole(tmp_path):
    path = write_xlsx(
        tmp_path / "fx_rates_pasted.xlsx",
        {"rates": fx_table(["21/11/2026", "USD", "EUR", 0.94], ["11/20/2026", "USD", "EUR", 0.93])},
    )
    with pytest.raises(FileRejected) as caught:
        extract(path, "spreadsheets__fx_rates", tmp_path)
    assert caught.value.reason == "ambiguous_date_order"
    message = caught.value.message
    assert message.startswith("fx_rates_pasted.xlsx: 1 date(s) are written day first")
    assert 'row 2 (column "Date": 21/11/2026)' in message
    assert 'row 3 (column "Date": 11/20/2026)' in message


def test_an_order_dated_2100_is_quarantined_not_stretched_into_the_calendar(tmp_path):
    path = write_shopify(
        tmp_path / "shopify_orders.csv",
        [
            order_row("#1", "a@x.com", "2026-11-20 10:00:00 +0000", Total="10", Currency="EUR"),
            order_row("#2", "b@x.com", "2100-11-20 10:00:00 +0000", Total="20", Currency="EUR"),
            order_row("#3", "c@x.com", "2026-11-22 23:00:00 +0000", Total="30", Currency="EUR"),
        ],
    )
    _, loaded, quarantined = extract(path, "shopify__order_lines", tmp_path)
    assert [r["order_name"] for r in loaded] == ["#1", "#3"]  # tomorrow: time zones
    assert [(q["row_number"], q["reason_code"]) for q in quarantined] == [(2, "implausible_date")]
    assert '"Created at": 2100-11-20' in quarantined[0]["reason_detail"]
    assert "1990-01-01 (MWH_EARLIEST_DATE) .. 2026-11-22" in quarantined[0]["reason_detail"]


def test_years_of_history_load_for_an_old_run_date(tmp_path):
    path = write_shopify(
        tmp_path / "shopify_orders_1998.csv",
        [order_row("#1", "a@x.com", "1998-06-30 10:00:00 +0000", Total="10", Currency="EUR")],
    )
    _, loaded, quarantined = extract(path, "shopify__order_lines", tmp_path, day=date(1998, 7, 1))
    assert (len(loaded), quarantined) == (1, [])


def test_the_earliest_plausible_date_is_a_setting(settings, tmp_path):
    from marketing_warehouse.config import load_settings
    from marketing_warehouse.ingest.loads import load_source

    strict = load_settings(
        {"MWH_DATA_DIR": str(settings.data_dir), "MWH_EARLIEST_DATE": "2000-01-01"}
    )
    folder = strict.landing_dir / "2026-11-21"
    folder.mkdir(parents=True)
    write_shopify(
        folder / "shopify_orders_history.csv",
        [
            order_row("#1", "a@x.com", "1999-12-31 10:00:00 +0000", Total="10", Currency="EUR"),
            order_row("#2", "b@x.com", "2000-01-01 10:00:00 +0000", Total="20", Currency="EUR"),
        ],
    )
    (result,) = load_source(strict, CONTRACT, date(2026, 11, 21), LOADED_AT)
    assert (result.rows_loaded, result.quarantine_reasons) == (1, {"implausible_date": 1})


def stripe_row(number: int, amount: str) -> list[object]:
    return [f"ch_3Q{number:08d}", "Membership", "Payment complete.", "2026-11-20 09:15:02", amount,
            "0.00", "eur", "true", amount, "1.20", "Live", "Paid", "SHOP", f"cus_{number:06d}",
            "", "", "DE", ""]  # fmt: skip


def test_a_trillion_euro_payment_is_quarantined_a_large_b2b_one_is_not(tmp_path):
    # 40 ordinary payments (median 49.00), one typed with all nines, one mistyped 99,999,999 and
    # a real 2.5 million B2B payment
    amounts = ["49.00"] * 40 + ["999999999999.00", "99999999.00", "2500000.00"]
    path = write_csv(
        tmp_path / "stripe_payments.csv",
        STRIPE_HEADER,
        [stripe_row(n, a) for n, a in enumerate(amounts, 1)],
    )
    _, loaded, quarantined = extract(path, "stripe__payments", tmp_path)
    assert [(q["row_number"], q["reason_code"]) for q in quarantined] == [
        (41, "implausible_amount"),
        (42, "implausible_amount"),
    ]
    assert "above the ceiling of 1,000,000,000" in quarantined[0]["reason_detail"]
    assert "100,000 times the median 49" in quarantined[1]["reason_detail"]
    assert len(loaded) == 41 and loaded[-1]["amount"] == Decimal("2500000")
    published = sum(Decimal(r[4]) for r in csv.reader(path.open()) if r[4] != "Amount")
    assert sum(r["amount"] for r in loaded) == published - Decimal("999999999999") - Decimal(
        "99999999"
    )


def test_in_a_small_file_only_the_ceiling_applies(tmp_path):
    path = write_csv(
        tmp_path / "stripe_payments_b2b.csv",
        STRIPE_HEADER,
        [stripe_row(1, "120.00"), stripe_row(2, "7500000.00")],
    )
    _, loaded, quarantined = extract(path, "stripe__payments", tmp_path)
    assert (len(loaded), quarantined) == (2, [])


def test_the_amount_ceiling_is_a_setting(tmp_path):
    from marketing_warehouse.config import load_settings

    plausibility = load_settings({"MWH_MAX_AMOUNT": "5_000_000"}).plausibility
    path = write_csv(
        tmp_path / "stripe_payments_b2b.csv",
        STRIPE_HEADER,
        [stripe_row(1, "120.00"), stripe_row(2, "7500000.00")],
    )
    result, _, quarantined = extract(path, "stripe__payments", tmp_path, plausibility=plausibility)
    assert result.quarantine_reasons == {"implausible_amount": 1}
    assert "above the ceiling of 5,000,000" in quarantined[0]["reason_detail"]


def test_an_fx_rate_above_the_maximum_is_quarantined_alone(tmp_path):
    path = write_xlsx(
        tmp_path / "fx_rates_typo.xlsx",
        {
            "rates": fx_table(
                ["2026-11-20", "USD", "EUR", 0.94], ["2026-11-20", "JPY", "EUR", 16250]
            )
        },
    )
    _, loaded, quarantined = extract(path, "spreadsheets__fx_rates", tmp_path)
    assert [r["from_currency"] for r in loaded] == ["USD"]
    assert [(q["row_number"], q["reason_code"]) for q in quarantined] == [(3, "out_of_range")]
    assert '"Rate": 16250 is above the maximum 10000' in quarantined[0]["reason_detail"]


def test_voucher_results_in_known_spellings_load_as_the_canonical_value(tmp_path):
    def redemption(number: int, result: str) -> dict:
        return {"id": f"r_{number:012x}", "object": "redemption", "date": "2026-11-20T10:00:00.000Z",
                "result": result, "voucher": {"code": "BF20", "campaign": "BF"},
                "order": {"id": f"#{number}", "amount": 4990, "discount_amount": 499,
                          "currency": "EUR"}}  # fmt: skip

    records = [redemption(1, "SUCCESS"), redemption(2, "success"), redemption(3, " Succeeded "),
               redemption(4, "FAILURE"), redemption(5, "sucess")]  # fmt: skip
    path = tmp_path / "voucher_redemptions.json"
    path.write_text(json.dumps({"object": "list", "redemptions": records}), "utf-8")
    _, loaded, quarantined = extract(path, "vouchers__redemptions", tmp_path)
    assert [r["result"] for r in loaded] == ["SUCCESS", "SUCCESS", "SUCCESS", "FAILURE"]
    assert [(q["row_number"], q["reason_code"]) for q in quarantined] == [(5, "unknown_value")]
    assert '"result": sucess is not one of SUCCESS, FAILURE' in quarantined[0]["reason_detail"]


def test_assignments_whose_emails_differ_only_in_case_conflict(tmp_path):
    table = [["Experiment", "Email", "Variant", "Assigned at"],
             ["EXP-001", "ana@example.com", "control", "2026-11-01 00:00:00"],
             ["EXP-001", "Ana@Example.com", "treatment", "2026-11-01 00:00:00"],
             ["EXP-001", "ben@example.com", "control", "2026-11-01 00:00:00"],
             ["EXP-001", "BEN@example.com", "control", "2026-11-01 00:00:00"],
             ["EXP-001", "cleo@example.com", "treatment", "2026-11-01 00:00:00"]]  # fmt: skip
    path = write_xlsx(tmp_path / "experiments_plan.xlsx", {"assignments": table})
    _, loaded, quarantined = extract(path, "spreadsheets__experiment_assignments", tmp_path)
    assert [r["email"] for r in loaded] == ["ben@example.com", "cleo@example.com"]
    assert [(q["row_number"], q["reason_code"]) for q in quarantined] == [
        (2, "conflicting_key"),
        (3, "conflicting_key"),
        (5, "conflicting_key"),
    ]
    assert "rows 2, 3 share the key (Experiment, Email)" in quarantined[0]["reason_detail"]
    assert "a repeat of row 4" in quarantined[2]["reason_detail"]
    assert not any("@" in q["reason_detail"] for q in quarantined)  # no e-mail in the detail


def test_an_ad_row_with_more_clicks_than_impressions_is_quarantined(tmp_path):
    path = write_csv(
        tmp_path / "meta_ads_report.csv",
        META_HEADER,
        [meta_row("2026-11-19"), meta_row("2026-11-20", impressions=40, clicks=55)],
    )
    _, loaded, quarantined = extract(path, "meta_ads__campaign_stats", tmp_path)
    assert len(loaded) == 1
    assert [(q["row_number"], q["reason_code"]) for q in quarantined] == [
        (2, "implausible_metrics")
    ]
    assert (
        'column "Link clicks" (55) is not <= column "Impressions" (40)'
        in (quarantined[0]["reason_detail"])
    )


def test_an_order_with_a_total_but_no_currency_is_held_back_with_a_reason(tmp_path):
    path = write_shopify(
        tmp_path / "shopify_orders.csv",
        [
            order_row("#1", "a@x.com", "2026-11-20 10:00:00 +0000", Total="10", Currency="EUR"),
            order_row("#2", "b@x.com", "2026-11-20 11:00:00 +0000", Total="20"),
            order_row("#2", "b@x.com", "2026-11-20 11:00:00 +0000"),
        ],
    )
    _, loaded, quarantined = extract(path, "shopify__order_lines", tmp_path)
    assert [r["order_name"] for r in loaded] == ["#1"]
    assert [(q["row_number"], q["reason_code"]) for q in quarantined] == [
        (2, "missing_required_value"),
        (3, "incomplete_record"),
    ]
    assert 'column "Currency" is empty but required when any of' in quarantined[0]["reason_detail"]


def test_created_at_on_an_orders_first_row_only_fills_its_other_rows(tmp_path):
    # as Shopify writes it: order-level fields on the first line-item row only
    path = write_shopify(
        tmp_path / "shopify_orders.csv",
        [
            order_row("#1", "a@x.com", "2026-11-20 10:00:00 +0100", Total="50", Currency="EUR"),
            order_row("#1", "a@x.com", "", qty="2"),
            order_row("#1", "a@x.com", ""),
            order_row("#2", "b@x.com", "2026-11-20 12:00:00 +0100", Total="30", Currency="EUR"),
            order_row("#2", "b@x.com", ""),
            order_row("#3", "c@x.com", "", Total="10", Currency="EUR"),  # no date at all
            order_row("#3", "c@x.com", "2026-11-20 13:00:00 +0100"),
        ],
    )
    result, loaded, quarantined = extract(path, "shopify__order_lines", tmp_path)
    assert [(r["order_name"], r["created_at"]) for r in loaded] == [
        ("#1", datetime(2026, 11, 20, 9)),
        ("#1", datetime(2026, 11, 20, 9)),
        ("#1", datetime(2026, 11, 20, 9)),
        ("#2", datetime(2026, 11, 20, 11)),
        ("#2", datetime(2026, 11, 20, 11)),
    ]
    assert [(q["row_number"], q["reason_code"]) for q in quarantined] == [
        (6, "missing_required_value"),
        (7, "incomplete_record"),
    ]
    assert result.filled_values == {"Created at": 3}


def _contract(**extra) -> dict:
    return {
        "source": "shop",
        "entity": "orders",
        "file_pattern": "shop*.csv",
        "columns": [
            {"header": "Day", "name": "day", "type": "date"},
            {"header": "Status", "name": "status", "type": "string"},
            {"header": "Clicks", "name": "clicks", "type": "integer"},
        ],
        **extra,
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"date_formats": ["%d/%m/%Y", "%m/%d/%Y"]}, "set date_order"),
        ({"date_formats": ["%d/%m/%Y", "%m/%d/%Y"], "date_order": "us"}, "date_order must be"),
        ({"row_checks": [{"rule": "clicks <= views", "reason": "implausible_metrics"}]}, "views"),
        ({"row_checks": [{"rule": "clicks < 3", "reason": "implausible_metrics"}]}, "not 'a <= b'"),
        ({"row_checks": [{"rule": "clicks <= clicks", "reason": "odd"}]}, "unknown quarantine"),
    ],
)
def test_contract_rules_are_checked_when_the_contract_loads(extra, message):
    from marketing_warehouse.ingest.contracts import ContractError, _parse

    with pytest.raises(ContractError, match=message):
        _parse(_contract(**extra), None)


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ({"accepted_values": ["a"]}, "string columns only"),
        ({"event_date": True}, "date and timestamp columns only"),
        ({"amount": "cents"}, "amount is major or minor"),
        ({"required_with": ["nothing"]}, "unknown column"),
        ({"fill_from_record": True}, "record_group"),
    ],
)
def test_column_rules_are_checked_when_the_contract_loads(column, message):
    from marketing_warehouse.ingest.contracts import ContractError, _parse

    data = _contract()
    data["columns"][2] |= column
    with pytest.raises(ContractError, match=message):
        _parse(data, None)


# --- the load ledger, bytes, encodings, names and headers ------------------------------------


def fifty_orders(tmp_path: Path) -> tuple[Path, list[str]]:
    names = [f"#{1001 + i}" for i in range(50)]
    rows = [
        order_row(n, f"p{i}@example.com", "2026-11-21 10:00:00 +0000") for i, n in enumerate(names)
    ]
    return write_shopify(tmp_path / "shopify_orders_export.csv", rows), names


def test_an_unclosed_quote_in_row_2_of_50_costs_row_2_only(tmp_path):
    path, names = fifty_orders(tmp_path)
    lines = path.read_text("utf-8").split("\n")
    lines[2] = lines[2].replace("Organic Cotton Tee", '"Organic Cotton Tee', 1)  # never closed
    path.write_text("\n".join(lines), encoding="utf-8")
    # counted apart from the pipeline: the csv module reads one long value from row 2 on
    with path.open(encoding="utf-8", newline="") as handle:
        assert len(list(csv.reader(handle))) - 1 == 2
    result, loaded, quarantined = run(path, tmp_path)
    assert (result.rows_landed, result.rows_loaded, result.rows_quarantined) == (50, 49, 1)
    assert [r["order_name"] for r in loaded] == names[:1] + names[2:]
    assert [(q["row_number"], q["reason_code"]) for q in quarantined] == [(3, "malformed_row")]
    assert "line 3" in quarantined[0]["reason_detail"]
    assert "unclosed quote" in quarantined[0]["reason_detail"]
    assert result.rows_lost_at == ""


def test_multi_line_notes_and_addresses_stay_one_record(tmp_path):
    path = write_shopify(
        tmp_path / "shopify_orders_export.csv",
        [
            order_row("#1", "a@example.com", "2026-11-21", Notes="Leave at the door\nThanks, Jörg"),
            order_row("#2", "b@example.com", "2026-11-21", Lineitem_name="Tee\nsize M, blue"),
            order_row("#3", "c@example.com", "2026-11-21"),
        ],
    )
    result, loaded, quarantined = run(path, tmp_path)
    assert (result.rows_landed, len(loaded), quarantined) == (3, 3, [])
    assert loaded[1]["lineitem_name"] == "Tee\nsize M, blue"


def test_one_windows_1252_byte_in_a_utf8_file_quarantines_that_row_only(tmp_path):
    path = write_shopify(
        tmp_path / "shopify_orders_export.csv",
        [
            order_row("#1", "a@example.com", "2026-11-21", **{"Billing Name": "jörg"}),
            order_row("#2", "b@example.com", "2026-11-21", **{"Billing Name": "Zoë"}),
            order_row("#3", "c@example.com", "2026-11-21", **{"Billing Name": "REPLACE"}),
        ],
    )
    path.write_bytes(path.read_bytes().replace(b"REPLACE", "Café".encode("cp1252")))
    result, loaded, quarantined = run(path, tmp_path)
    assert result.encoding == "utf-8"
    assert [r["billing_name"] for r in loaded] == ["jörg", "Zoë"]
    assert [(q["row_number"], q["reason_code"]) for q in quarantined] == [(4, "undecodable_row")]
    assert quarantined[0]["reason_detail"] == (
        "line 4: not in the encoding of the rest of the file (utf-8)"
    )


def test_a_utf8_line_in_a_windows_1252_file_is_quarantined_not_garbled(tmp_path):
    path = write_shopify(
        tmp_path / "shopify_orders_export.csv",
        [
            order_row("#1", "a@example.com", "2026-11-21", **{"Billing Name": "Zoë Müller"}),
            order_row("#2", "b@example.com", "2026-11-21", **{"Billing Name": "Größe"}),
            order_row("#3", "c@example.com", "2026-11-21", **{"Billing Name": "REPLACE"}),
        ],
        encoding="cp1252",
    )
    path.write_bytes(path.read_bytes().replace(b"REPLACE", "jörg".encode()))
    result, loaded, quarantined = run(path, tmp_path)
    assert result.encoding == "cp1252"
    assert [r["billing_name"] for r in loaded] == ["Zoë Müller", "Größe"]
    assert [(q["row_number"], q["reason_code"]) for q in quarantined] == [(4, "undecodable_row")]


def test_one_utf8_line_and_one_windows_1252_line_read_as_utf8(tmp_path):
    """A tie: UTF-8 wins, so the UTF-8 name loads as written and the other row is quarantined."""
    path = write_shopify(
        tmp_path / "shopify_orders_export.csv",
        [
            order_row("#1", "a@example.com", "2026-11-21", **{"Billing Name": "jörg"}),
            order_row("#2", "b@example.com", "2026-11-21", **{"Billing Name": "REPLACE"}),
        ],
    )
    path.write_bytes(path.read_bytes().replace(b"REPLACE", "Café".encode("cp1252")))
    result, loaded, quarantined = run(path, tmp_path)
    assert (result.encoding, [r["billing_name"] for r in loaded]) == ("utf-8", ["jörg"])
    assert [(q["row_number"], q["reason_code"]) for q in quarantined] == [(3, "undecodable_row")]


def test_mixed_crlf_and_lf_line_ends_load(tmp_path):
    """Lines ending LF and CRLF by turns (rows edited by two tools). DuckDB refused such a file
    whole when its lines end in a value (here the payment reference), not in an empty cell."""
    names = ["#1", "#2", "#3", "#4"]
    path = write_shopify(
        tmp_path / "shopify_orders_export.csv",
        [
            order_row(n, "a@example.com", "2026-11-21", **{"Payment References": f"r{n}"})
            for n in names
        ],
    )
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join(ln + b"\r" if i % 2 and ln else ln for i, ln in enumerate(lines)))
    _, loaded, quarantined = run(path, tmp_path)
    assert [r["order_name"] for r in loaded] == names and quarantined == []


def test_nul_bytes_never_reach_raw_and_their_rows_are_quarantined(tmp_path):
    path, names = fifty_orders(tmp_path)
    lines = path.read_bytes().split(b"\n")
    lines[5] = lines[5].replace(b"Organic Cotton Tee", b"Organic\x00 Cotton Tee")
    lines[9] = b"\x00" * 4096 + lines[9]  # a zeroed disk block in front of an order
    path.write_bytes(b"\n".join(lines))
    _, loaded, quarantined = run(path, tmp_path)
    assert [r["order_name"] for r in loaded] == [n for i, n in enumerate(names) if i not in (4, 8)]
    assert [(q["row_number"], q["reason_code"]) for q in quarantined] == [
        (6, "nul_bytes"),
        (10, "nul_bytes"),
    ]
    assert "<4096 NUL bytes>#1009" in quarantined[1]["raw_content"]
    assert not any("\x00" in str(v) for r in loaded for v in r.values())
    assert not any("\x00" in str(v) for q in quarantined for v in q.values())


def test_a_landed_name_of_252_characters_loads(tmp_path):
    name = "shopify_orders_" + "x" * (252 - len("shopify_orders_.csv")) + ".csv"
    path = write_shopify(
        tmp_path / name,
        [order_row("#1", "a@example.com", "2026-11-21", **{"Billing Name": "Zoë"})],
        encoding="cp1252",
    )
    assert len(path.name) == 252
    result, loaded, _ = run(path, tmp_path)
    assert (result.source_file, len(loaded)) == (name, 1)


def test_a_headerless_export_is_rejected_without_copying_its_first_record(tmp_path):
    path = tmp_path / "shopify_orders_bad.csv"
    path.write_text(
        "#1001,jorg.muller@example.com,2026-11-21 10:00:00 +0000,1,Jörg Müller\n"
        "#1002,ann@example.com,2026-11-21 11:00:00 +0000,2,Ann Lee\n",
        encoding="utf-8",
    )
    with pytest.raises(FileRejected) as caught:
        extract_file(
            path,
            CONTRACT,
            date(2026, 11, 21),
            tmp_path / "o.parquet",
            tmp_path / "q.parquet",
            LOADED_AT,
        )
    message = caught.value.message
    assert caught.value.reason == "missing_required_column" and path.name in message
    assert "is the header row missing?" in message
    for value in ("#1001", "jorg.muller", "Jörg", "2026-11-21"):
        assert value not in message


def test_a_whole_file_quarantine_entry_keeps_size_and_hash_not_bytes(tmp_path):
    text = tmp_path / "shopify_orders_bad.csv"
    text.write_text("#1001,jorg.muller@example.com,Jörg Müller\n", encoding="utf-8")
    image = tmp_path / "shopify_orders_image.csv"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + "Jörg Müller".encode() + bytes(range(256)))
    for path in (text, image):
        digest = file_sha256(path)
        preview = file_preview(path, digest)
        assert preview.startswith(
            f"(content not copied: {path.stat().st_size} bytes, sha256 {digest}"
        )
        assert "rg" not in preview.replace(digest, "")
    assert file_preview(image, "h").endswith(", a PNG image)")


def test_a_headerless_export_reaches_no_run_summary_log_ledger_or_quarantine(settings, caplog):
    import logging

    from marketing_warehouse import pipeline

    folder = settings.landing_dir / "2026-11-21"
    folder.mkdir(parents=True)
    (folder / "shopify_orders_bad.csv").write_text(
        "#1001,jorg.muller@example.com,2026-11-20 10:00:00 +0000,1,Jörg Müller,+49 30 1234567\n"
        "#1002,ann@example.com,2026-11-20 11:00:00 +0000,2,Ann Lee,+49 30 7654321\n",
        encoding="utf-8",
    )
    with caplog.at_level(logging.INFO):
        summary = pipeline.extract_source("shopify__order_lines", "2026-11-21", settings)
    assert (
        summary["rejected_files"] and "is the header row missing?" in summary["rejected_files"][0]
    )
    written = [
        (settings.layout.run("2026-11-21").extract_summary("shopify__order_lines")).read_text(),
        *(p.read_text() for p in settings.layout.ledger.rglob("*.json")),
        caplog.text,
    ]
    glob = settings.layout.quarantine / "shopify__order_lines" / "load_date=*" / "*.parquet"
    written += [str(r) for r in duckdb.sql(f"select * from read_parquet('{glob}')").fetchall()]
    for value in ("#1001", "jorg.muller", "Jörg", "1234567", "2026-11-20"):
        assert not any(value in text for text in written), value
