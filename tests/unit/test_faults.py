"""Faults injected into a load: an extractor bug, a machine error mid-partition, a crashed run."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
import time
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest
from conftest import order_row, write_shopify

from marketing_warehouse.ingest import extract, loads
from marketing_warehouse.ingest.contracts import contract_for
from marketing_warehouse.ingest.extract import neutralise_formula
from marketing_warehouse.ingest.loads import Ledger, load_source, staging_dir
from marketing_warehouse.ops import runlock
from marketing_warehouse.ops.runlock import (
    RUN_LOCKED_EXIT,
    RunLocked,
    acquire_run_lock,
    read_holder,
    release_run_lock,
)

CONTRACT = contract_for("shopify__order_lines")
DAY = date(2026, 11, 21)
AT = datetime(2026, 11, 22, 2, 0)


def landed(settings, name: str, orders: list[str]):
    rows = [order_row(o, "a@x.com", "2026-11-21 10:00:00 +0000") for o in orders]
    return write_shopify(settings.landing_dir / DAY.isoformat() / name, rows)


def dbt_view(settings) -> list[str]:
    """What dbt's raw source sees: the same glob as macros/raw_source.sql."""
    glob = settings.layout.raw / CONTRACT.key / "*" / "*.parquet"
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


def conservation_only(settings, tmp_path):
    """Settings whose raw gate runs the project's load_conservation suite and nothing else."""
    import shutil

    import yaml

    from marketing_warehouse.config import load_settings

    suites = tmp_path / "expectations"
    (suites / "raw").mkdir(parents=True)
    project = settings.project_dir / "expectations"
    shutil.copy(project / "raw" / "load_conservation.json", suites / "raw")
    bindings = yaml.safe_load((project / "gates.yml").read_text("utf-8"))["raw"]
    chosen = [b for b in bindings if b["suite"] == "raw/load_conservation"]
    (suites / "gates.yml").write_text(yaml.safe_dump({"raw": chosen}), "utf-8")
    return load_settings(
        {"MWH_DATA_DIR": str(settings.data_dir), "MWH_EXPECTATIONS_DIR": str(suites)}
    )


def test_a_loader_that_loses_records_stops_the_raw_gate_naming_file_and_lines(
    settings, tmp_path, monkeypatch
):
    """The ledger's rows landed are counted from the file, not from the load: when the loader
    reads the original file past a repair (here: it ignores the cleaned copy, as the extractor
    did before), 48 orders go missing and the raw gate stops the run, naming the file and lines."""
    from marketing_warehouse.quality.gates import GateFailed, enforce, run_gate

    path = landed(settings, "shopify_orders_a.csv", [f"#{1001 + i}" for i in range(50)])
    lines = path.read_text("utf-8").split("\n")
    lines[2] = lines[2].replace("Organic Cotton Tee", '"Organic Cotton Tee', 1)
    path.write_text("\n".join(lines), encoding="utf-8")
    gate_settings = conservation_only(settings, tmp_path)

    (good,) = load_source(settings, CONTRACT, DAY, AT)
    assert (good.rows_landed, good.rows_loaded, good.rows_quarantined) == (50, 49, 1)
    assert run_gate(gate_settings, "raw", DAY, "run-good").status == "pass"

    monkeypatch.setattr(extract, "_clean_copy", lambda path, *args: path)
    (lost,) = load_source(settings, CONTRACT, DAY, AT)
    assert lost.rows_landed == 50 and lost.rows_loaded + lost.rows_quarantined < 50
    entry = Ledger(settings, CONTRACT).entries(DAY)[0]
    assert entry["rows_lost_at"].startswith("shopify_orders_a.csv: 50 records landed")
    outcome = run_gate(gate_settings, "raw", DAY, "run-lost")
    with pytest.raises(GateFailed) as failed:
        enforce(outcome)
    message = str(failed.value)
    assert "raw/load_conservation" in message and "[critical]" in message
    assert "shopify__order_lines: shopify_orders_a.csv: 50 records landed" in message
    assert "the 48 record(s) at lines 4-51 did not reach the loader" in message


# One run at a time -------------------------------------------------------------------------------

SRC = Path(__file__).resolve().parents[2] / "src"
HOLD_RUN_LOCK = textwrap.dedent(
    """
    import sys
    from marketing_warehouse.config import load_settings
    from marketing_warehouse.ops.runlock import run_lock

    with run_lock(load_settings(), sys.argv[1]):
        print("holding", flush=True)
        sys.stdin.readline()  # a run in progress until the parent says so
    """
)
TAKE_AS_AIRFLOW = textwrap.dedent(
    """
    import sys
    from marketing_warehouse.config import load_settings
    from marketing_warehouse.ops.runlock import AIRFLOW, RunLocked, acquire_run_lock

    try:
        holder = acquire_run_lock(load_settings(), sys.argv[1], AIRFLOW)
    except RunLocked as refused:
        print(refused)
        sys.exit(3)
    print(holder["run_id"])
    """
)


def lock_env(settings) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MWH_")}
    return base | {"MWH_DATA_DIR": str(settings.data_dir), "PYTHONPATH": str(SRC)}


def tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))}


@pytest.fixture
def running(settings):
    """A run in progress in another real process, holding the run lock."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_RUN_LOCK, "nightly 2026-11-21"],
        env=lock_env(settings),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "holding\n"
    yield holder
    if holder.poll() is None:
        holder.kill()
        holder.wait()


def test_a_second_mwh_run_is_refused_at_once_and_touches_nothing(settings, running):
    before = tree(settings.data_dir)
    started = time.monotonic()
    second = subprocess.run(
        [str(Path(sys.executable).parent / "mwh"), "run", "--date", "2026-11-21"],
        env=lock_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == RUN_LOCKED_EXIT, second.stderr
    assert time.monotonic() - started < 30  # no Airflow, no demo files, no dbt
    assert "mwh run: refused" in second.stderr
    assert "'nightly 2026-11-21'" in second.stderr and f"pid {running.pid}" in second.stderr
    assert tree(settings.data_dir) == before  # no landing files, no Airflow home, same lock
    assert read_holder(settings)["run_id"] == "nightly 2026-11-21"

    running.stdin.write("done\n")
    running.stdin.flush()
    assert running.wait(timeout=30) == 0
    assert read_holder(settings) is None  # released at the end of the run


def test_an_erasure_during_a_run_is_refused_at_once_and_touches_nothing(settings, running):
    landed = settings.landing_dir / "2026-11-21" / "stripe_payments.csv"
    landed.parent.mkdir(parents=True)
    landed.write_text("id,Created date (UTC),Amount,Currency,Status,Customer Email\n"
                      "ch_1,2026-11-21 10:00:00,40.00,eur,paid,ann@example.com\n")  # fmt: skip
    before = tree(settings.data_dir)
    erase = subprocess.run(
        [str(Path(sys.executable).parent / "mwh"), "erase", "--email", "ann@example.com"],
        env=lock_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert erase.returncode == RUN_LOCKED_EXIT, erase.stderr
    assert "mwh erase: refused" in erase.stderr and "'nightly 2026-11-21'" in erase.stderr
    assert tree(settings.data_dir) == before  # the export still holds the person: not erased
    assert b"ann@example.com" in landed.read_bytes()


def test_an_airflow_run_is_refused_by_a_run_in_progress(settings, running):
    refused = subprocess.run(
        [sys.executable, "-c", TAKE_AS_AIRFLOW, "scheduled__2026-11-22T02:00:00+00:00"],
        env=lock_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 3, refused.stderr
    assert "was refused and changed nothing" in refused.stdout
    assert release_run_lock(settings, "scheduled__2026-11-22T02:00:00+00:00") is False
    assert read_holder(settings)["run_id"] == "nightly 2026-11-21"


def test_the_tasks_of_the_run_that_holds_the_lock_go_on(settings):
    # mwh run holds the lock; the tasks of its `airflow dags test` are processes it started
    with runlock.run_lock(settings, "mwh run 2026-11-21") as holder:
        task = subprocess.run(
            [sys.executable, "-c", TAKE_AS_AIRFLOW, "manual__2026-11-21T00:00:00+00:00"],
            env=lock_env(settings),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert task.returncode == 0, task.stdout + task.stderr
        assert task.stdout.strip() == "mwh run 2026-11-21"
        # the DAG's teardown releases only its own run's lock
        assert release_run_lock(settings, "manual__2026-11-21T00:00:00+00:00") is False
        assert read_holder(settings) == holder
    assert read_holder(settings) is None


def test_a_lock_left_by_a_crashed_run_is_taken_over(settings, running, caplog):
    running.kill()
    running.wait()
    assert read_holder(settings)["pid"] == running.pid  # the crash left the lock behind
    with (
        caplog.at_level("WARNING", logger="marketing_warehouse.ops.runlock"),
        runlock.run_lock(settings, "mwh run 2026-11-22") as holder,
    ):
        assert holder["pid"] == os.getpid()
    assert any("left behind by run 'nightly 2026-11-21'" in r.message for r in caplog.records)
    assert read_holder(settings) is None


def test_a_lock_left_by_an_earlier_airflow_run(settings):
    """max_active_runs=1: a lock still held by another Airflow run when a new Airflow run starts
    was left by a run whose teardown never ran. A command cannot know that and is refused."""
    acquire_run_lock(settings, "scheduled__2026-11-21T02:00:00+00:00", runlock.AIRFLOW)
    with pytest.raises(RunLocked, match="delete the lock file"):
        acquire_run_lock(settings, "mwh erase", runlock.CLI)
    taken = acquire_run_lock(settings, "scheduled__2026-11-22T02:00:00+00:00", runlock.AIRFLOW)
    assert taken["run_id"] == "scheduled__2026-11-22T02:00:00+00:00"
    assert release_run_lock(settings, "scheduled__2026-11-22T02:00:00+00:00")
