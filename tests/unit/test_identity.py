# ruff: noqa: RUF001 (full-width and look-alike characters are the point of these tests)
"""One normalisation of e-mail and phone: the dbt macros and Python agree on every input."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketing_warehouse.config import load_settings
from marketing_warehouse.ops.identity import (
    customer_id,
    customer_id_sql,
    email_sql,
    normalize_email,
    normalize_phone,
    phone_sql,
)
from marketing_warehouse.transform.dbt_tasks import run_dbt

ODD = [
    "\t",
    "\n",
    "\r",
    "\x0b",
    "\x0c",
    "\x1f",
    " ",
    "\u00a0",
    "\u2007",
    "\u202f",
    "\u3000",
    "\u200b",
    "\ufeff",
    "\u0085",
    "İ",
    "ß",
    "ẞ",
    "\u0301",
    "e\u0301",
    "Ａ",
    "＠",
    "０",
    "١",
    "K",
    "ﬃ",
    "Σ",
    "A",
    "z",
    "@",
    ".",
    "0",
    "00",
    "+",
    "-",
    "(",
    "9",
]
odd_text = st.lists(
    st.one_of(
        st.sampled_from(ODD),
        st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\0")),
    ),
    max_size=8,
).map("".join)


@functools.cache
def _rendered() -> dict[str, str]:
    """normalize_email and normalize_phone as dbt renders them for the column ``value`` on
    DuckDB (one ``dbt compile --inline`` for both)."""
    names = ("normalize_email", "normalize_phone")
    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings({"MWH_DATA_DIR": folder})
        inline = " |||| ".join("{{ " + name + "('value') }}" for name in names)
        args = ["compile", "-q", "--output", "json", "--inline", inline]
        done = run_dbt(settings, args, dict(os.environ))
        assert done.returncode == 0, done.stdout[-3000:]
    compiled = json.loads(done.stdout)["compiled"]
    return dict(zip(names, compiled.split(" |||| "), strict=True))


def rendered(macro: str) -> str:
    """The dbt macro as dbt renders it for the column ``value``."""
    return _rendered()[macro]


def duck(sql: str, values: list[str]) -> list:
    con = duckdb.connect()
    con.execute("create table t (i integer, value varchar)")
    con.executemany("insert into t values (?, ?)", list(enumerate(values)))
    return [r[0] for r in con.execute(f"select {sql} from t order by i").fetchall()]


def test_the_macros_are_the_sql_of_the_python_rule():
    assert rendered("normalize_email") == email_sql("value")
    assert rendered("normalize_phone") == phone_sql("value")


@settings(max_examples=300, deadline=None)
@given(st.lists(odd_text, min_size=1, max_size=20))
def test_python_and_duckdb_normalise_every_input_alike(values):
    assert duck(rendered("normalize_email"), values) == [normalize_email(v) for v in values]
    assert duck(rendered("normalize_phone"), values) == [normalize_phone(v) for v in values]
    assert duck(customer_id_sql("value"), values) == [customer_id(v) for v in values]


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("Alice@Example.com\t", "alice@example.com"),
        ("\u00a0 alice@example.com\u3000", "alice@example.com"),
        ("\ufeffAlice@example.com\u200b", "alice@example.com"),
        ("İlke@Example.com", "İlke@example.com"),
        ("STRAßE@example.de", "straße@example.de"),
        ("ａlice@example.com", "ａlice@example.com"),
        (" \t ", None),
    ],
)
def test_odd_addresses_normalise_the_same_in_python_and_sql(written, expected):
    assert normalize_email(written) == expected
    assert duck(rendered("normalize_email"), [written]) == [expected]
    hashed = hashlib.md5(expected.encode()).hexdigest() if expected else None
    assert duck(customer_id_sql("value"), [written]) == [hashed] == [customer_id(written)]


def test_phones_normalise_the_same_in_python_and_sql():
    written = ["\t0049 151 234-5", "+49 (151) 2345\u00a0", "０１５１", "\u3000"]
    assert [normalize_phone(p) for p in written] == ["+491512345", "+491512345", None, None]
    assert duck(rendered("normalize_phone"), written) == [normalize_phone(p) for p in written]
