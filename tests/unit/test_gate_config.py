"""The committed GX configuration is complete and consistent: no code change needed to use it."""

from __future__ import annotations

import json
import re

import pytest

from marketing_warehouse.config import load_settings
from marketing_warehouse.ingest.contracts import load_contracts
from marketing_warehouse.quality.gates import SEVERITIES, STAGES, load_bindings


def test_every_contract_has_a_raw_suite_bound_to_what_the_run_loaded():
    bindings = load_bindings(load_settings())
    raw_sql = " ".join(b.get("sql", "") for b in bindings["raw"])
    for contract in load_contracts():
        assert f"{{raw:{contract.key}}}" in raw_sql, contract.key


def test_every_bound_suite_exists_and_every_expectation_has_a_severity():
    settings = load_settings()
    bindings = load_bindings(settings)
    for stage in STAGES:
        assert bindings[stage], stage
        for binding in bindings[stage]:
            path = settings.expectations_dir / f"{binding['suite']}.json"
            suite = json.loads(path.read_text())
            assert suite["name"] == binding["suite"]
            assert binding["suite"].startswith(f"{stage}/")
            for exp in suite["expectations"]:
                assert exp["severity"] in SEVERITIES, (path.name, exp)
                assert re.fullmatch(r"expect_[a-z_]+", exp["type"])


def test_the_quarantine_model_accepts_exactly_the_reason_codes():
    import yaml

    from marketing_warehouse.ingest.quarantine import Reason

    models = yaml.safe_load(
        (load_settings().project_dir / "dbt_project/models/audit/_audit__models.yml").read_text()
    )["models"]
    quarantine = next(m for m in models if m["name"] == "quarantine")
    column = next(c for c in quarantine["columns"] if c["name"] == "reason_code")
    accepted = next(t["accepted_values"] for t in column["data_tests"] if "accepted_values" in t)
    assert set(accepted["arguments"]["values"]) == {r.value for r in Reason}


def test_a_suite_parameter_is_declared_once(tmp_path):
    import shutil

    from marketing_warehouse.quality.gates import suite_parameters

    settings = load_settings({})
    assert suite_parameters(settings)["quarantine_share_critical"] == 0.2
    copy = tmp_path / "expectations"
    shutil.copytree(settings.expectations_dir, copy)
    suite = copy / "staging" / "fx_rate_coverage.json"
    data = json.loads(suite.read_text())
    data["meta"]["parameters"] = {"quarantine_share_critical": 0.2}
    suite.write_text(json.dumps(data))
    again = load_settings({"MWH_EXPECTATIONS_DIR": str(copy)})
    with pytest.raises(ValueError, match=r"quarantine_share_critical.*already declared"):
        suite_parameters(again)
