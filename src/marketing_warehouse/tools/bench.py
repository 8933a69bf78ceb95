"""Benchmarks measured side by side in one process: our code against DuckDB's own floor.

``extraction``: Shopify exports of at least ``lines`` order lines, extracted with the contract
(typing, quarantine checks, lineage, Parquet) and, on the same files in the same run, read by
DuckDB's ``read_csv`` with auto-detection into Parquet. The ratio is what the contract costs.

``workbook``: an experiments workbook (~244 k assignment rows) converted to CSV by the openpyxl
reader and by the calamine reader side by side, the two CSVs compared, and the independent row
count (``count_sheet_rows``) timed.

``full``: demo data at a scale factor, then in one invocation (a) the nightly run through Airflow,
(b) ``dbt build`` alone, (c) the floor: the headline marts in hand-written DuckDB SQL straight
from the landed files, (d) an incremental night with one new day; wall time, peak RSS of each
process tree and rows per second, the ratios, and the floor's numbers beside the marts' numbers.
``full_suite`` runs ``full`` at several scales in one invocation, then the incremental night's
growth from the smallest scale to the largest, ``demo_run`` (``make run`` twice on fresh demo
data) and every target of ``TARGETS`` against the figures measured.
"""

from __future__ import annotations

import json
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

from marketing_warehouse import duck
from marketing_warehouse.config import (
    DBT_TASK_MODES,
    DEFAULT_DUCKDB_MEMORY_LIMIT,
    Settings,
    load_settings,
)
from marketing_warehouse.ingest.contracts import contract_for
from marketing_warehouse.ingest.extract import extract_file
from marketing_warehouse.tools import demo
from marketing_warehouse.transform.dbt_tasks import dbt_environment


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
        # types detected, but no comment character (see FLOOR_CSV_OPTIONS)
        f"copy (select * from read_csv('{glob}', filename = true, comment = '', quote = '\"', "
        f"escape = '\"')) to '{floor_file}' "
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
        "json_lines": json_lines_extraction(workdir / "json_lines", max(lines * 2, 1000)),
    }
    return report


def json_lines_extraction(workdir: Path, events: int, seed: int = 42) -> dict:
    """Product-event exports (JSON lines, as the demo writes them) of at least ``events`` events,
    extracted with each JSON-lines reader in turn (``extract_file``'s ``json_reader``); the raw
    and quarantine Parquet of the two must hold the same rows."""
    rng = random.Random(seed)
    customers = demo._customers(rng, 100_000)
    files, written, day = [], 0, date(2026, 1, 1)
    while written < events:
        files.append(demo.marketing.events_day(rng, day, customers, [], workdir / "landing", 1.0))
        written += files[-1].read_bytes().count(b"\n")
        day += timedelta(days=1)
    megabytes = sum(f.stat().st_size for f in files) / 1e6
    contract = contract_for("product__events")
    loaded_at = datetime.now(UTC).replace(tzinfo=None)
    timings, digests = [], {}
    for reader in ("python", "duckdb"):
        start, rows = time.perf_counter(), 0
        for i, path in enumerate(files):
            result = extract_file(
                path,
                contract,
                day,
                workdir / reader / f"{i}.parquet",
                workdir / reader / f"{i}-quarantine.parquet",
                loaded_at,
                json_reader=reader,
            )
            rows += result.rows_landed
        timings.append(
            Timing(f"json_reader={reader}", time.perf_counter() - start, rows, megabytes)
        )
        digests[reader] = duckdb.sql(
            f"select count(*), sum(hash(columns(* exclude (filename)))) from read_parquet("
            f"'{workdir / reader}/*.parquet', union_by_name = true, filename = true)"
        ).fetchall()
    if digests["python"] != digests["duckdb"]:
        raise AssertionError(f"the two JSON-lines readers gave different rows: {digests}")
    return {
        "events": timings[0].rows,
        "files": len(files),
        "megabytes": round(megabytes, 1),
        "timings": [asdict(t) | {"rows_per_second": round(t.rows_per_second)} for t in timings],
        "ratio_python_to_duckdb": round(timings[0].seconds / timings[1].seconds, 2),
    }


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
    jsonl = report["json_lines"]
    out.append(
        f"{jsonl['events']:,} product events (JSON lines) in {jsonl['files']} files, "
        f"{jsonl['megabytes']} MB, the same rows from both readers"
    )
    for t in jsonl["timings"]:
        out.append(f"{t['name']:24}{t['seconds']:>10.1f}{t['rows_per_second']:>12,}")
    out.append(f"ratio python / duckdb: {jsonl['ratio_python_to_duckdb']}x")
    return "\n".join(out)


def write_experiments_workbook(path: Path, rows: int, seed: int = 42) -> Path:
    """An experiment plan workbook like the demo's, with ``rows`` assignment rows."""
    from marketing_warehouse.tools import demo_marketing

    rng = random.Random(seed)
    assigned = datetime(2026, 1, 8, 0, 0)
    plan = [
        ["Experiment", "Hypothesis", "Start", "End", "Primary metric",
         "Minimum sample per variant", "Control variant", "Conversion window days"],
        ["EXP-001 free shipping banner", "A free-shipping banner raises conversion",
         date(2026, 1, 8), date(2026, 6, 30), "conversion", 100, "control", None],
    ]  # fmt: skip
    assignments = [["Experiment", "Email", "Variant", "Assigned at"]]
    for number in range(rows):
        variant = "treatment" if rng.random() < 0.5 else "control"
        email = f"customer{number:07d}@example.com"
        assignments.append(["EXP-001 free shipping banner", email, variant, assigned])
    return demo_marketing.write_workbook(path, {"plan": plan, "assignments": assignments})


def workbook(workdir: Path, rows: int = 244_000) -> dict:
    """The assignments sheet of an experiments workbook read by the openpyxl reader and by the
    calamine reader in one process; both CSVs must be byte for byte the same."""
    import hashlib

    from marketing_warehouse.ingest.formats import (
        count_sheet_rows,
        xlsx_to_csv,
        xlsx_to_csv_openpyxl,
    )

    path = write_experiments_workbook(workdir / "experiments_plan.xlsx", rows)
    megabytes = path.stat().st_size / 1e6
    timings, digests = [], []
    for name, reader in (("openpyxl", xlsx_to_csv_openpyxl), ("calamine", xlsx_to_csv)):
        target = workdir / f"{name}.csv"
        start = time.perf_counter()
        _, sheet, header_row = reader(path, target, "assignments")
        seconds = time.perf_counter() - start
        data = target.read_bytes()
        digests.append(hashlib.sha256(data).hexdigest())
        timings.append(Timing(name, seconds, data.count(b"\n") - 1, megabytes))
    start = time.perf_counter()
    counted = count_sheet_rows(path, sheet, header_row)
    count = Timing("count_sheet_rows", time.perf_counter() - start, counted, megabytes)
    old, new = timings
    return {
        "rows": rows,
        "megabytes": round(megabytes, 1),
        "same_csv": digests[0] == digests[1],
        "csv_sha256": digests[1],
        "timings": [
            asdict(t) | {"rows_per_second": round(t.rows_per_second)} for t in (*timings, count)
        ],
        "ratio_openpyxl_to_calamine": round(old.seconds / new.seconds, 1),
        "rows_counted": counted,
    }


def format_workbook(report: dict) -> str:
    out = [
        f"experiments workbook, {report['rows']:,} assignment rows, {report['megabytes']} MB",
        f"{'':20}{'seconds':>10}{'rows':>10}{'rows/s':>12}",
    ]
    for t in report["timings"]:
        out.append(
            f"{t['name']:20}{t['seconds']:>10.1f}{t['rows']:>10,}{t['rows_per_second']:>12,}"
        )
    out.append(f"ratio openpyxl / calamine: {report['ratio_openpyxl_to_calamine']}x")
    out.append(f"same CSV from both readers: {'yes' if report['same_csv'] else 'NO'}")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# ``full``: the nightly pipeline, dbt alone, the raw-DuckDB floor and an incremental night.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One target the full bench is read against: the figure ``key`` at most ``limit``."""

    key: str
    what: str
    limit: float
    unit: str  # "x" (a ratio), "s" or "MB"
    #: the scale the figure is judged at (None: the growth figure and the demo run, see ``key``)
    scale: float | None


#: The targets, defined here only: README "Benchmarks" cites this table. ``growth`` is (d) at the
#: largest scale of an invocation over (d) at the smallest, judged when the two are
#: ``GROWTH_SCALE_STEP`` apart (``--scales 0.1,1`` or ``1,10``).
TARGETS = (
    Target("growth", "(d) at 10x the scale / (d)", 1.5, "x", None),
    Target("incremental_over_full", "(d)/(a) incremental night / first night", 0.10, "x", 1),
    Target("full_over_floor", "(a)/(c) first night / floor", 4.0, "x", 1),
    Target("dbt_over_floor", "(b)/(c) dbt alone / floor", 1.5, "x", 1),
    Target("demo_run_warm", "demo `make run`, second run (warm)", 60, "s", None),
    Target("wall_seconds", "whole bench at one scale", 30 * 60, "s", 10),
    Target("peak_rss_mb", "peak memory of a measured run", 6 * 1024, "MB", 10),
)
TARGETS_BY_KEY = {t.key: t for t in TARGETS}
GROWTH_SCALE_STEP = 10
#: Scales of ``mwh bench full`` (``make bench``) when neither ``--scale`` nor ``--scales`` is given.
DEFAULT_SCALES = (0.1, 1.0)
#: First logical date of the bench: the generated history ends here, the incremental night is +1.
BENCH_END = date(2026, 6, 30)
SAMPLE_SECONDS = 0.2


def _tree_rss_bytes(root: int, page: int) -> int:
    """Resident memory of ``root`` and every descendant, from /proc (0 when gone)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/statm", "rb") as handle:
                total += int(handle.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
        stack += children.get(pid, [])
    return total


@dataclass
class Step:
    key: str
    name: str
    seconds: float
    peak_rss_mb: float
    largest_process_mb: float
    rows: int
    exit_code: int
    log: str

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return asdict(self) | {"rows_per_second": round(self.rows_per_second)}


def measure(
    key: str, name: str, cmd: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
) -> Step:
    """Run ``cmd`` to the end; wall time and the peak total RSS of its process tree.

    The tree is sampled from /proc every 0.2 s (a process living shorter than that may be missed);
    ``largest_process_mb`` is the largest single process of the tree (``wait4``'s ru_maxrss),
    exact but only for processes that were waited for; the peak is at least that.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    page = os.sysconf("SC_PAGE_SIZE")
    peak = 0
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        while True:
            # wait4 gives this child's own rusage: ru_maxrss is the largest process of its tree
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, _tree_rss_bytes(proc.pid, page))
            time.sleep(SAMPLE_SECONDS)
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    largest = usage.ru_maxrss / 1024
    step = Step(
        key=key,
        name=name,
        seconds=round(seconds, 2),
        peak_rss_mb=round(max(peak / 2**20, largest), 1),
        largest_process_mb=round(largest, 1),
        rows=0,
        exit_code=proc.returncode,
        log=str(log),
    )
    # a long run (scale 10) shows each step as it ends, and an interrupted one keeps what it measured
    print(
        f"{name}: {step.seconds:.1f} s, peak RSS {step.peak_rss_mb:,.0f} MB "
        f"(largest process {step.largest_process_mb:,.0f} MB), exit {step.exit_code}",
        flush=True,
    )
    return step


def _rows_landed(settings: Settings, ds: str) -> int:
    return sum(e["rows_landed"] for e in settings.layout.run(ds).record().extracts)


def _count_landed_rows(landing: Path) -> dict[str, int]:
    """Rows per landed file kind (CSV and JSON lines: lines - header), to report volumes."""
    counts: dict[str, int] = {}
    for path in landing.rglob("*"):
        if path.suffix not in (".csv", ".jsonl"):
            continue
        kind = path.name.split("_20")[0].removesuffix("_export").removesuffix("_report")
        with path.open("rb") as handle:
            lines = sum(1 for _ in handle)
        counts[kind] = counts.get(kind, 0) + lines - (path.suffix == ".csv")
    return dict(sorted(counts.items()))


def _mwh(*args: str) -> list[str]:
    return [sys.executable, "-m", "marketing_warehouse.cli", *args]


def full(
    workdir: Path,
    scale: float,
    days: int | None = None,
    seed: int = 42,
    compare_single: bool = True,
    dbt_tasks: str = DBT_TASK_MODES[0],
) -> dict:
    """The whole benchmark in one invocation, in a fresh data folder under ``workdir``.

    (a) ``mwh run`` for the last generated day (every landed file is new), (b) ``dbt build`` alone
    on the build database (a) left, (c) the floor: hand-written DuckDB SQL for the headline marts
    straight from the landed files, (d) one more day lands and ``mwh run`` processes it, and
    (e) with ``compare_single``, (d) again with the other ``MWH_DBT_TASKS`` mode.
    """
    from marketing_warehouse.airflow_env import airflow_env, ensure_airflow
    from marketing_warehouse.transform.dbt_tasks import (
        dbt_executable,
        manifest_is_stale,
        parse_project,
        warm_target,
    )

    bench_started = time.perf_counter()
    days = days or demo.default_days(scale)
    ds, next_ds = BENCH_END, BENCH_END + timedelta(days=1)
    landing, held_back = workdir / "landing", workdir / "next"
    base = {
        **os.environ,
        "MWH_DATA_DIR": str(workdir / "data"),
        "MWH_LANDING_DIR": str(landing),
        "MWH_TASK_RETRIES": "0",
        "MWH_DBT_TASKS": dbt_tasks,
        "AIRFLOW_HOME": str(workdir / "airflow"),
    }
    base.pop("MWH_WAREHOUSE_PATH", None)
    base.pop("MWH_BUILD_PATH", None)
    settings = load_settings(base)
    env = airflow_env(settings, base)
    logs = workdir / "logs"

    # Generate days + 1 days in one go (the same generator state), then hold the last day back
    # for the incremental night.
    started = time.perf_counter()
    demo.generate(landing, next_ds, days + 1, seed=seed, scale=scale)
    generation_seconds = time.perf_counter() - started
    held_back.mkdir(parents=True, exist_ok=True)
    os.replace(landing / next_ds.isoformat(), held_back / next_ds.isoformat())
    volumes = _count_landed_rows(landing)

    ensure_airflow(settings, env)
    if manifest_is_stale(settings):
        parse_project(settings, env)

    steps: list[Step] = []
    run = measure("full", "(a) nightly run, all history", _mwh("run", "--date", ds.isoformat()),
                  env, logs / "a-run.log")  # fmt: skip
    run.rows = _rows_landed(settings, ds.isoformat())
    steps.append(run)

    # one build of every stage: the predictions it reads are the files (a)'s predict task wrote
    # for the same date, so it rebuilds what (a) built, and times dbt alone (not the fit)
    dbt = measure(
        "dbt",
        "(b) dbt build alone",
        [str(dbt_executable()), "build", "--project-dir", str(settings.dbt_project_dir),
         "--vars", json.dumps({"snapshot_date": ds.isoformat()}),
         "--target-path", str(warm_target(settings, settings.layout.dbt_target))],
        {**env, **dbt_environment(settings)},
        logs / "b-dbt-build.log",
        cwd=settings.dbt_project_dir,
    )  # fmt: skip
    dbt.rows = run.rows
    steps.append(dbt)

    floor_db = workdir / "floor.duckdb"
    floor = measure(
        "floor",
        "(c) DuckDB floor, same marts",
        [sys.executable, "-m", "marketing_warehouse.tools.bench", "floor", str(landing),
         ds.isoformat(), str(floor_db), settings.reporting_currency,
         settings.duckdb_memory_limit],
        env,
        logs / "c-floor.log",
    )  # fmt: skip
    floor.rows = run.rows
    steps.append(floor)
    comparable = run.exit_code == floor.exit_code == 0 and settings.warehouse_path.exists()
    checks = compare_marts(floor_db, settings.warehouse_path, ds) if comparable else []

    os.replace(held_back / next_ds.isoformat(), landing / next_ds.isoformat())
    incremental = measure(
        "incremental",
        "(d) incremental night, one new day",
        _mwh("run", "--date", next_ds.isoformat()),
        env,
        logs / "d-incremental.log",
    )
    incremental.rows = _rows_landed(settings, next_ds.isoformat())
    steps.append(incremental)

    if compare_single:
        other = "single" if dbt_tasks != "single" else DBT_TASK_MODES[0]
        again = measure(
            "incremental_" + other,
            f"(e) (d) again, MWH_DBT_TASKS={other}",
            _mwh("run", "--date", next_ds.isoformat()),
            {**env, "MWH_DBT_TASKS": other},
            logs / f"e-incremental-{other}.log",
        )
        again.rows = _rows_landed(settings, next_ds.isoformat())
        steps.append(again)

    by_key = {s.key: s for s in steps}

    def ratio(a: str, b: str) -> float | None:
        """``a``'s wall time over ``b``'s; None unless both steps ran and ended well."""
        if a not in by_key or b not in by_key or not by_key[b].seconds:
            return None
        if by_key[a].exit_code or by_key[b].exit_code:
            return None
        return round(by_key[a].seconds / by_key[b].seconds, 3)

    ratios = {
        "full_over_floor": ratio("full", "floor"),
        "dbt_over_floor": ratio("dbt", "floor"),
        "incremental_over_full": ratio("incremental", "full"),
    }
    if compare_single:
        ratios[f"{steps[-1].key}_over_incremental"] = ratio(steps[-1].key, "incremental")
    return {
        "scale": scale,
        "days": days,
        "seed": seed,
        "logical_date": ds.isoformat(),
        "incremental_date": next_ds.isoformat(),
        "dbt_tasks": dbt_tasks,
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "workdir": str(workdir),
        "generation": {
            "seconds": round(generation_seconds, 2),
            "days": days + 1,
            "rows": sum(volumes.values()),
        },
        "volumes": volumes,
        "steps": [s.as_dict() for s in steps],
        "ratios": ratios,
        # generation, every step and the floor check: what the whole bench at this scale takes
        "wall_seconds": round(time.perf_counter() - bench_started, 1),
        "peak_rss_mb": max(s.peak_rss_mb for s in steps),
        "checks": checks,
        "ok": all(s.exit_code == 0 for s in steps)
        and bool(checks)
        and all(c["match"] for c in checks),
    }


def machine() -> dict:
    import platform

    meminfo = Path("/proc/meminfo")
    total = 0
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) // 1024
    return {
        "cpus": os.cpu_count(),
        "memory_mb": total,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def demo_run(workdir: Path) -> dict:
    """``make run`` on a fresh clone, twice, as ``make run`` does it: ``mwh run`` for yesterday
    with the caller's environment, but a data folder (demo data generated by the first run) and
    Airflow metadata of its own under ``workdir``. The second run, warm, is the demo target's
    figure. The dbt manifest is the project's: a fresh clone's first run also parses the project
    (``dbt_manifest_stale_at_start`` says whether this one did)."""
    from marketing_warehouse.transform.dbt_tasks import manifest_is_stale

    moved = ("MWH_LANDING_DIR", "MWH_WAREHOUSE_PATH", "MWH_BUILD_PATH")
    env = {k: v for k, v in os.environ.items() if k not in moved}
    env |= {"MWH_DATA_DIR": str(workdir / "data"), "AIRFLOW_HOME": str(workdir / "airflow")}
    settings = load_settings(env)
    stale = manifest_is_stale(settings)
    ds = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    steps = []
    for key, name in (("first", "demo `make run`, first run"),
                      ("warm", "demo `make run`, second run (warm)")):  # fmt: skip
        step = measure(
            f"demo_{key}", name, _mwh("run", "--date", ds), env, workdir / "logs" / f"{key}.log"
        )
        step.rows = _rows_landed(settings, ds)
        steps.append(step)
    first, warm = steps
    ok = first.exit_code == warm.exit_code == 0
    return {
        "logical_date": ds,
        "demo_days": settings.demo_days,
        "dbt_manifest_stale_at_start": stale,
        "volumes": _count_landed_rows(settings.landing_dir),
        "steps": [s.as_dict() for s in steps],
        "first_seconds": first.seconds if first.exit_code == 0 else None,
        "warm_seconds": warm.seconds if ok else None,
        "ok": ok,
    }


def growth(runs: list[dict]) -> dict | None:
    """(d) at each scale of an invocation, and (d) at the largest scale over (d) at the smallest;
    None with fewer than two scales. The ratio is None when either of those nights failed."""
    nights = {}
    for run in runs:
        step = next((s for s in run["steps"] if s["key"] == "incremental"), None)
        nights[run["scale"]] = step["seconds"] if step and step["exit_code"] == 0 else None
    if len(nights) < 2:
        return None
    small, large = min(nights), max(nights)
    ratio = (
        round(nights[large] / nights[small], 2)
        if nights[small] and nights[large] is not None
        else None
    )
    return {
        "incremental_seconds": [{"scale": k, "seconds": v} for k, v in sorted(nights.items())],
        "smallest_scale": small,
        "largest_scale": large,
        "scale_ratio": round(large / small, 6),
        "ratio": ratio,
    }


def evaluate_targets(runs: list[dict], grown: dict | None, demo: dict | None) -> list[dict]:
    """Each of ``TARGETS`` against the figures of one invocation: measured value, met or missed,
    or not measured (with why). A figure of a scale counts only if that scale's bench ended well
    (every step exited 0 and the floor matched the marts)."""
    by_scale = {run["scale"]: run for run in runs}
    rows = []
    for target in TARGETS:
        measured, at, note = None, "", ""
        if target.key == "growth":
            if grown is None:
                note = "needs two scales, e.g. --scales 0.1,1"
            else:
                at = f"scales {grown['smallest_scale']:g} and {grown['largest_scale']:g}"
                if not math.isclose(grown["scale_ratio"], GROWTH_SCALE_STEP):
                    note = (
                        f"scales {grown['scale_ratio']:g}x apart, the target is for "
                        f"{GROWTH_SCALE_STEP}x"
                    )
                elif grown["ratio"] is None:
                    note = "an incremental night failed"
                else:
                    measured = grown["ratio"]
        elif target.key == "demo_run_warm":
            if demo is None:
                note = "skipped: --no-demo-run"
            else:
                at = f"demo data, {demo['demo_days']} days"
                measured = demo["warm_seconds"]
                note = "" if demo["ok"] else "a run failed"
        else:
            at = f"scale {target.scale:g}"
            run = by_scale.get(target.scale)
            if run is None:
                note = f"scale {target.scale:g} not in this invocation"
            elif not run["ok"]:
                note = f"the bench at scale {target.scale:g} failed"
            else:
                measured = run["ratios"].get(target.key) if target.unit == "x" else run[target.key]
        verdict = (
            "not measured" if measured is None else "met" if measured <= target.limit else "missed"
        )
        rows.append(
            asdict(target) | {"at": at, "measured": measured, "verdict": verdict, "note": note}
        )
    return rows


def suite_report(runs: list[dict], demo: dict | None, wall_seconds: float) -> dict:
    """One invocation of ``mwh bench full``: every scale's report, the growth figure, the demo
    run and the targets table."""
    grown = growth(runs)
    return {
        "scales": [run["scale"] for run in runs],
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "wall_seconds": round(wall_seconds, 1),
        "runs": runs,
        "growth": grown,
        "demo_run": demo,
        "targets": evaluate_targets(runs, grown, demo),
        "ok": all(run["ok"] for run in runs) and (demo is None or demo["ok"]),
    }


def _tidy(workdir: Path, ok: bool, keep: bool) -> None:
    if ok and not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    elif not ok:
        print(f"kept {workdir} (logs in {workdir / 'logs'})", flush=True)


def full_suite(
    out: Path,
    scales: list[float],
    stamp: str,
    days: int | None = None,
    seed: int = 42,
    compare_single: bool = True,
    dbt_tasks: str = DBT_TASK_MODES[0],
    with_demo_run: bool = True,
    keep: bool = False,
) -> dict:
    """``full`` at each scale (smallest first), each in a fresh folder ``out/run-<scale>-<stamp>``
    removed afterwards unless it failed or ``keep``; then, with ``with_demo_run``, ``demo_run``
    in ``out/demo-run-<stamp>``. Each part's table is printed as it ends."""
    started = time.perf_counter()
    runs = []
    for scale in sorted(set(scales)):
        workdir = out / f"run-{scale:g}-{stamp}"
        workdir.mkdir(parents=True)
        print(f"Full benchmark at scale {scale:g} in {workdir} ...", flush=True)
        report = full(workdir, scale, days, seed, compare_single, dbt_tasks)
        print(format_full(report) + "\n", flush=True)
        runs.append(report)
        _tidy(workdir, report["ok"], keep)
    demo = None
    if with_demo_run:
        workdir = out / f"demo-run-{stamp}"
        workdir.mkdir(parents=True)
        print(f"Demo `make run` twice in {workdir} ...", flush=True)
        demo = demo_run(workdir)
        _tidy(workdir, demo["ok"], keep)
    return suite_report(runs, demo, time.perf_counter() - started)


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:.2f}"
    if unit == "s":
        return f"{value:,.1f} s" if value < 100 else f"{value:,.0f} s"
    return f"{value:,.0f} MB"


def format_growth(grown: dict) -> str:
    target = TARGETS_BY_KEY["growth"]
    out = [f"{'growth: (d) incremental night':32}{'wall s':>10}"]
    for row in grown["incremental_seconds"]:
        shown = "failed" if row["seconds"] is None else f"{row['seconds']:.1f}"
        out.append(f"{'scale ' + format(row['scale'], 'g'):32}{shown:>10}")
    out.append(
        f"(d) at scale {grown['largest_scale']:g} / (d) at scale {grown['smallest_scale']:g}: "
        f"{_figure(grown['ratio'], 'x')} (scales {grown['scale_ratio']:g}x apart; "
        f"target <= {target.limit:g} for a {GROWTH_SCALE_STEP}x step)"
    )
    return "\n".join(out)


def format_demo_run(demo: dict) -> str:
    out = [
        f"demo `make run` for {demo['logical_date']}, {demo['demo_days']} days of demo data"
        + (", dbt manifest parsed by the first run" if demo["dbt_manifest_stale_at_start"] else ""),
        f"{'run':44}{'wall s':>9}{'peak RSS MB':>13}{'rows':>12}{'exit':>6}",
    ]
    for s in demo["steps"]:
        out.append(
            f"{s['name']:44}{s['seconds']:>9.1f}{s['peak_rss_mb']:>13,.0f}{s['rows']:>12,}"
            f"{s['exit_code']:>6}"
        )
    return "\n".join(out)


def format_targets(rows: list[dict]) -> str:
    out = [f"{'target':44}{'at':>24}{'limit':>13}{'measured':>12}  verdict"]
    for row in rows:
        verdict = row["verdict"] + (f" ({row['note']})" if row["note"] else "")
        out.append(
            f"{row['what']:44}{row['at']:>24}{'<= ' + _figure(row['limit'], row['unit']):>13}"
            f"{_figure(row['measured'], row['unit']):>12}  {verdict}"
        )
    return "\n".join(out)


def format_suite(report: dict) -> str:
    """What an invocation adds after each scale's table: growth, demo run, targets."""
    out = []
    if report["growth"]:
        out += [format_growth(report["growth"]), ""]
    if report["demo_run"]:
        out += [format_demo_run(report["demo_run"]), ""]
    out.append(
        f"whole invocation: {report['wall_seconds']:,.0f} s"
        + "".join(
            f"; scale {r['scale']:g}: {r['wall_seconds']:,.0f} s, peak {r['peak_rss_mb']:,.0f} MB"
            for r in report["runs"]
        )
    )
    out += ["", format_targets(report["targets"])]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# The floor: the headline marts in hand-written DuckDB SQL, straight from the landed files.
# --------------------------------------------------------------------------------------------

#: Simplified definitions of the dbt marts (see README "Benchmarks" for what is left out).
FLOOR_SQL = """
-- an order with a row the contract rejects is held back whole (per file); rows without a name go
create or replace temp table shopify_typed as
with typed as (
    select
        filename,
        regexp_extract(filename, '(\\d{4}-\\d{2}-\\d{2})[/\\\\][^/\\\\]*$', 1)::date as load_date,
        regexp_extract(filename, '[^/\\\\]*$') as source_file,
        nullif(trim("Name"), '') as order_name,
        nullif(lower(trim("Email")), '') as email,
        nullif(trim("Financial Status"), '') as financial_status,
        upper(nullif(trim("Currency"), '')) as currency,
        try_cast(replace(nullif(trim("Total"), ''), ',', '.') as decimal(18, 6)) as total_amount,
        try_cast(replace(nullif(trim("Refunded Amount"), ''), ',', '.') as decimal(18, 6))
            as refunded_amount,
        nullif(trim("Discount Code"), '') as discount_code,
        try_strptime(nullif(trim("Created at"), ''), '%Y-%m-%d %H:%M:%S %z')::timestamp
            as created_at,
        nullif(trim("Cancelled at"), '') as cancelled_at,
        try_cast(nullif(trim("Lineitem quantity"), '') as bigint) as quantity,
        nullif(trim("Created at"), '') as created_raw
    from shopify_rows
)
select
    *,
    created_at is null
        or quantity is null or quantity < 0
        or (currency is not null and not regexp_full_match(currency, '[A-Z]{3}'))
        or currency = 'EURO' as is_broken
from typed
where order_name is not null;

create or replace temp table orders as
with held_back as (
    select distinct filename, order_name from shopify_typed where is_broken
),
kept as (
    select shopify_typed.*
    from shopify_typed
    anti join held_back using (filename, order_name)
),
first_rows as (
    select * from kept
    -- the order's first line: the one carrying its totals (Shopify fills them on it only)
    qualify row_number() over (
        partition by filename, order_name order by total_amount is null, financial_status is null
    ) = 1
),
shopify as (
    select * from first_rows
    qualify row_number() over (
        partition by order_name order by load_date desc, source_file desc
    ) = 1
),
stripe as (
    select
        id as payment_id,
        nullif(lower(trim("Customer Email")), '') as email,
        lower(trim("Status")) as status,
        lower(trim("Captured")) in ('true', 'yes', '1') as is_captured,
        upper(trim("Currency")) as currency,
        try_cast(nullif(trim("Amount"), '') as decimal(18, 6)) as amount,
        try_cast(nullif(trim("Amount Refunded"), '') as decimal(18, 6)) as amount_refunded,
        strptime(trim("Created date (UTC)"), '%Y-%m-%d %H:%M:%S') as created_at,
        regexp_extract(filename, '(\\d{4}-\\d{2}-\\d{2})[/\\\\][^/\\\\]*$', 1)::date as load_date
    from stripe_rows
    qualify row_number() over (partition by id order by load_date desc) = 1
),
unioned as (
    select
        'shopify-' || order_name as order_id,
        email,
        created_at,
        currency,
        total_amount,
        coalesce(refunded_amount, 0) as refunded_amount,
        discount_code is not null as has_discount,
        cancelled_at is null
            and financial_status in ('paid', 'partially_paid', 'partially_refunded', 'refunded')
            as is_revenue_order
    from shopify
    union all
    select
        'stripe-' || payment_id,
        email,
        created_at,
        currency,
        amount,
        case when status = 'refunded' then coalesce(amount_refunded, amount)
            else coalesce(amount_refunded, 0) end,
        false,
        is_captured and status in ('paid', 'refunded')
    from stripe
),
rated as (
    select unioned.*, fx.rate, fx.rate_date
    from unioned
    asof left join fx
        on unioned.currency = fx.from_currency
        and cast(unioned.created_at as date) >= fx.rate_date
)
select
    order_id,
    md5(email) as customer_id,
    cast(created_at as date) as order_date,
    created_at,
    has_discount,
    is_revenue_order,
    cast(total_amount * case when currency = $currency then 1.0
        when rate_date >= cast(created_at as date) - $fx_lookback_days then rate end as decimal(18, 2))
        as total_amount_reporting,
    cast(refunded_amount * case when currency = $currency then 1.0
        when rate_date >= cast(created_at as date) - $fx_lookback_days then rate end as decimal(18, 2))
        as refunded_amount_reporting
from rated;

create or replace temp table revenue_orders as
select * from orders where is_revenue_order;

-- every person any source names by e-mail
create or replace temp table people as
select distinct customer_id, email from (
    select md5(email) as customer_id, email from (
        select email from shopify_typed
        union all select nullif(lower(trim("Customer Email")), '') from stripe_rows
        union all select nullif(lower(trim("Email")), '') from hubspot_rows
        union all select nullif(lower(trim("Email")), '') from klaviyo_rows
        union all select nullif(lower(trim(email)), '') from product_rows
        union all select nullif(lower(trim(email)), '') from voucher_emails
        union all select nullif(lower(trim(email)), '') from assignments
    )
    where email is not null
);

create or replace table dim_customers as
with stats as (
    select
        customer_id,
        min(created_at) as first_order_at,
        max(created_at) as last_order_at,
        count(*) as orders_count,
        sum(total_amount_reporting) as lifetime_revenue,
        sum(refunded_amount_reporting) as lifetime_refunds
    from revenue_orders
    where customer_id is not null
    group by customer_id
)
select
    people.customer_id,
    any_value(people.email) as email,
    any_value(stats.first_order_at) as first_order_at,
    any_value(stats.last_order_at) as last_order_at,
    coalesce(any_value(stats.orders_count), 0) as orders_count,
    coalesce(any_value(stats.lifetime_revenue), 0) as lifetime_revenue,
    coalesce(any_value(stats.lifetime_refunds), 0) as lifetime_refunds
from people
left join stats using (customer_id)
group by people.customer_id;

-- product users: the customer their key leads to by e-mail, else the key itself
create or replace temp table product_users as
with events as (
    select
        coalesce(nullif(trim("userId"), ''), nullif(lower(trim(email)), '')) as source_key,
        nullif(lower(trim(email)), '') as email,
        case
            when regexp_full_match(trim("timestamp"), '\\d+') then
                make_timestamp(cast(trim("timestamp") as bigint) * 1000)
            else strptime(trim("timestamp"), '%Y-%m-%dT%H:%M:%S.%fZ')
        end as occurred_at
    from product_rows
),
key_emails as (
    select source_key, max(email) as email from events where email is not null group by source_key
)
select distinct
    cast(events.occurred_at as date) as activity_date,
    coalesce(md5(key_emails.email), 'product:' || events.source_key) as user_key
from events
left join key_emails using (source_key)
where events.source_key is not null;

create or replace table kpi_daily as
with bounds as (
    select min(order_date) as first_date, max(order_date) as last_date from revenue_orders
),
spine as (
    select cast(unnest(generate_series(first_date, last_date, interval 1 day)) as date) as date_day
    from bounds
),
first_dates as (
    select customer_id, min(order_date) as first_order_date
    from revenue_orders where customer_id is not null group by customer_id
),
daily as (
    select
        order_date,
        count(*) as orders,
        sum(total_amount_reporting) as revenue,
        sum(refunded_amount_reporting) as refunds,
        count(distinct case when order_date = first_order_date then revenue_orders.customer_id end)
            as new_customers
    from revenue_orders left join first_dates using (customer_id)
    group by order_date
),
-- a user active on day a counts for days a .. a + 6 (weekly) and a .. a + window - 1 (monthly):
-- each activity adds only the days its window does not share with the user's previous one, so
-- running sums of +1 / -1 give the distinct users per day without a range join
windows as (
    select
        activity_date,
        greatest(activity_date, coalesce(previous_date + 7, activity_date)) as week_start,
        activity_date + 7 as week_after,
        greatest(activity_date, coalesce(previous_date + $window, activity_date)) as month_start,
        activity_date + $window as month_after
    from (
        select activity_date,
            lag(activity_date) over (partition by user_key order by activity_date) as previous_date
        from product_users
    )
),
changes as (
    select day, sum(d) as d, sum(w) as w, sum(m) as m
    from (
        select activity_date as day, 1 as d, 0 as w, 0 as m from windows
        union all select week_start, 0, 1, 0 from windows
        union all select week_after, 0, -1, 0 from windows
        union all select month_start, 0, 0, 1 from windows
        union all select month_after, 0, 0, -1 from windows
    )
    group by day
),
active as (
    select
        date_day,
        coalesce(d, 0) as active_users,
        sum(coalesce(w, 0)) over (order by date_day) as weekly_active_users,
        sum(coalesce(m, 0)) over (order by date_day) as monthly_active_users
    from (select date_day from spine union select day from changes) as calendar
    left join changes on calendar.date_day = changes.day
)
select
    spine.date_day as date,
    coalesce(orders, 0) as orders,
    coalesce(revenue, 0) as revenue,
    coalesce(refunds, 0) as refunds,
    coalesce(new_customers, 0) as new_customers,
    coalesce(active_users, 0) as active_users,
    coalesce(weekly_active_users, 0) as weekly_active_users,
    coalesce(monthly_active_users, 0) as monthly_active_users
from spine
left join daily on spine.date_day = daily.order_date
left join active using (date_day)
order by date;

create or replace table kpi_cohort_retention as
with customer_months as (
    select customer_id, date_trunc('month', order_date)::date as order_month,
        sum(total_amount_reporting) as revenue
    from revenue_orders where customer_id is not null
    group by all
),
cohorts as (
    select customer_id, min(order_month) as cohort_month from customer_months group by all
),
sizes as (select cohort_month, count(*) as cohort_size from cohorts group by all),
months as (
    select cast(unnest(generate_series(min(order_month), max(order_month), interval 1 month))
        as date) as activity_month
    from customer_months
),
cells as (
    select cohort_month, cohort_size, activity_month,
        datediff('month', cohort_month, activity_month) as months_since_first_order
    from sizes inner join months on activity_month >= cohort_month
),
activity as (
    select cohort_month, datediff('month', cohort_month, order_month) as months_since_first_order,
        count(*) as retained_customers, sum(revenue) as revenue
    from customer_months inner join cohorts using (customer_id)
    group by all
)
select
    cells.cohort_month,
    cells.months_since_first_order,
    cells.activity_month,
    cells.cohort_size,
    coalesce(retained_customers, 0) as retained_customers,
    coalesce(retained_customers, 0) / cells.cohort_size as retention_rate,
    coalesce(revenue, 0) as revenue,
    sum(coalesce(revenue, 0)) over (
        partition by cells.cohort_month order by cells.months_since_first_order
    ) as cumulative_revenue
from cells left join activity using (cohort_month, months_since_first_order);

create or replace table dim_customer_segments as
with orders_to_date as (
    select * from revenue_orders
    where customer_id is not null and order_date <= $snapshot
),
ranked as (
    select customer_id, order_date,
        lag(order_date) over (partition by customer_id order by created_at, order_id)
            as previous_order_date,
        row_number() over (partition by customer_id order by created_at desc, order_id desc)
            as recency_rank
    from orders_to_date
),
stats as (
    select customer_id, min(order_date) as first_order_date, max(order_date) as last_order_date,
        count(*) as frequency, sum(total_amount_reporting) as monetary
    from orders_to_date group by customer_id
),
buyers as (
    select stats.*, ranked.previous_order_date,
        cast(ceil(5 * cume_dist() over (order by stats.monetary)) as integer) as m_score
    from stats inner join ranked
        on stats.customer_id = ranked.customer_id and ranked.recency_rank = 1
),
scored as (
    select
        $snapshot as snapshot_date,
        dim_customers.customer_id,
        datediff('day', last_order_date, $snapshot) as recency_days,
        datediff('day', first_order_date, $snapshot) as days_since_first_order,
        coalesce(frequency, 0) as frequency,
        coalesce(monetary, 0) as monetary,
        m_score,
        previous_order_date,
        last_order_date
    from dim_customers left join buyers using (customer_id)
),
rf as (
    select *,
        case when frequency > 0 then 5 - (recency_days > 30)::int - (recency_days > 60)::int
            - (recency_days > 90)::int - (recency_days > 180)::int end as r_score,
        case when frequency > 0 then 1 + (frequency >= 2)::int + (frequency >= 3)::int
            + (frequency >= 4)::int + (frequency >= 6)::int end as f_score
    from scored
)
select
    snapshot_date, customer_id, recency_days, frequency, monetary, r_score, f_score, m_score,
    case
        when frequency = 0 then null
        when r_score = 5 and f_score >= 4 then 'champions'
        when r_score >= 3 and f_score >= 4 then 'loyal'
        when r_score >= 4 and f_score >= 2 then 'potential_loyalist'
        when r_score = 5 then 'new'
        when r_score = 4 then 'promising'
        when r_score = 3 then 'needs_attention'
        when f_score = 5 then 'cannot_lose'
        when f_score >= 3 then 'at_risk'
        when r_score = 2 then 'hibernating'
        else 'lost'
    end as rfm_segment,
    case
        when frequency = 0 then 'lead'
        when recency_days > 90 then 'churned'
        when recency_days > 60 then 'at_risk'
        when days_since_first_order <= 30 then 'new'
        when datediff('day', previous_order_date, last_order_date) > 90 then 'reactivated'
        else 'active'
    end as lifecycle_stage
from rf;
"""


def _read_workbook_rows(path: Path, sheet: str | None = None) -> list[tuple]:
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        rows = workbook[sheet] if sheet else workbook.worksheets[0]
        return [r for r in rows.iter_rows(min_row=2, values_only=True) if any(r)]
    finally:
        workbook.close()


def _csv_list(files: list[Path]) -> str:
    return "[" + ", ".join(f"'{f}'" for f in files) + "]"


def landed_files(landing: Path, key: str) -> list[Path]:
    """Every file of source ``key`` in the dated landing folders: the files its contract claims,
    selected as the loads select them (``loads.landing_folders``, ``loads.landing_files``)."""
    from marketing_warehouse.ingest.loads import landing_files, landing_folders

    contract = contract_for(key)
    return [
        path
        for _, folder in landing_folders(landing, date.max)
        for path in landing_files(folder, landing, contract)[0]
    ]


#: How the floor reads a landed CSV besides its delimiter: a header line, '"' quotes doubled
#: inside values, every value as text, and no comment lines. Left to itself, DuckDB's sniffer
#: takes the '#' that starts every Shopify order name for a comment character in some exports and
#: silently skips those lines (a year of demo data read 25,447 of 264,608 orders).
FLOOR_CSV_OPTIONS = (
    "header = true, all_varchar = true, filename = true, quote = '\"', escape = '\"', "
    "comment = '', union_by_name = true"
)


def read_landed_csv(files: list[Path], columns: list[str] | None, scratch: Path) -> str:
    """A query over every row of ``files`` (landed CSV exports of one source) as the contracts
    read them: each file's encoding (``extract.detect_encoding``; a file in another encoding than
    UTF-8 is read from a UTF-8 copy under ``scratch/<date folder>/``) and delimiter
    (``extract.split_header`` on its header line), files of one delimiter in one ``read_csv``.
    ``columns``: the columns to keep (all when None), with the ``filename`` of each row."""
    from marketing_warehouse.ingest.extract import detect_encoding, split_header

    by_delimiter: dict[str, list[Path]] = {}
    for path in files:
        encoding = detect_encoding(path)
        if encoding not in ("utf-8", "utf-8-sig"):
            copy = scratch / path.parent.name / path.name
            copy.parent.mkdir(parents=True, exist_ok=True)
            with (
                path.open("r", encoding=encoding, errors="replace", newline="") as src,
                copy.open("w", encoding="utf-8", newline="") as dst,
            ):
                dst.write(src.read())
            path = copy
        with path.open("r", encoding="utf-8-sig", newline="") as handle:
            _, delimiter = split_header(handle.readline())
        by_delimiter.setdefault(delimiter, []).append(path)
    keep = "filename, " + ", ".join(f'"{c}"' for c in columns) if columns else "*"
    selects = [
        f"select {keep} from read_csv({_csv_list(group)}, delim = '{delimiter}', "
        f"{FLOOR_CSV_OPTIONS})"
        for delimiter, group in sorted(by_delimiter.items())
    ]
    if not selects:
        cells = ", ".join(f'null::varchar as "{c}"' for c in columns or [])
        return f"select null::varchar as filename{', ' + cells if cells else ''} limit 0"
    return " union all by name ".join(selects)


def floor(
    landing: Path,
    ds: date,
    db_path: Path,
    currency: str = "EUR",
    memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT,
) -> dict:
    """The headline marts (dim_customers, kpi_daily, kpi_cohort_retention, dim_customer_segments)
    from the landed files in plain DuckDB SQL, into tables of ``db_path``; their headline numbers.

    The connection has the pipeline's DuckDB memory limit (``MWH_DUCKDB_MEMORY_LIMIT``), so the
    floor is held to the same memory as the marts it is compared with."""
    db_path.unlink(missing_ok=True)
    con = duck.connect(memory_limit, db_path)
    try:
        con.execute("set TimeZone = 'UTC'; set enable_progress_bar = false")
        # UTF-8 copies of landed files in other encodings: read into the tables, then removed
        with tempfile.TemporaryDirectory(prefix="mwh-floor-") as scratch:
            for table, key, columns in (
                ("shopify_rows", "shopify__order_lines", FLOOR_SHOPIFY_COLUMNS),
                ("stripe_rows", "stripe__payments", None),
                ("hubspot_rows", "hubspot__contacts", ["Email"]),
                ("klaviyo_rows", "klaviyo__events", ["Email"]),
            ):
                query = read_landed_csv(landed_files(landing, key), columns, Path(scratch))
                con.execute(f"create temp table {table} as {query}")
        con.execute(
            "create temp table product_rows as select * from "
            f"read_json({_csv_list(landed_files(landing, 'product__events'))}, "
            "format = 'newline_delimited', "
            "columns = {messageId: 'VARCHAR', event: 'VARCHAR', timestamp: 'VARCHAR', "
            "userId: 'VARCHAR', email: 'VARCHAR'})"
        )
        con.execute(
            "create temp table voucher_emails as "
            "select unnest(redemptions).customer.email as email from "
            f"read_json({_csv_list(landed_files(landing, 'vouchers__redemptions'))}, "
            "maximum_object_size = 268435456)"
        )
        rates = {}
        for path in landed_files(landing, "spreadsheets__fx_rates"):
            for rate_date, from_c, to_c, rate in _read_workbook_rows(path):
                rates[(rate_date, str(from_c).upper(), str(to_c).upper())] = rate
        con.execute(
            "create temp table fx_all (rate_date date, from_currency varchar, "
            "to_currency varchar, rate decimal(18, 6))"
        )
        con.executemany(
            "insert into fx_all values (?, ?, ?, ?)", [(*k, v) for k, v in rates.items()]
        )
        con.execute(
            "create temp table fx as select * from fx_all where to_currency = ? "
            "order by from_currency, rate_date",
            [currency],
        )
        emails = [
            (row[1],)
            for path in landed_files(landing, "spreadsheets__experiment_assignments")
            for row in _read_workbook_rows(path, "assignments")
        ]
        con.execute("create temp table assignments (email varchar)")
        con.executemany("insert into assignments values (?)", emails)
        sql = (
            FLOOR_SQL.replace("$currency", f"'{currency}'")
            .replace("$snapshot", f"date '{ds.isoformat()}'")
            .replace("$window", "30")
            .replace("$fx_lookback_days", str(int(load_settings().dbt_var("fx_lookback_days"))))
        )
        for statement in sql.split(";\n"):
            if statement.strip():
                con.execute(statement)
        return headline_numbers(con, "main", ds)
    finally:
        con.close()


FLOOR_SHOPIFY_COLUMNS = [
    "Name", "Email", "Financial Status", "Currency", "Total", "Refunded Amount", "Discount Code",
    "Created at", "Cancelled at", "Lineitem quantity",
]  # fmt: skip

#: The numbers compared between the floor and the dbt marts: (mart, metric, SQL expression).
HEADLINES = [
    ("kpi_daily", "days", "count(*)"),
    ("kpi_daily", "orders", "sum(orders)"),
    ("kpi_daily", "revenue", "sum(revenue)"),
    ("kpi_daily", "refunds", "sum(refunds)"),
    ("kpi_daily", "new_customers", "sum(new_customers)"),
    ("kpi_daily", "active_user_days", "sum(active_users)"),
    ("kpi_daily", "peak_monthly_active_users", "max(monthly_active_users)"),
    ("kpi_daily", "weekly_active_user_days", "sum(weekly_active_users)"),
    ("kpi_daily", "monthly_active_user_days", "sum(monthly_active_users)"),
    ("dim_customers", "customers", "count(*)"),
    ("dim_customers", "customers_with_orders", "count(*) filter (where orders_count > 0)"),
    ("dim_customers", "lifetime_revenue", "sum(lifetime_revenue)"),
    ("kpi_cohort_retention", "cells", "count(*)"),
    ("kpi_cohort_retention", "retained_customers", "sum(retained_customers)"),
    ("kpi_cohort_retention", "revenue", "sum(revenue)"),
    ("dim_customer_segments", "customers", "count(*)"),
    ("dim_customer_segments", "champions", "count(*) filter (where rfm_segment = 'champions')"),
    ("dim_customer_segments", "churned", "count(*) filter (where lifecycle_stage = 'churned')"),
    ("dim_customer_segments", "monetary", "sum(monetary)"),
]


def headline_numbers(con, schema: str, ds: date) -> dict:
    numbers = {}
    for table, metric, expr in HEADLINES:
        where = (
            f" where snapshot_date = date '{ds.isoformat()}'"
            if table == "dim_customer_segments"
            else ""
        )
        value = con.execute(f"select {expr} from {schema}.{table}{where}").fetchone()[0]
        numbers[f"{table}.{metric}"] = float(value) if value is not None else None
    return numbers


def compare_marts(floor_db: Path, warehouse: Path, ds: date) -> list[dict]:
    """The floor's headline numbers beside the published dbt marts' numbers."""
    con = duckdb.connect(str(floor_db), read_only=True)
    try:
        ours = headline_numbers(con, "main", ds)
    finally:
        con.close()
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        theirs = headline_numbers(con, "marts", ds)
    finally:
        con.close()
    checks = []
    for key, value in theirs.items():
        floor_value = ours.get(key)
        match = value is not None and floor_value is not None and abs(value - floor_value) <= 0.01
        checks.append(
            {
                "metric": key,
                "dbt": value,
                "floor": floor_value,
                "difference": None
                if value is None or floor_value is None
                else round(value - floor_value, 2),
                "match": bool(match),
            }
        )
    return checks


def _floor_main(argv: list[str]) -> int:
    landing, ds, db_path, currency, memory_limit = argv
    numbers = floor(Path(landing), date.fromisoformat(ds), Path(db_path), currency, memory_limit)
    print(json.dumps(numbers, indent=1))
    return 0


def format_full(report: dict) -> str:
    """The table, the ratios against their targets and the floor-versus-marts check."""
    m = report["machine"]
    out = [
        f"scale {report['scale']}, {report['days']} days to {report['logical_date']} "
        f"(+1 incremental), seed {report['seed']}, MWH_DBT_TASKS={report['dbt_tasks']}",
        f"machine: {m['cpus']} cpus, {m['memory_mb']:,} MB, load average {m['load_average']}",
        f"generated {report['generation']['rows']:,} rows in "
        f"{report['generation']['seconds']:.1f}s: "
        + ", ".join(f"{k} {v:,}" for k, v in report["volumes"].items()),
        "",
        f"{'step':44}{'wall s':>9}{'peak RSS MB':>13}{'rows':>12}{'rows/s':>10}{'exit':>6}",
    ]
    for s in report["steps"]:
        out.append(
            f"{s['name']:44}{s['seconds']:>9.1f}{s['peak_rss_mb']:>13,.0f}{s['rows']:>12,}"
            f"{s['rows_per_second']:>10,}{s['exit_code']:>6}"
        )
    out.append("")
    labels = {
        "full_over_floor": "(a)/(c)",
        "dbt_over_floor": "(b)/(c)",
        "incremental_over_full": "(d)/(a)",
    }
    for key, value in report["ratios"].items():
        shown = "n/a" if value is None else f"{value:.2f}"
        line = f"ratio {labels.get(key, key):<36}{shown:>8}"
        if key in TARGETS_BY_KEY:
            target = TARGETS_BY_KEY[key]
            line += f"   target <= {target.limit:g} at scale {target.scale:g}"
        out.append(line)
    out.append(
        f"whole bench at this scale {report['wall_seconds']:,.0f} s, "
        f"peak RSS {report['peak_rss_mb']:,.0f} MB"
    )
    if report["checks"]:
        out += ["", f"{'floor vs dbt marts':44}{'dbt':>16}{'floor':>16}{'check':>8}"]
        for c in report["checks"]:
            shown = [
                "null" if v is None else f"{v:,.2f}" if v % 1 else f"{v:,.0f}"
                for v in (c["dbt"], c["floor"])
            ]
            out.append(
                f"{c['metric']:44}{shown[0]:>16}{shown[1]:>16}{'ok' if c['match'] else 'DIFF':>8}"
            )
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "floor":
        sys.exit(_floor_main(sys.argv[2:]))
    sys.exit(
        f"usage: python -m {__spec__.name if __spec__ else 'bench'} floor LANDING DS DB CURRENCY"
    )
