"""Extraction: landed export files -> typed raw Parquet + quarantine, one file at a time.

Each landed file is read by an in-memory DuckDB connection (no warehouse file is opened, so sources
extract in parallel without touching the warehouse's single-writer lock). Every value is read as
text, then typed by SQL generated from the source's contract; a row whose values do not fit the
contract goes to quarantine with a reason code, never silently dropped and never half-loaded.

Row numbers: ``_row_number`` is the 1-based ordinal of a data record in the file (after the header,
in file order). Records the CSV reader cannot split into the header's columns are quarantined as
``malformed_row`` with the physical line number DuckDB reports.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from marketing_warehouse import duck
from marketing_warehouse.config import DEFAULT_DUCKDB_MEMORY_LIMIT
from marketing_warehouse.contracts import Column, Contract
from marketing_warehouse.currencies import ISO_4217
from marketing_warehouse.formats import (
    ROW_COLUMN,
    FormatError,
    PreReject,
    json_to_csv,
    xlsx_to_csv,
)
from marketing_warehouse.quarantine import QUARANTINE_SCHEMA, Reason

SEP = chr(31)  # separates reason code from detail inside SQL error strings
#: Longest value accepted in any cell: Excel's cell limit. A longer value is an export bug (often an
#: unbalanced quote that swallowed the rest of the file), never a real name, subject or address.
MAX_VALUE_CHARS = 32767
#: Characters removed from numbers besides digits: spaces (also the no-break and thin spaces that
#: French and Swiss spreadsheets use as thousands separators, the Swiss 1'234) and currency
#: symbols. A regular expression in SQL-literal form (the quote doubled).
NUMBER_NOISE = "[\\s\u00a0\u2007\u202f\u2009''€$£¥]"
#: A text value that a spreadsheet opened on it would treat as a formula (OWASP "CSV injection"):
#: starts with = or @ (or a tab / carriage return before one), or + / - followed by anything but a
#: plain number or phone number ("-12.5", "+49 30 1234567" stay unflagged).
FORMULA_LIKE = r"^[=@\t\r]|^[+-].*[^0-9 ().,/+-]"
DELIMITERS = (",", ";", "\t", "|")
LINEAGE_COLUMNS = {
    "_source_file": "VARCHAR",
    "_file_hash": "VARCHAR",
    "_row_number": "BIGINT",
    "_load_date": "DATE",
    "_loaded_at": "TIMESTAMP",
    #: The landed file's modification time (UTC): when it was delivered, whatever its name.
    "_landed_at": "TIMESTAMP",
}
SQL_TYPES = {
    "string": "VARCHAR",
    "email": "VARCHAR",
    "integer": "BIGINT",
    "decimal": "DECIMAL(18,6)",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
    "boolean": "BOOLEAN",
    "currency": "VARCHAR",
}


class FileRejected(Exception):
    """The whole file cannot be loaded; ``reason`` is a quarantine reason code."""

    def __init__(self, reason: Reason, message: str, preview: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.preview = preview


@dataclass
class FileResult:
    """What happened to one landed file; stored in the load ledger."""

    source_file: str
    file_hash: str
    load_date: str
    status: str  # loaded | rejected | skipped_duplicate
    rows_landed: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    message: str = ""
    encoding: str = ""
    delimiter: str = ""
    unknown_columns: list[str] = field(default_factory=list)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    #: Loaded values a spreadsheet would run as a formula, per column header (see ``formula_like``).
    formula_values: dict[str, int] = field(default_factory=dict)
    #: Digest of the typed rows (not the bytes): the same rows saved in another encoding or with
    #: other line ends are one delivery (set by ``loads``).
    rows_hash: str = ""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


# --- file sniffing -----------------------------------------------------------------------------


def _detect_encoding(path: Path) -> str:
    """utf-8, utf-8-sig, utf-16 (BOM), utf-16-le/be (no BOM) or cp1252 (not valid UTF-8).

    A file with NUL bytes that is not UTF-16 is binary (an image, a zip, a workbook saved under a
    .csv name) and is rejected rather than decoded into garbage.
    """
    with path.open("rb") as handle:
        head = handle.read(1 << 16)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        if b"\x00" in head:
            pairs = len(head) // 2 or 1
            even = head[0::2].count(0) / pairs
            odd = head[1::2].count(0) / pairs
            if odd > 0.3 and even < 0.05:
                return "utf-16-le"
            if even > 0.3 and odd < 0.05:
                return "utf-16-be"
            raise UnicodeError("it holds NUL bytes: a binary file (image, archive?), not text")
        handle.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "cp1252"
    return "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8"


def _as_plain_utf8(path: Path, encoding: str, workdir: Path) -> Path:
    """DuckDB reads plain UTF-8 only: transcode anything else to a temporary copy."""
    if encoding == "utf-8":
        return path
    target = workdir / (path.name + ".utf8")
    errors = "replace" if encoding == "cp1252" else "strict"
    with (
        path.open("r", encoding=encoding, errors=errors, newline="") as src,
        target.open("w", encoding="utf-8", newline="") as dst,
    ):
        shutil.copyfileobj(src, dst, 1 << 20)
    return target


def _split(line: str) -> tuple[list[str], str]:
    counts = {d: len(next(csv.reader(io.StringIO(line), delimiter=d))) for d in DELIMITERS}
    delimiter = max(DELIMITERS, key=lambda d: (counts[d], -DELIMITERS.index(d)))
    return next(csv.reader(io.StringIO(line), delimiter=delimiter)), delimiter


def _find_header(path: Path, contract: Contract) -> tuple[str, str, int]:
    """The header line, its delimiter and the number of lines before it.

    Some tools put a title and a date range above the header (Google Ads): the header is the
    first of the first 30 non-blank lines that holds every required column; when none does,
    the first non-blank line is taken (and its missing columns are reported).
    """
    first: tuple[str, str, int] | None = None
    required = [c for c in contract.columns if c.required]
    with path.open("r", encoding="utf-8", newline="") as handle:
        seen = 0
        for index, line in enumerate(handle):
            if not line.strip():
                continue
            fields, delimiter = _split(line)
            if first is None:
                first = (line, delimiter, index)
            if all(any(c.matches(f) for f in fields) for c in required):
                return line, delimiter, index
            seen += 1
            if seen >= 30:
                break
    return first or ("", ",", 0)


# --- typing SQL --------------------------------------------------------------------------------


#: "1,234,567.89": thousands commas (a leading zero is never a thousands group).
US_THOUSANDS = r"[+-]?[1-9][0-9]{0,2}(,[0-9]{3})+(\.[0-9]+)?"
#: "1.234.567,89": thousands dots.
EU_THOUSANDS = r"[+-]?[1-9][0-9]{0,2}(\.[0-9]{3})+(,[0-9]+)?"
#: "12,5", "0,125": a decimal comma.
EU_DECIMAL = r"[+-]?[0-9]+,[0-9]+"


def _decimal_text(expr: str, separator: str) -> str:
    """SQL turning a number as people type it into text DuckDB casts: "1.234,56" -> "1234.56".

    ``auto`` reads "1,234.5" and "1.234,5" by their last separator; a lone separator followed by
    exactly three digits after a non-zero group ("1,234", "1.234") is read as thousands, anything
    else ("0,125", "12,3456", "0.857") as a decimal separator. Numbers that were numbers in the
    source (xlsx cells, JSON numbers) never look like thousands (see ``formats._cell``).
    """
    cleaned = f"regexp_replace({expr}, '{NUMBER_NOISE}', '', 'g')"
    if separator == ",":
        return f"replace(replace({cleaned}, '.', ''), ',', '.')"
    if separator == ".":
        return f"replace({cleaned}, ',', '')"
    return (
        f"case when regexp_full_match({cleaned}, '{US_THOUSANDS}') then replace({cleaned}, ',', '')"
        f" when regexp_full_match({cleaned}, '{EU_THOUSANDS}')"
        f" then replace(replace({cleaned}, '.', ''), ',', '.')"
        f" when regexp_full_match({cleaned}, '{EU_DECIMAL}') then replace({cleaned}, ',', '.')"
        f" else {cleaned} end"
    )


def _integer_text(expr: str) -> str:
    """SQL for a whole number: thousands separators of either style, and "7.0" from spreadsheets.

    "8.411" and "8,411" are thousands (counts are whole numbers). A fraction ("3.7") is not
    rounded into a count: it yields null, so the row is quarantined.
    """
    cleaned = f"regexp_replace({expr}, '{NUMBER_NOISE}', '', 'g')"
    return (
        f"case when regexp_full_match({cleaned}, '[+-]?[1-9][0-9]{{0,2}}(\\.[0-9]{{3}})+') "
        f"or regexp_full_match({cleaned}, '[+-]?[1-9][0-9]{{0,2}}(,[0-9]{{3}})+') "
        f"then regexp_replace({cleaned}, '[.,]', '', 'g') "
        f"when regexp_full_match({cleaned}, '[+-]?[0-9]+([.,]0+)?') "
        f"then regexp_extract({cleaned}, '^[+-]?[0-9]+') end"
    )


def parse_values(column: Column, values: list[str | None], contract: Contract) -> list[object]:
    """Type ``values`` as the extractor types ``column`` of ``contract`` (same SQL, same engine).

    For tests and for checking a rule by hand: ``parse_values(col, ["1.234,56"], contract)``.
    """
    if not values:
        return []
    con = duckdb.connect()
    try:
        con.execute("create temp table v (i bigint, raw varchar)")
        con.executemany("insert into v values (?, ?)", list(enumerate(values)))
        typed, _, _ = _typed_expr(column, "raw", contract)
        rows = con.execute(
            f"select cast({typed} as {SQL_TYPES[column.type]}) from v order by i"
        ).fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


def _typed_expr(column: Column, raw: str, contract: Contract) -> tuple[str, Reason | None, str]:
    """(SQL for the typed value, reason when a non-empty value fails to type, what was expected)."""
    text = f"nullif(trim({raw}), '')"
    kind = column.type
    if kind == "string":
        return text, None, ""
    if kind == "email":
        return f"lower({text})", None, ""
    if kind == "integer":
        return (
            f"try_cast({_integer_text(text)} as bigint)",
            Reason.INVALID_NUMBER,
            "a whole number",
        )
    if kind == "decimal":
        return (
            f"try_cast({_decimal_text(text, contract.decimal_separator)} as decimal(18,6))",
            Reason.INVALID_NUMBER,
            "a number",
        )
    if kind == "boolean":
        return (
            f"case when lower({text}) in ('true','yes','y','1','t') then true "
            f"when lower({text}) in ('false','no','n','0','f') then false end",
            Reason.INVALID_BOOLEAN,
            "yes/no or true/false",
        )
    if kind == "currency":
        codes = ", ".join(_sql_str(c) for c in sorted(ISO_4217))
        return (
            f"case when upper({text}) in ({codes}) then upper({text}) end",
            Reason.UNKNOWN_CURRENCY,
            "an ISO 4217 currency code",
        )
    if kind == "date":
        formats = "[" + ", ".join(_sql_str(f) for f in contract.date_formats) + "]"
        return (
            f"coalesce(try_strptime({text}, {formats})::date, try_cast({text} as date), "
            f"try_cast({text} as timestamp)::date)",
            Reason.INVALID_DATE,
            f"a date in one of {', '.join(contract.date_formats)}",
        )
    if kind == "timestamp":
        # a trailing literal "Z" means UTC: such formats parse as naive UTC timestamps
        with_tz = [f for f in contract.timestamp_formats if "%z" in f or "%Z" in f]
        naive = [f for f in contract.timestamp_formats if f not in with_tz]
        parts = []
        if with_tz:
            fmts = "[" + ", ".join(_sql_str(f) for f in with_tz) + "]"
            parts.append(f"(try_strptime({text}, {fmts}) at time zone 'UTC')")
        if naive:
            fmts = "[" + ", ".join(_sql_str(f) for f in naive) + "]"
            parts.append(f"try_strptime({text}, {fmts})")
        # epoch milliseconds (13 digits) and seconds (10 digits)
        parts.append(
            f"case when regexp_full_match({text}, '[0-9]{{13}}') "
            f"then make_timestamp({text}::bigint * 1000) "
            f"when regexp_full_match({text}, '[0-9]{{10}}') "
            f"then make_timestamp({text}::bigint * 1000000) end"
        )
        return (
            f"coalesce({', '.join(parts)})",
            Reason.INVALID_TIMESTAMP,
            f"a timestamp in one of {', '.join(contract.timestamp_formats)} or epoch milliseconds",
        )
    raise AssertionError(kind)


def _checks(
    column: Column, raw: str, typed: str, reason: Reason | None, expected: str
) -> list[str]:
    """SQL expressions that yield ``code<SEP>detail`` when the column's value breaks the contract."""
    label = column.header.replace("'", "''")
    text = f"nullif(trim({raw}), '')"
    shown = f"left({text}, 200)"
    checks = [
        f"case when length({raw}) > {MAX_VALUE_CHARS} then '{Reason.VALUE_TOO_LONG}{SEP}"
        f"column \"{label}\": a value of ' || length({raw}) || ' characters, longer than the "
        f"{MAX_VALUE_CHARS} a cell can hold (an unclosed quote?)' end"
    ]
    if column.required:
        checks.append(
            f"case when {text} is null then '{Reason.MISSING_REQUIRED_VALUE}{SEP}"
            f'column "{label}" is empty but required\' end'
        )
    if reason is not None:
        checks.append(
            f"case when {text} is not null and {typed} is null then '{reason}{SEP}"
            f"column \"{label}\": ' || {shown} || ' is not {expected}' end"
        )
    if column.min is not None:
        checks.append(
            f"case when {typed} < {column.min} then '{Reason.OUT_OF_RANGE}{SEP}"
            f"column \"{label}\": ' || {shown} || ' is below the minimum {column.min}' end"
        )
    return checks


# --- one file ------------------------------------------------------------------------------------


def _map_header(
    contract: Contract, header: list[str], filename: str
) -> tuple[dict[str, int], list[str]]:
    """Contract column name -> position in the file; and the unknown extra headers."""
    positions: dict[str, int] = {}
    unknown = []
    for index, name in enumerate(header):
        matched = [c for c in contract.columns if c.matches(name)]
        if not matched:
            if name.strip():
                unknown.append(name.strip())
            continue
        column = matched[0]
        if column.name in positions:
            raise FileRejected(
                Reason.DUPLICATE_COLUMN,
                f"{filename}: column {column.header!r} appears twice in the header "
                f"(positions {positions[column.name] + 1} and {index + 1}).",
            )
        positions[column.name] = index
    missing = [c.header for c in contract.columns if c.required and c.name not in positions]
    if missing:
        raise FileRejected(
            Reason.MISSING_REQUIRED_COLUMN,
            f"{filename}: required column(s) {', '.join(repr(m) for m in missing)} missing from "
            f"the header; found {', '.join(repr(h) for h in header[:60] if h)}. "
            f"Expected the {contract.source} {contract.entity} export layout.",
        )
    return positions, unknown


def _decode(path: Path, workdir: Path, result: FileResult) -> Path:
    """The file as plain UTF-8 text (a temporary copy unless it already is)."""
    try:
        result.encoding = _detect_encoding(path)
        return _as_plain_utf8(path, result.encoding, workdir)
    except (UnicodeError, OSError) as exc:
        raise FileRejected(
            Reason.UNREADABLE_FILE, f"{path.name}: cannot be decoded as text ({exc})."
        ) from exc


def _prepare(path: Path, contract: Contract, workdir: Path, result: FileResult):
    """Any supported format -> (plain UTF-8 CSV path, delimiter, header, pre-rejects)."""
    pre_rejects: list[PreReject] = []
    if path.stat().st_size == 0:
        raise FileRejected(Reason.EMPTY_FILE, f"{path.name}: the file is empty (0 bytes).")
    if contract.format == "csv":
        text_path = _decode(path, workdir, result)
    else:
        text_path = workdir / (path.name + ".csv")
        try:
            if contract.format == "xlsx":
                result.encoding = "xlsx"
                skipped = xlsx_to_csv(path, text_path, contract.sheet, _header_test(contract))
                if skipped:
                    result.unknown_columns.append(f"(sheets not read: {', '.join(skipped)})")
            else:
                source = _decode(path, workdir, result)
                pre_rejects = json_to_csv(source, text_path, lines=contract.format == "jsonl")
        except FormatError as exc:
            raise FileRejected(Reason.UNREADABLE_FILE, f"{path.name}: {exc}") from exc
    header_line, delimiter, skip = _find_header(text_path, contract)
    result.delimiter = delimiter if contract.format == "csv" else ""
    if not header_line:
        raise FileRejected(Reason.EMPTY_FILE, f"{path.name}: the file is empty (no header).")
    header = next(csv.reader(io.StringIO(header_line), delimiter=delimiter))
    if header == [ROW_COLUMN] and not pre_rejects:
        raise FileRejected(Reason.EMPTY_FILE, f"{path.name}: the file holds no records.")
    return text_path, delimiter, header, pre_rejects, skip


def _header_test(contract: Contract):
    """Whether a spreadsheet row is the contract's header: it names every required column."""
    required = [c for c in contract.columns if c.required]

    def is_header(cells: list[str]) -> bool:
        return all(any(c.matches(cell) for cell in cells) for c in required)

    return is_header


#: DuckDB errors that are not a file's fault: out of memory, or a fatal error that invalidated the
#: database the files of a source share. Extraction fails the task on them (Airflow retries).
DUCKDB_RESOURCE_ERRORS = (duckdb.OutOfMemoryException, duckdb.FatalException)


def extract_file(
    path: Path,
    contract: Contract,
    load_date: date,
    out_file: Path,
    quarantine_file: Path,
    loaded_at: datetime,
    file_hash: str | None = None,
    database: duckdb.DuckDBPyConnection | None = None,
) -> FileResult:
    """Type one landed file into ``out_file`` (Parquet) and its rejects into ``quarantine_file``.

    ``file_hash``: the file's SHA-256 when the caller has already computed it. ``database``: an
    in-memory DuckDB database from ``extraction_database``, shared by the files extracted at the
    same time (each file gets its own connection to it, so its temporary tables are its own);
    by default a new one for this file."""
    file_hash = file_hash or file_sha256(path)
    result = FileResult(
        source_file=path.name, file_hash=file_hash, load_date=load_date.isoformat(), status="loaded"
    )
    with tempfile.TemporaryDirectory(prefix="mwh-extract-") as tmp:
        workdir = Path(tmp)
        text_path, delimiter, header, pre_rejects, skip = _prepare(path, contract, workdir, result)
        has_row_column = header[0] == ROW_COLUMN
        data_columns = [(i, h) for i, h in enumerate(header) if not (has_row_column and i == 0)]
        positions, unknown = _map_header(
            contract,
            [h if i or not has_row_column else "" for i, h in enumerate(header)],
            path.name,
        )
        result.unknown_columns = unknown + result.unknown_columns

        own = database is None
        if own:
            database = extraction_database(DEFAULT_DUCKDB_MEMORY_LIMIT, workdir / "spill")
        con = database.cursor()
        try:
            raw_cols = {f"c{i}": "VARCHAR" for i in range(len(header))}
            columns_sql = "{" + ", ".join(f"'{k}': 'VARCHAR'" for k in raw_cols) + "}"
            try:
                con.execute(
                    f"""
                    create temp table landed as
                    select {"try_cast(c0 as bigint)" if has_row_column else "row_number() over ()"}
                        as _row_number, row_number() over () as _seq, *
                    from read_csv({_sql_str(str(text_path))},
                        header = true, auto_detect = false, skip = {skip},
                        delim = {_sql_str(delimiter)}, quote = '"', escape = '"',
                        columns = {columns_sql}, store_rejects = true,
                        max_line_size = 10000000)
                    """
                )
            except DUCKDB_RESOURCE_ERRORS:
                raise  # not the file's fault
            except duckdb.Error as exc:
                raise FileRejected(
                    Reason.UNREADABLE_FILE,
                    f"{path.name}: the CSV reader failed: {str(exc)[:2000]}",
                ) from exc

            select_typed = []
            checks: list[str] = []
            for column in contract.columns:
                if column.name in positions:
                    raw = f"c{positions[column.name]}"
                    typed, reason, expected = _typed_expr(column, raw, contract)
                    # checks read the typed column computed once in the inner query
                    checks += _checks(column, raw, _ident(column.name), reason, expected)
                else:
                    typed = "null"
                select_typed.append(
                    f"cast({typed} as {SQL_TYPES[column.type]}) as {_ident(column.name)}"
                )
            header_match = " and ".join(
                f"trim(c{i}) = {_sql_str(h.strip())}" for i, h in data_columns if h.strip()
            )
            checks.insert(
                0,
                f"case when {header_match or 'false'} then '{Reason.REPEATED_HEADER}{SEP}"
                f"the header row appears again inside the file' end",
            )
            if contract.summary_row_pattern:
                first_col = f"c{data_columns[0][0]}"
                checks.insert(
                    0,
                    f"case when regexp_matches(coalesce({first_col}, ''), "
                    f"{_sql_str(contract.summary_row_pattern)}) then '{Reason.SUMMARY_ROW}{SEP}"
                    f"a summary row of the report, not a record' end",
                )
            # the landed row as JSON; a cell too long to keep is cut, with its length
            raw_json = (
                "json_object("
                + ", ".join(
                    f"{_sql_str(h)}, case when length(c{i}) > {MAX_VALUE_CHARS} then left(c{i}, 1000)"
                    f" || '... (' || length(c{i}) || ' characters)' else c{i} end"
                    for i, h in enumerate(header)
                )
                + ")"
            )
            con.execute(
                f"""
                create temp table typed as
                with typed_values as materialized (
                    select *, {", ".join(select_typed)} from landed
                )
                select
                    _row_number,
                    _seq,
                    {", ".join(_ident(c.name) for c in contract.columns)},
                    list_filter([{", ".join(checks)}], x -> x is not null) as _errors
                from typed_values
                """
            )
            if contract.record_group:
                group = _ident(contract.record_group)
                con.execute(
                    f"""
                    update typed set _errors = [
                        '{Reason.INCOMPLETE_RECORD}{SEP}another row of {contract.record_group} '
                        || {group} || ' was quarantined; the record is held back whole']
                    where len(_errors) = 0 and {group} in (
                        select {group} from typed where len(_errors) > 0 and {group} is not null)
                    """
                )
            lineage = (
                f"{_sql_str(path.name)} as _source_file, {_sql_str(file_hash)} as _file_hash, "
                f"_row_number, date {_sql_str(load_date.isoformat())} as _load_date, "
                f"timestamp {_sql_str(loaded_at.strftime('%Y-%m-%d %H:%M:%S'))} as _loaded_at, "
                f"timestamp {_sql_str(_landed_at(path))} as _landed_at"
            )
            names = ", ".join(_ident(c.name) for c in contract.columns)
            out_file.parent.mkdir(parents=True, exist_ok=True)
            con.execute(
                f"copy (select {names}, {lineage} from typed where len(_errors) = 0 "
                f"order by _row_number) to {_sql_str(str(out_file))} (format parquet)"
            )
            q_common = (
                f"{_sql_str(contract.source)} as source, {_sql_str(contract.entity)} as entity, "
                f"{_sql_str(path.name)} as source_file, {_sql_str(file_hash)} as file_hash, "
                f"date {_sql_str(load_date.isoformat())} as load_date"
            )
            q_time = f"timestamp {_sql_str(loaded_at.strftime('%Y-%m-%d %H:%M:%S'))}"
            con.execute(
                f"""
                create temp table quarantined as
                select {q_common}, typed._row_number as row_number, {raw_json}::varchar as raw_content,
                    split_part(_errors[1], chr(31), 1) as reason_code,
                    array_to_string(list_transform(_errors, x -> split_part(x, chr(31), 2)), '; ')
                        as reason_detail,
                    {q_time} as quarantined_at
                from typed join landed using (_seq) where len(_errors) > 0
                union all
                select {q_common}, line as row_number, any_value(csv_line) as raw_content,
                    '{Reason.MALFORMED_ROW}' as reason_code,
                    'line ' || line || ': ' || string_agg(error_message, '; ') as reason_detail,
                    {q_time} as quarantined_at
                from reject_errors group by line
                """
            )
            for reject in pre_rejects:
                con.execute(
                    f"insert into quarantined select {q_common}, ?, ?, ?, ?, {q_time}",
                    [reject.row_number, reject.raw, str(Reason.MALFORMED_ROW), reject.detail],
                )
            result.rows_loaded = con.execute(
                "select count(*) from typed where len(_errors) = 0"
            ).fetchone()[0]
            result.rows_quarantined = con.execute("select count(*) from quarantined").fetchone()[0]
            result.formula_values = _formula_counts(con, contract, positions)
            result.rows_landed = result.rows_loaded + result.rows_quarantined
            result.quarantine_reasons = dict(
                con.execute(
                    "select reason_code, count(*) from quarantined group by 1 order by 1"
                ).fetchall()
            )
            if result.rows_landed == 0:
                raise FileRejected(
                    Reason.EMPTY_FILE, f"{path.name}: the file has a header but no data rows."
                )
            if result.rows_quarantined:
                quarantine_file.parent.mkdir(parents=True, exist_ok=True)
                con.execute(
                    f"copy (select * from quarantined order by row_number) to "
                    f"{_sql_str(str(quarantine_file))} (format parquet)"
                )
        finally:
            con.close()
            if own:
                database.close()
    return result


def _landed_at(path: Path) -> str:
    """The file's modification time in UTC to the microsecond, as a DuckDB timestamp literal."""
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def extraction_database(memory_limit: str, spill_dir: Path | str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB database for extracting files, bounded by ``memory_limit`` in all.

    One thread per query keeps ``row_number()`` in file order; files extracted at the same time
    each run on their own thread. Opening a connection to it costs far less than a new database
    per file (thousands of small daily exports on a first night)."""
    database = duck.connect(memory_limit, spill_dir=spill_dir)
    database.execute("set threads = 1")
    database.execute("set preserve_insertion_order = true")
    return database


def _formula_counts(con, contract: Contract, positions: dict[str, int]) -> dict[str, int]:
    """Loaded text values a spreadsheet would run as formulas, per column header.

    They are loaded unchanged (the warehouse keeps what the source said); the count goes to the
    ledger and the run log, and ``neutralise_formula`` defuses them in CSV exports.
    """
    texts = [c for c in contract.columns if c.type in {"string", "email"} and c.name in positions]
    if not texts:
        return {}
    counts = con.execute(
        "select "
        + ", ".join(
            f"count(*) filter (where regexp_matches({_ident(c.name)}, {_sql_str(FORMULA_LIKE)}))"
            for c in texts
        )
        + " from typed where len(_errors) = 0"
    ).fetchone()
    return {c.header: n for c, n in zip(texts, counts, strict=True) if n}


def neutralise_formula(value: object) -> object:
    """A value safe to put in a CSV a spreadsheet will open: formula-like text gets a leading '."""
    if isinstance(value, str) and re.search(FORMULA_LIKE, value):
        return "'" + value
    return value


def write_file_rejection(
    path: Path,
    contract: Contract,
    load_date: date,
    rejection: FileRejected,
    file_hash: str,
    quarantine_file: Path,
    loaded_at: datetime,
) -> None:
    """One quarantine entry for a file that could not be loaded at all (row_number is null)."""
    con = duckdb.connect()
    try:
        quarantine_file.parent.mkdir(parents=True, exist_ok=True)
        cols = ", ".join(f"?::{t} as {n}" for n, t in QUARANTINE_SCHEMA.items())
        con.execute(f"create temp table entry as select {cols}", [
            contract.source,
            contract.entity,
            path.name,
            file_hash,
            load_date,
            None,
            file_preview(path),
            str(rejection.reason),
            rejection.message,
            loaded_at,
        ])  # fmt: skip
        con.execute(f"copy entry to {_sql_str(str(quarantine_file))} (format parquet)")
    finally:
        con.close()


def file_preview(path: Path, size: int = 2000) -> str:
    """The first bytes of a file as text for the quarantine; binary content is shown in hex."""
    with path.open("rb") as handle:
        head = handle.read(size)
    if b"\x00" in head and not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return f"(binary, {path.stat().st_size} bytes) {head[:256].hex(' ')}"
    encoding = "utf-16" if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8"
    return head.decode(encoding, errors="replace").replace("\x00", "")


def empty_raw_file(contract: Contract, out_file: Path) -> None:
    """A zero-row Parquet file with the raw schema, so staging reads a source with no loads yet."""
    con = duckdb.connect()
    try:
        cols = [f"null::{SQL_TYPES[c.type]} as {_ident(c.name)}" for c in contract.columns]
        cols += [f"null::{t} as {n}" for n, t in LINEAGE_COLUMNS.items()]
        out_file.parent.mkdir(parents=True, exist_ok=True)
        con.execute(
            f"copy (select {', '.join(cols)} limit 0) to {_sql_str(str(out_file))} (format parquet)"
        )
    finally:
        con.close()


def empty_quarantine_file(out_file: Path) -> None:
    con = duckdb.connect()
    try:
        cols = [f"null::{t} as {n}" for n, t in QUARANTINE_SCHEMA.items()]
        out_file.parent.mkdir(parents=True, exist_ok=True)
        con.execute(
            f"copy (select {', '.join(cols)} limit 0) to {_sql_str(str(out_file))} (format parquet)"
        )
    finally:
        con.close()


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)
