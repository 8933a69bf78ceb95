"""Benchmarks measured side by side in one process: our code against DuckDB's own floor.

``extraction``: Shopify exports of at least ``lines`` order lines, extracted with the contract
(typing, quarantine checks, lineage, Parquet) and, on the same files in the same run, read by
DuckDB's ``read_csv`` with auto-detection into Parquet. The ratio is what the contract costs.
"""

from __future__ import annotations

import random
import resource
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

from marketing_warehouse import demo
from marketing_warehouse.contracts import contract_for
from marketing_warehouse.extract import extract_file


@dataclass
class Timing:
    name: str
    seconds: float
    rows: int
    megabytes: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def megabytes_per_second(self) -> float:
        return self.megabytes / self.seconds if self.seconds else 0.0


def write_shopify_exports(folder: Path, lines: int, seed: int = 42) -> list[Path]:
    """Daily Shopify exports (scale 1: ~100 k customers) until at least ``lines`` rows exist."""
    rng = random.Random(seed)
    customers = demo._customers(rng, 100_000)
    folder.mkdir(parents=True, exist_ok=True)
    files, written, number = [], 0, 1001
    day = date(2026, 1, 1)
    while written < lines:
        rows, number, _ = demo._shopify_day(rng, day, customers, 5_000, number)
        target = folder / f"shopify_orders_export_{day.isoformat()}.csv"
        demo._write_shopify(target, rows, eu_style=False)
        files.append(target)
        written += len(rows)
        day += timedelta(days=1)
    return files


def extraction(workdir: Path, lines: int = 1_000_000) -> dict:
    files = write_shopify_exports(workdir / "landing", lines)
    megabytes = sum(f.stat().st_size for f in files) / 1e6
    contract = contract_for("shopify__order_lines")
    loaded_at = datetime.now(UTC).replace(tzinfo=None)

    start = time.perf_counter()
    rows = 0
    for i, path in enumerate(files):
        result = extract_file(
            path,
            contract,
            date(2026, 1, 1),
            workdir / "raw" / f"{i}.parquet",
            workdir / "quarantine" / f"{i}.parquet",
            loaded_at,
        )
        rows += result.rows_landed
    ours = Timing("contract extraction", time.perf_counter() - start, rows, megabytes)

    start = time.perf_counter()
    con = duckdb.connect()
    con.execute("set enable_progress_bar = false")
    floor_file = workdir / "floor.parquet"
    glob = str(workdir / "landing" / "*.csv")
    con.execute(
        f"copy (select * from read_csv('{glob}', filename = true)) to '{floor_file}' "
        "(format parquet)"
    )
    floor_rows = con.execute(f"select count(*) from read_parquet('{floor_file}')").fetchone()[0]
    con.close()
    floor = Timing("duckdb read_csv floor", time.perf_counter() - start, floor_rows, megabytes)

    report = {
        "lines": rows,
        "files": len(files),
        "megabytes": round(megabytes, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "timings": [
            asdict(t)
            | {
                "rows_per_second": round(t.rows_per_second),
                "megabytes_per_second": round(t.megabytes_per_second, 1),
            }
            for t in (ours, floor)
        ],
        "ratio_ours_to_floor": round(ours.seconds / floor.seconds, 2),
    }
    return report


def format_extraction(report: dict) -> str:
    out = [
        f"{report['lines']:,} Shopify order lines in {report['files']} files, "
        f"{report['megabytes']} MB",
        f"{'':24}{'seconds':>10}{'rows/s':>12}{'MB/s':>8}",
    ]
    for t in report["timings"]:
        out.append(
            f"{t['name']:24}{t['seconds']:>10.1f}{t['rows_per_second']:>12,}"
            f"{t['megabytes_per_second']:>8}"
        )
    out.append(f"ratio contract / floor: {report['ratio_ours_to_floor']}x")
    return "\n".join(out)
