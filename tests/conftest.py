"""Shared fixtures: isolated settings on a temporary folder and hand-written export files."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from marketing_warehouse.config import Settings, load_settings
from marketing_warehouse.demo import SHOPIFY_HEADER


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"MWH_DATA_DIR": str(tmp_path / "data"), "MWH_TASK_RETRIES": "0"})


def write_shopify(path: Path, rows: list[dict[str, str]], header=SHOPIFY_HEADER, **fmt) -> Path:
    """A Shopify orders export with ``rows`` (header -> value; missing cells are empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    encoding = fmt.pop("encoding", "utf-8")
    with path.open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n", **fmt)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(h, "") for h in header])
    return path


def order_row(name: str, email: str, created: str, qty: str = "1", **extra: str) -> dict[str, str]:
    row = {
        "Name": name,
        "Email": email,
        "Created at": created,
        "Lineitem quantity": qty,
        "Lineitem name": "Organic Cotton Tee",
        "Lineitem price": "24.90",
    }
    row.update({k.replace("_", " "): v for k, v in extra.items()})
    return row


def pytest_configure(config):
    """Airflow reads its configuration at import: point it at a throwaway home first."""
    import os
    import tempfile

    home = tempfile.mkdtemp(prefix="mwh-airflow-home-")
    os.environ.setdefault("AIRFLOW_HOME", home)
    settings = load_settings()
    from marketing_warehouse.airflow_env import TELEMETRY_OFF

    os.environ.update(TELEMETRY_OFF)
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(settings.project_dir / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("MWH_TASK_RETRIES", "2")


@pytest.fixture(scope="session")
def dbt_manifest():
    """The manifest Cosmos renders from (``make`` keeps it fresh; tests make sure it exists)."""
    import os

    from marketing_warehouse.dbt_tasks import manifest_is_stale, parse_project

    settings = load_settings()
    if manifest_is_stale(settings):
        parse_project(settings, dict(os.environ))
    return settings.dbt_project_dir / "target" / "manifest.json"
