"""The committed GX configuration is complete and consistent: no code change needed to use it."""

from __future__ import annotations

import json
import re

import pytest

from marketing_warehouse.config import load_settings
from marketing_warehouse.contracts import load_contracts
from marketing_warehouse.gates import SEVERITIES, STAGES, load_bindings


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

    from marketing_warehouse.quarantine import Reason

    models = yaml.safe_load(
        (load_settings().project_dir / "dbt_project/models/audit/_audit__models.yml").read_text()
    )["models"]
    quarantine = next(m for m in models if m["name"] == "quarantine")
    column = next(c for c in quarantine["columns"] if c["name"] == "reason_code")
    accepted = next(t["accepted_values"] for t in column["data_tests"] if "accepted_values" in t)
    assert set(accepted["arguments"]["values"]) == {r.value for r in Reason}


def test_the_fx_look_back_is_one_dbt_var_that_models_gates_and_bench_read():
    """dbt_project.yml's fx_lookback_days is the only place the FX look-back is written: the
    models use it through macros, the staging gate through {fx_lookback_days}, the benchmark's
    floor SQL through $fx_lookback_days."""
    from marketing_warehouse.bench import FLOOR_SQL

    settings = load_settings({})
    assert isinstance(settings.dbt_var("fx_lookback_days"), int)
    project = settings.dbt_project_dir
    models = [
        p
        for p in [*project.glob("models/**/*"), *project.glob("macros/*.sql")]
        if p.is_file() and re.search(r"fx_rate|\brates?\b", p.read_text("utf-8"))
    ]
    literal = re.compile(r"7[- ]days? (?:look|older|before)|at most 7 days|7-day|-\s?8\b")
    offenders = [str(p) for p in models if literal.search(p.read_text("utf-8"))]
    offenders += ["expectations/gates.yml"] * bool(
        literal.search((settings.expectations_dir / "gates.yml").read_text("utf-8"))
    )
    assert offenders == []
    assert FLOOR_SQL.count("$fx_lookback_days") == 2
    assert "fx_lookback_days" in (project / "macros" / "reporting_currency.sql").read_text()


def test_a_suite_parameter_is_declared_once(tmp_path):
    import shutil

    from marketing_warehouse.gates import suite_parameters

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


def test_dbt_packages_are_vendored_and_installed_without_a_download(tmp_path):
    """packages.yml names local packages only; a checkout without dbt_packages/ gets them from
    vendor/ by `dbt deps` (offline), and the project's own generic tests are dbt_utils'."""
    import shutil

    import yaml

    from marketing_warehouse.dbt_tasks import install_packages, missing_packages

    settings = load_settings({})
    project = settings.dbt_project_dir
    packages = yaml.safe_load((project / "packages.yml").read_text())["packages"]
    assert packages == [{"local": "vendor/dbt_utils"}]
    vendored = yaml.safe_load((project / "vendor/dbt_utils/dbt_project.yml").read_text())
    assert vendored["name"] == "dbt_utils"
    assert "1.4.1" in (project / "vendor/README.md").read_text()
    assert not list((project / "macros").glob("test_*.sql"))  # no home-made generic tests

    copy = tmp_path / "checkout"
    shutil.copytree(settings.project_dir / "dbt_project", copy / "dbt_project", symlinks=True,
                    ignore=shutil.ignore_patterns("dbt_packages", "target", "logs"))  # fmt: skip
    fresh = load_settings({"MWH_PROJECT_DIR": str(copy), "MWH_DATA_DIR": str(tmp_path / "d")})
    assert missing_packages(fresh) == ["dbt_utils"]
    offline = {"PATH": "/usr/bin:/bin", "HTTPS_PROXY": "http://127.0.0.1:9", "HOME": str(tmp_path)}
    install_packages(fresh, offline)
    assert missing_packages(fresh) == []
    assert (copy / "dbt_project/dbt_packages/dbt_utils/macros/generic_tests").is_dir()
