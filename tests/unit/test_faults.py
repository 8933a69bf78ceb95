"""Faults injected into a load: an extractor bug, a machine error mid-partition, a crashed run."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime

import duckdb
import pytest
from conftest import order_row, write_shopify

from marketing_warehouse import extract, loads
from marketing_warehouse.contracts import contract_for
from marketing_warehouse.extract import neutralise_formula
from marketing_warehouse.loads import Ledger, load_source, staging_dir

CONTRACT = contract_for("shopify__order_lines")
DAY = date(2026, 11, 21)
AT = datetime(2026, 11, 22, 2, 0)


def landed(settings, name: str, orders: list[str]):
    rows = [order_row(o, "a@x.com", "2026-11-21 10:00:00 +0000") for o in orders]
    return write_shopify(settings.landing_dir / DAY.isoformat() / name, rows)


def dbt_view(settings) -> list[str]:
    """What dbt's raw source sees: the same glob as macros/raw_source.sql."""
    glob = settings.raw_dir / CONTRACT.key / "*" / "*.parquet"
    return [
        r[0]
        for r in duckdb.sql(
            f"select order_name from read_parquet('{glob}', union_by_name = true) "
            "where order_name is not null order by 1"
        ).fetchall()
    ]


def test_an_extractor_bug_quarantines_that_file_and_the_others_load(settings, monkeypatch):
    landed(settings, "shopify_orders_a.csv", ["#1"])
    landed(settings, "shopify_orders_b.csv", ["#2"])
    real = extract.extract_file

    def flaky(path, *args, **kwargs):
        if path.name == "shopify_orders_b.csv":
            raise ValueError("something nobody foresaw")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(loads, "extract_file", flaky)
    results = {r.source_file: r for r in load_source(settings, CONTRACT, DAY, AT)}
    assert results["shopify_orders_a.csv"].status == "loaded"
    bad = results["shopify_orders_b.csv"]
    assert (bad.status, bad.quarantine_reasons) == ("rejected", {"extract_failed": 1})
    assert "ValueError: something nobody foresaw" in bad.message
    assert dbt_view(settings) == ["#1"]


def test_a_machine_error_fails_the_task_and_keeps_the_previous_partition(settings, monkeypatch):
    landed(settings, "shopify_orders_a.csv", ["#1"])
    load_source(settings, CONTRACT, DAY, AT)
    ledger_before = Ledger(settings, CONTRACT).entries(DAY)
    landed(settings, "shopify_orders_b.csv", ["#2"])
    real = extract.extract_file

    def disk_full(path, *args, **kwargs):
        if path.name == "shopify_orders_b.csv":
            raise OSError(28, "No space left on device")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(loads, "extract_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        load_source(settings, CONTRACT, DAY, AT)  # Airflow retries the task
    assert dbt_view(settings) == ["#1"]  # the half-built partition is not in sight
    assert Ledger(settings, CONTRACT).entries(DAY) == ledger_before
    assert not staging_dir(settings, CONTRACT).exists()

    monkeypatch.setattr(loads, "extract_file", real)  # the retry succeeds
    assert {r.status for r in load_source(settings, CONTRACT, DAY, AT)} == {"loaded"}
    assert dbt_view(settings) == ["#1", "#2"]


def test_duckdb_out_of_memory_in_extraction_fails_the_task_instead_of_quarantining(settings):
    """Not the file's fault: the task fails (Airflow retries it) and nothing is quarantined."""
    landed(settings, "shopify_orders_a.csv", [f"#{i}" for i in range(20000)])
    starved = dataclasses.replace(settings, duckdb_memory_limit="1MiB")
    with pytest.raises(duckdb.OutOfMemoryException):
        load_source(starved, CONTRACT, DAY, AT)
    assert Ledger(settings, CONTRACT).entries(DAY) == []
    assert {r.status for r in load_source(settings, CONTRACT, DAY, AT)} == {"loaded"}


def test_leftovers_of_a_killed_run_are_never_read_and_are_cleared(settings):
    landed(settings, "shopify_orders_a.csv", ["#1"])
    load_source(settings, CONTRACT, DAY, AT)
    # a process killed while building the partition (no finally block ran)
    leftover = staging_dir(settings, CONTRACT) / f"raw-{DAY.isoformat()}"
    leftover.mkdir(parents=True)
    duckdb.sql(f"copy (select '#99' as order_name) to '{leftover / 'x.parquet'}' (format parquet)")
    assert dbt_view(settings) == ["#1"]
    load_source(settings, CONTRACT, DAY, AT)
    assert not leftover.exists()


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("@SUM(1+1)", "'@SUM(1+1)"),
        ("-10% off", "'-10% off"),
        ("\t=1+1", "'\t=1+1"),
        ("-12.50", "-12.50"),  # a number stays a number
        ("+49 30 1234567", "+49 30 1234567"),  # so does a phone number
        ("Summer sale = 20%", "Summer sale = 20%"),
        (12, 12),
        (None, None),
    ],
)
def test_formula_like_values_are_defused_for_spreadsheets(value, safe):
    assert neutralise_formula(value) == safe


def test_csv_export_defuses_formulas_and_keeps_numbers(tmp_path):
    from marketing_warehouse.cli import write_csv_export

    rel = duckdb.sql(
        "select * from (values ('=HYPERLINK(\"http://x\")', -5.5), ('Brand', 3.0)) t(name, amount)"
    )
    target = tmp_path / "out.csv"
    assert write_csv_export(rel, target) == 2
    text = target.read_text("utf-8-sig")
    assert text.splitlines() == ["name,amount", '"\'=HYPERLINK(""http://x"")",-5.5', "Brand,3.0"]
