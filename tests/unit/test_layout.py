"""The on-disk layout has one owner: ``marketing_warehouse/layout.py``.

Read from the source (nothing is imported): no other module joins a folder or file name of the
layout onto a path, spells one inside a path pattern, or cuts a content hash to its file-name
length itself. The names are taken from ``layout.py``, so a name added there is guarded at once.
dbt reads the raw layout too; its patterns are checked against the paths ``Layout`` gives.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from datetime import date
from pathlib import Path

from marketing_warehouse.layout import HASH_NAME_LENGTH, PARTITION_PREFIX, Layout, raw_file_name

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "marketing_warehouse"
LAYOUT = SOURCE / "layout.py"
#: Layout names that are ordinary words elsewhere too (a gate stage, the dbt executable, a
#: benchmark's scratch folder, a web page, a dbt model folder): only joined onto the settings'
#: paths do they build a layout path.
ORDINARY = {"raw", "dbt", "gx", "docs", "audit", "bench", "index.html", "predictions"}
SETTINGS_PATHS = ("settings", "data_dir", "landing_dir", "warehouse_path", "layout")


def docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def joined_names(tree: ast.AST) -> set[str]:
    """The string constants joined onto a path with ``/`` (``path / "name"``)."""
    return {
        node.right.value
        for node in ast.walk(tree)
        if isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Div)
        and isinstance(node.right, ast.Constant)
        and isinstance(node.right.value, str)
    }


def layout_names() -> set[str]:
    names = joined_names(ast.parse(LAYOUT.read_text("utf-8")))
    assert {"runs", "_quarantine", "_ledger", "versions", "validation"} <= names, names
    return names


def layout_violations(path: Path, names: set[str]) -> list[str]:
    tree = ast.parse(path.read_text("utf-8"), str(path))
    skip = docstrings(tree)
    found = []

    def report(node: ast.AST, what: str) -> None:
        found.append(f"{path}:{node.lineno}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            right = node.right
            if isinstance(right, ast.Constant) and right.value in names:
                onto = ast.unparse(node.left)
                if right.value not in ORDINARY or any(p in onto for p in SETTINGS_PATHS):
                    report(node, f"joins {right.value!r} onto {onto}")
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
        ):
            if any(c.isspace() for c in node.value):
                continue  # prose (a message, a page), not a path or a pattern
            segments = node.value.split("/")
            if any(s.startswith(PARTITION_PREFIX) for s in segments):
                report(node, f"spells the partition name {node.value!r}")
            elif len(segments) > 1 and (names - ORDINARY) & set(segments):
                report(node, f"spells a layout folder in {node.value!r}")
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Slice)
            and node.slice.lower is None
            and isinstance(node.slice.upper, ast.Constant)
            and node.slice.upper.value == HASH_NAME_LENGTH
            and not isinstance(node.value, ast.Call)
        ):
            report(node, f"cuts a hash to {HASH_NAME_LENGTH} characters (layout.hash_name)")
    return found


def test_no_module_but_layout_joins_the_layouts_names():
    names = layout_names()
    wrong = [
        line
        for path in sorted(SOURCE.rglob("*.py"))
        if path != LAYOUT
        for line in layout_violations(path, names)
    ]
    assert wrong == [], "\n".join(wrong)


def test_the_check_sees_each_way_of_building_a_layout_path(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(
        '"""Docstrings may say runs/<ds>/validation/ and load_date=YYYY-MM-DD."""\n'
        "def f(settings, entry):\n"
        '    a = settings.data_dir / "runs" / entry["ds"]\n'
        '    b = sorted(settings.data_dir.glob("*/validation/*.parquet"))\n'
        "    c = f\"load_date={entry['load_date']}\"\n"
        "    d = entry['file_hash'][:16]\n"
        '    e = "raw"  # a gate stage, not a path\n'
        '    g = settings.data_dir / "gx"\n'
        '    h = workdir / "raw" / "fixture.parquet"  # a scratch folder of its own\n'
        '    i = "see runs/<ds>/report.html"  # prose\n'
    )
    found = layout_violations(module, layout_names())
    lines = sorted(int(line.split(": ", 1)[0].rsplit(":", 1)[1]) for line in found)
    assert lines == [3, 4, 5, 6, 8], found


def test_dbt_reads_the_raw_files_where_the_layout_puts_them(tmp_path):
    """The globs of dbt's raw sources match the paths ``Layout`` gives (relative to raw)."""
    layout = Layout(tmp_path / "data", tmp_path / "landing", tmp_path / "warehouse.duckdb")
    source = layout.source("shopify__order_lines")
    day, file_hash = date(2026, 11, 21), "ab" * 32
    sources = "\n".join(
        p.read_text("utf-8") for p in (ROOT / "dbt_project" / "models").rglob("*sources.yml")
    )
    raw_glob = re.search(r"MWH_RAW_DIR'\) }}/shopify__\{name}/([^']+)'", sources).group(1)
    quarantine_glob = re.search(r"MWH_RAW_DIR'\) }}/(_quarantine/[^']+)'", sources).group(1)
    ledger_glob = re.search(r"MWH_RAW_DIR'\) }}/(_ledger/[^']+)'", sources).group(1)

    def relative(path: Path, base: Path) -> str:
        return path.relative_to(base).as_posix()

    assert fnmatch.fnmatch(relative(source.raw_file(day, file_hash), source.raw), raw_glob)
    assert fnmatch.fnmatch(relative(source.raw_schema_file, source.raw), raw_glob)
    assert fnmatch.fnmatch(
        relative(source.quarantine_file(day, file_hash), layout.raw), quarantine_glob
    )
    assert fnmatch.fnmatch(relative(source.ledger_file(day), layout.raw), ledger_glob)
    assert source.raw_file(day, file_hash).name == raw_file_name(file_hash)
    assert len(source.raw_file(day, file_hash).stem) == HASH_NAME_LENGTH


def test_a_rerun_moves_the_earlier_runs_record_aside_and_mwh_run_its_log_too(tmp_path):
    layout = Layout(tmp_path, tmp_path / "landing", tmp_path / "warehouse.duckdb")
    run = layout.run("2026-11-21")
    run.keep(run.publish_record, {"published": True})
    run.keep(run.gate_summary("raw"), {"stage": "raw"})
    for path, text in ((run.airflow_log, "first log"), (run.summary, "first summary")):
        path.write_text(text, "utf-8")
    run.report.write_text("<html>published</html>", "utf-8")

    # prepare (every run, scheduler or `mwh run`): the state only, the log being written stays
    first = layout.archive_earlier_run("2026-11-21")
    assert sorted(p.name for p in first.iterdir()) == ["publish.json", "validation"]
    assert run.airflow_log.read_text("utf-8") == "first log"
    assert layout.archive_earlier_run("2026-11-21") is None  # nothing left to move

    # `mwh run`, before its DAG run opens the log: the log and summary too, never the report
    second = layout.archive_earlier_run("2026-11-21", logs=True)
    assert second != first and second.parent == first.parent == layout.runs
    assert (second / "airflow.log").read_text("utf-8") == "first log"
    assert (second / "summary.txt").read_text("utf-8") == "first summary"
    assert sorted(p.name for p in run.root.iterdir()) == ["report.html"]
