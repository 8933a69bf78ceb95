"""docker-compose.yml cannot be started here (no Docker engine): check its structure instead."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from marketing_warehouse.config import SETTINGS_HELP
from marketing_warehouse.pipeline import WAREHOUSE_POOL

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
RAW = (ROOT / "docker-compose.yml").read_text()


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
        assert "healthcheck" in service or name == "airflow-init", name


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
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_]+)(?::-[^}]*)?\}", RAW))
    assert used <= documented, used - documented
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert not (ROOT / ".env").exists() or ".env" in (ROOT / ".gitignore").read_text()
