"""``mwh``: the project's command line (``make run`` and ``make test`` call it).

A misuse or a failure the user can act on is a ``CliError``: ``main`` alone prints it, as one line
on stderr (``mwh <command>: <what went wrong>; <what to do>``), and exits with its code
(``USAGE_EXIT`` when the command was asked wrongly, ``FAILED_EXIT`` when it could not be done).
A traceback means a bug.
"""

from __future__ import annotations

import argparse
import errno
import functools
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from marketing_warehouse.config import (
    DBT_TASK_MODES,
    FROM_DEFAULT,
    SETTINGS_HELP,
    ConfigError,
    Settings,
    describe_sources,
    dotenv_path,
    environment,
    is_secret,
    load_settings,
)
from marketing_warehouse.serve.semantic import GRAINS

DAG_ID = "marketing_warehouse_nightly"
#: Exit codes: the command was asked wrongly (as argparse does), or it could not be done.
USAGE_EXIT, FAILED_EXIT = 2, 1
_RUNNING = re.compile(
    r"\[DAG TEST\] running task <TaskInstance: \w+\.([\w.]+) \S+(?: map_index=(\d+))?"
)
_STATE = re.compile(r"new_state=(\w+)")
_NOT_FINAL = {"running", "queued", "scheduled", "up_for_reschedule"}


class CliError(Exception):
    """What ``mwh`` says instead of a traceback: ``message`` (what went wrong) and ``fix`` (what
    to do), printed by ``main`` as one line, and the exit code."""

    def __init__(self, message: str, fix: str = "", code: int = FAILED_EXIT) -> None:
        super().__init__(message)
        self.message, self.fix, self.code = message, fix, code

    def line(self, command: str) -> str:
        text = f"mwh {command}: {self.message}".replace("\n", " ")
        return f"{text}; {self.fix}" if self.fix else text


def usage_error(message: str, fix: str = "") -> CliError:
    return CliError(message, fix, USAGE_EXIT)


class _Parser(argparse.ArgumentParser):
    """argparse with its errors in the one-line form of ``CliError`` (its usage block omitted)."""

    def error(self, message: str):  # type: ignore[override]
        print(f"{self.prog}: {message}; see `{self.prog} --help`", file=sys.stderr)
        sys.exit(USAGE_EXIT)


def _iso_date(option: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise usage_error(
            f"{option} {value!r} is not a calendar date", "give it as YYYY-MM-DD, e.g. 2026-11-21"
        ) from None


def _warehouse(settings: Settings) -> Path:
    """The serving file, or the CliError a reader gets before the first run published one."""
    if not settings.warehouse_path.exists():
        raise CliError(
            f"no warehouse at {settings.warehouse_path}",
            "run `make run` first (or set MWH_WAREHOUSE_PATH / MWH_DATA_DIR to where it is)",
        )
    return settings.warehouse_path


def _parse_dbt(settings: Settings, env: dict[str, str]) -> None:
    """The dbt manifest when it is missing or older than the project, as a CliError if dbt
    cannot write it."""
    from marketing_warehouse.transform.dbt_tasks import manifest_is_stale, parse_project

    if not manifest_is_stale(settings):
        return
    try:
        parse_project(settings, env)
    except (subprocess.CalledProcessError, OSError) as exc:
        raise CliError(
            f"dbt could not parse {settings.dbt_project_dir} ({exc})",
            "run `mwh dbt-parse` to see dbt's own error and fix the model or YAML it names",
        ) from None


def _yesterday() -> str:
    return (datetime.now(UTC).date() - timedelta(days=1)).isoformat()


def _logical_date(value: str | None) -> str:
    from marketing_warehouse.pipeline import EARLIEST_LOGICAL_DATE

    if not value:
        return _yesterday()
    day = _iso_date("--date", value)
    if day < EARLIEST_LOGICAL_DATE:
        raise usage_error(
            f"--date {value}: the DAG runs dates from {EARLIEST_LOGICAL_DATE} on (its start date); "
            "Airflow would run no task for an earlier one",
            f"give a date from {EARLIEST_LOGICAL_DATE} on",
        )
    return day.isoformat()


@dataclass
class DagRunOutcome:
    """What ``airflow dags test`` did: its exit code and the final state of each task it ran."""

    code: int
    states: dict[str, str] = field(default_factory=dict)

    def problem(self) -> str:
        """Why the run must not count as a success ("" when it published)."""
        if not self.states:
            return (
                "no task ran: Airflow found nothing to run for this date (see the full log); "
                "nothing was extracted or published, and anything below comes from an earlier "
                "run of this date"
            )
        failed = sorted(t for t, s in self.states.items() if s != "success")
        if failed:
            return f"task(s) not successful: {', '.join(failed)}"
        if self.states.get("publish") != "success":
            return "the run ended without publishing (no publish task succeeded)"
        if self.code:
            return f"airflow dags test exited with code {self.code}"
        return ""


def run_dag(settings: Settings, ds: str, env: dict[str, str], log_path: Path) -> DagRunOutcome:
    """``airflow dags test`` for ``ds``, printing one line per finished task."""

    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"Running {DAG_ID} for {ds} through Airflow (full log: {log_path})", flush=True)
    exe = Path(sys.executable).parent / "airflow"
    started = time.monotonic()
    current, task_started = None, started
    states: dict[str, str] = {}
    with (
        log_path.open("w", encoding="utf-8") as log,
        subprocess.Popen(
            [str(exe), "dags", "test", DAG_ID, ds],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        ) as proc,
    ):
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            running = _RUNNING.search(line)
            if running:
                current, task_started = running.group(1), time.monotonic()
                if running.group(2) is not None:
                    current += f"[{running.group(2)}]"
                continue
            state = _STATE.search(line)
            # a model's task that finds its stage's build not done yet is rescheduled: not final
            if state and current and state.group(1) not in _NOT_FINAL:
                mark = {"success": "ok  ", "failed": "FAIL", "up_for_retry": "RETRY"}.get(
                    state.group(1), state.group(1)
                )
                print(f"  {mark} {current:<70} {time.monotonic() - task_started:6.1f}s", flush=True)
                states[current] = state.group(1)
                current = None
        code = proc.wait()
    print(f"DAG run finished in {time.monotonic() - started:.1f}s (exit code {code})", flush=True)
    return DagRunOutcome(code, states)


def _demo_days(settings: Settings, scale: float) -> int:
    """MWH_DEMO_DAYS when set, else a year from scale 0.1 (60 days below)."""
    from marketing_warehouse.tools import demo

    if "MWH_DEMO_DAYS" in environment():
        return settings.demo_days
    return demo.default_days(scale, settings.demo_days)


def _one_run_at_a_time(command):
    """Run ``command`` holding the run lock; refuse at once (exit ``RUN_LOCKED_EXIT``, nothing
    touched) while another run holds it."""

    @functools.wraps(command)
    def locked(args: argparse.Namespace) -> int:
        from marketing_warehouse.ops.runlock import RUN_LOCKED_EXIT, RunLocked, run_lock

        settings = load_settings()
        date_part = f" {_logical_date(args.date)}" if "date" in vars(args) else ""
        name = f"mwh {args.command}{date_part} pid {os.getpid()}"
        try:
            with run_lock(settings, name):
                return command(args)
        except RunLocked as exc:
            raise CliError(f"refused: {exc}", code=RUN_LOCKED_EXIT) from None

    return locked


@_one_run_at_a_time
def cmd_run(args: argparse.Namespace) -> int:
    from marketing_warehouse.airflow_env import airflow_env, correct_test_run_start, ensure_airflow
    from marketing_warehouse.ops import summary
    from marketing_warehouse.tools import demo

    settings = load_settings()
    ds = _logical_date(args.date)
    env = airflow_env(settings)
    if demo.landing_is_empty(settings.landing_dir):
        files = demo.generate(
            settings.landing_dir,
            date.fromisoformat(ds),
            _demo_days(settings, args.scale),
            seed=settings.demo_seed,
            scale=args.scale,
        )
        print(
            f"Landing folder was empty: wrote {len(files)} demo export files to "
            f"{settings.landing_dir}",
            flush=True,
        )
    print("Preparing Airflow metadata and the dbt manifest ...", flush=True)
    ensure_airflow(settings, env)
    _parse_dbt(settings, env)
    # an earlier run's log and summary of the date go with its state (prepare would move the
    # state alone, after this run's log was opened)
    settings.layout.archive_earlier_run(ds, logs=True)
    outcome = run_dag(settings, ds, env, settings.layout.run(ds).airflow_log)
    if outcome.states:
        try:
            correct_test_run_start(DAG_ID, ds, env)
        except subprocess.CalledProcessError as exc:  # the UI's duration only: the run stands
            last = (exc.stderr or "").strip().splitlines()[-1:] or ["?"]
            print(f"the run's start time in Airflow's UI is not corrected: {last[0]}", flush=True)
    problem = outcome.problem()
    print(summary.build(settings, ds, not problem, problem))
    return 1 if problem else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from marketing_warehouse.tools import demo

    settings = load_settings()
    files = demo.generate(
        settings.landing_dir,
        date.fromisoformat(_logical_date(args.date)),
        args.days or _demo_days(settings, args.scale),
        seed=settings.demo_seed,
        scale=args.scale,
    )
    print(f"wrote {len(files)} files under {settings.landing_dir}")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    import duckdb

    settings = load_settings()
    warehouse = _warehouse(settings)
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error as exc:
        raise CliError(
            f"cannot open {warehouse}: {_first_line(exc)}",
            "check that it is a DuckDB file no process holds open for writing (`mwh rollback --list`)",
        ) from None
    try:
        if args.csv:
            rows = write_csv_export(con.sql(args.sql), Path(args.csv))
            print(f"wrote {rows} row(s) to {args.csv}")
        else:
            con.sql(args.sql).show(max_rows=200)
    except duckdb.Error as exc:
        raise usage_error(
            f"the query failed: {_first_line(exc)}",
            'fix the SQL (DuckDB dialect; `mwh query "show all tables"` lists the tables)',
        ) from None
    except OSError as exc:
        raise CliError(
            f"cannot write {args.csv}: {exc.strerror}", "choose a folder you can write to"
        ) from None
    finally:
        con.close()
    return 0


def _first_line(exc: BaseException) -> str:
    """An error's first line (DuckDB adds the query and a caret below it)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def write_csv_export(relation, target: Path) -> int:
    """A query result as CSV for spreadsheets: text that would run as a formula gets a leading '.

    The warehouse keeps values as the source sent them; only this export boundary defuses them
    (see DECISIONLOG "Formula-like text").
    """
    import csv

    from marketing_warehouse.ingest.extract import neutralise_formula

    target.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with target.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(relation.columns)
        while batch := relation.fetchmany(10_000):
            writer.writerows([neutralise_formula(v) for v in row] for row in batch)
            count += len(batch)
    return count


@_one_run_at_a_time
def cmd_erase(args: argparse.Namespace) -> int:
    from marketing_warehouse.ops.erasure import ErasureError, UnknownPerson, erase, log_path

    settings = load_settings()
    try:
        result = erase(settings, email=args.email, customer=args.customer_id, resume=args.resume)
    except UnknownPerson as exc:
        raise usage_error(f"not erased: {exc}") from None
    except ErasureError as exc:
        raise CliError(
            f"erasure failed: {exc}", "fix what it names, then finish it with `mwh erase --resume`"
        ) from None
    record = result.record("")
    print(f"erased customer {result.customer_id}:")
    for name, rows in result.landing_files.items():
        print(f"  landing   {name}: {rows} row(s) removed")
    for name, what in result.unreadable_files.items():
        print(f"  landing   {name}: {what}")
    print(f"  raw       {record['raw_rows_removed']} row(s) removed")
    print(
        f"  quarantine {record['quarantine_rows_removed']} row(s) removed, "
        f"{record['quarantine_previews_redacted']} file preview(s) redacted"
    )
    for name, rows in result.warehouse_rows.items():
        print(f"  warehouse {name}: {rows} row(s) removed")
    if result.postgres_tables:
        print(f"  postgres  {result.postgres_tables} table(s) republished from the erased file")
    print(f"  exports   {result.export_rows} audience file row(s) removed")
    print(f"  files     {len(result.files_redacted)} report, doc or log file(s) redacted")
    print(f"recorded (hash only) in {log_path(settings)}")
    held = [n for n, what in result.unreadable_files.items() if "hold the address" in what]
    return 3 if held else 0


def cmd_audiences(args: argparse.Namespace) -> int:
    """Validate every audience definition; with ``--columns``, list the columns a filter may name."""
    from marketing_warehouse.transform.audiences import (
        AudienceError,
        allowed_columns,
        load_audiences,
    )

    settings = load_settings()
    if args.columns:
        for name, text in allowed_columns(settings.dbt_project_dir).items():
            print(f"{name:<24} {text}")
        return 0
    try:
        audiences = load_audiences(settings.dbt_project_dir)
    except AudienceError as exc:
        raise CliError(f"audience definition rejected: {exc}", "fix the field it names") from None
    for audience in audiences:
        share = f"control {audience.control_share:.0%}" if audience.control_share else "no control"
        print(f"ok  {audience.name:<32} {audience.channel:<10} {share:<12} {audience.filter_sql}")
    print(f"{len(audiences)} audience(s) valid")
    return 0


def cmd_airflow(args: argparse.Namespace) -> int:
    """Any airflow command with the project's environment (e.g. ``mwh airflow standalone``)."""
    from marketing_warehouse.airflow_env import (
        SERVER_COMMANDS,
        airflow_env,
        ensure_airflow,
        run_forwarding_signals,
    )

    if not args.airflow_args:
        raise usage_error(
            "no airflow command given", "e.g. `mwh airflow standalone` or `mwh airflow dags list`"
        )
    settings = load_settings()
    env = airflow_env(settings)
    ensure_airflow(settings, env)
    _parse_dbt(settings, env)
    exe = Path(sys.executable).parent / "airflow"
    if args.airflow_args[0] in SERVER_COMMANDS:  # stopped with every process it starts
        return run_forwarding_signals([str(exe), *args.airflow_args], env)
    os.execve(str(exe), [str(exe), *args.airflow_args], env)  # may ask on the terminal
    return 0  # not reached


def cmd_dbt(args: argparse.Namespace) -> int:
    """A dbt command on the project, with the environment the pipeline gives dbt (the engine of
    MWH_ENGINE, the raw layer, the build file); dbt's output and exit code as they are."""
    from marketing_warehouse.transform.dbt_tasks import run_dbt

    dbt_args = args.dbt_args[1:] if args.dbt_args[:1] == ["--"] else args.dbt_args
    if not dbt_args:
        raise usage_error("no dbt command given", "e.g. `mwh dbt build --select fct_orders+`")
    return run_dbt(load_settings(), dbt_args, dict(os.environ), capture=False).returncode


def cmd_dbt_parse(args: argparse.Namespace) -> int:
    from marketing_warehouse.airflow_env import airflow_env
    from marketing_warehouse.transform.dbt_tasks import parse_project

    settings = load_settings()
    try:
        print(parse_project(settings, airflow_env(settings)))
    except subprocess.CalledProcessError as exc:  # dbt printed its error above
        raise CliError(
            f"dbt parse failed (exit code {exc.returncode})",
            "fix the model or YAML dbt names above, then run `mwh dbt-parse` again",
        ) from None
    return 0


#: Settings whose current value is one the settings resolve (a path, a default computed here).
_RESOLVED = {
    "MWH_PROJECT_DIR": lambda s: s.project_dir,
    "MWH_DATA_DIR": lambda s: s.data_dir,
    "MWH_LANDING_DIR": lambda s: s.landing_dir,
    "MWH_WAREHOUSE_PATH": lambda s: s.warehouse_path,
    "MWH_BUILD_PATH": lambda s: s.build_path,
    "MWH_EXPECTATIONS_DIR": lambda s: s.expectations_dir,
    "MWH_EXTRACT_WORKERS": lambda s: s.extract_workers,
    "MWH_DUCKDB_MEMORY_LIMIT": lambda s: s.duckdb_memory_limit,
}


def settings_table(settings: Settings, env: dict[str, str], sources: dict[str, str]) -> list[str]:
    """Two lines per documented setting: ``NAME = current value  [env|.env|default]`` (secrets
    masked), then its help text."""
    lines = []
    for name, (default, help_text) in SETTINGS_HELP.items():
        source = sources.get(name, FROM_DEFAULT)
        if source != FROM_DEFAULT:
            value = env.get(name, "")
        elif name in _RESOLVED:
            value = str(_RESOLVED[name](settings))
        else:
            value = default
        if is_secret(name) and source != FROM_DEFAULT:
            value = "******** (set)" if value else "(empty)"
        lines += [f"{name} = {value}  [{source}]", f"    {help_text}"]
    return lines


def cmd_settings(args: argparse.Namespace) -> int:
    """The settings as this command sees them: the environment over .env over the defaults."""
    env = environment()
    settings = load_settings(env)
    sources = describe_sources()
    dotenv = dotenv_path()
    print(f"Current settings (environment, then {dotenv}", end="")
    print(", then the defaults):" if dotenv.exists() else " [not found], then the defaults):")
    for line in settings_table(settings, env, sources):
        print(line)
    others = sorted(k for k in sources if k not in SETTINGS_HELP)
    if others:
        print(f"\nnot a setting (misspelt?): {', '.join(others)}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """Serve a kept version again (on PostgreSQL too when configured: both or neither)."""
    from marketing_warehouse.serve.publish import PublishError, list_versions, rollback

    settings = load_settings()
    if args.list:
        versions = list_versions(settings)
        if not versions:
            print(f"no kept versions of {settings.warehouse_path}")
        for version in versions:
            print(f"{'*' if version.is_current else ' '} {version.id}")
        return 0
    from marketing_warehouse.pipeline import postgres_target
    from marketing_warehouse.serve.postgres import PostgresPublishError

    postgres = postgres_target(settings)
    try:
        version = rollback(settings, args.to, target=postgres.stage if postgres else None)
    except (PublishError, PostgresPublishError) as exc:
        raise CliError(
            f"rollback failed, nothing was changed: {exc}",
            "`mwh rollback --list` shows the kept versions",
        ) from None
    print(f"{settings.warehouse_path} now serves version {version.id}")
    if postgres:
        print(f"PostgreSQL schemas marts and audit now hold version {version.id}")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    """Serve dbt docs and GX data docs on one local port until interrupted."""
    from marketing_warehouse.serve.docs import make_server

    settings = load_settings()
    if args.generate:  # opens the build file: not while a run is writing it
        from marketing_warehouse.pipeline import refresh_dbt_docs

        print("Generating dbt docs ...", flush=True)
        refresh_dbt_docs(settings)
    try:
        server = make_server(settings, args.host, args.port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CliError(
                f"port {args.port} is in use on {args.host}",
                "set another with `mwh docs --port N` (0 picks a free one; in compose DOCS_PORT) "
                "or stop the process that holds it",
            ) from None
        raise CliError(
            f"cannot serve on {args.host}:{args.port}: {exc.strerror}",
            "pick another --host or --port",
        ) from None
    host, port = server.server_address[:2]
    print(f"Serving docs on http://{host}:{port}/ (dbt docs at /dbt/, GX data docs at /gx/)")
    print("Press Ctrl+C to stop.", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def cmd_metric(args: argparse.Namespace) -> int:
    """A semantic-layer metric over time through MetricFlow, on the serving file."""
    from marketing_warehouse.serve import semantic

    start = _iso_date("--start", args.start) if args.start else None
    end = _iso_date("--end", args.end) if args.end else None
    if start and end and end < start:
        raise usage_error(f"--end {end} is before --start {start}", "swap them")
    if args.limit is not None and args.limit < 1:
        raise usage_error(f"--limit {args.limit} is not a positive number of rows")
    settings = load_settings()
    env = semantic.environment()
    _warehouse(settings)
    _parse_dbt(settings, env)
    try:
        mf_args = semantic.mf_query_args(
            semantic.semantic_manifest(settings),
            [m for name in args.metrics for m in name.split(",") if m],
            grain=args.grain,
            by=[d for name in args.by or [] for d in name.split(",") if d],
            start=start.isoformat() if start else None,
            end=end.isoformat() if end else None,
            limit=args.limit,
        )
    except semantic.MetricQueryError as exc:
        raise usage_error(str(exc)) from None
    if args.explain:
        mf_args.append("--explain")
    result = semantic.run_metric_query(settings, mf_args, env, csv=args.csv)
    if result.returncode != 0:
        raise CliError(
            f"MetricFlow failed: {semantic.mf_error(result)}",
            "run it again with --explain to see the SQL, or `mwh dbt-parse` if the semantic "
            "models changed",
        )
    table = semantic.result_table(result.stdout)
    if args.csv:
        print(f"wrote {args.csv}")
    elif not table:
        print("mwh metric: no rows for this query (see --start/--end)", file=sys.stderr)
    print(table, end="")
    return 0


def cmd_bi(args: argparse.Namespace) -> int:
    """Superset: start it on the serving file, write the dashboards bundle, or import it."""
    from marketing_warehouse.layout import bi_bundle
    from marketing_warehouse.serve import superset, superset_bundle

    settings = load_settings()
    try:
        if args.bi_command == "start":
            return superset.serve_forever(settings)
        if args.bi_command == "bundle":
            written = superset_bundle.write(bi_bundle(settings.project_dir), settings.project_dir)
            print(f"{len(written)} files in {bi_bundle(settings.project_dir)}")
            return 0
        return superset.import_into_running(settings, args.url, postgres=args.postgres)
    except superset.SupersetError as exc:
        raise CliError(str(exc)) from exc


def cmd_bench(args: argparse.Namespace) -> int:
    import tempfile

    from marketing_warehouse.tools import bench

    settings = load_settings()
    out = Path(args.out) if args.out else settings.layout.bench
    out.mkdir(parents=True, exist_ok=True)
    if args.what == "full":
        return _bench_full(args, out)
    if args.what == "workbook":
        return _bench_workbook(args, out)
    if args.what == "demo-run":
        return _bench_demo_run(args, out)
    with tempfile.TemporaryDirectory(prefix="mwh-bench-", dir=out) as tmp:
        report = bench.extraction(Path(tmp), args.lines)
    print(bench.format_extraction(report))
    target = out / "extraction.json"
    target.write_text(json.dumps(report, indent=2), "utf-8")
    print(f"\nwritten to {target}")
    return 0


def _bench_workbook(args: argparse.Namespace, out: Path) -> int:
    import tempfile

    from marketing_warehouse.tools import bench

    with tempfile.TemporaryDirectory(prefix="mwh-bench-", dir=out) as tmp:
        report = bench.workbook(Path(tmp), args.rows)
    print(bench.format_workbook(report))
    target = out / "workbook.json"
    target.write_text(json.dumps(report, indent=2), "utf-8")
    print(f"\nwritten to {target}")
    return 0 if report["same_csv"] else 1


def _bench_scales(args: argparse.Namespace) -> list[float]:
    """``--scale S`` (one scale) or ``--scales S1,S2,...``, default ``bench.DEFAULT_SCALES``."""
    from marketing_warehouse.tools import bench

    if args.scale is not None and args.scales is not None:
        raise usage_error("give --scale or --scales, not both", "--scales 0.1,1 or --scale 1")
    if args.scale is not None:
        return [args.scale]
    if args.scales is None:
        return list(bench.DEFAULT_SCALES)
    try:
        scales = sorted({float(part) for part in args.scales.split(",") if part.strip()})
    except ValueError:
        scales = []
    if not scales or min(scales) <= 0:
        raise usage_error(
            f"--scales {args.scales}: positive scale factors separated by commas",
            "e.g. --scales 0.1,1",
        )
    return scales


def _bench_full(args: argparse.Namespace, out: Path) -> int:
    from marketing_warehouse.tools import bench

    scales = _bench_scales(args)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = bench.full_suite(
        out,
        scales,
        stamp,
        days=args.days,
        seed=args.seed,
        compare_single=not args.no_compare,
        dbt_tasks=args.dbt_tasks or load_settings().dbt_tasks,
        with_demo_run=not args.no_demo_run,
        keep=args.keep,
    )
    print(bench.format_suite(report))
    target = out / f"bench-{'_'.join(f'{s:g}' for s in scales)}-{stamp}.json"
    target.write_text(json.dumps(report, indent=2), "utf-8")
    print(f"\nwritten to {target}")
    return 0 if report["ok"] else 1


def _bench_demo_run(args: argparse.Namespace, out: Path) -> int:
    from marketing_warehouse.tools import bench

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = bench.full_suite(out, [], stamp, with_demo_run=True, keep=args.keep)
    print(bench.format_suite(report))
    target = out / f"demo-run-{stamp}.json"
    target.write_text(json.dumps(report, indent=2), "utf-8")
    print(f"\nwritten to {target}")
    return 0 if report["ok"] else 1


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mwh", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the nightly DAG once through Airflow, then summarise")
    run.add_argument("--date", help="logical date YYYY-MM-DD (default: yesterday, UTC)")
    run.add_argument("--scale", type=float, default=0.01, help="demo size if landing is empty")
    run.set_defaults(func=cmd_run)
    demo = sub.add_parser("demo", help="write demo exports into the landing folder")
    demo.add_argument("--date", help="last landing date (default: yesterday, UTC)")
    demo.add_argument(
        "--days", type=int, help="days of history (default: MWH_DEMO_DAYS, or 365 from scale 0.1)"
    )
    demo.add_argument("--scale", type=float, default=0.01, help="1.0 = ~1 M order lines a year")
    demo.set_defaults(func=cmd_demo)
    query = sub.add_parser("query", help="run SQL against the serving warehouse (read-only)")
    query.add_argument("sql")
    query.add_argument("--csv", help="write the result to this CSV file (formulas defused)")
    query.set_defaults(func=cmd_query)
    erase = sub.add_parser(
        "erase", help="remove one person from every file, database and log the warehouse writes"
    )
    who = erase.add_mutually_exclusive_group(required=True)
    who.add_argument("--email", help="the person's e-mail address")
    who.add_argument("--customer-id", help="the warehouse customer_id (md5 of the e-mail)")
    who.add_argument(
        "--resume", action="store_true", help="finish the erasure a crash or an error stopped"
    )
    erase.set_defaults(func=cmd_erase)
    audiences = sub.add_parser(
        "audiences", help="check the audience definitions (dbt_project/audiences/*.yml)"
    )
    audiences.add_argument("action", choices=["check"], help="validate every definition")
    audiences.add_argument(
        "--columns", action="store_true", help="list the columns a filter may name"
    )
    audiences.set_defaults(func=cmd_audiences)
    af = sub.add_parser("airflow", help="an airflow command with the project's environment")
    af.add_argument("airflow_args", nargs=argparse.REMAINDER)
    af.set_defaults(func=cmd_airflow)
    dbt = sub.add_parser("dbt", help="a dbt command on the project (MWH_ENGINE picks the engine)")
    dbt.add_argument("dbt_args", nargs=argparse.REMAINDER)
    dbt.set_defaults(func=cmd_dbt)
    parse = sub.add_parser("dbt-parse", help="refresh the dbt manifest Cosmos renders from")
    parse.set_defaults(func=cmd_dbt_parse)
    settings = sub.add_parser("settings", help="list the MWH_* settings and their values")
    settings.set_defaults(func=cmd_settings)
    bench = sub.add_parser("bench", help="benchmarks, each measured beside DuckDB's own floor")
    bench.add_argument("what", choices=["extraction", "full", "workbook", "demo-run"])
    bench.add_argument("--lines", type=int, default=1_000_000, help="extraction: order lines")
    bench.add_argument("--rows", type=int, default=244_000, help="workbook: assignment rows")
    bench.add_argument("--scale", type=float, help="full: one demo scale factor")
    bench.add_argument(
        "--scales",
        help="full: demo scale factors, e.g. 0.1,1: each benched in turn, then (d)'s growth "
        "(default: bench.DEFAULT_SCALES)",
    )
    bench.add_argument("--days", type=int, help="full: days of history (a year from scale 0.1)")
    bench.add_argument("--seed", type=int, default=42, help="full: demo seed")
    bench.add_argument(
        "--dbt-tasks",
        choices=DBT_TASK_MODES,
        default=None,
        help="full: MWH_DBT_TASKS of the measured runs (default: the setting)",
    )
    bench.add_argument(
        "--no-compare", action="store_true", help="full: skip the run in the other dbt task mode"
    )
    bench.add_argument(
        "--no-demo-run", action="store_true", help="full: skip the demo `make run` (demo-run)"
    )
    bench.add_argument(
        "--keep",
        action="store_true",
        help="full, demo-run: keep the data folders (kept anyway on failure)",
    )
    bench.add_argument("--out", help="folder for the JSON report (default: <data>/bench)")
    bench.set_defaults(func=cmd_bench)
    rb = sub.add_parser(
        "rollback", help="serve an earlier published version again (default: the previous one)"
    )
    rb.add_argument("--to", metavar="VERSION", help="a version id, or a unique part of one")
    rb.add_argument("--list", action="store_true", help="list kept versions (* = serving)")
    rb.set_defaults(func=cmd_rollback)
    from marketing_warehouse.serve import docs as docs_server

    docs = sub.add_parser("docs", help="serve dbt docs and GX data docs on localhost")
    docs.add_argument("--host", default=docs_server.DEFAULT_HOST)
    docs.add_argument(
        "--port", type=int, default=docs_server.DEFAULT_PORT, help="0 picks a free port"
    )
    docs.add_argument(
        "--generate", action="store_true", help="regenerate dbt docs first (reads the build file)"
    )
    docs.set_defaults(func=cmd_docs)
    metric = sub.add_parser(
        "metric", help="query semantic-layer metrics (MetricFlow) on the serving warehouse"
    )
    metric.add_argument("metrics", nargs="+", help="e.g. revenue orders average_order_value")
    metric.add_argument("--grain", default="day", choices=GRAINS, help="time grain (default: day)")
    metric.add_argument("--by", action="append", help="dimension, e.g. channel (repeatable)")
    metric.add_argument("--start", help="first date (inclusive), YYYY-MM-DD")
    metric.add_argument("--end", help="last date (inclusive), YYYY-MM-DD")
    metric.add_argument("--limit", type=int)
    metric.add_argument("--csv", type=Path, help="write the result to this CSV file")
    metric.add_argument("--explain", action="store_true", help="show the SQL MetricFlow runs")
    metric.set_defaults(func=cmd_metric)
    bi = sub.add_parser("bi", help="Superset, the BI tool: start it, write or import dashboards")
    bi_sub = bi.add_subparsers(dest="bi_command", required=True)
    bi_sub.add_parser("start", help="start Superset on MWH_BI_URL with the dashboards (make bi)")
    bi_sub.add_parser(
        "bundle", help="write the dashboards bundle bi/superset-assets/ from its spec"
    )
    bi_import = bi_sub.add_parser(
        "import", help="import the dashboards into a running Superset (the compose stack)"
    )
    bi_import.add_argument("--url", help="Superset's base URL (default MWH_BI_URL)")
    bi_import.add_argument(
        "--postgres",
        action="store_true",
        help="connect the dashboards to the PostgreSQL serving database as the reader role",
    )
    bi.set_defaults(func=cmd_bi)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The one place a ``CliError`` (or a bad setting) becomes its line on stderr and exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CliError as exc:
        print(exc.line(args.command), file=sys.stderr)
        return exc.code
    except ConfigError as exc:
        fix = f"fix it in the environment or {dotenv_path()}; `mwh settings` lists the settings"
        print(CliError(f"configuration error: {exc}", fix).line(args.command), file=sys.stderr)
        return USAGE_EXIT
    except KeyboardInterrupt:
        print(f"mwh {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
