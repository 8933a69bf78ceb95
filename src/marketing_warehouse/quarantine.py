"""Quarantine: where every landed row that cannot be loaded goes, with a reason a user can act on.

Per landed file, ``rows landed = rows loaded + rows quarantined``. A file that cannot be read at
all is quarantined whole: one entry with no row number and the first bytes of the file.
Quarantine entries are Parquet files beside the raw partitions, so extraction of different sources
never competes for the warehouse's single DuckDB writer; dbt exposes them as ``audit.quarantine``.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    # A whole file
    EMPTY_FILE = "empty_file"
    UNREADABLE_FILE = "unreadable_file"
    MISSING_REQUIRED_COLUMN = "missing_required_column"
    DUPLICATE_COLUMN = "duplicate_column"
    EXTRACT_FAILED = "extract_failed"
    CONFLICTING_KEYS = "conflicting_keys"
    # One row
    MALFORMED_ROW = "malformed_row"
    REPEATED_HEADER = "repeated_header"
    SUMMARY_ROW = "summary_row"
    MISSING_REQUIRED_VALUE = "missing_required_value"
    INVALID_TIMESTAMP = "invalid_timestamp"
    INVALID_DATE = "invalid_date"
    INVALID_NUMBER = "invalid_number"
    INVALID_BOOLEAN = "invalid_boolean"
    UNKNOWN_CURRENCY = "unknown_currency"
    OUT_OF_RANGE = "out_of_range"
    VALUE_TOO_LONG = "value_too_long"
    INCOMPLETE_RECORD = "incomplete_record"


#: The quarantine table's columns, in order, as DuckDB types.
QUARANTINE_SCHEMA: dict[str, str] = {
    "source": "VARCHAR",
    "entity": "VARCHAR",
    "source_file": "VARCHAR",
    "file_hash": "VARCHAR",
    "load_date": "DATE",
    "row_number": "BIGINT",
    "raw_content": "VARCHAR",
    "reason_code": "VARCHAR",
    "reason_detail": "VARCHAR",
    "quarantined_at": "TIMESTAMP",
}
