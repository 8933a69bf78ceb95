"""JSON-lines exports read by DuckDB (``json_lines``) give the rows ``json_to_csv`` defines.

Every fixture is extracted twice, with ``json_reader="duckdb"`` and with ``json_reader="python"``
(the json module converting to CSV, the reader the definition was written for), and the raw
Parquet rows, quarantine rows and ledger results must be identical; the fixtures' own rows and
reasons are asserted as well, so both readers being wrong the same way fails too.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import random
import tempfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketing_warehouse.ingest.contracts import contract_for
from marketing_warehouse.ingest.extract import FileRejected, FileResult, extract_file

AT = datetime(2026, 11, 22, 2, 0)
DAY = date(2026, 11, 21)
EVENTS = contract_for("product__events")


def _rows(path):
    if not path.exists():
        return []
    rel = duckdb.sql(f"select * from read_parquet('{path}')")
    rel = rel.order("_row_number" if "_row_number" in rel.columns else "row_number")
    types = [str(t) for t in rel.types]
    return [(types, dict(zip(rel.columns, r, strict=True))) for r in rel.fetchall()]


def extract_both(path, tmp_path):
    """(result, loaded, quarantined) of the DuckDB reader, after checking the python reader
    gives the same."""
    got = {}
    for reader in ("duckdb", "python"):
        out, q = tmp_path / f"{reader}.parquet", tmp_path / f"{reader}-q.parquet"
        try:
            result = extract_file(path, EVENTS, DAY, out, q, AT, json_reader=reader)
        except FileRejected as exc:
            got[reader] = (exc.reason, exc.message, exc.preview)
            continue
        got[reader] = (result, _rows(out), _rows(q))
    if not isinstance(got["duckdb"][0], FileResult):  # rejected whole
        assert got["duckdb"] == got["python"]
        raise FileRejected(*got["duckdb"])
    assert got["duckdb"][0] == got["python"][0]
    assert got["duckdb"][1] == got["python"][1]
    assert got["duckdb"][2] == got["python"][2]
    result, loaded, quarantined = got["duckdb"]
    assert result.rows_landed == len(loaded) + len(quarantined)
    return result, [r for _, r in loaded], [r for _, r in quarantined]


def event(n: int, **extra) -> dict:
    return {
        "messageId": f"m{n}",
        "event": "login",
        "timestamp": f"2026-11-21T10:{n % 60:02d}:00Z",
        **extra,
    }


def test_segment_style_export_nested_missing_and_extra_keys(tmp_path):
    lines = [
        event(1, userId="u1", context={"device": "ios", "os": {"name": "iOS", "version": "17"}},
              properties={"value": 12.5, "currency": "EUR"}),
        event(2, email="Ann@Example.com"),  # no userId, no context
        event(3, userId="u3", anonymousId="a3", integrations={}, properties={"value": "19.90"}),
        event(4, userId=None, properties={"value": 1.085}),
    ]  # fmt: skip
    path = tmp_path / "product_events_x.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    result, loaded, quarantined = extract_both(path, tmp_path)
    assert [r["message_id"] for r in loaded] == ["m1", "m2", "m3", "m4"]
    assert [r["device"] for r in loaded] == ["ios", None, None, None]
    assert [r["value_amount"] for r in loaded] == [
        Decimal("12.5"),
        None,
        Decimal("19.9"),
        Decimal("1.085"),
    ]
    assert loaded[1]["email"] == "ann@example.com" and loaded[3]["user_id"] is None
    assert quarantined == []
    assert result.unknown_columns == [
        "context.os.name",
        "context.os.version",
        "properties.currency",
        "anonymousId",
    ]


def test_truncated_last_line_bom_crlf_unicode_escapes(tmp_path):
    body = (
        json.dumps(event(1, userId="J\u00f6rg \ud83d\ude00")) + "\r\n"  # \u escapes, a pair
        + json.dumps(event(2, userId="é"), ensure_ascii=False) + "\r\n"
        + "\r\n"  # a blank line
        + '{"messageId": "m3", "event": "login", "timestamp": "2026-11-21T10:0'  # cut short
    )  # fmt: skip
    path = tmp_path / "product_events_x.jsonl"
    path.write_bytes(codecs.BOM_UTF8 + body.encode("utf-8"))
    result, loaded, quarantined = extract_both(path, tmp_path)
    assert [r["user_id"] for r in loaded] == ["J\u00f6rg \U0001f600", "é"]
    assert [(q["row_number"], q["reason_code"]) for q in quarantined] == [(4, "malformed_row")]
    assert quarantined[0]["reason_detail"].startswith("line 4: invalid JSON (Unterminated string")
    assert result.rows_landed == 3 and result.rows_loaded == 2


def test_numbers_as_strings_and_numbers_duckdb_and_python_write_alike(tmp_path):
    values = ["12.50", 12.5, 7, 7.0, -0.0, 1e-7, 1.5e16, 2**60, 10**20, "1,085.00", 0.001, 100.125]
    lines = [event(n, properties={"value": v}) for n, v in enumerate(values, start=1)]
    lines.append(event(99, properties={"value": [1, 2.0, {"a": None}]}))  # an array
    lines.append(event(98, userId=12345678901234567890123))  # past 2^64
    path = tmp_path / "product_events_x.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    _, loaded, quarantined = extract_both(path, tmp_path)
    by_id = {r["message_id"]: r for r in loaded}
    assert by_id["m1"]["value_amount"] == Decimal("12.5")
    assert by_id["m4"]["value_amount"] == Decimal("7")
    assert by_id["m10"]["value_amount"] == Decimal("1085")
    assert by_id["m98"]["user_id"] == "12345678901234567890123"
    reasons = {q["row_number"]: q["reason_code"] for q in quarantined}
    assert reasons[len(values) + 1] == "invalid_number"  # the array is no amount
    raw = next(q["raw_content"] for q in quarantined if q["row_number"] == len(values) + 1)
    assert json.loads(raw)["properties.value"] == '[1, 2.0, {"a": null}]'


def test_lines_python_and_duckdb_parse_differently_follow_the_json_module(tmp_path):
    lines = [
        json.dumps(event(1)),
        '{"messageId": "m2", "event": "login", "timestamp": "2026-11-21T10:00:00Z",}',
        '{"messageId": "m3", "event": "login", "timestamp": "2026-11-21T10:00:00Z", "x": nan}',
        '{"messageId": "m4", "event": "login", "timestamp": "2026-11-21T10:00:00Z", "x": NaN}',
        '["m5", "login"]',
        '"just a string"',
        json.dumps(event(7, userId="a\u0000b")),
        json.dumps(event(8, MessageID="shadow", userId="u8")),  # two spellings of one key
        json.dumps({**event(9), "context.device": "web", "context": {"device": "ios"}}),
    ]
    path = tmp_path / "product_events_x.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _, loaded, quarantined = extract_both(path, tmp_path)
    assert [r["message_id"] for r in loaded] == ["m1", "m4", "m8", "m9"]
    assert loaded[-1]["device"] == "ios"  # the later of two values under one flattened name
    assert [(q["row_number"], q["reason_code"]) for q in quarantined] == [
        (2, "malformed_row"),
        (3, "malformed_row"),
        (5, "malformed_row"),
        (6, "malformed_row"),
        (7, "nul_bytes"),
    ]
    assert quarantined[2]["reason_detail"] == "line 5: not a JSON object"
    assert quarantined[4]["reason_detail"] == "line 7: key 'userId' holds NUL characters"


def test_keys_in_other_case_and_spacing_are_one_column(tmp_path):
    lines = [
        {"MessageID": "m1", " Event ": "login", "TIMESTAMP": "2026-11-21T10:00:00Z"},
        {"messageId": "m2", "event": "login", "timestamp": "2026-11-21T11:00:00Z", "userid": "u2"},
    ]
    path = tmp_path / "product_events_x.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    result, loaded, _ = extract_both(path, tmp_path)
    assert [r["message_id"] for r in loaded] == ["m1", "m2"]
    assert loaded[1]["user_id"] == "u2" and result.unknown_columns == []


def test_a_key_the_csv_header_would_split_reads_as_before(tmp_path):
    lines = [event(1, **{"utm;source": "x", "a,b": "y"}), event(2)]
    path = tmp_path / "product_events_x.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    _, loaded, _ = extract_both(path, tmp_path)
    assert [r["message_id"] for r in loaded] == ["m1", "m2"]


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00\r"), max_size=8),
)
_KEYS = st.sampled_from(
    ["messageId", "MessageId", "event", "timestamp", "userId", "email", "context", "device",
     "properties", "value", "Value ", "x", "x.y", "$browser", "ключ", ""]
)  # fmt: skip
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.dictionaries(_KEYS, inner, max_size=4), st.lists(inner, max_size=3)),
    max_leaves=8,
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    records=st.lists(st.dictionaries(_KEYS, _VALUES, max_size=6), min_size=1, max_size=8),
    seed=st.integers(0, 2**16),
)
def test_generated_exports_give_the_same_rows_with_either_reader(tmp_path, records, seed):
    rng = random.Random(seed)
    lines = [json.dumps(event(n, **r), ensure_ascii=rng.random() < 0.5) for n, r in
             enumerate(records)]  # fmt: skip
    if rng.random() < 0.3:
        lines.insert(rng.randrange(len(lines) + 1), lines[0][: rng.randrange(len(lines[0]))])
    end = rng.choice(["\n", "\r\n"])
    tmp_path = Path(tempfile.mkdtemp(dir=tmp_path))  # one folder per example
    path = tmp_path / "product_events_x.jsonl"
    path.write_text(end.join(lines) + rng.choice(["", end]), encoding="utf-8", newline="")
    with contextlib.suppress(FileRejected):  # rejected whole, alike by both readers
        extract_both(path, tmp_path)


def test_a_value_holding_a_carriage_return_loads_whole(tmp_path):
    """The CSV path wrote such a value unquoted and its reader split the record (the
    conservation gate then stopped the run); DuckDB keeps the value as the file has it."""
    path = tmp_path / "product_events_x.jsonl"
    path.write_text(json.dumps(event(1, userId="a\rb")) + "\n", encoding="utf-8")
    out, q = tmp_path / "o.parquet", tmp_path / "q.parquet"
    result = extract_file(path, EVENTS, DAY, out, q, AT)
    assert (result.rows_landed, result.rows_loaded, result.rows_quarantined) == (1, 1, 0)
    assert [r["user_id"] for _, r in _rows(out)] == ["a\rb"] and not result.rows_lost_at


@pytest.mark.parametrize("encoding", ["utf-16", "cp1252"])
def test_other_encodings(tmp_path, encoding):
    lines = [event(1, userId="Jörg"), event(2, userId="Zoë")]
    path = tmp_path / "product_events_x.jsonl"
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines), encoding=encoding
    )
    _, loaded, _ = extract_both(path, tmp_path)
    assert [r["user_id"] for r in loaded] == ["Jörg", "Zoë"]
