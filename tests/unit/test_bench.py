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
