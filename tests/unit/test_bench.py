"""`mwh bench extraction` works end to end at a tiny size (no timing asserted)."""

from __future__ import annotations

import json

from marketing_warehouse.cli import main


def test_extraction_bench_smoke(tmp_path, capsys):
    assert main(["bench", "extraction", "--lines", "3000", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "extraction.json").read_text())
    ours, floor = report["timings"]
    assert report["lines"] >= 3000
    assert ours["rows"] == floor["rows"] == report["lines"]  # every line landed is accounted for
    assert report["ratio_ours_to_floor"] > 0
    assert "ratio contract / floor" in capsys.readouterr().out


def test_demo_days_are_a_year_from_scale_one_tenth():
    from marketing_warehouse.tools.demo import default_days

    assert default_days(0.1) == default_days(1.0) == 365
    assert default_days(0.01) == 60
    assert default_days(0.01, configured=5) == 5


def test_measure_reports_wall_time_and_the_process_trees_memory(tmp_path):
    import sys

    from marketing_warehouse.tools.bench import measure

    # a child that holds ~60 MB for a second inside a grandchild
    code = (
        "import subprocess, sys; subprocess.run([sys.executable, '-c', "
        '\'import time; b = bytearray(60 * 2**20); b[::4096] = b"x" * len(b[::4096]); '
        "time.sleep(1)'], check=True)"
    )
    step = measure("x", "x", [sys.executable, "-c", code], {}, tmp_path / "x.log")
    assert step.exit_code == 0
    assert step.seconds >= 1
    assert step.peak_rss_mb >= 60  # the grandchild's memory counts
    assert step.largest_process_mb >= 60
    failed = measure("y", "y", [sys.executable, "-c", "raise SystemExit(3)"], {}, tmp_path / "y")
    assert failed.exit_code == 3


def test_single_mode_runs_each_dbt_stage_as_one_build_task(settings):
    from dataclasses import replace

    from cosmos.operators.local import DbtBuildLocalOperator

    from marketing_warehouse.transform.dbt_tasks import dbt_task_group

    task = dbt_task_group(
        "dbt_marts", ["path:seeds", "path:models/marts"], replace(settings, dbt_tasks="single")
    )
    assert isinstance(task, DbtBuildLocalOperator)
    assert task.task_id == "dbt_marts"
    assert task.select == "path:seeds path:models/marts"
    assert task.pool == "warehouse_writer"
    assert task.vars == {"snapshot_date": "{{ ds }}"}


def test_workbook_bench_smoke(tmp_path, capsys):
    assert main(["bench", "workbook", "--rows", "500", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "workbook.json").read_text())
    old, new, count = report["timings"]
    assert report["same_csv"]
    assert old["rows"] == new["rows"] == count["rows"] == report["rows"] == 500
    assert "ratio openpyxl / calamine" in capsys.readouterr().out
