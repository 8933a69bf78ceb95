"""A gate run through real GX: statuses, persisted results and messages a user can act on."""

from __future__ import annotations

import json
from datetime import date

import duckdb
import pytest

from marketing_warehouse.config import load_settings
from marketing_warehouse.quality.gates import GateFailed, enforce, run_gate


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

    results = settings.layout.run("2026-11-21").gate_results("raw")
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


def _one_suite_settings(tmp_path, name: str, sql: str, expectations: list[dict]):
    """Settings whose raw gate runs one suite, ``raw/<name>``, on ``sql``."""
    suites = tmp_path / "expectations"
    (suites / "raw").mkdir(parents=True)
    (suites / "gates.yml").write_text(f"raw:\n  - suite: raw/{name}\n    sql: {sql}\n")
    (suites / "raw" / f"{name}.json").write_text(
        json.dumps({"name": f"raw/{name}", "expectations": expectations})
    )
    return load_settings(
        {"MWH_DATA_DIR": str(tmp_path / "data"), "MWH_EXPECTATIONS_DIR": str(suites)}
    )


def _count_frames(monkeypatch) -> list[int]:
    """The sizes of the frames the gate hands to GX, appended as they go."""
    from marketing_warehouse.quality import gates

    frames: list[int] = []
    original = gates._frames

    def counting(*args):
        for frame in original(*args):
            frames.append(len(frame))
            yield frame

    monkeypatch.setattr(gates, "_frames", counting)
    return frames


CHUNKED_SUITE = [
    # 3 of 12 quantities out of range, all in file f2: fails with or without chunks
    {"type": "expect_column_values_to_be_between", "severity": "critical",
     "kwargs": {"column": "quantity", "min_value": 0, "max_value": 5}},
    # 2 unknown codes of 10 non-null (80 % known >= 75 %): passes on the whole batch, although
    # file f3 alone (1 of 3 known) would fail it
    {"type": "expect_column_values_to_be_in_set", "severity": "warning",
     "kwargs": {"column": "code", "value_set": ["a", "b"], "mostly": 0.75}},
    # 2 nulls of 12 rows (83 % > 80 %): passes; f4 alone (1 of 2) would not
    {"type": "expect_column_values_to_not_be_null", "severity": "warning",
     "kwargs": {"column": "code", "mostly": 0.8}},
    {"type": "expect_compound_columns_to_be_unique", "severity": "warning",
     "kwargs": {"column_list": ["_file_hash", "line"]}},
    {"type": "expect_table_columns_to_match_set", "severity": "critical",
     "kwargs": {"column_set": ["_file_hash", "line", "quantity", "code"]}},
]  # fmt: skip

CHUNKED_ROWS = (
    "('f1', 1, 1, 'a'), ('f1', 2, 2, 'b'), ('f1', 3, 3, 'a'), "
    "('f2', 1, 9, 'a'), ('f2', 2, 8, 'b'), ('f2', 3, 7, 'a'), ('f2', 3, 1, 'b'), "
    "('f3', 1, 1, 'x'), ('f3', 2, 1, 'y'), ('f3', 3, 1, 'a'), "
    "('f4', 1, 1, null), ('f4', 2, 1, null)"
)


def test_a_large_batch_with_a_unique_key_is_validated_in_key_chunks_with_the_verdicts_of_one_batch(
    tmp_path, monkeypatch
):
    """Twelve rows in four landed files, validated whole and in four chunks split by a hash of
    the unique key: the same verdicts and counts (the duplicate key is found wherever its rows
    are), and ``mostly`` applies to the sums."""
    from marketing_warehouse.quality import gates

    settings = _one_suite_settings(
        tmp_path,
        "lines",
        f"select * from (values {CHUNKED_ROWS}) as t(_file_hash, line, quantity, code)",
        CHUNKED_SUITE,
    )
    frames = _count_frames(monkeypatch)

    def summary(outcome):
        return [
            (c.expectation, c.success, c.element_count, c.unexpected_count) for c in outcome.checks
        ]

    monkeypatch.setattr(gates, "SQL_STAGES", ())  # every expectation through GX on frames
    whole_outcome = run_gate(settings, "raw", date(2026, 11, 21), "run-whole")
    assert frames == [12]
    monkeypatch.setattr(gates, "CHUNK_ROWS", 3)
    frames.clear()
    chunked_outcome = run_gate(settings, "raw", date(2026, 11, 21), "run-chunked")
    assert len(frames) == 4 and sum(frames) == 12
    assert max(frames) < 12
    assert (
        summary(chunked_outcome)
        == summary(whole_outcome)
        == [
            ("expect_column_values_to_be_between", False, 12, 3),
            ("expect_column_values_to_be_in_set", True, 12, 2),
            ("expect_column_values_to_not_be_null", True, 12, 2),
            ("expect_compound_columns_to_be_unique", False, 12, 2),
            ("expect_table_columns_to_match_set", True, None, None),
        ]
    )
    samples = {
        c.expectation: sorted(json.loads(c.sample or "[]"), key=str) for c in chunked_outcome.checks
    }
    assert samples["expect_column_values_to_be_between"] == [7, 8, 9]
    assert samples["expect_column_values_to_be_in_set"] == ["x", "y"]
    assert samples["expect_compound_columns_to_be_unique"] == [
        {"_file_hash": "f2", "line": 3},
        {"_file_hash": "f2", "line": 3},
    ]
    monkeypatch.setattr(gates, "SQL_STAGES", ("raw",))
    frames.clear()
    in_sql = run_gate(settings, "raw", date(2026, 11, 21), "run-sql")
    assert frames == []  # DuckDB counted every expectation: no frame reached GX
    assert summary(in_sql) == summary(whole_outcome)
    assert samples == {
        c.expectation: sorted(json.loads(c.sample or "[]"), key=str) for c in in_sql.checks
    }


def test_a_large_batch_of_row_wise_checks_is_validated_in_consecutive_chunks(tmp_path, monkeypatch):
    """5,000 rows (a mart, say) in chunks of 2,048 rows: row counts add up (each chunk alone is
    below the minimum), ``mostly`` applies to the sums, and the verdicts equal those of one
    frame."""
    from marketing_warehouse.quality import gates

    expectations = [
        {"type": "expect_table_row_count_to_be_between", "severity": "critical",
         "kwargs": {"min_value": 4000, "max_value": 6000}},
        # r = 6 on 714 of the 4,995 non-null rows: 85.7 % <= 5, over the 85 % asked for
        {"type": "expect_column_values_to_be_between", "severity": "critical",
         "kwargs": {"column": "r", "max_value": 5, "mostly": 0.85}},
        {"type": "expect_column_values_to_not_be_null", "severity": "warning",
         "kwargs": {"column": "r"}},
        {"type": "expect_column_pair_values_a_to_be_greater_than_b", "severity": "warning",
         "kwargs": {"column_A": "n", "column_B": "r", "or_equal": True,
                    "ignore_row_if": "either_value_is_missing"}},
    ]  # fmt: skip
    settings = _one_suite_settings(
        tmp_path,
        "numbers",
        "select range as n, case when range % 1000 = 999 then null else range % 7 end as r"
        " from range(5000)",
        expectations,
    )
    frames = _count_frames(monkeypatch)

    def summary(outcome):
        return [
            (c.expectation, c.success, c.observed, c.element_count, c.unexpected_count)
            for c in outcome.checks
        ]

    monkeypatch.setattr(gates, "SQL_STAGES", ())  # every expectation through GX on frames
    whole = summary(run_gate(settings, "raw", date(2026, 11, 21), "run-whole"))
    assert frames == [5000]
    monkeypatch.setattr(gates, "CHUNK_ROWS", 2048)
    frames.clear()
    chunked = summary(run_gate(settings, "raw", date(2026, 11, 21), "run-chunked"))
    assert frames == [2048, 2048, 904]
    assert chunked == whole
    assert sorted(chunked) == [
        ("expect_column_pair_values_a_to_be_greater_than_b", True, "0% unexpected", 5000, 0),
        ("expect_column_values_to_be_between", True, "14.29% unexpected", 5000, 714),
        ("expect_column_values_to_not_be_null", False, "0.1% unexpected", 5000, 5),
        ("expect_table_row_count_to_be_between", True, "5000", None, None),
    ]
    monkeypatch.setattr(gates, "SQL_STAGES", ("raw",))
    frames.clear()
    assert summary(run_gate(settings, "raw", date(2026, 11, 21), "run-sql")) == whole
    assert frames == []


# --- run-level trust: the committed quarantine-share and landing-scan suites ----------------

RUN_DS = "2026-11-21"
PROJECT_EXPECTATIONS = load_settings().expectations_dir
RUN_LEVEL_SUITES = ("raw/quarantine_share", "raw/landing_scan")


def _run_level_settings(tmp_path):
    """Settings whose raw gate runs the committed run-level suites, bound as committed."""
    import shutil

    import yaml

    suites = tmp_path / "expectations"
    (suites / "raw").mkdir(parents=True)
    committed = yaml.safe_load((PROJECT_EXPECTATIONS / "gates.yml").read_text())
    bindings = [b for b in committed["raw"] if b["suite"] in RUN_LEVEL_SUITES]
    assert len(bindings) == len(RUN_LEVEL_SUITES)
    (suites / "gates.yml").write_text(yaml.safe_dump({"raw": bindings}))
    for name in RUN_LEVEL_SUITES:
        shutil.copyfile(PROJECT_EXPECTATIONS / f"{name}.json", suites / f"{name}.json")
    return load_settings(
        {"MWH_DATA_DIR": str(tmp_path / "data"), "MWH_EXPECTATIONS_DIR": str(suites)}
    )


def _shopify_export(path, orders: int, lines: int, bad_lines: int, bad_orders=None, start=1):
    """A Shopify export of ``orders`` orders of ``lines`` lines each; in the last ``bad_lines``
    lines of the first ``bad_orders`` orders (default: all) the required "Lineitem quantity" is
    empty (a custom report that dropped it). Returns (rows written, rows of orders with an empty
    quantity: the extractor quarantines an order's lines together), counted from the file."""
    import csv

    from conftest import order_row, write_shopify

    bad_orders = orders if bad_orders is None else bad_orders
    rows = []
    for index, number in enumerate(range(start, start + orders)):
        for line in range(lines):
            bad = index < bad_orders and line >= lines - bad_lines
            rows.append(
                order_row(
                    f"#{number}",
                    f"c{number}@example.com",
                    f"{RUN_DS} 10:00:00 +0000",
                    qty="" if bad else "1",
                )
            )
    write_shopify(path, rows)
    with path.open(newline="", encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    broken = {r["Name"] for r in written if not r["Lineitem quantity"]}
    return len(written), sum(1 for r in written if r["Name"] in broken)


def _raw_gate(settings):
    from marketing_warehouse import pipeline

    pipeline.prepare(RUN_DS, settings)
    pipeline.extract_source("shopify__order_lines", RUN_DS, settings)
    return run_gate(settings, "raw", date.fromisoformat(RUN_DS), "run-level")


def _failed(outcome, severity: str, suite: str) -> str:
    return "\n".join(c.describe() for c in outcome.failures(severity) if c.suite == suite)


def test_a_mostly_quarantined_file_stops_the_raw_gate_naming_the_file_its_share_and_reasons(
    tmp_path,
):
    settings = _run_level_settings(tmp_path)
    folder = settings.landing_dir / RUN_DS
    landed, empty = _shopify_export(folder / "shopify_orders_export.csv", 10, 30, 30, bad_orders=9)
    assert (landed, empty) == (300, 270)
    outcome = _raw_gate(settings)
    assert outcome.status == "fail"
    critical = _failed(outcome, "critical", "raw/quarantine_share")
    share = f"{empty / landed:.2%}"  # 90.00%
    assert (
        f"shopify__order_lines/{RUN_DS}/shopify_orders_export.csv: {empty} of {landed} rows "
        f"quarantined ({share}); top reasons missing_required_value {empty}"
    ) in critical
    assert f"shopify__order_lines: {empty} of {landed} rows quarantined ({share})" in critical
    assert "max_value=0.2" in critical and "rows_landed >= 20" in critical
    with pytest.raises(GateFailed, match=r"shopify_orders_export\.csv"):
        enforce(outcome)
    # the same checks land in audit.validation_results (via the run's results file)
    results = settings.layout.run(RUN_DS).gate_results("raw")
    rows = duckdb.sql(
        f"select severity, unexpected_count from '{results}' "
        "where suite = 'raw/quarantine_share' and not success order by severity"
    ).fetchall()
    assert rows == [("critical", 1), ("critical", 1), ("warning", 1)]


def test_the_raw_gate_judges_what_prepare_and_the_extract_tasks_returned(tmp_path):
    """In the DAG the raw gate is handed the extract tasks' return values (through XCom, as
    JSON); it needs no extraction record in the run folder to find the run's files."""
    import shutil

    from marketing_warehouse import pipeline

    settings = _run_level_settings(tmp_path)
    folder = settings.landing_dir / RUN_DS
    landed, empty = _shopify_export(folder / "shopify_orders_export.csv", 10, 30, 30, bad_orders=9)
    (folder / "orders backup.csv").write_text("Name\n#1\n", "utf-8")
    prepared = pipeline.prepare(RUN_DS, settings)
    returned = pipeline.extract_source("shopify__order_lines", RUN_DS, settings)
    assert [(e["rows_landed"], e["rows_quarantined"]) for e in returned["detail"]] == [
        (landed, empty)
    ]
    run = settings.layout.run(RUN_DS)
    shutil.rmtree(run.extract_dir)
    run.landing_scan.unlink()
    extracts, scan = json.loads(json.dumps([[returned], prepared["landing_scan"]]))
    with pytest.raises(GateFailed, match=rf"shopify_orders_export\.csv: {empty} of {landed} rows"):
        pipeline.gate("raw", RUN_DS, "run-xcom", settings, extracts=extracts, landing_scan=scan)
    # the landing scan prepare returned: the file no contract matches is the one warning
    warned = duckdb.sql(
        f"select unexpected_count from '{run.gate_results('raw')}' "
        "where suite = 'raw/landing_scan' and not success"
    ).fetchall()
    assert warned == [(1,)]


def test_a_slightly_quarantined_file_and_a_tiny_file_only_warn(tmp_path):
    settings = _run_level_settings(tmp_path)
    folder = settings.landing_dir / RUN_DS
    big = _shopify_export(folder / "shopify_orders_big.csv", 100, 1, 1, bad_orders=2)
    tiny = _shopify_export(folder / "shopify_orders_tiny.csv", 3, 1, 1, bad_orders=1, start=900)
    assert big == (100, 2)  # 2 %: above the warning's 1 %, under the critical 20 %
    assert tiny == (3, 1)  # 33 %, but of a file under 20 rows: warned, not stopped
    outcome = _raw_gate(settings)
    assert outcome.failures("critical") == [], [c.describe() for c in outcome.checks]
    warning = _failed(outcome, "warning", "raw/quarantine_share")
    assert f"shopify_orders_big.csv: 2 of 100 rows quarantined ({2 / 100:.2%})" in warning
    assert f"shopify_orders_tiny.csv: 1 of 3 rows quarantined ({1 / 3:.2%})" in warning
    # the source as a whole: 3 of 103 rows, under 20 %
    assert outcome.status == "warn"


def test_many_small_broken_files_stop_the_run_by_their_source_share(tmp_path):
    settings = _run_level_settings(tmp_path)
    folder = settings.landing_dir / RUN_DS
    counts = [
        _shopify_export(folder / f"shopify_orders_part{n}.csv", 5, 1, 1, bad_orders=2, start=n * 10)
        for n in range(6)
    ]
    landed, empty = (sum(c[i] for c in counts) for i in (0, 1))
    assert (landed, empty) == (30, 12)  # every file 40 % of 5 rows: each under the minimum
    outcome = _raw_gate(settings)
    critical = _failed(outcome, "critical", "raw/quarantine_share")
    assert (
        f"shopify__order_lines: {empty} of {landed} rows quarantined ({empty / landed:.2%}) "
        "over 6 file(s)" in critical
    )
    assert "shopify_orders_part" not in critical  # no single file is big enough to stop the run
    assert "level == 'source'" in critical


def test_a_file_rejected_whole_stops_the_run_and_an_empty_export_warns(tmp_path):
    settings = _run_level_settings(tmp_path)
    folder = settings.landing_dir / RUN_DS
    folder.mkdir(parents=True)
    (folder / "shopify_orders_photo.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 8)
    (folder / "shopify_orders_quiet_day.csv").write_text("")
    _shopify_export(folder / "shopify_orders_good.csv", 30, 1, 0)
    outcome = _raw_gate(settings)
    assert outcome.status == "fail"
    critical = _failed(outcome, "critical", "raw/quarantine_share")
    assert (
        f"shopify__order_lines/{RUN_DS}/shopify_orders_photo.csv: rejected whole (unreadable_file)"
    ) in critical
    assert "quiet_day" not in critical and "shopify_orders_good" not in critical
    warning = _failed(outcome, "warning", "raw/quarantine_share")
    assert "shopify_orders_quiet_day.csv: rejected whole (empty_file)" in warning


def test_ignored_landing_entries_are_a_warning_naming_each_one(tmp_path):
    settings = _run_level_settings(tmp_path)
    landing = settings.landing_dir
    _shopify_export(landing / RUN_DS / "shopify_orders_export.csv", 25, 1, 0)
    ignored = {
        f"{RUN_DS}/old/shopify_orders_export.csv": "nested_folder",
        f"{RUN_DS}/orders backup.csv": "no_contract",
        "exports/shopify_orders_2026-11-21.csv": "outside_date_folder",
        "2026-11-31/shopify_orders_export.csv": "outside_date_folder",  # no such date
        "shopify_orders_2026-11-21.csv": "outside_date_folder",
    }
    for path in ignored:
        (landing / path).parent.mkdir(parents=True, exist_ok=True)
        (landing / path).write_text("Name,Email\n#1,a@example.com\n")
    (landing / "2026-11-22").mkdir()  # a later date belongs to a later run: not listed
    (landing / "2026-11-22" / "notes.txt").write_text("tomorrow")
    outcome = _raw_gate(settings)
    assert outcome.failures("critical") == []
    (check,) = [c for c in outcome.checks if c.suite == "raw/landing_scan"]
    assert not check.success and check.severity == "warning"
    assert (check.element_count, check.unexpected_count) == (len(ignored) + 1, len(ignored))
    for path, reason in ignored.items():
        assert f"{path}: ignored, " in check.sample and f"({reason})" in check.sample
    assert "notes.txt" not in check.sample


@pytest.mark.parametrize("sql_stages", [("raw",), ()])
def test_a_repeated_key_s_sample_hashes_its_personal_columns(tmp_path, monkeypatch, sql_stages):
    """A key with an e-mail in it (an experiment's participants) is shown with the address
    hashed, whether DuckDB or GX found the repeat."""
    from marketing_warehouse.quality import gates

    monkeypatch.setattr(gates, "SQL_STAGES", sql_stages)
    settings = _one_suite_settings(
        tmp_path,
        "assignments",
        "select * from (values ('e1', 'ann@example.com'), ('e1', 'ann@example.com'), "
        "('e2', 'ann@example.com')) as t(experiment_id, email)",
        [{"type": "expect_compound_columns_to_be_unique", "severity": "warning",
          "kwargs": {"column_list": ["experiment_id", "email"]}}],
    )  # fmt: skip
    [check] = run_gate(settings, "raw", date(2026, 11, 21), "run-1").checks
    assert (check.success, check.element_count, check.unexpected_count) == (False, 3, 2)
    assert "ann@" not in check.sample and "ann@" not in check.describe()
    hashed = {"experiment_id": "e1", "email": gates.sample_hash("ann@example.com")}
    assert json.loads(check.sample) == [hashed, hashed]


def test_a_suite_of_both_kinds_is_counted_by_duckdb_and_gx_into_one_validation(
    tmp_path, monkeypatch
):
    """DuckDB counts what it can; what it cannot (a mean, a row condition, a Unicode regex)
    reaches GX on frames; the verdicts equal those of GX alone, and GX stores one validation of
    the whole suite, its results in GX's own order."""
    from marketing_warehouse.quality import gates

    expectations = [
        {"type": "expect_column_values_to_be_between", "severity": "critical",
         "kwargs": {"column": "n", "min_value": 0, "max_value": 90}},
        {"type": "expect_column_mean_to_be_between", "severity": "warning",
         "kwargs": {"column": "n", "min_value": 60}},
        {"type": "expect_column_values_to_match_regex", "severity": "warning",
         "kwargs": {"column": "code", "regex": r"^\d+$", "mostly": 0.5}},
        {"type": "expect_column_values_to_be_in_set", "severity": "warning",
         "kwargs": {"column": "code", "value_set": ["1"], "row_condition": "n < 10",
                    "condition_parser": "pandas"}},
        {"type": "expect_column_values_to_not_be_null", "severity": "critical",
         "kwargs": {"column": "code", "mostly": 0.9}},
    ]  # fmt: skip
    settings = _one_suite_settings(
        tmp_path,
        "mixed",
        "select range as n, case when range % 10 = 0 then null else cast(range % 7 as varchar) "
        "end as code from range(100)",
        expectations,
    )
    frames = _count_frames(monkeypatch)

    def summary(outcome):
        return [
            (c.expectation, c.column, c.success, c.observed, c.element_count, c.unexpected_count)
            for c in outcome.checks
        ]

    monkeypatch.setattr(gates, "SQL_STAGES", ())
    by_gx = summary(run_gate(settings, "raw", date(2026, 11, 21), "run-gx"))
    monkeypatch.setattr(gates, "SQL_STAGES", ("raw",))
    frames.clear()
    both = summary(run_gate(settings, "raw", date(2026, 11, 21), "run-both"))
    assert frames == [100]  # the mean needs the whole batch in one frame
    assert both == by_gx
    assert [(e, c, s) for e, c, s, *_ in both] == [
        ("expect_column_values_to_be_between", "n", False),
        ("expect_column_mean_to_be_between", "n", False),
        ("expect_column_values_to_match_regex", "code", True),
        ("expect_column_values_to_be_in_set", "code", False),
        ("expect_column_values_to_not_be_null", "code", True),
    ]
    stored = [
        json.loads(p.read_text())
        for p in settings.layout.gx_root.rglob("validations/**/*.json")
        if "raw.mixed" in str(p)
    ]
    latest = max(stored, key=lambda v: v["meta"]["run_id"]["run_time"])
    assert [r["expectation_config"]["type"] for r in latest["results"]] == [e for e, *_ in both]
    assert latest["statistics"]["evaluated_expectations"] == 5 and not latest["success"]
    assert latest["meta"]["batch_spec"]["data_asset_name"] == "raw.mixed"


def test_data_docs_render_the_night_s_pages_and_keep_the_latest_run_dates(settings, monkeypatch):
    from marketing_warehouse.quality import gates

    monkeypatch.setattr(gates, "DATA_DOCS_RUN_DATES", 2)
    days = [date(2026, 11, d) for d in (19, 20, 21)]

    def pages(day: date) -> list:
        site = settings.layout.gx_docs_site()
        return sorted((site / "validations").glob(f"**/{day.isoformat()}-raw/**/*.html"))

    run_gate(settings, "raw", days[0], "run-19")
    [first] = pages(days[0])
    rendered = first.stat().st_mtime_ns
    run_gate(settings, "raw", days[1], "run-20")
    assert pages(days[0]) == [first] and first.stat().st_mtime_ns == rendered  # not rendered again
    assert len(pages(days[1])) == 1
    run_gate(settings, "raw", days[2], "run-21")
    # the oldest date left GX's store and site; the index lists the two kept
    assert pages(days[0]) == [] and len(pages(days[1])) == len(pages(days[2])) == 1
    index = (settings.layout.gx_docs_site() / "index.html").read_text()
    assert "2026-11-19-raw" not in index
    assert "2026-11-20-raw" in index and "2026-11-21-raw" in index
    stored = settings.layout.gx_root.glob("**/uncommitted/validations/**/*.json")
    assert {p.parent.parent.name for p in stored} == {"2026-11-20-raw", "2026-11-21-raw"}
    # every night's results are still in its run folder
    for day in days:
        assert settings.layout.run(day.isoformat()).gate_results("raw").exists()
