"""The environment every Airflow, dbt and GX process of the project runs with.

Airflow keeps its metadata in SQLite under ``<project>/.airflow`` (git-ignored) unless
``AIRFLOW_HOME`` / ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` are set. Telemetry of Cosmos, dbt and
GX is off by default: the machines this runs on may have no internet, and nothing should call home.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from marketing_warehouse.config import Settings

#: Airflow pool with one slot for every task that opens the build DuckDB file (one writer at a time):
#: dbt tasks, gates and publish. ``ensure_airflow`` creates it.
WAREHOUSE_POOL = "warehouse_writer"

TELEMETRY_OFF = {
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    "DO_NOT_TRACK": "1",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "SCARF_ANALYTICS": "false",
}


def airflow_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.setdefault("AIRFLOW_HOME", str(settings.project_dir / ".airflow"))
    defaults = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.project_dir / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
        "AIRFLOW__COSMOS__PROPAGATE_LOGS": "False",
        **TELEMETRY_OFF,
    }
    for key, value in defaults.items():
        env.setdefault(key, value)
    # Every MWH_* path resolved, so tasks agree with this process whatever their working directory.
    env.update(
        {
            "MWH_PROJECT_DIR": str(settings.project_dir),
            "MWH_DATA_DIR": str(settings.data_dir),
            "MWH_LANDING_DIR": str(settings.landing_dir),
            "MWH_WAREHOUSE_PATH": str(settings.warehouse_path),
            "MWH_BUILD_PATH": str(settings.build_path),
            "MWH_REPORTING_CURRENCY": settings.reporting_currency,
            "MWH_SCHEDULE": settings.schedule,
            "MWH_TASK_RETRIES": str(settings.task_retries),
            "MWH_KEEP_VERSIONS": str(settings.keep_versions),
            "MWH_POSTGRES_READER_ROLE": settings.postgres_reader_role,
            "MWH_DBT_TASKS": settings.dbt_tasks,
        }
    )
    # each dbt stage's last parse, kept in the data folder (``Layout.cosmos_cache``)
    env["AIRFLOW__COSMOS__CACHE_DIR"] = str(settings.layout.cosmos_cache)
    env.update(settings.dbt_env())
    # Make the venv's executables (airflow, dbt) win over anything else on PATH.
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    return env


def airflow(args: list[str], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "airflow"
    return subprocess.run([str(exe), *args], env=env, **kwargs)


def ensure_airflow(settings: Settings, env: dict[str, str]) -> None:
    """Create or migrate Airflow's metadata database and the warehouse writer pool."""
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    marker = home / ".mwh-initialised"
    if not marker.exists():
        airflow(["db", "migrate"], env, check=True, stdout=subprocess.DEVNULL)
        airflow(
            [
                "pools",
                "set",
                WAREHOUSE_POOL,
                "1",
                "One writer at a time on the DuckDB build file",
            ],
            env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        marker.write_text("ok\n")


#: ``airflow dags test`` records its run as started at the run's logical date (``dag.test()``
#: passes ``start_date=logical_date``), so the UI shows a run of yesterday's date as lasting a day
#: or more. This sets such a run's start to its first task's start.
_TEST_RUN_START = """
import sys
from datetime import datetime, timezone
from sqlalchemy import func, select
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.utils.session import create_session
from airflow.utils.types import DagRunTriggeredByType

dag_id, logical = sys.argv[1], datetime.fromisoformat(sys.argv[2]).replace(tzinfo=timezone.utc)
with create_session() as session:
    runs = session.scalars(
        select(DagRun).where(
            DagRun.dag_id == dag_id,
            DagRun.logical_date == logical,
            DagRun.triggered_by == DagRunTriggeredByType.TEST,
        )
    ).all()
    for run in runs:
        first = session.scalar(
            select(func.min(TaskInstance.start_date)).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id
            )
        )
        if first is not None and (run.start_date is None or run.start_date < first):
            run.start_date = first
            print(run.run_id, first.isoformat())
"""


def correct_test_run_start(dag_id: str, ds: str, env: dict[str, str]) -> str:
    """Give the ``airflow dags test`` run of ``dag_id`` for ``ds`` the start of its first task
    (see ``_TEST_RUN_START``); returns what was changed ("" when nothing was)."""
    done = subprocess.run(
        [sys.executable, "-c", _TEST_RUN_START, dag_id, ds],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


#: Seconds ``run_forwarding_signals`` gives what is left of a stopped command's process group
#: after SIGTERM before it kills it.
STOP_GRACE_SECONDS = 30.0


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``, read from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _stop_group(pgid: int, grace: float) -> None:
    """SIGTERM every process left in group ``pgid``, SIGKILL what is still there after ``grace``."""
    deadline = time.monotonic() + grace
    sent = False
    while _group_members(pgid):
        if not sent:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            sent = True
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            return
        time.sleep(0.2)


#: airflow commands that run until stopped: ``mwh airflow`` stops them with their whole group.
SERVER_COMMANDS = frozenset(
    {"standalone", "scheduler", "dag-processor", "triggerer", "api-server", "webserver"}
)


def run_forwarding_signals(
    cmd: list[str], env: dict[str, str], grace: float = STOP_GRACE_SECONDS
) -> int:
    """Run ``cmd`` (a long-running airflow command) in a process group of its own and stop the
    whole group when this process gets SIGTERM, SIGINT (Ctrl+C) or SIGHUP: SIGTERM to every
    process of the group (Airflow's components shut down on it; on SIGINT ``airflow standalone``
    waited for its scheduler for minutes), SIGKILL after ``grace`` s or on a second signal.
    Whatever ``cmd`` leaves in its group when it ends is stopped the same way. ``airflow
    standalone`` alone exits on SIGTERM without stopping its scheduler, dag-processor, triggerer
    and api-server; this way none survives. Returns ``cmd``'s exit code (128 + the signal when a
    signal ended it)."""
    proc = subprocess.Popen(cmd, env=env, process_group=0, stdin=subprocess.DEVNULL)
    stopping: list[float] = []

    def stop(signum, _frame) -> None:
        first = not stopping
        stopping.append(time.monotonic())
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM if first else signal.SIGKILL)
        if first:
            print(f"stopping airflow {cmd[1]} and its processes ...", file=sys.stderr)

    caught = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {sig: signal.signal(sig, stop) for sig in caught}
    try:
        while (code := proc.poll()) is None:
            if stopping and time.monotonic() - stopping[0] > grace:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(0.2)
    finally:
        _stop_group(proc.pid, grace)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code
