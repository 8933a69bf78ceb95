"""docker-compose.yml cannot be started here (no Docker engine): check its structure instead."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from marketing_warehouse.airflow_env import WAREHOUSE_POOL
from marketing_warehouse.cli import build_parser
from marketing_warehouse.config import SETTINGS_HELP, load_settings
from marketing_warehouse.layout import bi_bootstrap, bi_bundle, bi_config
from marketing_warehouse.serve.docs import DocsHandler
from marketing_warehouse.serve.superset import GUNICORN_ARGS, postgres_reader_uri

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
RAW = (ROOT / "docker-compose.yml").read_text()
ONE_SHOT = {"airflow-init", "superset-setup"}
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Z_]+)(?::[-?][^}]*)?\}")
SECRET = re.compile(r"PASSWORD|SECRET|FERNET")


def resolved(value: str, env: dict[str, str] | None = None) -> str:
    """A compose value with ${VAR:-default} / ${VAR:?message} filled from ``env`` or the
    .env.example values."""
    env = env if env is not None else example_values()
    return VARIABLE.sub(lambda m: env[m.group(1)], value)


def example_values() -> dict[str, str]:
    text = (ROOT / ".env.example").read_text()
    return dict(re.findall(r"^([A-Z_]+)=(.*)$", text, re.M))


def locked_version(package: str) -> str:
    match = re.search(
        rf"^{re.escape(package)}==(\S+)$", (ROOT / "requirements.lock").read_text(), re.M
    )
    assert match, package
    return match.group(1)


def test_airflow_services_with_celery_redis_and_postgres():
    services = COMPOSE["services"]
    for name in (
        "postgres",
        "redis",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
    ):
        assert name in services, name
    commands = {n: s.get("command") for n, s in services.items()}
    assert commands["airflow-apiserver"] == "api-server"
    assert commands["airflow-scheduler"] == "scheduler"
    assert commands["airflow-dag-processor"] == "dag-processor"
    assert commands["airflow-triggerer"] == "triggerer"
    assert commands["airflow-worker"] == "celery worker"
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
    assert "@postgres:5432/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    for name, service in services.items():
        assert "healthcheck" in service or name in ONE_SHOT, name


def test_images_are_pinned_and_match_the_lock():
    for name, service in COMPOSE["services"].items():
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), name
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM apache/airflow:(\S+)-python3\.11$", dockerfile, re.M)
    assert base and base.group(1) == locked_version("apache-airflow")


def test_init_creates_the_writer_pool_and_telemetry_is_off():
    init = " ".join(COMPOSE["services"]["airflow-init"]["command"])
    assert f"pools set {WAREHOUSE_POOL} 1" in init
    env = COMPOSE["services"]["airflow-worker"]["environment"]
    assert env["AIRFLOW__COSMOS__ENABLE_TELEMETRY"] == "False"
    assert env["DO_NOT_TRACK"] == "1" and env["GX_ANALYTICS_ENABLED"] == "false"


def test_paths_and_settings_exist_in_the_repository():
    env = COMPOSE["services"]["airflow-scheduler"]["environment"]
    assert env["MWH_PROJECT_DIR"] == "/opt/mwh"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/mwh/dags"
    assert (ROOT / "dags" / "marketing_warehouse_nightly.py").exists()
    for key in env:
        if key.startswith("MWH_"):
            assert key in SETTINGS_HELP, key
    dockerfile = (ROOT / "Dockerfile").read_text()
    for copied in re.findall(r"^COPY --chown=\S+ (.+) /opt/mwh", dockerfile, re.M):
        for part in copied.split():
            assert (ROOT / part).exists(), part


def test_every_variable_has_an_example_and_no_secret_is_committed():
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^([A-Z_]+)=", example, re.M))
    used = set(VARIABLE.findall(RAW))
    assert used <= documented, used - documented
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert not (ROOT / ".env").exists() or ".env" in (ROOT / ".gitignore").read_text()
    # secrets have no default in compose (it refuses to start without them) and only
    # placeholders in the example
    values = example_values()
    for name in re.findall(r"\$\{([A-Z_]+):\?", RAW):
        if name == "AIRFLOW_UID":  # the host's user id: no placeholder could be right
            assert values[name] == "", name
            continue
        assert SECRET.search(name), name
        assert values[name].startswith("change-me"), name


def test_serving_postgres_superset_and_docs_services():
    services = COMPOSE["services"]
    assert {"warehouse-db", "superset", "superset-setup", "docs"} <= services.keys()
    assert not {"metabase", "metabase-setup"} & services.keys()  # Superset replaced Metabase
    env = services["airflow-worker"]["environment"]
    warehouse_db = services["warehouse-db"]["environment"]
    dsn = dict(part.split("=", 1) for part in resolved(env["MWH_POSTGRES_DSN"]).split())
    assert dsn["host"] == "warehouse-db" and dsn["port"] == "5432"
    assert dsn["dbname"] == resolved(warehouse_db["POSTGRES_DB"])
    assert dsn["user"] == resolved(warehouse_db["POSTGRES_USER"])
    assert dsn["password"] == resolved(warehouse_db["POSTGRES_PASSWORD"])
    settings = load_settings({k: resolved(v) for k, v in env.items() if k.startswith("MWH_")})
    assert settings.postgres_reader_role == "bi_reader"
    assert example_values()["MWH_POSTGRES_READER_PASSWORD"] == settings.postgres_reader_password
    assert settings.keep_versions == 5
    for name in ("airflow-scheduler", "airflow-worker", "airflow-init"):
        assert "warehouse-db" in services[name]["depends_on"], name

    # Superset: the pinned image, the repository's configuration and bootstrap mounted read-only,
    # then gunicorn with the arguments `make bi` uses, on the port the health check asks
    superset = services["superset"]
    assert superset["image"] == "apache/superset:6.1.0"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in superset["volumes"]}
    config = superset["environment"]["SUPERSET_CONFIG_PATH"]
    assert (ROOT / mounts[config]).resolve() == bi_config(ROOT)
    command = " ".join(superset["command"])
    bootstrap = re.search(r"python (\S+) &&", command)
    assert bootstrap and (ROOT / mounts[bootstrap.group(1)]).resolve() == bi_bootstrap(ROOT)
    assert all(v.endswith(":ro") for v in superset["volumes"] if v.startswith("./"))
    assert " ".join(GUNICORN_ARGS) in command and "-b 0.0.0.0:8088" in command
    assert superset["ports"][0].endswith(":8088") and "localhost:8088/health" in str(
        superset["healthcheck"]
    )
    assert superset["environment"]["SUPERSET_HOME"] in mounts  # the SQLite metadata is kept
    assert "superset-home" in COMPOSE["volumes"]
    for secret in ("SUPERSET_SECRET_KEY", "SUPERSET_ADMIN_PASSWORD"):
        assert f"${{{secret}:?" in superset["environment"][secret], secret

    # the setup imports the committed bundle (the image has it) on warehouse-db as bi_reader
    setup = services["superset-setup"]
    assert setup["depends_on"]["superset"]["condition"] == "service_healthy"
    assert setup["depends_on"]["warehouse-db"]["condition"] == "service_healthy"
    assert setup["command"][:4] == ["mwh", "bi", "import", "--postgres"]
    assert setup["command"][setup["command"].index("--url") + 1] == "http://superset:8088"
    assert re.search(r"^COPY --chown=\S+ bi /opt/mwh/bi$", (ROOT / "Dockerfile").read_text(), re.M)
    assert (bi_bundle(ROOT) / "metadata.yaml").exists()
    uri = postgres_reader_uri(settings)
    assert uri.startswith("postgresql+psycopg2://bi_reader:XXXXXXXXXX@warehouse-db:5432/")
    assert uri.endswith("?options=-c%20default_transaction_read_only%3Don")
    assert settings.postgres_reader_password not in uri  # sent apart, in the import's passwords


def test_mwh_commands_in_compose_exist_and_ports_agree():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # the registered subcommands
    services = COMPOSE["services"]
    for name in ("superset-setup", "docs"):
        command = services[name]["command"]
        assert command[0] == "mwh" and command[1] in commands, name
        assert services[name]["entrypoint"] == []  # not wrapped by the airflow entrypoint
        parser.parse_args(command[1:])
    docs = services["docs"]
    port = docs["command"][docs["command"].index("--port") + 1]
    assert docs["ports"][0].endswith(f":{port}")
    assert f"localhost:{port}/" in " ".join(docs["healthcheck"]["test"])
    assert DocsHandler  # the server the command runs


def test_volumes_mount_landing_data_and_keep_state():
    common = COMPOSE["services"]["airflow-worker"]
    env = common["environment"]
    mounts = {resolved(v).split(":")[1]: resolved(v).split(":")[0] for v in common["volumes"]}
    assert mounts[env["MWH_LANDING_DIR"]] == "./data/landing"
    assert mounts[env["MWH_DATA_DIR"]] == "./data"
    assert COMPOSE["services"]["docs"]["volumes"] == common["volumes"]
    named = set(COMPOSE["volumes"])
    assert {"postgres-db", "warehouse-db"} <= named
    assert "warehouse-db:/var/lib/postgresql/data" in COMPOSE["services"]["warehouse-db"]["volumes"]


#: Settings the compose stack leaves at their defaults, and why.
NOT_IN_COMPOSE = {
    "MWH_DEMO_DAYS": "only `mwh run` / `mwh demo` generate demo data, not the scheduled DAG",
    "MWH_DEMO_SEED": "same",
    "MWH_WAREHOUSE_PATH": "derived from MWH_DATA_DIR",
    "MWH_BUILD_PATH": "derived from MWH_DATA_DIR",
    "MWH_EXPECTATIONS_DIR": "the image's expectations/ (mount a copy and set it to override)",
    "MWH_EXTRACT_WORKERS": "the worker container's CPU count is the right default",
    "MWH_ENGINE": "the stack runs on DuckDB: the nightly run does not follow MWH_ENGINE=spark yet",
    "MWH_SPARK_DIR": "same",
}


def test_every_setting_is_set_by_the_stack_or_left_default_on_purpose():
    worker = COMPOSE["services"]["airflow-worker"]
    env = worker["environment"]
    example = example_values()
    # .env reaches every Airflow container whole (env_file), so a setting in .env.example is set
    assert [f["path"] for f in worker["env_file"]] == [".env"]
    for name in SETTINGS_HELP:
        in_stack = name in env or name in example
        assert in_stack or name in NOT_IN_COMPOSE, name
        assert not (in_stack and name in NOT_IN_COMPOSE), name
        # every setting a user sets through .env is there with an example value
        if name in env and "${" + name in env[name]:
            assert name in example, name


def _strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def _stack_values() -> list[str]:
    """Every string of every service (Airflow, PostgreSQL, Redis, Superset, docs)."""
    return _strings(COMPOSE["services"]) + _strings(COMPOSE["x-airflow-common"])


def test_secrets_are_required_never_defaulted():
    """A secret left out of .env stops ``docker compose up`` with its message, instead of
    starting a stack whose passwords and signing keys everybody knows."""
    uses = [
        (m.group(1), m.group(0))
        for value in _stack_values()
        for m in re.finditer(r"\$\{([A-Z_]+)((?::?[-?])[^}]*)?\}", value)
    ]
    sensitive = {name for name, _ in uses if SECRET.search(name)}
    assert {"POSTGRES_PASSWORD", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_JWT_SECRET"} <= sensitive
    assert "AIRFLOW_FERNET_KEY" in sensitive
    for name, use in uses:
        if SECRET.search(name):
            assert use.startswith("${" + name + ":?") and len(use) > len(name) + 5, use
    for value in _stack_values():
        assert "change-me" not in value, value


def test_containers_run_as_the_host_user_from_airflow_uid():
    """The image's user (uid 50000) cannot write a ./data owned by the host user: every container
    that mounts it runs as AIRFLOW_UID (group 0, as the Airflow image expects), and compose
    refuses to start until .env sets it."""
    mounting = [
        name
        for name, service in COMPOSE["services"].items()
        if any(":/opt/mwh/data" in v for v in service.get("volumes", []))
    ]
    assert {"airflow-scheduler", "airflow-worker", "airflow-init", "docs"} <= set(mounting)
    for name in mounting:
        user = COMPOSE["services"][name]["user"]
        assert re.fullmatch(r"\$\{AIRFLOW_UID:\?[^}]*id -u[^}]*\}:0", user), (name, user)
    assert example_values()["AIRFLOW_UID"] == ""  # no uid that only fits one machine
    assert resolved(COMPOSE["services"]["airflow-worker"]["user"], {"AIRFLOW_UID": "1000"}) == (
        "1000:0"
    )


def test_scheduler_health_check_asks_the_health_server_the_service_enables(tmp_path):
    """Airflow serves ``/health`` on the scheduler only when [scheduler] enable_health_check is
    on (off by default): read the scheduler service's environment with Airflow's own config."""
    import json
    import subprocess
    import sys
    from urllib.parse import urlsplit

    service = COMPOSE["services"]["airflow-scheduler"]
    test = service["healthcheck"]["test"]
    url = urlsplit(next(part for part in test if part.startswith("http://")))
    assert test[:3] == ["CMD", "curl", "--fail"] and url.hostname == "localhost"
    env = {
        k: resolved(str(v))
        for k, v in service["environment"].items()
        if k.startswith("AIRFLOW__SCHEDULER__")
    }
    code = (
        "import json; from airflow.configuration import conf; print(json.dumps(["
        "conf.getboolean('scheduler', 'enable_health_check'), "
        "conf.getint('scheduler', 'scheduler_health_check_server_port'), "
        "conf.get('scheduler', 'scheduler_health_check_server_host')]))"
    )
    base = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=base | env, capture_output=True, text=True, check=True
    )
    enabled, port, host = json.loads(out.stdout.strip().splitlines()[-1])
    assert enabled is True, "the scheduler's health server is not enabled"
    assert port == url.port and host == "0.0.0.0" and url.path == "/health"
    from airflow.utils import scheduler_health

    assert f'self.path == "{url.path}"' in Path(scheduler_health.__file__).read_text()


def _pins(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+)$", path.read_text().lower(), re.M))


def test_the_image_installs_the_runtime_lock_without_dev_tools():
    """The image gets requirements-runtime.lock: the versions of requirements.lock (which
    ``make`` installs) less the dev and spark extras and what only they need (the stack runs
    on DuckDB)."""
    import tomllib

    dockerfile = (ROOT / "Dockerfile").read_text()
    installed = re.findall(r"pip install [^\n]*-r (\S+)", dockerfile)
    assert installed == ["/opt/mwh/requirements-runtime.lock"], installed
    instructions = [line for line in dockerfile.splitlines() if not line.startswith("#")]
    for line in instructions:
        assert "[dev]" not in line and " requirements.lock" not in line, line
    runtime, full = _pins(ROOT / "requirements-runtime.lock"), _pins(ROOT / "requirements.lock")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    dev = {re.split(r"[<>=\[ ]", d)[0].lower() for d in extras["dev"] + extras["spark"]}
    assert {"pytest", "ruff", "pyspark", "dbt-spark"} <= dev
    assert not dev & runtime.keys(), dev & runtime.keys()
    assert {n: full.get(n) for n in runtime} == runtime  # the same versions as the tests use
    for requirement in project["dependencies"]:
        assert re.split(r"[<>=\[ ]", requirement)[0].lower() in runtime, requirement
    # what the runtime lock leaves out is needed by the dev tools only ("# via" of the lock)
    left_out = full.keys() - runtime.keys()
    via: dict[str, set[str]] = {}
    for block in re.split(r"\n(?=[a-z0-9])", (ROOT / "requirements.lock").read_text().lower()):
        name = block.split("==", 1)[0].strip()
        via[name] = set(re.findall(r"#\s+(?:via\s+)?([a-z0-9][a-z0-9._-]*)\s*$", block, re.M))
        via[name] -= {"via"}
    for name in left_out - dev:
        assert via[name] and via[name] <= left_out, (name, via[name])


def test_the_stacks_fallbacks_of_settings_are_the_settings_defaults():
    """A setting the stack falls back on (``${MWH_X:-value}``) falls back on the default that
    `mwh` itself uses, so a setting left out of .env means the same in Docker and outside it."""
    fallbacks = {
        m.group(1): m.group(2)
        for value in _strings(COMPOSE)
        for m in re.finditer(r"\$\{(MWH_[A-Z_]+):-([^}]*)\}", value)
        if m.group(1) in SETTINGS_HELP  # not the stack's own (MWH_HOST_LANDING_DIR ...)
    }
    assert "MWH_DBT_TASKS" in fallbacks
    for name, value in fallbacks.items():
        assert value == SETTINGS_HELP[name][0], name
    # .env.example shows the same defaults for the settings it lists with a "(default)" mark
    example = example_values()
    assert example["MWH_DBT_TASKS"] == SETTINGS_HELP["MWH_DBT_TASKS"][0]
