"""Load ledger: idempotent re-runs, duplicate file drops, late files, whole-file quarantine."""

from __future__ import annotations

import json
from datetime import date, datetime

import duckdb
from conftest import order_row, write_shopify

from marketing_warehouse.config import load_settings
from marketing_warehouse.ingest.contracts import contract_for
from marketing_warehouse.ingest.loads import Ledger, load_source

CONTRACT = contract_for("shopify__order_lines")
AT = datetime(2026, 11, 22, 2, 0)


def day_file(settings, day: str, name: str, orders: list[str]):
    rows = [order_row(o, f"{o[1:]}@x.com", f"{day} 10:00:00 +0000") for o in orders]
    return write_shopify(settings.landing_dir / day / name, rows)


def raw_orders(settings) -> list[tuple]:
    glob = settings.layout.raw / "shopify__order_lines" / "*" / "*.parquet"
    return duckdb.sql(
        f"select _load_date::varchar, order_name from read_parquet('{glob}', union_by_name = true) "
        "order by 1, 2"
    ).fetchall()


def test_rerunning_a_date_replaces_its_partition(settings):
    day_file(settings, "2026-11-20", "shopify_orders_a.csv", ["#1", "#2"])
    first = load_source(settings, CONTRACT, date(2026, 11, 20), AT)
    assert [r.status for r in first] == ["loaded"]
    before = raw_orders(settings)
    again = load_source(settings, CONTRACT, date(2026, 11, 20), AT)
    assert [r.status for r in again] == ["loaded"]
    assert raw_orders(settings) == before == [("2026-11-20", "#1"), ("2026-11-20", "#2")]


def test_a_resent_file_is_skipped_as_duplicate(settings):
    original = day_file(settings, "2026-11-20", "shopify_orders_a.csv", ["#1"])
    load_source(settings, CONTRACT, date(2026, 11, 20), AT)
    # the same export dropped again the next day under another name
    resent = settings.landing_dir / "2026-11-21" / "shopify_orders_resent.csv"
    resent.parent.mkdir(parents=True)
    resent.write_bytes(original.read_bytes())
    day_file(settings, "2026-11-21", "shopify_orders_b.csv", ["#3"])
    results = load_source(settings, CONTRACT, date(2026, 11, 21), AT)
    assert sorted((r.source_file, r.status) for r in results) == [
        ("shopify_orders_b.csv", "loaded"),
        ("shopify_orders_resent.csv", "skipped_duplicate"),
    ]
    assert raw_orders(settings) == [("2026-11-20", "#1"), ("2026-11-21", "#3")]


def test_late_file_for_an_earlier_date_is_picked_up_once(settings):
    day_file(settings, "2026-11-20", "shopify_orders_a.csv", ["#1"])
    load_source(settings, CONTRACT, date(2026, 11, 20), AT)
    day_file(settings, "2026-11-20", "shopify_orders_late.csv", ["#2"])  # arrives after the run
    day_file(settings, "2026-11-21", "shopify_orders_b.csv", ["#3"])
    results = load_source(settings, CONTRACT, date(2026, 11, 21), AT)
    assert sorted(r.source_file for r in results) == [
        "shopify_orders_b.csv",
        "shopify_orders_late.csv",
    ]
    assert raw_orders(settings) == [
        ("2026-11-20", "#1"),
        ("2026-11-20", "#2"),
        ("2026-11-21", "#3"),
    ]
    entries = Ledger(settings, CONTRACT).entries(date(2026, 11, 20))
    assert sorted(e["source_file"] for e in entries) == [
        "shopify_orders_a.csv",
        "shopify_orders_late.csv",
    ]
    # and a second run does not load it again
    assert [r.source_file for r in load_source(settings, CONTRACT, date(2026, 11, 21), AT)] == [
        "shopify_orders_b.csv"
    ]


def test_backfilling_an_earlier_date_leaves_later_partitions_alone(settings):
    day_file(settings, "2026-11-20", "shopify_orders_a.csv", ["#1"])
    day_file(settings, "2026-11-21", "shopify_orders_b.csv", ["#2"])
    load_source(settings, CONTRACT, date(2026, 11, 21), AT)
    load_source(settings, CONTRACT, date(2026, 11, 20), AT)
    assert raw_orders(settings) == [("2026-11-20", "#1"), ("2026-11-21", "#2")]


def test_unreadable_file_is_quarantined_whole_and_the_rest_loads(settings):
    day_file(settings, "2026-11-21", "shopify_orders_good.csv", ["#1"])
    bad = settings.landing_dir / "2026-11-21" / "shopify_orders_bad.csv"
    bad.write_text("Order,Mail\n#2,b@x.com\n", encoding="utf-8")
    results = {r.source_file: r for r in load_source(settings, CONTRACT, date(2026, 11, 21), AT)}
    assert results["shopify_orders_good.csv"].status == "loaded"
    assert results["shopify_orders_bad.csv"].status == "rejected"
    assert "'Name'" in results["shopify_orders_bad.csv"].message
    glob = settings.layout.quarantine / "shopify__order_lines" / "*" / "*.parquet"
    rows = duckdb.sql(
        f"select source_file, row_number, reason_code, raw_content "
        f"from read_parquet('{glob}', union_by_name = true)"
    ).fetchall()
    size, digest = bad.stat().st_size, results["shopify_orders_bad.csv"].file_hash
    assert rows == [  # the entry keeps the file's size and hash, never its content
        (
            "shopify_orders_bad.csv",
            None,
            "missing_required_column",
            f"(content not copied: {size} bytes, sha256 {digest})",
        )
    ]
    ledger = json.loads(Ledger(settings, CONTRACT).path(date(2026, 11, 21)).read_text())
    assert {e["status"] for e in ledger} == {"loaded", "rejected"}


def test_a_ledger_entry_without_its_parquet_is_reloaded(settings):
    day_file(settings, "2026-11-20", "shopify_orders_a.csv", ["#1"])
    load_source(settings, CONTRACT, date(2026, 11, 20), AT)
    for part in (settings.layout.raw / "shopify__order_lines" / "load_date=2026-11-20").glob(
        "*.parquet"
    ):
        part.unlink()  # e.g. a crash between the data swap and the ledger write
    results = load_source(settings, CONTRACT, date(2026, 11, 21), AT)
    assert [r.source_file for r in results] == ["shopify_orders_a.csv"]
    assert raw_orders(settings) == [("2026-11-20", "#1")]


def test_a_duplicate_in_an_earlier_folder_is_recorded_once(settings):
    original = day_file(settings, "2026-11-19", "shopify_orders_a.csv", ["#1"])
    resent = settings.landing_dir / "2026-11-20" / "shopify_orders_a_again.csv"
    resent.parent.mkdir(parents=True)
    resent.write_bytes(original.read_bytes())
    day_file(settings, "2026-11-21", "shopify_orders_b.csv", ["#2"])
    results = load_source(settings, CONTRACT, date(2026, 11, 21), AT)
    assert sorted((r.source_file, r.status) for r in results) == [
        ("shopify_orders_a.csv", "loaded"),
        ("shopify_orders_a_again.csv", "skipped_duplicate"),
        ("shopify_orders_b.csv", "loaded"),
    ]
    again = load_source(settings, CONTRACT, date(2026, 11, 21), AT)
    assert [r.source_file for r in again] == ["shopify_orders_b.csv"]
    entries = Ledger(settings, CONTRACT).entries(date(2026, 11, 20))
    assert [(e["source_file"], e["status"]) for e in entries] == [
        ("shopify_orders_a_again.csv", "skipped_duplicate")
    ]
    assert raw_orders(settings) == [("2026-11-19", "#1"), ("2026-11-21", "#2")]


def _landing_with_late_duplicate_and_broken_files(settings) -> None:
    for day in range(10, 20):
        day_file(settings, f"2026-11-{day}", "shopify_orders_a.csv", [f"#{day}1", f"#{day}2"])
    resent = settings.landing_dir / "2026-11-15" / "shopify_orders_resent.csv"
    resent.write_bytes((settings.landing_dir / "2026-11-12" / "shopify_orders_a.csv").read_bytes())
    broken = settings.landing_dir / "2026-11-17" / "shopify_orders_broken.csv"
    broken.write_bytes(b"\x00\x01binary")
    day_file(settings, "2026-11-19", "shopify_orders_b.csv", ["#193"])


def _loaded_state(settings, results) -> tuple:
    ledger = Ledger(settings, CONTRACT)
    entries = sorted(
        (e["load_date"], e["source_file"], e["status"], e["rows_loaded"], e["rows_quarantined"])
        for e in ledger.all_entries()
    )
    return [(r.load_date, r.source_file, r.status) for r in results], entries, raw_orders(settings)


def test_files_extracted_in_parallel_load_exactly_as_one_at_a_time(tmp_path):
    """Ten days of files (a first night: nine late folders and the run's own), a re-sent file and
    an unreadable one: four extraction threads give the results, ledger and raw rows, in the same
    order, of one thread."""
    states = []
    for workers in ("1", "4"):
        settings = load_settings(
            {"MWH_DATA_DIR": str(tmp_path / workers), "MWH_EXTRACT_WORKERS": workers}
        )
        _landing_with_late_duplicate_and_broken_files(settings)
        states.append(
            _loaded_state(settings, load_source(settings, CONTRACT, date(2026, 11, 19), AT))
        )
    assert states[0] == states[1]
    results, entries, rows = states[1]
    assert len(entries) == 13
    assert len(results) == 13 and len(rows) == 21
    assert ("2026-11-15", "shopify_orders_resent.csv", "skipped_duplicate") in results
    assert ("2026-11-17", "shopify_orders_broken.csv", "rejected") in results


def test_a_link_out_of_the_landing_folder_is_refused_unread_and_one_inside_loads(
    settings, tmp_path
):
    outside = tmp_path / "elsewhere" / "customers.csv"
    write_shopify(outside, [order_row("#666", "secret.person@example.com", "2026-11-20 10:00:00")])
    inside = write_shopify(  # a shared export folder inside the landing folder
        settings.landing_dir / "exports" / "orders.csv",
        [order_row("#1", "a@x.com", "2026-11-20 10:00:00 +0000")],
    )
    folder = settings.landing_dir / "2026-11-20"
    folder.mkdir(parents=True)
    (folder / "shopify_orders_link_out.csv").symlink_to(outside)
    (folder / "shopify_orders_link_in.csv").symlink_to(inside)
    results = load_source(settings, CONTRACT, date(2026, 11, 20), AT)
    by_name = {r.source_file: r for r in results}
    refused = by_name["shopify_orders_link_out.csv"]
    assert refused.status == "rejected" and refused.quarantine_reasons == {"unsafe_path": 1}
    assert "outside the landing folder" in refused.message and "secret" not in refused.message
    assert by_name["shopify_orders_link_in.csv"].status == "loaded"
    # nothing of the linked file is stored: not in raw, quarantine or the ledger
    assert ("2026-11-20", "#666") not in raw_orders(settings)
    stored = [p for p in settings.layout.raw.rglob("*") if p.is_file()]  # raw, quarantine, ledger
    assert stored and not [p for p in stored if b"secret.person" in p.read_bytes()]
    ledger = Ledger(settings, CONTRACT).entries(date(2026, 11, 20))
    assert {e["source_file"]: e["status"] for e in ledger}["shopify_orders_link_out.csv"] == (
        "rejected"
    )
    # a re-run records the refusal again, once
    again = load_source(settings, CONTRACT, date(2026, 11, 20), AT)
    assert sorted(r.status for r in again) == ["loaded", "rejected"]


def test_the_landing_scan_lists_every_entry_no_run_reads_and_leaves_later_dates_out(settings):
    from marketing_warehouse.ingest.contracts import load_contracts
    from marketing_warehouse.ingest.loads import scan_landing

    landing = settings.landing_dir
    expected = {
        "2026-11-20/shopify_orders_a.csv": None,
        "2026-11-20/stripe_payments.csv": None,
        "2026-11-20/.DS_Store": "no_contract",
        "2026-11-20/Orders (1).xlsx": "no_contract",
        "2026-11-20/sub/shopify_orders_b.csv": "nested_folder",
        "2026-11-20/sub/deeper/x.csv": "nested_folder",
        "2026-11-20/broken_link.csv": "not_a_regular_file",
        "backup/2026-11-19/shopify_orders_c.csv": "outside_date_folder",
        "20261120/shopify_orders_d.csv": "outside_date_folder",
        "README.txt": "outside_date_folder",
    }
    for path, _ in expected.items():
        if path.endswith("broken_link.csv"):
            continue
        (landing / path).parent.mkdir(parents=True, exist_ok=True)
        (landing / path).write_text("x")
    (landing / "2026-11-20" / "broken_link.csv").symlink_to(landing / "gone.csv")
    (landing / "2026-11-21").mkdir()
    (landing / "2026-11-21" / "tomorrow.txt").write_text("x")
    scan = scan_landing(landing, date(2026, 11, 20), load_contracts())
    assert {e["path"]: e["ignored_reason"] for e in scan} == expected


STRIPE_HEADER = "id,Created date (UTC),Amount,Currency,Status,Customer Email"


def _stripe_file(settings, name: str, lines: list[str]):
    path = settings.landing_dir / "2026-11-20" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([STRIPE_HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def _quarantined(settings, key: str) -> list[tuple]:
    return duckdb.sql(
        f"select row_number::bigint, reason_code, reason_detail from read_parquet("
        f"'{settings.layout.quarantine}/{key}/load_date=*/*.parquet') order by 1"
    ).fetchall()


def test_rows_sharing_a_key_with_different_content_are_quarantined_the_rest_loads(settings):
    """Two payments under one id in one export: which is right cannot be told, so both go to
    quarantine; an exact repeat goes as a repeat (its first copy loads). The detail names the
    rows, never their values; the quarantined share decides whether the run stops."""
    _stripe_file(
        settings,
        "stripe_payments.csv",
        [
            "ch_1,2026-11-20 10:00:00,40.00,eur,paid,ann@example.com",
            "ch_2,2026-11-20 11:00:00,25.00,eur,paid,bob@example.com",
            "ch_1,2026-11-20 10:00:00,45.00,eur,paid,ann@example.com",
            "ch_3,2026-11-20 12:00:00,10.00,eur,paid,cy@example.com",
            "ch_3,2026-11-20 12:00:00,10.00,eur,paid,cy@example.com",  # an exact repeat
        ],
    )
    [result] = load_source(settings, contract_for("stripe__payments"), date(2026, 11, 20), AT)
    assert (result.status, result.rows_landed, result.rows_loaded) == ("loaded", 5, 2)
    assert result.quarantine_reasons == {"conflicting_key": 3}
    quarantined = _quarantined(settings, "stripe__payments")
    assert [(n, code) for n, code, _ in quarantined] == [
        (1, "conflicting_key"),
        (3, "conflicting_key"),
        (5, "conflicting_key"),
    ]
    details = [detail for _, _, detail in quarantined]
    assert "rows 1, 3 share the key" in details[0] and "a repeat of row 4" in details[2]
    assert not any(v in d for d in details for v in ("ann@", "40.00", "45.00", "ch_1", "ch_3"))
    loaded = duckdb.sql(
        f"select payment_id from read_parquet('{settings.layout.raw}/stripe__payments/"
        "load_date=*/*.parquet') order by 1"
    ).fetchall()
    assert loaded == [("ch_2",), ("ch_3",)]


def test_many_conflicting_keys_are_each_named_by_their_rows(settings):
    lines = [
        f"ch_{i},2026-11-20 10:00:00,{amount}.00,eur,paid,p{i}@example.com"
        for i in range(7)
        for amount in (10, 11)
    ]
    _stripe_file(settings, "stripe_payments.csv", lines)
    [result] = load_source(settings, contract_for("stripe__payments"), date(2026, 11, 20), AT)
    assert (result.rows_landed, result.rows_loaded) == (14, 0)
    details = [d for _, _, d in _quarantined(settings, "stripe__payments")]
    assert [d.startswith(f"rows {2 * (i // 2) + 1}, {2 * (i // 2) + 2} share") for i, d in
            enumerate(details)] == [True] * 14  # fmt: skip


META_HEADER = (
    "Campaign name,Campaign ID,Ad set name,Ad name,Age,Gender,Day,Currency,Impressions,"
    "Amount spent (EUR)"
)


def _meta_file(settings, lines: list[str]):
    path = settings.landing_dir / "2026-11-20" / "meta_ads_ads.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([META_HEADER, *lines]) + "\n", encoding="utf-8")
    return load_source(settings, contract_for("meta_ads__campaign_stats"), date(2026, 11, 20), AT)


def test_an_ad_level_report_loads_every_row_of_a_campaign_and_day(settings):
    [result] = _meta_file(
        settings,
        [
            "Spring,61,Set A,Ad 1,25-34,female,2026-11-19,EUR,100,1.50",
            "Spring,61,Set A,Ad 1,25-34,male,2026-11-19,EUR,120,1.70",
            "Spring,61,Set A,Ad 2,25-34,female,2026-11-19,EUR,90,1.10",
            "Spring,61,Set B,Ad 1,25-34,female,2026-11-19,EUR,80,0.90",
        ],
    )
    assert (result.status, result.rows_loaded, result.unknown_columns) == ("loaded", 4, [])


def test_a_repeated_row_of_an_additive_report_quarantines_the_file(settings):
    """Rows of an ad report are summed: a row pasted twice would count twice."""
    [result] = _meta_file(
        settings,
        [
            "Spring,61,Set A,Ad 1,25-34,female,2026-11-19,EUR,100,1.50",
            "Spring,61,Set A,Ad 2,25-34,female,2026-11-19,EUR,90,1.10",
            "Spring,61,Set A,Ad 1,25-34,female,2026-11-19,EUR,100,1.50",
        ],
    )
    assert (result.status, result.quarantine_reasons) == ("rejected", {"unresolvable_keys": 1})
    assert "repeat the same campaign_id, report_date, ad_set_id" in result.message
    assert "rows 1, 3." in result.message


def test_rows_of_one_campaign_and_day_in_two_currencies_quarantine_the_file(settings):
    [result] = _meta_file(
        settings,
        [
            "Spring,61,Set A,Ad 1,25-34,female,2026-11-19,EUR,100,1.50",
            "Spring,61,Set A,Ad 2,25-34,female,2026-11-19,USD,90,1.10",
        ],
    )
    assert (result.status, result.quarantine_reasons) == ("rejected", {"unresolvable_keys": 1})
    assert "share campaign_id, report_date but differ in campaign_name, currency" in result.message


def test_each_row_records_when_its_file_landed(settings):
    """_landed_at is the landed file's modification time (UTC), whatever the file's name."""
    import os

    path = day_file(settings, "2026-11-20", "shopify_orders_a.csv", ["#1"])
    os.utime(path, (1_795_000_000.25, 1_795_000_000.25))  # 2026-11-18 11:06:40.25 UTC
    load_source(settings, CONTRACT, date(2026, 11, 20), AT)
    glob = settings.layout.raw / "shopify__order_lines" / "load_date=*" / "*.parquet"
    landed = duckdb.sql(f"select distinct _landed_at::varchar from read_parquet('{glob}')")
    assert landed.fetchall() == [("2026-11-18 11:06:40.25",)]


def test_the_same_rows_in_other_bytes_are_a_skipped_duplicate(settings):
    """One export saved again as UTF-16 with CRLF line ends, beside it and (a day later) in the
    next folder: one delivery, loaded once."""
    export = day_file(settings, "2026-11-20", "shopify_orders.csv", ["#1", "#2"])
    text = export.read_text("utf-8").replace("\n", "\r\n")
    (export.parent / "shopify_orders_excel.csv").write_bytes(text.encode("utf-16"))
    first = load_source(settings, CONTRACT, date(2026, 11, 20), AT)
    assert [(r.source_file, r.status, r.rows_loaded) for r in first] == [
        ("shopify_orders.csv", "loaded", 2),
        ("shopify_orders_excel.csv", "skipped_duplicate", 0),
    ]
    assert "the same rows as shopify_orders.csv in other bytes" in first[1].message
    later = settings.landing_dir / "2026-11-21" / "shopify_orders_again.csv"
    later.parent.mkdir(parents=True)
    later.write_bytes(text.encode("cp1252"))
    second = load_source(settings, CONTRACT, date(2026, 11, 21), AT)
    assert [(r.source_file, r.status) for r in second] == [
        ("shopify_orders_again.csv", "skipped_duplicate")
    ]
    assert raw_orders(settings) == [("2026-11-20", "#1"), ("2026-11-20", "#2")]
    again = load_source(settings, CONTRACT, date(2026, 11, 20), AT)  # a rerun of the day
    assert [r.status for r in again] == ["loaded", "skipped_duplicate"]
    assert raw_orders(settings) == [("2026-11-20", "#1"), ("2026-11-20", "#2")]
