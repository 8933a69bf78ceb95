"""One place for configuration: environment variables with the ``MWH_`` prefix, and ``.env``.

Every setting has a default that works from a fresh clone, so ``make run`` needs nothing set.
Paths are resolved to absolute paths once, here, so that Airflow tasks, dbt and the GX runner
(which may run in different working directories) all agree on where things live.

A setting is read from the process environment, else from ``<project>/.env`` (``dotenv_path``:
the project folder, never the working directory, so ``mwh`` and every Airflow task read the same
file wherever they start), else it takes its default. ``environment()`` is that merge; every
reader of ``MWH_*`` values asks it instead of ``os.environ``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from marketing_warehouse.layout import Layout

PREFIX = "MWH_"

#: The repository root when the package is installed from a checkout (editable install).
REPO_ROOT = Path(__file__).resolve().parents[2]

#: The engines dbt builds on (MWH_ENGINE), the default first; each is an output of
#: dbt_project/profiles.yml of the same name.
ENGINES = ("duckdb", "spark")
#: MWH_DUCKDB_MEMORY_LIMIT when unset (dbt's profiles.yml repeats it as its env_var default).
DEFAULT_DUCKDB_MEMORY_LIMIT = "3GB"


@dataclass(frozen=True)
class Plausibility:
    """Where a well-formed value stops being believable: beyond these bounds a row is quarantined
    (``implausible_date`` / ``implausible_amount``) instead of published. The one place for these
    thresholds; the first two are settings.

    - An event or transaction date (contract ``event_date``) lies from ``earliest_date`` to the
      file's load date + 1 day (time zones). 1990 keeps decades of history loadable and catches
      the zero dates of spreadsheets (1899-12-30, 1900-01-00) and epochs (1970-01-01).
    - A money amount (contract ``amount``) is at most ``max_amount`` in the file's currency (minor
      units: 100 times that), and, in a file with at least ``outlier_min_values`` positive values
      in the column, at most ``outlier_factor`` times their median. The median rule catches a
      mistyped 99,999,999 among 40-euro orders; with a factor of 100,000 a 4-million order still
      loads there, and a small file (a B2B shop's three invoices) meets the ceiling only.
    """

    earliest_date: date = date(1990, 1, 1)
    max_amount: Decimal = Decimal(1_000_000_000)
    outlier_factor: int = 100_000
    outlier_min_values: int = 20


#: Documented settings: name -> (default description, help). The README table is built from this.
#: Where a browser on this machine reaches Superset (``make bi``).
DEFAULT_BI_URL = "http://127.0.0.1:8088"

SETTINGS_HELP: dict[str, tuple[str, str]] = {
    "MWH_PROJECT_DIR": ("the repository root", "Where dags/, dbt_project/ and expectations/ live."),
    "MWH_DATA_DIR": ("<project>/data", "Root of all runtime state (raw, warehouse, runs, docs)."),
    "MWH_LANDING_DIR": (
        "<data>/landing",
        "Where exports are dropped, one folder per delivery date: <landing>/YYYY-MM-DD/<file>.",
    ),
    "MWH_WAREHOUSE_PATH": (
        "<data>/warehouse/warehouse.duckdb",
        "The published DuckDB file BI tools read (read-only).",
    ),
    "MWH_BUILD_PATH": (
        "<data>/warehouse/build.duckdb",
        "The private DuckDB file dbt builds into before the marts gate and publish.",
    ),
    "MWH_REPORTING_CURRENCY": ("EUR", "ISO 4217 code every amount is converted to."),
    "MWH_SCHEDULE": ("0 2 * * *", "Cron schedule of the nightly DAG (UTC)."),
    "MWH_DEMO_DAYS": ("60", "Days of history the demo generator writes when landing is empty."),
    "MWH_DEMO_SEED": ("42", "Seed of the demo generator (same seed, same files)."),
    "MWH_TASK_RETRIES": ("2", "Retries of a failed task (exponential backoff from 5 minutes)."),
    "MWH_KEEP_VERSIONS": (
        "5",
        "Published versions of the serving file kept for `mwh rollback` (at least 1).",
    ),
    "MWH_POSTGRES_DSN": (
        "(empty: off)",
        "libpq connection string of a PostgreSQL serving database; when set, publish also "
        "writes schemas marts and audit there in one transaction.",
    ),
    "MWH_POSTGRES_READER_ROLE": (
        "bi_reader",
        "Role publish creates and keeps read-only on PostgreSQL schema marts (BI tools log in as it).",
    ),
    "MWH_POSTGRES_READER_PASSWORD": (
        "(empty: role cannot log in)",
        "Password publish sets on the reader role; empty leaves the role without login.",
    ),
    "MWH_POSTGRES_IDLE_READER_GRACE": (
        "30",
        "Seconds a reader session may sit idle in a transaction on the marts while a publish "
        "waits for them; then publish ends that session (0 to 3600).",
    ),
    "MWH_BI_URL": (
        DEFAULT_BI_URL,
        "Base URL of the BI tool (Superset, `make bi`) as a browser reaches it; the run report "
        "links its dashboards at <url>/superset/dashboard/<slug>/.",
    ),
    "MWH_DBT_TASKS": (
        "watcher",
        "watcher: one dbt build per dbt stage, with one Airflow task per model (and per model's "
        "tests) showing how it went; per_model: one dbt build task per model; single: one dbt "
        "build task per dbt stage.",
    ),
    "MWH_ENGINE": (
        ENGINES[0],
        "Engine the nightly run builds the models on: duckdb (the build file) or spark (Apache "
        "Spark in a local session: the same models, their Parquet tables under MWH_SPARK_DIR, "
        "which the gates, predict and publish read).",
    ),
    "MWH_SPARK_DIR": (
        "spark under MWH_DATA_DIR",
        "Spark's warehouse (one Parquet folder per table) and metastore, for MWH_ENGINE=spark.",
    ),
    "MWH_DUCKDB_MEMORY_LIMIT": (
        DEFAULT_DUCKDB_MEMORY_LIMIT,
        "DuckDB memory limit of dbt's connection, each gate, the publish and each source's "
        "extraction. Beyond it DuckDB spills to disk.",
    ),
    "MWH_EXTRACT_WORKERS": (
        "the number of CPUs",
        "Landed files of one source extracted at the same time (each on one DuckDB thread).",
    ),
    "MWH_EARLIEST_DATE": (
        Plausibility.earliest_date.isoformat(),
        "Event and transaction dates before it are quarantined as implausible_date (YYYY-MM-DD).",
    ),
    "MWH_MAX_AMOUNT": (
        f"{Plausibility.max_amount:,}",
        "Largest plausible money amount of one row, in its currency (major units); larger ones "
        "are quarantined as implausible_amount.",
    ),
    "MWH_EXPECTATIONS_DIR": (
        "<project>/expectations",
        "GX suites and gates.yml; point it at a copy to change severities and thresholds.",
    ),
    "MWH_ALERT_EMAIL_TO": (
        "(none)",
        "Comma-separated addresses e-mailed when a task or run fails.",
    ),
    "MWH_ALERT_EMAIL_FROM": ("marketing-warehouse@localhost", "Sender of the failure e-mails."),
    "MWH_SMTP_HOST": ("localhost", "SMTP server for failure e-mails."),
    "MWH_SMTP_PORT": ("25", "Port of the SMTP server."),
    "MWH_SMTP_SECURITY": ("none", "none, starttls or ssl."),
    "MWH_SMTP_USER": ("(none)", "SMTP login, if the server wants one."),
    "MWH_SMTP_PASSWORD": ("(none)", "SMTP password: set it in .env or the environment only."),
    "MWH_SMTP_CONN_ID": (
        "(none)",
        "An Airflow connection (host, port, login, password) used instead of MWH_SMTP_*.",
    ),
    "MWH_ALERT_WEBHOOK_URL": (
        "(none)",
        "URL that receives a JSON POST when a task or run fails (Slack/Teams/Mattermost style).",
    ),
    "MWH_ALERT_WEBHOOK_CONN_ID": ("(none)", "An Airflow connection holding the webhook URL."),
    "MWH_ALERT_TIMEOUT": ("10", "Seconds to wait for the SMTP server or the webhook."),
}

#: How dbt runs inside the DAG (MWH_DBT_TASKS), the default first.
DBT_TASK_MODES = ("watcher", "per_model", "single")

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class ConfigError(ValueError):
    """A setting has a value the pipeline cannot use."""


#: Where a value of ``describe_sources`` came from.
FROM_ENV, FROM_DOTENV, FROM_DEFAULT = "env", ".env", "default"
_DOTENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def dotenv_path(env: dict[str, str] | None = None) -> Path:
    """The ``.env`` file settings are read from: ``<project>/.env``, the project folder being
    ``MWH_PROJECT_DIR`` of the process environment (not of ``.env`` itself) or the repository."""
    env = os.environ if env is None else env
    return _path(dict(env), "MWH_PROJECT_DIR", REPO_ROOT) / ".env"


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a ``.env`` file as docker compose reads them: ``#`` comments and
    blank lines skipped, an optional ``export``, a value in matching single or double quotes
    taken as it is, an unquoted value cut at `` #``. A missing file is empty; a line that is not
    ``KEY=VALUE`` is a ``ConfigError`` naming the file and line."""
    try:
        text = path.read_text("utf-8-sig")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}).") from None
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _DOTENV_KEY.match(key):
            raise ConfigError(
                f"{path}, line {number}: expected KEY=VALUE (a name of letters, digits and _, "
                "then =, then the value)."
            )
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The values settings are read from: ``base`` (default: the process environment) over the
    project's ``.env`` (the environment wins)."""
    base = dict(os.environ if base is None else base)
    return read_dotenv(dotenv_path(base)) | base


def describe_sources(base: dict[str, str] | None = None) -> dict[str, str]:
    """Where each set ``MWH_*`` value comes from: ``FROM_ENV`` or ``FROM_DOTENV``; a documented
    setting set nowhere is ``FROM_DEFAULT``."""
    base = dict(os.environ if base is None else base)
    dotenv = read_dotenv(dotenv_path(base))
    sources = {name: FROM_DEFAULT for name in SETTINGS_HELP}
    sources |= {k: FROM_DOTENV for k in dotenv if k.startswith(PREFIX)}
    sources |= {k: FROM_ENV for k in base if k.startswith(PREFIX)}
    return sources


#: Parts of a setting's name that mark its value as secret: ``mwh settings`` and logs mask it.
SECRET_MARKERS = ("PASSWORD", "SECRET", "TOKEN", "_DSN", "WEBHOOK_URL", "_KEY")


def is_secret(name: str) -> bool:
    return any(marker in name for marker in SECRET_MARKERS)


def _path(env: dict[str, str], name: str, default: Path) -> Path:
    raw = env.get(name)
    return Path(raw).expanduser().resolve() if raw else default.resolve()


@dataclass(frozen=True)
class Settings:
    project_dir: Path
    data_dir: Path
    landing_dir: Path
    warehouse_path: Path
    build_path: Path
    reporting_currency: str
    schedule: str
    demo_days: int
    demo_seed: int
    task_retries: int = 2
    keep_versions: int = 5
    extract_workers: int = 1
    postgres_dsn: str = field(default="", repr=False)
    postgres_reader_role: str = "bi_reader"
    postgres_reader_password: str = field(default="", repr=False)
    postgres_idle_reader_grace: int = 30
    dbt_tasks: str = DBT_TASK_MODES[0]
    engine: str = ENGINES[0]
    spark_dir: Path | None = None
    bi_url: str = DEFAULT_BI_URL
    duckdb_memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT
    plausibility: Plausibility = Plausibility()
    expectations_override: Path | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    # Derived locations -------------------------------------------------------------------
    @property
    def layout(self) -> Layout:
        """Where the warehouse keeps everything (``marketing_warehouse.layout``)."""
        return Layout(self.data_dir, self.landing_dir, self.warehouse_path, self.spark_dir)

    @property
    def dbt_project_dir(self) -> Path:
        return self.project_dir / "dbt_project"

    @property
    def expectations_dir(self) -> Path:
        return self.expectations_override or self.project_dir / "expectations"

    def dbt_var(self, name: str):
        """A var of ``dbt_project.yml`` (e.g. ``fx_lookback_days``): the dbt project owns the
        rule, the gates and the benchmark read it from there instead of repeating it."""
        import yaml

        path = self.dbt_project_dir / "dbt_project.yml"
        variables = (yaml.safe_load(path.read_text("utf-8")) or {}).get("vars") or {}
        if name not in variables:
            raise KeyError(f"{path}: no var {name!r} under vars:")
        return variables[name]

    def dbt_env(self) -> dict[str, str]:
        """Environment variables the dbt project reads (profiles.yml and sources); a dbt command
        gets these and the audience definitions (``transform.dbt_tasks.dbt_environment``)."""
        return {
            "MWH_BUILD_PATH": str(self.build_path),
            "MWH_RAW_DIR": str(self.layout.raw),
            "MWH_DBT_PROJECT_DIR": str(self.dbt_project_dir),
            # the erased people (source raw_audit.erasure_log, read by audience_members)
            "MWH_ERASURE_LOG": str(self.layout.erasure_log),
            "MWH_PREDICTIONS_DIR": str(self.layout.predictions),
            "MWH_REPORTING_CURRENCY": self.reporting_currency,
            "MWH_DUCKDB_MEMORY_LIMIT": self.duckdb_memory_limit,
            "MWH_ENGINE": self.engine,
            "MWH_SPARK_DIR": str(self.layout.spark),
            "MWH_SPARK_WAREHOUSE": str(self.layout.spark_warehouse),
            "MWH_SPARK_SCHEMAS": str(self.layout.spark_schemas),
            "MWH_SPARK_METASTORE": str(self.layout.spark_metastore),
            "DBT_PROFILES_DIR": str(self.dbt_project_dir),
            # dbt unit tests check the project's SQL on hand-written rows, not the night's data:
            # they run in the test suite (tests/unit/test_dbt_unit_tests.py), not in every build.
            "DBT_EXCLUDE_RESOURCE_TYPES": "unit_test",
            "DO_NOT_TRACK": "1",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        }


_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_LIMIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)\s*$", re.IGNORECASE)


def memory_bytes(limit: str) -> int:
    """``"3GB"`` -> 3,000,000,000 (DuckDB's units: KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB
    powers of 1024); ValueError when ``limit`` is not such a size."""
    match = _LIMIT.match(limit)
    if not match:
        raise ValueError(f"{limit!r} is not a memory size such as 3GB or 2500MiB")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _plausibility(env: dict[str, str]) -> Plausibility:
    earliest = env.get("MWH_EARLIEST_DATE", "").strip()
    try:
        earliest_date = date.fromisoformat(earliest) if earliest else Plausibility.earliest_date
    except ValueError:
        raise ConfigError(f"MWH_EARLIEST_DATE={earliest!r} is not a date (YYYY-MM-DD).") from None
    ceiling = env.get("MWH_MAX_AMOUNT", "").strip()
    try:
        digits = ceiling.replace("_", "").replace(",", "")  # 1_000_000 and 1,000,000 too
        max_amount = Decimal(digits) if digits else Plausibility.max_amount
    except InvalidOperation:
        raise ConfigError(f"MWH_MAX_AMOUNT={ceiling!r} is not a number.") from None
    if not max_amount.is_finite() or max_amount <= 0:
        raise ConfigError(f"MWH_MAX_AMOUNT={ceiling!r} must be a number above 0.")
    return Plausibility(earliest_date=earliest_date, max_amount=max_amount)


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read settings from ``env`` (default: ``environment()``, the process environment over the
    project's ``.env``) and validate them."""
    env = environment() if env is None else dict(env)
    project_dir = _path(env, "MWH_PROJECT_DIR", REPO_ROOT)
    data_dir = _path(env, "MWH_DATA_DIR", project_dir / "data")
    currency = env.get("MWH_REPORTING_CURRENCY", "EUR").strip().upper()
    if not _CURRENCY.match(currency):
        raise ConfigError(
            f"MWH_REPORTING_CURRENCY={currency!r} is not a three-letter ISO 4217 code (e.g. EUR)."
        )
    schedule = env.get("MWH_SCHEDULE", "0 2 * * *").strip()
    if len(schedule.split()) != 5 and not schedule.startswith("@"):
        raise ConfigError(
            f"MWH_SCHEDULE={schedule!r} is not a five-field cron expression (e.g. '0 2 * * *')."
        )
    ints = {}
    for name, default in (
        ("MWH_DEMO_DAYS", "60"),
        ("MWH_DEMO_SEED", "42"),
        ("MWH_TASK_RETRIES", "2"),
        ("MWH_KEEP_VERSIONS", "5"),
        ("MWH_EXTRACT_WORKERS", str(os.cpu_count() or 1)),
        ("MWH_POSTGRES_IDLE_READER_GRACE", "30"),
    ):
        value = env.get(name, default)
        try:
            ints[name] = int(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a whole number.") from None
    if ints["MWH_DEMO_DAYS"] < 1:
        raise ConfigError("MWH_DEMO_DAYS must be at least 1.")
    if ints["MWH_TASK_RETRIES"] < 0:
        raise ConfigError("MWH_TASK_RETRIES must be 0 or more.")
    if ints["MWH_KEEP_VERSIONS"] < 1:
        raise ConfigError("MWH_KEEP_VERSIONS must be at least 1 (the version being served).")
    if ints["MWH_EXTRACT_WORKERS"] < 1:
        raise ConfigError("MWH_EXTRACT_WORKERS must be at least 1.")
    if not 0 <= ints["MWH_POSTGRES_IDLE_READER_GRACE"] <= 3600:
        raise ConfigError(
            "MWH_POSTGRES_IDLE_READER_GRACE must be between 0 and 3600 seconds (a publish waits "
            "that long for reader sessions idle in a transaction before ending them)."
        )
    reader_role = env.get("MWH_POSTGRES_READER_ROLE", "bi_reader").strip()
    if not _IDENTIFIER.match(reader_role):
        raise ConfigError(
            f"MWH_POSTGRES_READER_ROLE={reader_role!r} is not a plain lower-case identifier "
            "(letters, digits, underscore; e.g. bi_reader)."
        )
    memory_limit = env.get("MWH_DUCKDB_MEMORY_LIMIT", "").strip() or DEFAULT_DUCKDB_MEMORY_LIMIT
    try:
        if memory_bytes(memory_limit) < 2**27:
            raise ConfigError(f"MWH_DUCKDB_MEMORY_LIMIT={memory_limit!r} is below 128MiB.")
    except ValueError as exc:
        raise ConfigError(f"MWH_DUCKDB_MEMORY_LIMIT: {exc}.") from None
    dbt_tasks = env.get("MWH_DBT_TASKS", "").strip().lower() or DBT_TASK_MODES[0]
    if dbt_tasks not in DBT_TASK_MODES:
        raise ConfigError(
            f"MWH_DBT_TASKS={dbt_tasks!r} is not one of {', '.join(DBT_TASK_MODES)} "
            "(watcher: one dbt build per stage, one task per model showing its status; "
            "per_model: one dbt build task per model; single: one dbt build task per stage)."
        )
    engine = env.get("MWH_ENGINE", "").strip().lower() or ENGINES[0]
    if engine not in ENGINES:
        raise ConfigError(
            f"MWH_ENGINE={engine!r} is not one of {', '.join(ENGINES)} (duckdb: the build file; "
            "spark: Apache Spark in a local session)."
        )
    bi_url = env.get("MWH_BI_URL", "").strip().rstrip("/") or DEFAULT_BI_URL
    if not re.match(r"^https?://[^/\s]+(/\S*)?$", bi_url):
        raise ConfigError(
            f"MWH_BI_URL={bi_url!r} is not an http(s) URL (e.g. http://127.0.0.1:8088)."
        )
    return Settings(
        plausibility=_plausibility(env),
        project_dir=project_dir,
        data_dir=data_dir,
        landing_dir=_path(env, "MWH_LANDING_DIR", data_dir / "landing"),
        warehouse_path=_path(
            env, "MWH_WAREHOUSE_PATH", data_dir / "warehouse" / "warehouse.duckdb"
        ),
        build_path=_path(env, "MWH_BUILD_PATH", data_dir / "warehouse" / "build.duckdb"),
        reporting_currency=currency,
        schedule=schedule,
        demo_days=ints["MWH_DEMO_DAYS"],
        demo_seed=ints["MWH_DEMO_SEED"],
        task_retries=ints["MWH_TASK_RETRIES"],
        keep_versions=ints["MWH_KEEP_VERSIONS"],
        extract_workers=ints["MWH_EXTRACT_WORKERS"],
        postgres_dsn=env.get("MWH_POSTGRES_DSN", "").strip(),
        postgres_reader_role=reader_role,
        postgres_reader_password=env.get("MWH_POSTGRES_READER_PASSWORD", ""),
        postgres_idle_reader_grace=ints["MWH_POSTGRES_IDLE_READER_GRACE"],
        dbt_tasks=dbt_tasks,
        engine=engine,
        spark_dir=_path(env, "MWH_SPARK_DIR", data_dir) if env.get("MWH_SPARK_DIR") else None,
        bi_url=bi_url,
        duckdb_memory_limit=memory_limit,
        expectations_override=(
            _path(env, "MWH_EXPECTATIONS_DIR", project_dir)
            if env.get("MWH_EXPECTATIONS_DIR")
            else None
        ),
        extra={k: v for k, v in env.items() if k.startswith(PREFIX) and k not in SETTINGS_HELP},
    )
