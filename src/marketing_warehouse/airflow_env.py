"""The environment every Airflow, dbt and GX process of the project runs with.

Airflow keeps its metadata in SQLite under ``<project>/.airflow`` (git-ignored) unless
``AIRFLOW_HOME`` / ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` are set. Telemetry of Cosmos, dbt and
GX is off by default: the machines this runs on may have no internet, and nothing should call home.
"""

from __future__ import annotations

import os
import subprocess
import sys
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
