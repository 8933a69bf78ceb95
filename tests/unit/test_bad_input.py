"""The bad-input corpus (tests/badinput.py) through ``load_source``, as the DAG's extract task runs it.

For every source contract and every case that applies to its format: no exception escapes, the
file ends up loaded or rejected as the case expects, each quarantine entry has a reason a user can
act on, and per file rows landed = rows loaded + rows quarantined, counted from the Parquet files.
"""

from __future__ import annotations

import json
from datetime import date, datetime

import duckdb
import pytest
from badinput import CASES, Expect, corpus, filename

from marketing_warehouse.ingest.contracts import contract_for, load_contracts
from marketing_warehouse.ingest.loads import Ledger, load_source

DAY = date(2026, 11, 21)
AT = datetime(2026, 11, 22, 2, 0)


def parquet_rows(folder, file_hash: str) -> list[dict]:
    path = folder / f"load_date={DAY.isoformat()}" / f"{file_hash[:16]}.parquet"
    if not path.exists():
        return []
    rel = duckdb.sql(f"select * from read_parquet('{path}')")
    return [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]


@pytest.mark.parametrize(("key", "name"), corpus())
def test_bad_input(settings, key, name):
    contract = contract_for(key)
    folder = settings.landing_dir / DAY.isoformat()
    folder.mkdir(parents=True)
    path = folder / filename(contract, name)
    expect: Expect = CASES[name][1](contract, path)

    results = load_source(settings, contract, DAY, AT)  # never raises

    result = next(r for r in results if r.source_file == path.name)
    raw = parquet_rows(settings.layout.raw / key, result.file_hash)
    quarantined = parquet_rows(settings.layout.quarantine / key, result.file_hash)
    reasons: dict[str, int] = {}
    for entry in quarantined:
        reasons[entry["reason_code"]] = reasons.get(entry["reason_code"], 0) + 1
    details = " | ".join(e["reason_detail"] or "" for e in quarantined)
    assert (result.status, reasons) == (expect.status, expect.reasons), result.message or details
    if expect.status == "rejected":
        assert raw == []
        assert quarantined[0]["row_number"] is None and quarantined[0]["source_file"] == path.name
        assert path.name in result.message
        for word in expect.words:
            assert word in result.message, result.message
    else:
        assert result.rows_landed == result.rows_loaded + result.rows_quarantined
        assert (result.rows_loaded, result.rows_quarantined) == (len(raw), len(quarantined))
        assert result.quarantine_reasons == expect.reasons
        if expect.loaded is not None:
            assert result.rows_loaded == expect.loaded, details
        for word in expect.words:
            assert word in details, details
        assert all(e["raw_content"] for e in quarantined)
        assert all(r["_source_file"] == path.name for r in raw)
    # what the case says must not be copied anywhere: messages, the ledger, quarantine entries
    copied = " | ".join(
        [result.message, json.dumps(Ledger(settings, contract).entries(DAY), default=str)]
        + [
            f"{e['raw_content']} {e['reason_detail']}"
            for e in quarantined
            if e["row_number"] is None
        ]
        + [e["reason_detail"] or "" for e in quarantined]
    )
    for text in expect.absent:
        assert text not in copied, f"{text!r} copied into {copied[:500]}"
    assert "\x00" not in json.dumps([list(r.values()) for r in raw], default=str)
    for column in expect.unknown:
        assert column in result.unknown_columns, result.unknown_columns
    assert sum(result.formula_values.values()) == expect.formula_values
    # the ledger says the same as the result, and every other file in the folder loaded
    ledger = {e["source_file"]: e for e in Ledger(settings, contract).entries(DAY)}
    assert ledger[path.name]["status"] == result.status
    assert all(r.status == "loaded" for r in results if r.source_file != path.name)


# --- one bad row no longer stops the run at the raw gate ---------------------------------------


def test_one_bad_row_per_source_is_quarantined_and_the_raw_gate_passes(settings):
    """An FX rate above 10,000, a voucher result spelt "success", two assignment e-mails that
    differ only in case and an ad row with more clicks than impressions: each tripped a critical
    raw expectation. Now each is quarantined and the gate (on the loaded rows) passes."""
    from badinput import workbook

    from marketing_warehouse.pipeline import extract_source
    from marketing_warehouse.quality.gates import run_gate

    folder = settings.landing_dir / DAY.isoformat()
    folder.mkdir(parents=True)
    fx = contract_for("spreadsheets__fx_rates")
    workbook(folder / "fx_rates_nov.xlsx", fx, [["Date", "From", "To", "Rate"],
             ["2026-11-20", "USD", "EUR", 0.94], ["2026-11-20", "JPY", "EUR", 16250]])  # fmt: skip
    redemptions = [
        {"id": "r_1", "object": "redemption", "date": "2026-11-20T10:00:00.000Z", "result": r}
        for r in ("SUCCESS", "success")
    ]
    redemptions[1]["id"] = "r_2"
    (folder / "voucher_redemptions_nov.json").write_text(
        json.dumps({"object": "list", "redemptions": redemptions}), "utf-8"
    )
    plan = [["Experiment", "Hypothesis", "Start", "End", "Primary metric"],
            ["EXP-1", "Banner", "2026-11-01", "2026-11-30", "conversion"]]  # fmt: skip
    assignments = [["Experiment", "Email", "Variant"], ["EXP-1", "ana@example.com", "control"],
                   ["EXP-1", "Ana@Example.com", "treatment"], ["EXP-1", "ben@example.com", "control"]]  # fmt: skip
    workbook(
        folder / "experiments_plan.xlsx",
        contract_for("spreadsheets__experiment_assignments"),
        assignments,
        before={"plan": plan},
    )
    meta = ["Day", "Campaign name", "Campaign ID", "Currency", "Impressions", "Link clicks",
            "Amount spent (EUR)"]  # fmt: skip
    (folder / "meta_ads_nov.csv").write_text(
        ",".join(meta) + "\n2026-11-20,Prospecting,1202,EUR,1200,31,84.20\n"
        "2026-11-20,Retargeting,1203,EUR,40,55,12.00\n",
        "utf-8",
    )
    quarantined = {}
    for contract in load_contracts():
        summary = extract_source(contract.key, DAY.isoformat(), settings)
        if summary["rows_quarantined"]:
            quarantined[contract.key] = summary["rows_quarantined"]
    assert quarantined == {
        "meta_ads__campaign_stats": 1,
        "spreadsheets__experiment_assignments": 2,
        "spreadsheets__fx_rates": 1,
    }
    outcome = run_gate(settings, "raw", DAY, "run-bad-rows")
    assert [c.describe() for c in outcome.failures("critical")] == []


def _critical_raw_checks():
    from marketing_warehouse.config import REPO_ROOT
    from marketing_warehouse.ingest.contracts import load_contracts

    sources = {c.key for c in load_contracts()}
    for suite in sorted((REPO_ROOT / "expectations" / "raw").glob("*.json")):
        if suite.stem not in sources:  # run-level suites (conservation, shares, landing scan)
            continue
        for check in json.loads(suite.read_text("utf-8"))["expectations"]:
            if check.get("severity", "critical") == "critical":
                yield suite.stem, check


@pytest.mark.parametrize(
    ("key", "check"),
    list(_critical_raw_checks()),
    ids=lambda v: v if isinstance(v, str) else v["type"] + ":" + json.dumps(v["kwargs"])[:40],
)
def test_every_critical_raw_check_is_backed_by_a_contract_rule(key, check):
    """A row that would fail a critical raw expectation is quarantined by its contract first, so
    the expectation is a safety net one row cannot trip. Its threshold may be looser, never
    stricter than the contract's (or one row stops the night again)."""
    contract = contract_for(key)
    kwargs, kind = check["kwargs"], check["type"]
    if kind == "expect_table_columns_to_match_set":
        assert set(kwargs["column_set"]) <= {c.name for c in contract.columns} | {
            "_source_file", "_file_hash", "_row_number", "_load_date"
        }  # fmt: skip
        return
    if kind == "expect_compound_columns_to_be_unique":
        if kwargs["column_list"] == ["_file_hash", "_row_number"]:
            return  # lineage: unique by construction of extraction
        assert contract.unique_key and set(contract.primary_key) == set(kwargs["column_list"])
        return
    if kind == "expect_column_pair_values_a_to_be_greater_than_b":
        op = "<=" if kwargs.get("or_equal") else "<"
        assert f"{kwargs['column_B']} {op} {kwargs['column_A']}" in {
            c.rule for c in contract.row_checks
        }
        return
    column = contract.column(kwargs["column"])
    if kind == "expect_column_values_to_not_be_null":
        assert column.required
    elif kind == "expect_column_values_to_be_between":
        assert column.min is not None
        assert column.min > kwargs["min_value"] or (
            column.min == kwargs["min_value"] and not kwargs.get("strict_min")
        )
        if "max_value" in kwargs:
            assert column.max is not None and column.max <= kwargs["max_value"]
    elif kind == "expect_column_values_to_be_in_set":
        assert column.accepted_values and set(column.accepted_values) <= set(kwargs["value_set"])
    elif kind == "expect_column_values_to_match_regex":
        assert column.type == "currency" and kwargs["regex"] == "^[A-Z]{3}$"
    else:
        raise AssertionError(f"{key}: no contract rule backs critical {kind}; add one or warn")
