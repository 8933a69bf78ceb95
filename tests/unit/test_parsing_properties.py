"""Property-based tests of the value parsers: amounts, whole numbers, dates, timestamps, currencies.

The parsers are DuckDB SQL generated from each contract (``extract._typed_expr``); the tests run the
same SQL through ``extract.parse_values`` on batches of generated text and compare with a model
written in plain Python: how a person or a tool would write the value, and what it means.
"""

from __future__ import annotations

import string
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketing_warehouse.ingest.contracts import (
    Column,
    Contract,
    contract_for,
    format_order,
    load_contracts,
)
from marketing_warehouse.ingest.currencies import ISO_4217
from marketing_warehouse.ingest.extract import parse_values
from marketing_warehouse.ingest.formats import _cell

PROFILE = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
SHOPIFY = contract_for("shopify__order_lines")  # decimal_separator: auto
AMOUNT = Column("Total", "total_amount", "decimal")
COUNT = Column("Lineitem quantity", "lineitem_quantity", "integer")
CURRENCY = Column("Currency", "currency", "currency")


def with_separator(separator: str) -> Contract:
    from dataclasses import replace

    return replace(SHOPIFY, decimal_separator=separator)


# --- amounts ---------------------------------------------------------------------------------


def amounts(places: st.SearchStrategy[int]) -> st.SearchStrategy[Decimal]:
    return st.builds(
        lambda units, p: Decimal(units).scaleb(-p),
        st.integers(-(10**11), 10**11),
        places,
    ).filter(lambda d: abs(d) < 10**11)


def written(value: Decimal, thousands: str, point: str, places: int) -> str:
    """``value`` as people write it: ``thousands`` between groups, ``point`` before decimals."""
    sign = "-" if value < 0 else ""
    text = f"{abs(value):.{places}f}"
    whole, _, fraction = text.partition(".")
    groups = []
    while whole:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    return sign + thousands.join(groups) + (point + fraction if fraction else "")


STYLES = [  # (thousands separator, decimal point) as exports write them
    ("", "."),  # 1234.56 (Shopify, Stripe)
    (",", "."),  # 1,234.56 (Google Ads, US locale)
    (".", ","),  # 1.234,56 (German Excel)
    ("", ","),  # 1234,56
    (" ", ","),  # 1 234,56 (French)
    ("\u202f", ","),  # narrow no-break space (French Excel)
    ("\u00a0", ","),  # no-break space
    ("'", "."),  # 1'234.56 (Swiss)
]


@PROFILE
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2).flatmap(lambda p: st.tuples(amounts(st.just(p)), st.just(p))),
            st.sampled_from(STYLES),
            st.sampled_from(["", "€", "$", "£ ", " €"]),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_amounts_with_up_to_two_decimals_read_the_same_in_every_style(cases):
    texts, expected = [], []
    for (value, places), (thousands, point), symbol in cases:
        text = written(value, thousands, point, places)
        texts.append(symbol + text if symbol.endswith(" ") or not symbol else text + symbol)
        expected.append(value)
    assert parse_values(AMOUNT, texts, SHOPIFY) == expected


@PROFILE
@given(st.lists(amounts(st.integers(0, 6)), min_size=1, max_size=40))
def test_a_declared_separator_reads_any_precision(values):
    us = [written(v, ",", ".", -v.as_tuple().exponent) for v in values]
    eu = [written(v, ".", ",", -v.as_tuple().exponent) for v in values]
    assert parse_values(AMOUNT, us, with_separator(".")) == values
    assert parse_values(AMOUNT, eu, with_separator(",")) == values


def ambiguous(text: str) -> bool:
    """One separator, a non-zero group of 1-3 digits before it and exactly three after it."""
    import re

    return re.fullmatch(r"-?[1-9][0-9]{0,2}[.,][0-9]{3}", text) is not None


@PROFILE
@given(st.lists(st.tuples(amounts(st.integers(3, 6)), st.sampled_from(".,")), max_size=40))
def test_auto_reads_plain_decimals_except_the_one_ambiguous_shape(cases):
    """ "0.125", "0,125", "12,3456", "1234.567" are decimals; "1.234" / "1,234" are thousands."""
    texts = [written(v, "", point, -v.as_tuple().exponent) for v, point in cases]
    expected = [
        Decimal(t.replace(".", "").replace(",", "")) if ambiguous(t) else v
        for t, (v, _) in zip(texts, cases, strict=True)
    ]
    assert parse_values(AMOUNT, texts, SHOPIFY) == expected


@PROFILE
@given(
    st.lists(
        st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False).map(lambda f: round(f, 6)),
        min_size=1,
        max_size=40,
    )
)
def test_numbers_from_workbooks_and_json_are_never_mistaken_for_thousands(values):
    parsed = parse_values(AMOUNT, [_cell(v) for v in values], SHOPIFY)
    assert parsed == [Decimal(repr(v)).quantize(Decimal("0.000001")) for v in values]


@PROFILE
@given(st.lists(st.text(max_size=12), min_size=1, max_size=40))
def test_any_text_parses_to_a_number_or_to_nothing(texts):
    parsed = parse_values(AMOUNT, texts, SHOPIFY)
    for text, value in zip(texts, parsed, strict=True):
        assert value is None or isinstance(value, Decimal)
        if not any(c.isdigit() for c in text):
            assert value is None, text


# --- whole numbers ---------------------------------------------------------------------------


@PROFILE
@given(
    st.lists(
        st.tuples(
            st.integers(-(10**15), 10**15),
            st.sampled_from([("", ""), (",", ""), (".", ""), ("", ".0"), ("\u00a0", ",00")]),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_whole_numbers_in_any_style(cases):
    texts = [written(Decimal(n), sep, ".", 0) + tail for n, (sep, tail) in cases]
    assert parse_values(COUNT, texts, SHOPIFY) == [n for n, _ in cases]


@PROFILE
@given(
    st.lists(
        st.tuples(st.integers(-9999, 9999), st.integers(1, 99), st.sampled_from(".,")),
        min_size=1,
        max_size=40,
    )
)
def test_a_fraction_is_never_rounded_into_a_count(cases):
    texts = [f"{n}{point}{fraction:02d}" for n, fraction, point in cases]
    assert parse_values(COUNT, texts, SHOPIFY) == [None] * len(cases)


# --- currencies ------------------------------------------------------------------------------


@PROFILE
@given(
    st.lists(
        st.tuples(st.sampled_from(sorted(ISO_4217)), st.sampled_from([str.lower, str.title, str])),
        min_size=1,
        max_size=40,
    ),
    st.sampled_from(["", " ", "  "]),
)
def test_iso_codes_in_any_case_and_padding(cases, pad):
    texts = [pad + case(code) + pad for code, case in cases]
    assert parse_values(CURRENCY, texts, SHOPIFY) == [code for code, _ in cases]


@PROFILE
@given(st.lists(st.text(alphabet=string.ascii_letters + "€$£ .", max_size=5), max_size=40))
def test_anything_else_is_not_a_currency(texts):
    parsed = parse_values(CURRENCY, texts, SHOPIFY)
    for text, value in zip(texts, parsed, strict=True):
        assert value == (text.strip().upper() if text.strip().upper() in ISO_4217 else None)


# --- timestamps and dates --------------------------------------------------------------------

TS_CONTRACTS = [c for c in load_contracts() if any(col.type == "timestamp" for col in c.columns)]
DATE_CONTRACTS = [c for c in load_contracts() if any(col.type == "date" for col in c.columns)]

offsets = st.integers(-12 * 4, 14 * 4).map(lambda q: timezone(timedelta(minutes=15 * q)))
moments = st.datetimes(datetime(1990, 1, 1), datetime(2100, 1, 1)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
)


def reference_timestamp(text: str, contract: Contract) -> datetime | None:
    """Formats with an offset first (converted to UTC), then the naive ones, each in list order."""
    with_tz = [f for f in contract.timestamp_formats if "%z" in f]
    naive = [f for f in contract.timestamp_formats if f not in with_tz]
    for fmt in with_tz:
        try:
            return datetime.strptime(text, fmt).astimezone(UTC).replace(tzinfo=None)
        except ValueError:
            pass
    for fmt in naive:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            pass
    return None


@pytest.mark.parametrize("contract", TS_CONTRACTS, ids=lambda c: c.key)
@PROFILE
@given(data=st.data())
def test_timestamps_in_every_listed_format_convert_to_utc(contract, data):
    column = next(c for c in contract.columns if c.type == "timestamp")
    cases = data.draw(
        st.lists(
            st.tuples(moments, offsets, st.sampled_from(contract.timestamp_formats)),
            min_size=1,
            max_size=30,
        )
    )
    texts, expected = [], []
    for moment, offset, fmt in cases:
        aware = moment.replace(tzinfo=offset)
        text = aware.strftime(fmt)
        texts.append(text)
        expected.append(reference_timestamp(text, contract))
        if "%z" in fmt and expected[-1] is not None and fmt.endswith(("%S%z", "%S %z")):
            # an offset-carrying value is the same instant, in UTC
            assert expected[-1] == aware.astimezone(UTC).replace(tzinfo=None, microsecond=0)
    assert parse_values(column, texts, contract) == expected


@PROFILE
@given(
    st.lists(
        st.datetimes(datetime(1973, 3, 4), datetime(2286, 11, 19)),
        min_size=1,
        max_size=40,
    ),
    st.booleans(),
)
def test_epoch_seconds_and_milliseconds_are_utc(moments_utc, millis):
    """From 1973-03-04 on: before 2001-09-09 an export's milliseconds have 12 digits, seconds 9."""
    events = contract_for("product__events")
    column = next(c for c in events.columns if c.type == "timestamp")
    epoch = datetime(1970, 1, 1)
    texts = []
    expected = []
    for moment in moments_utc:
        seconds = (moment - epoch) // timedelta(seconds=1)
        if millis:
            ms = (moment - epoch) // timedelta(milliseconds=1)
            texts.append(str(ms))
            expected.append(epoch + timedelta(milliseconds=ms))
        else:
            texts.append(str(seconds))
            expected.append(epoch + timedelta(seconds=seconds))
    assert parse_values(column, texts, events) == expected


def reference_date(text: str, contract: Contract, date_order: str | None = None) -> date | None:
    """The first listed format of the file's day-month order that reads the text wins (03/04/2026
    is 3 April for Meta, whose files read day first unless their values say otherwise)."""
    for fmt in contract.formats("date", date_order):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    return None


@pytest.mark.parametrize("contract", DATE_CONTRACTS, ids=lambda c: c.key)
@PROFILE
@given(data=st.data())
def test_dates_in_every_listed_format(contract, data):
    column = next(c for c in contract.columns if c.type == "date")
    cases = data.draw(
        st.lists(
            st.tuples(
                st.datetimes(datetime(1990, 1, 1), datetime(2100, 1, 1)),
                st.sampled_from(contract.date_formats),
            ),
            min_size=1,
            max_size=30,
        )
    )
    texts = [moment.strftime(fmt) for moment, fmt in cases]
    expected = [reference_date(t, contract) for t in texts]
    for (moment, fmt), value in zip(cases, expected, strict=True):
        if fmt == contract.date_formats[0]:
            assert value == moment.date()  # the first format always reads back exactly
    assert parse_values(column, texts, contract) == expected


ORDER_CONTRACTS = [c for c in DATE_CONTRACTS if c.has_date_order_choice]


@pytest.mark.parametrize("contract", ORDER_CONTRACTS, ids=lambda c: c.key)
@pytest.mark.parametrize("date_order", ["day_first", "month_first"])
@PROFILE
@given(data=st.data())
def test_a_file_read_in_one_day_month_order_reads_every_date_of_that_order_exactly(
    contract, date_order, data
):
    column = next(c for c in contract.columns if c.type == "date")
    ours = [f for f in contract.date_formats if format_order(f) == date_order]
    cases = data.draw(
        st.lists(
            st.tuples(
                st.datetimes(datetime(1990, 1, 1), datetime(2100, 1, 1)), st.sampled_from(ours)
            ),
            min_size=1,
            max_size=30,
        )
    )
    texts = [moment.strftime(fmt) for moment, fmt in cases]
    expected = [moment.date() for moment, _ in cases]
    assert parse_values(column, texts, contract, date_order) == expected
