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

from marketing_warehouse.contracts import contract_for
from marketing_warehouse.loads import Ledger, load_source

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
    raw = parquet_rows(settings.raw_dir / key, result.file_hash)
    quarantined = parquet_rows(settings.quarantine_dir / key, result.file_hash)
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
