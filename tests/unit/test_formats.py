"""JSON, JSON-lines and xlsx exports, tool-specific quirks, and their quarantine reasons."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

import duckdb
import pytest

from marketing_warehouse.ingest.contracts import contract_for
from marketing_warehouse.ingest.extract import FileRejected, extract_file
from marketing_warehouse.tools.demo_marketing import write_workbook

AT = datetime(2026, 11, 22, 2, 0)
DAY = date(2026, 11, 21)


def run(path, key, tmp_path):
    out, q = tmp_path / "o.parquet", tmp_path / "q.parquet"
    result = extract_file(path, contract_for(key), DAY, out, q, AT)
    rel = duckdb.sql(f"select * from read_parquet('{out}') order by _row_number")
    loaded = [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]
    quarantined = []
    if q.exists():
        rel = duckdb.sql(f"select * from read_parquet('{q}') order by row_number")
        quarantined = [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]
    assert result.rows_landed == len(loaded) + len(quarantined)
    return result, loaded, quarantined


def test_jsonl_events_epoch_and_iso_z_and_a_broken_line(tmp_path):
    path = tmp_path / "product_events_x.jsonl"
    lines = [
        json.dumps({"messageId": "m1", "event": "login", "timestamp": 1763719200000, "userId": "u1",
                    "context": {"device": "ios"}}),
        json.dumps({"messageId": "m2", "event": "order_placed", "timestamp": "2026-11-21T10:00:00.000Z",
                    "email": " Bob@X.com ", "properties": {"value": 12.5}}),
        '{"messageId": "m3", "event": "login", "timestamp": ',
        json.dumps({"event": "login", "timestamp": "2026-11-21T10:00:00Z"}),
    ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _, loaded, quarantined = run(path, "product__events", tmp_path)
    assert [r["message_id"] for r in loaded] == ["m1", "m2"]
    assert loaded[0]["occurred_at"] == datetime(2025, 11, 21, 10, 0)
    assert loaded[0]["device"] == "ios"
    assert loaded[1]["occurred_at"] == datetime(2026, 11, 21, 10, 0)
    assert loaded[1]["email"] == "bob@x.com" and loaded[1]["value_amount"] == Decimal("12.5")
    assert [(q["row_number"], q["reason_code"]) for q in quarantined] == [
        (3, "malformed_row"),
        (4, "missing_required_value"),
    ]
    assert "invalid JSON" in quarantined[0]["reason_detail"]


def test_voucher_json_wrapper_and_nested_fields(tmp_path):
    path = tmp_path / "voucher_redemptions_x.json"
    path.write_text(json.dumps({"object": "list", "redemptions": [
        {"id": "r1", "object": "redemption", "date": "2026-11-21T09:59:30.000Z", "result": "SUCCESS",
         "voucher": {"code": "WELCOME10", "campaign": "WELCOME"},
         "customer": {"email": "a@x.com"}, "order": {"id": "#1", "amount": 6732, "discount_amount": 693, "currency": "EUR"}},
        {"id": "r2", "object": "redemption", "date": "2026-11-21T10:00:00.000Z", "result": "FAILURE",
         "failure_code": "voucher_expired", "voucher": {"code": "OLD5"}},
    ]}), encoding="utf-8")  # fmt: skip
    _, loaded, quarantined = run(path, "vouchers__redemptions", tmp_path)
    assert quarantined == []
    assert loaded[0]["voucher_code"] == "WELCOME10" and loaded[0]["order_amount_minor"] == 6732
    assert (
        loaded[1]["failure_code"] == "voucher_expired" and loaded[1]["order_amount_minor"] is None
    )


def test_invalid_json_file_is_rejected_whole(tmp_path):
    path = tmp_path / "voucher_redemptions_bad.json"
    path.write_text('{"redemptions": [ {"id": "r1", ', encoding="utf-8")
    with pytest.raises(FileRejected) as caught:
        run(path, "vouchers__redemptions", tmp_path)
    assert caught.value.reason == "unreadable_file" and "invalid JSON" in caught.value.message


def test_google_ads_title_lines_thousands_and_total_rows(tmp_path):
    path = tmp_path / "google_ads_x.csv"
    path.write_text(
        "Campaign report\nNovember 21, 2026 - November 21, 2026\n"
        "Day,Campaign,Campaign ID,Currency code,Impr.,Clicks,Cost,Conversions,Conv. value\n"
        '2026-11-21,Search - Brand,1801,EUR,"8,411",501,"1,220.61",12.33,838.44\n'
        'Total: Account,,,EUR,"8,411",501,"1,220.61",12.33,838.44\n',
        encoding="utf-8",
    )
    _, loaded, quarantined = run(path, "google_ads__campaign_stats", tmp_path)
    assert loaded[0]["impressions"] == 8411 and loaded[0]["cost"] == Decimal("1220.61")
    assert [q["reason_code"] for q in quarantined] == ["summary_row"]


def test_meta_dates_in_several_formats_and_an_impossible_day(tmp_path):
    path = tmp_path / "meta_ads_x.csv"
    path.write_text(
        "Campaign name,Campaign ID,Day,Currency,Impressions,Amount spent (EUR)\n"
        "A,1,2026-11-21,EUR,10,1.00\n"
        "B,2,21/11/2026,EUR,10,1.00\n"
        "C,3,2026-02-30,EUR,10,1.00\n",
        encoding="utf-8",
    )
    _, loaded, quarantined = run(path, "meta_ads__campaign_stats", tmp_path)
    assert [r["report_date"] for r in loaded] == [date(2026, 11, 21), date(2026, 11, 21)]
    assert [(q["row_number"], q["reason_code"]) for q in quarantined] == [(3, "invalid_date")]
    assert "2026-02-30" in quarantined[0]["reason_detail"]


def test_meta_spend_header_carries_the_currency(tmp_path):
    path = tmp_path / "meta_ads_x.csv"
    path.write_text(
        "Reporting starts,Reporting ends,Campaign name,Campaign ID,Day,Currency,Impressions,"
        "Link clicks,Amount spent (GBP),Results,Purchases conversion value\n"
        "2026-11-21,2026-11-21,Prospecting,2385,2026-11-21,GBP,1000,12,54.20,2,123.00\n",
        encoding="utf-8",
    )
    _, loaded, _ = run(path, "meta_ads__campaign_stats", tmp_path)
    assert (loaded[0]["cost"], loaded[0]["currency"]) == (Decimal("54.20"), "GBP")


def test_hubspot_us_locale_dates_and_free_text_country_kept(tmp_path):
    path = tmp_path / "hubspot_contacts_x.csv"
    path.write_text(
        "Record ID,Email,Country/Region,Create Date,Unsubscribed from all email\n"
        "1, A@X.COM ,Deutschland,11/21/2026 14:05,false\n",
        encoding="utf-8",
    )
    _, loaded, _ = run(path, "hubspot__contacts", tmp_path)
    assert loaded[0]["created_at"] == datetime(2026, 11, 21, 14, 5)
    assert loaded[0]["email"] == "a@x.com" and loaded[0]["country"] == "Deutschland"


def test_xlsx_blank_trailing_rows_other_sheets_and_typed_cells(tmp_path):
    path = write_workbook(
        tmp_path / "experiments_plan.xlsx",
        {
            "plan": [["Experiment", "Start", "End", "Primary metric"],
                     ["EXP-1", datetime(2026, 11, 1), date(2026, 11, 30), "conversion"]],
            "assignments": [["Experiment", "Email", "Variant"], ["EXP-1", "a@x.com", "control"],
                            ["EXP-1", "b@x.com", "treatment"]],
        },
    )  # fmt: skip
    result, loaded, quarantined = run(path, "spreadsheets__experiments", tmp_path)
    assert quarantined == [] and len(loaded) == 1  # two blank trailing rows are not records
    assert loaded[0]["start_date"] == date(2026, 11, 1) and loaded[0]["_row_number"] == 2
    assert "(sheets not read: assignments)" in result.unknown_columns
    _, assigned, _ = run(path, "spreadsheets__experiment_assignments", tmp_path)
    assert [a["variant"] for a in assigned] == ["control", "treatment"]


def test_missing_sheet_and_non_xlsx_file_are_rejected(tmp_path):
    path = write_workbook(tmp_path / "experiments_plan.xlsx", {"Sheet1": [["a"], [1]]})
    with pytest.raises(FileRejected, match="sheet 'plan' not found"):
        run(path, "spreadsheets__experiments", tmp_path)
    fake = tmp_path / "fx_rates_fake.xlsx"
    fake.write_text("Date,From,To,Rate\n", encoding="utf-8")
    with pytest.raises(FileRejected, match=r"not a readable \.xlsx workbook"):
        run(fake, "spreadsheets__fx_rates", tmp_path)


def test_json_keys_match_in_any_case_and_spacing_nested_ones_too(tmp_path):
    path = tmp_path / "product_events_x.jsonl"
    lines = [
        {"messageId": "m1", "event": "login", "timestamp": "2026-11-21T10:00:00Z",
         "context": {"device": "ios"}},
        {"MessageID": "m2", " Event ": "login", "TIMESTAMP": "2026-11-21T11:00:00Z",
         "Context": {"Device": "android"}},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    _, loaded, quarantined = run(path, "product__events", tmp_path)
    assert quarantined == []
    assert [(r["message_id"], r["device"]) for r in loaded] == [("m1", "ios"), ("m2", "android")]


def test_google_ads_total_rows_are_found_by_structure_and_a_total_campaign_loads(tmp_path):
    path = tmp_path / "google_ads_x.csv"
    path.write_text(
        "Day,Campaign,Campaign ID,Currency code,Impr.,Clicks,Cost,Conversions,Conv. value\n"
        "2026-11-21,Total Sale Nov,1801,EUR,100,5,10.00,1,20.00\n"
        "2026-11-21,Search - Brand,1802,EUR,50,2,5.00,0,0\n"
        "Total: Account,,,EUR,150,7,15.00,1,20.00\n"
        ",Total: Campaigns,,EUR,150,7,15.00,1,20.00\n",
        encoding="utf-8",
    )
    _, loaded, quarantined = run(path, "google_ads__campaign_stats", tmp_path)
    assert [r["campaign_name"] for r in loaded] == ["Total Sale Nov", "Search - Brand"]
    assert [(q["row_number"], q["reason_code"]) for q in quarantined] == [
        (3, "summary_row"),
        (4, "summary_row"),
    ]
