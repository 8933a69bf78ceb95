"""The dates a warehouse is run for: 19 to 21 November run out of order (a backfill) give the marts
of one clean run, BI readers through a run only see whole versions, and a date years before the
DAG was written runs every task and publishes. Beside test_dag.py, in the other test process."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest
from conftest import order_row, write_shopify
from dag_runs import (
    DEMO_END,
    RUN,
    SNAPSHOT_MARTS,
    land_demo_days,
    mart_fingerprints,
    mwh_run,
    run_env,
    settings_for,
    version_digest,
)
from stages import run_stages

from marketing_warehouse.serve.publish import PUBLISHED_MARTS

pytestmark = pytest.mark.integration

#: A BI tool in its own process, printing one JSON line per query round: a hash of every mart, the
#: newest logical date in audit.publish_log and the problems found by checks that fail on a mix of
#: versions. Mode "fresh" opens a new read-only connection for each round (as BI tools do per
#: query); mode "held" keeps the one it opened at start. Stops when a line arrives on stdin.
#: (Two processes, because DuckDB shares one open database among a process's connections to a
#: file: a new connection beside a held one would see the held one's version.)
READER = textwrap.dedent(
    """
    import hashlib, json, select, sys, traceback
    import duckdb

    path, marts, mode = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    pause = 0.2 if mode == "fresh" else 1.0  # seconds between rounds
    CHECKS = {
        "kpi_daily orders = revenue orders in fct_orders": (
            "select (select sum(orders) from marts.kpi_daily)"
            " = (select count(*) from marts.fct_orders where is_revenue_order)"
        ),
        "kpi_daily revenue = revenue of fct_orders": (
            "select (select sum(revenue) from marts.kpi_daily)"
            " = (select sum(total_amount_reporting) from marts.fct_orders where is_revenue_order)"
        ),
        "kpi_daily new customers = buying customers of fct_orders": (
            "select (select sum(new_customers) from marts.kpi_daily) = (select count(distinct"
            " customer_id) from marts.fct_orders where is_revenue_order)"
        ),
        "the run's dim_customer_segments snapshot covers dim_customers": (
            "select (select count(*) from marts.dim_customer_segments where snapshot_date ="
            " (select max_by(logical_date, published_at) from audit.publish_log))"
            " = (select count(*) from marts.dim_customers)"
        ),
    }

    def digest(con):
        prints = {}
        for mart in marts:
            rows = con.execute(f"select * from marts.{mart} order by all").fetchall()
            prints[mart] = hashlib.sha256(repr(rows).encode()).hexdigest()
        return hashlib.sha256(json.dumps(prints, sort_keys=True).encode()).hexdigest()

    def problems(con):
        found = [name for name, sql in CHECKS.items() if not con.execute(sql).fetchone()[0]]
        # the last publish's log lists every table of this file with its row count
        logged = con.execute(
            "select relation, row_count from audit.publish_log"
            " where run_id = (select max_by(run_id, published_at) from audit.publish_log)"
        ).fetchall()
        for relation, rows in logged:
            counted = con.execute(f"select count(*) from {relation}").fetchone()[0]
            if counted != rows:
                found.append(f"{relation}: {counted} rows, publish_log says {rows}")
        return found

    def seen(con):
        date = "select max_by(logical_date, published_at) from audit.publish_log"
        return {
            "digest": digest(con),
            "date": str(con.execute(date).fetchone()[0]),
            "problems": problems(con),
        }

    held = duckdb.connect(path, read_only=True) if mode == "held" else None
    while True:
        try:
            if held is not None:
                line = seen(held)
            else:
                con = duckdb.connect(path, read_only=True)
                try:
                    line = seen(con)
                finally:
                    con.close()
        except Exception:
            line = {"error": traceback.format_exc()}
        print(json.dumps(line), flush=True)
        if select.select([sys.stdin], [], [], pause)[0]:
            break
    """
)


@contextlib.contextmanager
def _readers(serving: Path, folder: Path) -> Iterator[dict[str, list[dict]]]:
    """Run the two ``READER`` processes on ``serving`` through the ``with`` block; yield the rounds
    each saw (filled in on exit). Each has done its first round when the block starts."""
    rounds: dict[str, list[dict]] = {}
    procs, outputs = {}, {}
    try:
        for mode in ("fresh", "held"):
            outputs[mode] = folder / f"reader-{mode}.jsonl"
            with outputs[mode].open("w") as out:
                procs[mode] = subprocess.Popen(
                    [sys.executable, "-c", READER, str(serving), json.dumps(PUBLISHED_MARTS), mode],
                    stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, text=True,
                )  # fmt: skip
        for mode, proc in procs.items():
            while not outputs[mode].read_text():
                assert proc.poll() is None, outputs[mode].read_text()
                time.sleep(0.1)
        yield rounds
    finally:
        for proc in procs.values():
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):  # a reader that died: its output says why
                proc.stdin.write("stop\n")
                proc.stdin.close()
        for mode, proc in procs.items():
            assert proc.wait(timeout=60) == 0, outputs[mode].read_text()[-3000:]
            rounds[mode] = [json.loads(line) for line in outputs[mode].read_text().splitlines()]


def _await_rounds(output: Path, digest: str, rounds: int, timeout: float = 60.0) -> None:
    """Wait until a reader's output shows ``rounds`` rounds on the version ``digest``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = output.read_text().splitlines()
        if sum(json.loads(line).get("digest") == digest for line in lines) >= rounds:
            return
        time.sleep(0.2)


@dataclass
class Backfill:
    """The backfill's serving file, and what readers saw during its run of 21 November."""

    serving: Path
    old: tuple[str, str] = ("", "")  # (digest, logical date) served before the run of the 21st
    new: tuple[str, str] = ("", "")  # ... and after it
    rounds: dict[str, list[dict]] = field(default_factory=dict)  # what readers saw during it


#: The backfill: 20 and 21 November as two nightly runs, then 19 November backfilled. 19 November
#: is first loaded as a late file by the run of the 20th, then reloaded by its own run after later
#: dates exist, and the last run's logical date is not the newest. Raw partitions are keyed by
#: landing date and the marts are rebuilt from all of them whatever the run's date, so "the marts
#: of one clean run" are those of one run of the newest date on a byte-for-byte copy of the same
#: landing (every file loaded at once): after the backfill every mart must equal them, except that
#: the two snapshot marts keep one snapshot per run date by design (the backfill adds those of the
#: 19th and 20th) and are compared on the 21st. Both call the stages directly (tests/stages.py),
#: each dbt stage as one build: what this checks is what the stages make of the dates, not how
#: Airflow schedules them (test_dag.py's rerun compares the stages' build with the DAG's).
BACKFILL = ("2026-11-20", "2026-11-21", "2026-11-19")


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    """The demo landing of test_dag.py's first run (ten days and the finer-grain ad exports),
    generated once: the clean run and the backfill each run on a byte-for-byte copy of it (two
    generations may differ in details)."""
    return land_demo_days(tmp_path_factory.mktemp("dates") / "landing")


@pytest.fixture(scope="module")
def clean_run(landing, tmp_path_factory) -> Path:
    """The serving file of one run of the newest date on a copy of ``landing``."""
    root = tmp_path_factory.mktemp("clean_run")
    shutil.copytree(landing, root / "data" / "landing")
    settings = settings_for(run_env(root))
    run = run_stages(settings, DEMO_END.isoformat(), "clean__2026-11-21")
    assert run.published, run.summary
    return settings.warehouse_path


@pytest.fixture(scope="module")
def backfill(landing, tmp_path_factory) -> Backfill:
    """The backfill on a copy of ``landing``, with BI reader processes querying the serving file
    through the whole run of 21 November, which publishes over the version of the 20th."""
    root = tmp_path_factory.mktemp("backfill")
    shutil.copytree(landing, root / "data" / "landing")
    settings = settings_for(run_env(root))
    result = Backfill(serving=settings.warehouse_path)
    for ds in BACKFILL:
        if ds == "2026-11-21":
            result.old = (version_digest(result.serving), BACKFILL[0])
            with _readers(result.serving, root) as result.rounds:
                run = run_stages(settings, ds, f"backfill__{ds}")
                # publish is the run's last stage: let the readers go on a few rounds after it
                _await_rounds(root / "reader-fresh.jsonl", version_digest(result.serving), 3)
            result.new = (version_digest(result.serving), ds)
        else:
            run = run_stages(settings, ds, f"backfill__{ds}")
        assert run.published, (ds, run.summary)
    return result


def test_backfilling_dates_out_of_order_gives_the_marts_of_one_clean_run(clean_run, backfill):
    con = duckdb.connect(str(backfill.serving), read_only=True)
    snapshots = {
        mart: sorted(
            str(d) for (d,) in con.execute(f"select distinct {column} from marts.{mart}").fetchall()
        )
        for mart, column in SNAPSHOT_MARTS.items()
    }
    con.close()
    assert snapshots == dict.fromkeys(SNAPSHOT_MARTS, sorted(BACKFILL))
    newest = max(BACKFILL)
    clean = mart_fingerprints(clean_run, snapshot=newest)
    assert clean == mart_fingerprints(clean_run)  # one run, one snapshot
    assert mart_fingerprints(backfill.serving, snapshot=newest) == clean


def test_a_reader_through_a_whole_run_only_sees_complete_versions(backfill):
    fresh, held = backfill.rounds["fresh"], backfill.rounds["held"]
    assert [r for r in fresh + held if "error" in r or r["problems"]] == []
    assert backfill.old[0] != backfill.new[0]
    # a new connection per round: the old version until the swap, then the new one, nothing else
    seen = [(r["digest"], r["date"]) for r in fresh]
    assert backfill.new in seen
    switch = seen.index(backfill.new)
    assert seen == [backfill.old] * switch + [backfill.new] * (len(seen) - switch)
    assert switch >= 20 and len(seen) - switch >= 3  # many rounds before and after the swap
    # a connection opened before the run keeps reading the old version undisturbed
    assert len(held) >= 20 and {(r["digest"], r["date"]) for r in held} == {backfill.old}


def test_a_historical_date_publishes_and_a_mostly_quarantined_export_stops_the_next_run(
    tmp_path_factory, dbt_manifest
):
    """A date years before the DAG was written runs every task and publishes (history loads):
    this is the suite's one complete DAG run in the single dbt task mode. Files no run reads are
    listed as a warning; the next date, whose Shopify export lost most of its rows to the
    quarantine, stops at the raw gate (the stages called directly) and BI keeps the published
    version."""
    import csv

    root = tmp_path_factory.mktemp("historical")
    env = run_env(root) | {"MWH_DBT_TASKS": "single"}
    landing = root / "data" / "landing"
    mwh = str(Path(sys.executable).parent / "mwh")
    made = subprocess.run([mwh, "demo", "--date", "1998-07-01", "--days", "10"], env=env, **RUN)
    assert made.returncode == 0, made.stdout + made.stderr
    strays = {
        "exports/shopify_orders_1998-07-01.csv": "outside_date_folder",
        "1998-07-01/old/shopify_orders_1998-06-30.csv": "nested_folder",
        "1998-07-01/orders backup.csv": "no_contract",
    }
    for path in strays:
        (landing / path).parent.mkdir(parents=True, exist_ok=True)
        (landing / path).write_text("Name,Email\n#1,stray@example.com\n", "utf-8")

    first = subprocess.run(mwh_run("1998-07-01"), env=env, **RUN)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Marketing warehouse run for 1998-07-01: SUCCESS" in first.stdout
    assert "ok   publish" in first.stdout
    assert f"Ignored landing entries ({len(strays)}; no run reads them):" in first.stdout
    for path, reason in strays.items():
        assert f"WARN {path}: " in first.stdout and f"({reason})" in first.stdout
    serving = root / "data" / "warehouse" / "warehouse.duckdb"
    con = duckdb.connect(str(serving), read_only=True)
    dates = con.execute("select distinct logical_date::varchar from audit.publish_log").fetchall()
    kpi_days = con.execute("select count(*), max(date)::varchar from marts.kpi_daily").fetchone()
    scan = con.execute(
        "select severity, success, unexpected_count from audit.validation_results "
        "where suite = 'raw/landing_scan'"
    ).fetchall()
    con.close()
    assert dates == [("1998-07-01",)] and kpi_days == (10, "1998-07-01")
    assert scan == [("warning", False, len(strays))]
    before = mart_fingerprints(serving)

    # The next day's export: 9 of its 10 orders lost "Lineitem quantity" on every line.
    export = landing / "1998-07-02" / "shopify_orders_export_1998-07-02.csv"
    write_shopify(
        export,
        [
            order_row(
                f"#{n}",
                f"buyer{n}@example.com",
                "1998-07-02 10:00:00 +0000",
                qty="1" if n == 1 else "",
                Currency="EUR",
            )
            for n in range(1, 11)
            for _ in range(30)
        ],
    )
    with export.open(newline="", encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    landed, lost = len(written), sum(1 for r in written if not r["Lineitem quantity"])
    assert (landed, lost) == (300, 270)
    bad = run_stages(settings_for(env), "1998-07-02", "stages__mostly_quarantined")
    assert bad.failure is not None and bad.finished == ["extract"]
    assert "1998-07-02: FAILED" in bad.summary and "raw      FAIL" in bad.summary
    assert (
        f"shopify__order_lines/1998-07-02/{export.name}: {lost} of {landed} rows quarantined "
        f"({lost / landed:.2%}); top reasons missing_required_value {lost}"
    ) in bad.summary
    assert "Not published this run." in bad.summary
    assert mart_fingerprints(serving) == before
    con = duckdb.connect(str(serving), read_only=True)
    dates = con.execute("select distinct logical_date::varchar from audit.publish_log").fetchall()
    con.close()
    assert dates == [("1998-07-01",)]
