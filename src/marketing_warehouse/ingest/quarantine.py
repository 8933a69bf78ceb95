"""Quarantine: where every landed row that cannot be loaded goes, with a reason a user can act on.

Per landed file, ``rows landed = rows loaded + rows quarantined``, where rows landed is counted
apart from the load (see ``extract.count_records``). A file that cannot be read at all is
quarantined whole: one entry with no row number whose raw content is the file's size and hash,
never its bytes (a headerless export's first line is a person's record).
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
    UNSAFE_PATH = "unsafe_path"
    AMBIGUOUS_DATE_ORDER = "ambiguous_date_order"
    UNRESOLVABLE_KEYS = "unresolvable_keys"
    # One row
    MALFORMED_ROW = "malformed_row"
    UNDECODABLE_ROW = "undecodable_row"
    NUL_BYTES = "nul_bytes"
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
    UNKNOWN_VALUE = "unknown_value"
    IMPLAUSIBLE_DATE = "implausible_date"
    IMPLAUSIBLE_AMOUNT = "implausible_amount"
    IMPLAUSIBLE_METRICS = "implausible_metrics"
    CONFLICTING_KEY = "conflicting_key"
    # One loaded row the warehouse build leaves out of the marts (dbt model audit.fx_rate_coverage):
    # no rate to the reporting currency within the FX look-back; it stays in the raw layer.
    MISSING_FX_RATE = "missing_fx_rate"


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
