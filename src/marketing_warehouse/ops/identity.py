"""How the warehouse recognises a person: one normalisation of e-mail and phone, Python and SQL.

dbt (macros ``normalize_email`` / ``normalize_phone``) and Python (erasure, tests) must agree on
every input, or a person erased by Python stays in what SQL builds. Unicode case mapping and
whitespace differ between Python and DuckDB (``'İ'.lower()`` is two characters in Python, one in
DuckDB; DuckDB's ``trim`` removes spaces only), so the rule uses only what both compute alike:

* trim the characters of ``TRIMMED`` (every character Python's ``str.isspace`` accepts, plus the
  zero-width space and the byte-order mark) from both ends;
* e-mail: lower-case ASCII ``A``-``Z`` only; every other character is kept as written (``ß``,
  ``İ``, combining marks, full-width forms); null when nothing is left;
* phone: a leading ``00`` becomes ``+``, then everything but ASCII digits and ``+`` is dropped;
  null when nothing is left.

The macros are the SQL of ``email_sql`` / ``phone_sql``; a test renders them and compares, and a
property-based test runs both sides over odd inputs.
"""

from __future__ import annotations

import hashlib
import re

#: Characters trimmed from both ends: Python's whitespace, U+200B zero-width space, U+FEFF BOM.
_TRIMMED_RANGES = (
    (0x09, 0x0D),
    (0x1C, 0x20),
    (0x85, 0x85),
    (0xA0, 0xA0),
    (0x1680, 0x1680),
    (0x2000, 0x200B),
    (0x2028, 0x2029),
    (0x202F, 0x202F),
    (0x205F, 0x205F),
    (0x3000, 0x3000),
    (0xFEFF, 0xFEFF),
)
TRIMMED = "".join(chr(c) for low, high in _TRIMMED_RANGES for c in range(low, high + 1))
_ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASCII_LOWER = _ASCII_UPPER.lower()
_LOWER_TABLE = str.maketrans(_ASCII_UPPER, _ASCII_LOWER)
_TRIMMED_CLASS = (
    "["
    + "".join(
        f"\\x{{{low:04X}}}" if low == high else f"\\x{{{low:04X}}}-\\x{{{high:04X}}}"
        for low, high in _TRIMMED_RANGES
    )
    + "]"
)
#: A phone in E.164 (``+``, then 8 to 15 digits, no leading zero): what SMS and the ad platforms
#: can match. The dbt var ``audience_channels`` (sms) spells the same pattern; a test compares.
E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")
#: The shape an address must have to be erased by e-mail (after normalisation).
EMAIL_SHAPE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


def _trim(value: str) -> str:
    return value.strip(TRIMMED)


def normalize_email(value: str | None) -> str | None:
    """The e-mail as the warehouse compares it (see the module doc); None when empty."""
    if value is None:
        return None
    return _trim(value).translate(_LOWER_TABLE) or None


def normalize_phone(value: str | None) -> str | None:
    """The phone as the warehouse compares it: digits with an optional leading ``+``."""
    if value is None:
        return None
    text = re.sub(r"^00", "+", _trim(value), count=1)
    return re.sub(r"[^0-9+]", "", text) or None


def customer_id(email: str | None) -> str | None:
    """The warehouse's customer key: md5 of the normalised e-mail (dim_customer_identity_map)."""
    normalized = normalize_email(email)
    return hashlib.md5(normalized.encode("utf-8")).hexdigest() if normalized else None


def _trim_sql(expr: str) -> str:
    return f"regexp_replace({expr}, '^{_TRIMMED_CLASS}+|{_TRIMMED_CLASS}+$', '', 'g')"


def email_sql(expr: str) -> str:
    """DuckDB SQL of ``normalize_email`` (the body of the dbt macro ``normalize_email``)."""
    return f"nullif(translate({_trim_sql(expr)}, '{_ASCII_UPPER}', '{_ASCII_LOWER}'), '')"


def phone_sql(expr: str) -> str:
    """DuckDB SQL of ``normalize_phone`` (the body of the dbt macro ``normalize_phone``)."""
    return (
        f"nullif(regexp_replace(regexp_replace({_trim_sql(expr)}, '^00', '+'), "
        "'[^0-9+]', '', 'g'), '')"
    )


def customer_id_sql(expr: str) -> str:
    """DuckDB SQL of ``customer_id``: null for an empty e-mail."""
    return f"md5({email_sql(expr)})"
