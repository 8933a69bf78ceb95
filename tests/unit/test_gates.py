"""A gate run through real GX: statuses, persisted results and messages a user can act on."""

from __future__ import annotations

import json
from datetime import date

import duckdb
import pytest

from marketing_warehouse.config import load_settings
from marketing_warehouse.gates import GateFailed, enforce, run_gate


@pytest.fixture
def settings(tmp_path):
    suites = tmp_path / "expectations"
    (suites / "raw").mkdir(parents=True)
    (suites / "gates.yml").write_text(
        "raw:\n"
        "  - suite: raw/orders\n"
        "    sql: select * from (values (1, 'a'), (7, 'b'), (9, 'c')) as t(quantity, code)\n"
    )
    expectations = [
        {
            "type": "expect_column_values_to_be_between",
            "severity": "critical",
            "kwargs": {"column": "quantity", "min_value": 0, "max_value": 5},
        },
        {
            "type": "expect_column_values_to_be_in_set",
            "severity": "warning",
            "kwargs": {"column": "code", "value_set": ["a", "b"]},
        },
        {
            "type": "expect_column_values_to_not_be_null",
            "severity": "critical",
            "kwargs": {"column": "code"},
        },
    ]
    (suites / "raw" / "orders.json").write_text(
        json.dumps({"name": "raw/orders", "expectations": expectations})
    )
    return load_settings(
        {"MWH_DATA_DIR": str(tmp_path / "data"), "MWH_EXPECTATIONS_DIR": str(suites)}
    )


def test_a_critical_failure_names_suite_expectation_expected_observed_and_rows(settings):
    outcome = run_gate(settings, "raw", date(2026, 11, 21), "run-1")
    assert outcome.status == "fail"
    assert [(c.severity, c.success) for c in outcome.checks] == [
        ("critical", False),
        ("warning", False),
        ("critical", True),
    ]
    with pytest.raises(GateFailed) as failed:
        enforce(outcome)
    message = str(failed.value)
    assert "raw gate failed: 1 critical expectation(s)" in message
    assert "raw/orders: expect_column_values_to_be_between(column=quantity) [critical]" in message
    assert "expected min_value=0, max_value=5" in message
    assert "2 of 3 rows unexpected" in message and "sample [7, 9]" in message
    assert "data docs: file://" in message

    results = settings.run_dir("2026-11-21") / "validation" / "raw.parquet"
    rows = duckdb.sql(
        f"select severity, success, unexpected_count, unexpected_sample from '{results}' "
        "order by expectation, column_name"
    ).fetchall()
    assert ("warning", False, 1, '["c"]') in rows and ("critical", False, 2, "[7, 9]") in rows


def test_only_warnings_pass_the_gate(settings):
    suite = settings.expectations_dir / "raw" / "orders.json"
    data = json.loads(suite.read_text())
    data["expectations"][0]["severity"] = "warning"
    suite.write_text(json.dumps(data))
    outcome = run_gate(settings, "raw", date(2026, 11, 21), "run-2")
    assert outcome.status == "warn"
    enforce(outcome)  # warnings never raise
