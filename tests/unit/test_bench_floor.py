"""The benchmark's floor reads every landed row the way the contracts read it.

Its ratios are only worth something if the floor reads what the pipeline reads: the same files,
delimiters, encodings and every line. Shopify exports are the hard case: every order line starts
with the order name ``#1001``, which DuckDB's CSV sniffer can take for a comment character."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
from conftest import order_row, write_shopify

from marketing_warehouse.tools.bench import FLOOR_SHOPIFY_COLUMNS, landed_files, read_landed_csv

DAY = "2026-11-20"


def _orders(first: int, count: int, total: str, **extra: str) -> list[dict[str, str]]:
    """``count`` two-line orders as Shopify exports them (totals on the first line only)."""
    rows = []
    for n in range(first, first + count):
        rows.append(
            order_row(
                f"#{n}",
                f"buyer{n}@example.com",
                f"{DAY} 10:00:00 +0100",
                Total=total,
                Currency="EUR",
                **{"Financial Status": "paid"},
                **extra,
            )
        )
        rows.append(order_row(f"#{n}", "", "", **{"Lineitem name": "Socks, grey"}))
    return rows


def _landing(root: Path) -> Path:
    landing = root / "landing"
    folder = landing / DAY
    # a line without an order name (the contract quarantines it): with it, DuckDB's sniffer
    # reads '#' as a comment character and keeps only this line of the file
    write_shopify(
        folder / "shopify_orders_export.csv",
        [*_orders(1001, 40, "24.90"), order_row("", "x@example.com", f"{DAY} 11:00:00 +0100")],
    )
    # an EU-locale round trip: ';', decimal commas, a byte order mark
    write_shopify(
        folder / "shopify_orders_export_eu.csv",
        _orders(2001, 25, "24,90"),
        delimiter=";",
        encoding="utf-8-sig",
    )
    # a Windows-1252 export (a German name in the billing column)
    write_shopify(
        folder / "shopify_orders_export_win.csv",
        _orders(3001, 15, "24.90", **{"Billing Name": "Jörg Müller"}),
        encoding="cp1252",
    )
    (folder / "orders backup.csv").write_text("Name\n#9\n", "utf-8")  # no contract claims it
    return landing


def _rows_per_file(landing: Path) -> dict[str, int]:
    """Data rows per landed Shopify file, counted with the csv module (decoded per file)."""
    counts = {}
    for path in sorted((landing / DAY).glob("shopify_orders*.csv")):
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = raw.decode("cp1252")
        delimiter = ";" if text.split("\n", 1)[0].count(";") > 1 else ","
        counts[path.name] = sum(1 for _ in csv.DictReader(text.splitlines(), delimiter=delimiter))
    return counts


def test_the_floor_reads_every_line_of_every_shopify_export(tmp_path):
    landing = _landing(tmp_path)
    files = landed_files(landing, "shopify__order_lines")
    assert [f.name for f in files] == sorted(_rows_per_file(landing))
    query = read_landed_csv(files, [*FLOOR_SHOPIFY_COLUMNS, "Billing Name"], tmp_path / "scratch")
    con = duckdb.connect()
    read = dict(
        con.execute(
            f"select regexp_extract(filename, '[^/]*$'), count(*) from ({query}) group by 1"
        ).fetchall()
    )
    assert (
        read
        == _rows_per_file(landing)
        == {
            "shopify_orders_export.csv": 81,
            "shopify_orders_export_eu.csv": 50,
            "shopify_orders_export_win.csv": 30,
        }
    )
    names, totals, billing = con.execute(
        'select count(distinct "Name"), count("Total"), '
        "count(*) filter (where \"Billing Name\" = 'Jörg Müller') "
        f"from ({query})"
    ).fetchone()
    assert (names, totals, billing) == (40 + 25 + 15, 40 + 25 + 15, 15)
    # values arrive as the export wrote them: the floor's SQL reads the decimal commas
    assert con.execute(
        f'select distinct "Total" from ({query}) where "Total" is not null order by 1'
    ).fetchall() == [("24,90",), ("24.90",)]
