"""The dbt project's unit tests (``unit_tests:`` in ``_<folder>__unit_tests.yml`` beside the
models): KPI formulas and identity rules on hand-computed rows, without any data.

dbt needs every input of a unit-tested model to exist (it reads their column types), so first
``dbt build --empty`` builds every model with no rows on the zero-row schema files an extraction
of an empty landing folder writes (seeds load, they are small; data tests are left out, there is
no data, and so is ``load_ledger``, which reads ledger files only a landed file creates), then
``dbt test --select test_type:unit`` runs the unit tests. About 30 s, offline.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime

import yaml

from marketing_warehouse.config import load_settings
from marketing_warehouse.ingest.contracts import load_contracts
from marketing_warehouse.ingest.loads import load_source
from marketing_warehouse.transform.dbt_tasks import run_dbt


def empty_extraction(tmp_path):
    """Settings on an empty landing folder after extraction: the zero-row schema files only."""
    settings = load_settings({"MWH_DATA_DIR": str(tmp_path / "data")})
    settings.landing_dir.mkdir(parents=True)
    for contract in load_contracts():
        load_source(settings, contract, date(2026, 1, 1), datetime.now(UTC))
    return settings


def test_dbt_unit_tests_pass_and_the_nightly_builds_leave_them_out(tmp_path):
    settings = empty_extraction(tmp_path)
    # Every model built with no rows (seeds load), then every unit test on its own: a failing
    # one neither hides nor skips the others.
    built = run_dbt(
        settings,
        ["build", "--empty", "--exclude-resource-type", "test", "--exclude-resource-type",
         "unit_test", "--exclude", "load_ledger"],
        dict(os.environ),
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-6000:]
    result = run_dbt(
        settings,
        # the flag replaces the unit_test exclusion of the pipeline's builds (Settings.dbt_env)
        ["test", "--select", "test_type:unit", "--exclude-resource-type", "test"],
        dict(os.environ),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:]
    declared = {
        f"{test['model']}::{test['name']}"
        for path in (settings.dbt_project_dir / "models").rglob("*.yml")
        for test in (yaml.safe_load(path.read_text("utf-8")) or {}).get("unit_tests", [])
    }
    ran = set(re.findall(r"START unit_test (\S+)", result.stdout))
    assert ran == declared, result.stdout[-3000:]  # none skipped, none left out

    # A nightly build (Cosmos or run_dbt, both with Settings.dbt_env) of a unit-tested model
    # runs no unit test: they test code, and run above.
    nightly = run_dbt(
        settings,
        ["build", "--empty", "--select", "dim_customer_identity_map", "--indirect-selection",
         "cautious"],
        dict(os.environ),
    )  # fmt: skip
    assert nightly.returncode == 0, nightly.stdout[-6000:]
    assert "OK created sql table model marts.dim_customer_identity_map" in nightly.stdout
    assert "START unit_test" not in nightly.stdout
