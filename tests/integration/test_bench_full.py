"""`mwh bench full` works end to end at scale 0.01 on five days (no timing asserted). The demo run
(`mwh bench demo-run`, two more complete DAG runs) is left out here to keep the suite within its
budget."""

from __future__ import annotations

import json

import pytest

from marketing_warehouse.cli import main
from marketing_warehouse.tools.bench import HEADLINES

pytestmark = pytest.mark.integration


@pytest.mark.timeout(900)
def test_full_bench_smoke(tmp_path, capsys):
    code = main(
        ["bench", "full", "--scale", "0.01", "--days", "5", "--dbt-tasks", "single",
         "--no-compare", "--no-demo-run", "--out", str(tmp_path)]
    )  # fmt: skip
    out = capsys.readouterr().out
    [report_file] = tmp_path.glob("bench-0.01-*.json")
    suite = json.loads(report_file.read_text())
    assert suite["scales"] == [0.01]
    [report] = suite["runs"]

    assert {
        "scale",
        "days",
        "machine",
        "generation",
        "volumes",
        "steps",
        "ratios",
        "checks",
        "wall_seconds",
        "peak_rss_mb",
    } <= set(report)
    assert report["scale"] == 0.01 and report["days"] == 5
    steps = {s["key"]: s for s in report["steps"]}
    assert list(steps) == ["full", "dbt", "floor", "incremental"]
    for step in steps.values():
        assert step["exit_code"] == 0, step
        assert step["seconds"] > 0 and step["peak_rss_mb"] > 0 and step["rows"] > 0
        assert set(step) >= {"name", "rows_per_second", "largest_process_mb"}
    assert steps["incremental"]["rows"] < steps["full"]["rows"]  # one day, not the history
    for ratio in ("full_over_floor", "dbt_over_floor", "incremental_over_full"):
        assert report["ratios"][ratio] > 0
    assert report["wall_seconds"] > sum(s["seconds"] for s in steps.values())
    assert report["peak_rss_mb"] == max(s["peak_rss_mb"] for s in steps.values())
    # the floor computes the same headline numbers as the dbt marts
    assert [c["metric"] for c in report["checks"]] == [f"{t}.{m}" for t, m, _ in HEADLINES]
    assert [c for c in report["checks"] if not c["match"]] == []

    assert suite["demo_run"] is None
    targets = {t["key"]: t for t in suite["targets"]}
    assert targets["demo_run_warm"]["verdict"] == "not measured"
    assert targets["growth"]["verdict"] == "not measured"  # one scale
    assert code == 0
    assert "(a)/(c)" in out and "floor vs dbt marts" in out and "verdict" in out
    # each step is reported as it ends, before the tables
    assert out.index("(a) nightly run, all history: ") < out.index("(d) incremental night")
    assert not list(tmp_path.glob("run-*"))  # the data folders are removed unless --keep
    assert not list(tmp_path.glob("demo-run-*"))


def test_the_floor_computes_the_marts_headline_numbers_on_other_demo_data(dbt_built, tmp_path):
    """The floor-versus-marts check on a second size and seed (the demo build every integration
    test shares: seed 1, ten days, every landed file loaded, then `dbt build`), without a bench
    run: a floor that drifts from what was landed fails here, not only in `make bench`."""
    from datetime import date

    from marketing_warehouse.tools.bench import compare_marts, floor

    ds = date(2026, 11, 21)
    floor(dbt_built.landing_dir, ds, tmp_path / "floor.duckdb", dbt_built.reporting_currency)
    checks = compare_marts(tmp_path / "floor.duckdb", dbt_built.build_path, ds)
    assert [c["metric"] for c in checks] == [f"{t}.{m}" for t, m, _ in HEADLINES]
    assert [c for c in checks if not c["match"]] == []
    numbers = {c["metric"]: c["dbt"] for c in checks}
    assert numbers["kpi_daily.orders"] > 0 and numbers["dim_customers.customers"] > 0
