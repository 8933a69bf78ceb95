"""Every expectation kind DuckDB counts for the raw gate gives GX's own verdict and counts: each
case runs through GX's pandas engine on the frame DuckDB returns and through ``sql_metrics`` on
the same SQL, over crafted rows (missing values, NaN, booleans with nulls, strings Python's and
RE2's regexes read differently) and over the same relation with no rows."""

from __future__ import annotations

import os
from collections import Counter

import duckdb
import pytest

from marketing_warehouse.quality import sql_metrics

ROWS = """
select * from (values
    (1, 1.5, 'ABC', true, date '2026-01-01', date '2026-01-02', 'f1', 1),
    (2, 'nan'::double, 'ABC\n', false, date '2026-01-03', date '2026-01-02', 'f1', 2),
    (3, null, 'abc', null, null, date '2026-01-02', 'f1', 2),
    (4, -2.0, 'ÀBC', false, null, null, null, null),
    (5, 10.0, 'A\nC', true, date '2026-01-05', date '2026-01-05', null, null),
    (6, 0.0, null, false, date '2026-01-06', null, 'f2', 1),
    (7, 7.25, '', true, date '2026-01-07', date '2026-01-01', 'f2', null),
    (8, 3.0, '١٢٣', false, date '2026-01-08', date '2026-01-09', 'f2', null),
    (9, 4.0, 'a.c', false, date '2026-01-09', date '2026-01-09', 'f3', 7),
    (10, 5.0, 'AxC', true, date '2026-01-10', date '2026-01-10', 'f3', 7),
    (11, null, 'abcd', false, date '2026-01-11', date '2026-01-12', 'f3', 7),
    (12, 2.0, 'é', null, date '2026-01-12', date '2026-01-11', 'f4', 8)
) as t(n, amount, code, flag, end_date, start_date, file, line)
"""
SOURCES = {"rows": ROWS, "empty": f"select * from ({ROWS}) as t where false"}

REGEXES = [
    "^[A-Z]{3}$", "B", "^A.C$", "^A[^x]C$", "(ab|cd)+", "^(a|b)c?$", "x*?", "^$", "[.]",
    r"\.", "é", "^[a-z]{2,3}$", "C$", r"\AABC\Z", "^.{2}", "[^a-z]$",
]  # fmt: skip
CASES = [
    ("expect_column_values_to_not_be_null", {"column": "code"}),
    ("expect_column_values_to_not_be_null", {"column": "amount"}),  # NaN is missing too
    ("expect_column_values_to_not_be_null", {"column": "flag", "mostly": 0.8}),
    ("expect_column_values_to_not_be_null", {"column": "line", "mostly": 0.5}),
    ("expect_column_values_to_be_null", {"column": "line"}),
    ("expect_column_values_to_be_null", {"column": "amount", "mostly": 0.1}),
    ("expect_column_values_to_be_in_set", {"column": "flag", "value_set": [False]}),
    ("expect_column_values_to_be_in_set", {"column": "flag", "value_set": [False], "mostly": 0.5}),
    ("expect_column_values_to_be_in_set", {"column": "code", "value_set": ["ABC", "abc", ""]}),
    ("expect_column_values_to_be_in_set", {"column": "n", "value_set": [1, 2.0, 3]}),
    ("expect_column_values_to_be_in_set", {"column": "amount", "value_set": [1.5, 0, 10]}),
    ("expect_column_values_to_be_in_set", {"column": "code", "value_set": []}),
    ("expect_column_values_to_be_between", {"column": "amount", "min_value": 0}),
    ("expect_column_values_to_be_between", {"column": "amount", "min_value": 0, "strict_min": True}),
    ("expect_column_values_to_be_between", {"column": "amount", "max_value": 5, "strict_max": True,
                                            "mostly": 0.7}),
    ("expect_column_values_to_be_between", {"column": "n", "min_value": 2, "max_value": 10}),
    ("expect_column_values_to_be_between", {"column": "line", "min_value": -1, "max_value": 7,
                                            "mostly": 0.8}),
    ("expect_column_values_to_be_between", {"column": "n", "min_value": 0.5, "max_value": 12.0}),
    *[("expect_column_values_to_match_regex", {"column": "code", "regex": r}) for r in REGEXES],
    ("expect_column_values_to_match_regex", {"column": "code", "regex": "^[A-Z]{3}$",
                                             "mostly": 0.2}),
    ("expect_column_pair_values_a_to_be_greater_than_b",
     {"column_A": "end_date", "column_B": "start_date", "or_equal": True}),
    ("expect_column_pair_values_a_to_be_greater_than_b",
     {"column_A": "end_date", "column_B": "start_date"}),
    ("expect_column_pair_values_a_to_be_greater_than_b",
     {"column_A": "end_date", "column_B": "start_date", "or_equal": True,
      "ignore_row_if": "either_value_is_missing"}),
    ("expect_column_pair_values_a_to_be_greater_than_b",
     {"column_A": "end_date", "column_B": "start_date", "ignore_row_if": "neither",
      "mostly": 0.4}),
    ("expect_column_pair_values_a_to_be_greater_than_b",
     {"column_A": "n", "column_B": "amount", "or_equal": True}),
    ("expect_compound_columns_to_be_unique", {"column_list": ["file", "line"]}),
    ("expect_compound_columns_to_be_unique", {"column_list": ["file", "line"],
                                              "ignore_row_if": "any_value_is_missing"}),
    ("expect_compound_columns_to_be_unique", {"column_list": ["file", "line"],
                                              "ignore_row_if": "never", "mostly": 0.3}),
    ("expect_compound_columns_to_be_unique", {"column_list": ["flag", "file", "line"]}),
    ("expect_table_columns_to_match_set", {"column_set": ["n", "code"], "exact_match": False}),
    ("expect_table_columns_to_match_set", {"column_set": ["n", "code"]}),
    ("expect_table_columns_to_match_set", {"column_set": ["n", "amount", "code", "flag",
                                           "end_date", "start_date", "file", "line"]}),
    ("expect_table_row_count_to_be_between", {"min_value": 1, "max_value": 20}),
    ("expect_table_row_count_to_be_between", {"max_value": 12, "strict_max": True}),
]  # fmt: skip
#: What DuckDB must not count: GX keeps these, with its own answer.
LEFT_TO_GX = [
    ("expect_column_values_to_match_regex", {"column": "code", "regex": r"^\d{3}$"}),
    ("expect_column_values_to_match_regex", {"column": "code", "regex": r"^\w+$"}),
    ("expect_column_values_to_match_regex", {"column": "code", "regex": "(?i)^abc$"}),
    ("expect_column_values_to_match_regex", {"column": "code", "regex": "^A(?=B)"}),
    ("expect_column_values_to_match_regex", {"column": "code", "regex": "(A)\\1"}),
    ("expect_column_values_to_match_regex", {"column": "code", "regex": "(ABC$)"}),
    ("expect_column_values_to_match_regex", {"column": "n", "regex": "1"}),
    ("expect_column_values_to_be_in_set", {"column": "code", "value_set": [1, 2]}),
    ("expect_column_values_to_be_in_set", {"column": "flag", "value_set": [0]}),
    ("expect_column_values_to_be_between", {"column": "end_date", "min_value": "2026-01-01"}),
    ("expect_column_values_to_be_between", {"column": "code", "min_value": 0}),
    ("expect_column_pair_values_a_to_be_greater_than_b", {"column_A": "code", "column_B": "n"}),
    ("expect_column_values_to_not_be_null", {"column": "missing_column"}),
    ("expect_column_values_to_be_between",
     {"column": "n", "min_value": 2, "row_condition": "flag == True", "condition_parser": "pandas"}),
    ("expect_column_mean_to_be_between", {"column": "n", "min_value": 2}),
]  # fmt: skip
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 5}


@pytest.fixture(scope="module")
def gx_batches():
    """A GX pandas batch of each source, as the gate builds its frames (DuckDB's ``df()``)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("frames").add_dataframe_asset("batch")
    whole = asset.add_batch_definition_whole_dataframe("whole")
    con = duckdb.connect()
    return {
        name: whole.get_batch(batch_parameters={"dataframe": con.execute(sql).df()})
        for name, sql in SOURCES.items()
    }


def _config(kind: str, kwargs: dict):
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    return ExpectationConfiguration(type=kind, kwargs=dict(kwargs))


def _in_sql(source: str, configs: list):
    from great_expectations.execution_engine import PandasExecutionEngine

    engine = PandasExecutionEngine()
    con = duckdb.connect()
    sql = SOURCES[source]
    columns = {row[0]: row[1] for row in con.execute(f"describe {sql}").fetchall()}
    plans = [sql_metrics.plan(c, columns, RESULT_FORMAT, engine) for c in configs]
    return plans, (lambda: sql_metrics.validate(con, sql, plans, RESULT_FORMAT, engine))


def _hashable(value):
    import numpy as np
    import pandas as pd

    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return None  # GX shows a missing value as NaN, NA or NaT, SQL as None
    if isinstance(value, np.datetime64 | pd.Timestamp):  # a DATE column in pandas
        return pd.Timestamp(value).date()
    return value


@pytest.mark.parametrize("source", SOURCES)
def test_each_translated_kind_gives_gx_s_verdict_and_counts(gx_batches, source):
    configs = [_config(kind, kwargs) for kind, kwargs in CASES]
    plans, validate = _in_sql(source, configs)
    untranslated = [c.type + str(c.kwargs) for c, p in zip(configs, plans, strict=True) if not p]
    assert not untranslated  # each case is one DuckDB counts, none left to GX
    for config, ours in zip(configs, validate(), strict=True):
        theirs = gx_batches[source].validate(config.to_domain_obj(), result_format=RESULT_FORMAT)
        case = (config.type, config.kwargs)
        assert not (theirs.exception_info or {}).get("raised_exception"), case
        assert ours.success == theirs.success, case
        mine, gx_result = ours.result, theirs.result
        for key in ("element_count", "unexpected_count", "unexpected_percent", "missing_count",
                    "missing_percent", "unexpected_percent_total", "observed_value", "details"):  # fmt: skip
            assert mine.get(key) == gx_result.get(key), (case, key, mine, gx_result)
        if (gx_result.get("unexpected_count") or 0) <= RESULT_FORMAT["partial_unexpected_count"]:
            # all unexpected values fit in the sample: the same ones, in any order
            assert Counter(map(_hashable, mine.get("partial_unexpected_list") or [])) == Counter(
                map(_hashable, gx_result.get("partial_unexpected_list") or [])
            ), case
    if source == "rows":  # the crafted rows exercise both verdicts
        assert {r.success for r in validate()} == {True, False}


def test_what_duckdb_cannot_count_as_gx_does_is_left_to_gx():
    plans, _ = _in_sql("rows", [_config(kind, kwargs) for kind, kwargs in LEFT_TO_GX])
    assert plans == [None] * len(LEFT_TO_GX)


def test_python_s_dollar_matches_before_a_final_newline_and_so_does_the_translation():
    assert sql_metrics.re2_pattern("^[A-Z]{3}$") == "^(?:[A-Z]){3,3}\\n?$"
    con = duckdb.connect()
    pattern = sql_metrics.re2_pattern("^[A-Z]{3}$")
    matches = con.execute(
        "select s, regexp_matches(s, ?) from (values ('ABC'), ('ABC\n'), ('ABC\n\n')) t(s)",
        [pattern],
    ).fetchall()
    assert matches == [("ABC", True), ("ABC\n", True), ("ABC\n\n", False)]
