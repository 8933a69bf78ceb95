"""Extraction: landed export files -> typed raw Parquet + quarantine, one file at a time.

Each landed file is read by an in-memory DuckDB connection (no warehouse file is opened, so sources
extract in parallel without touching the warehouse's single-writer lock). Every value is read as
text, then typed by SQL generated from the source's contract; a row whose values do not fit the
contract goes to quarantine with a reason code, never silently dropped and never half-loaded.

Row numbers: ``_row_number`` is the 1-based ordinal of a data record in the file (after the header,
in file order). Records the CSV reader cannot split into the header's columns are quarantined as
``malformed_row`` with the physical line number DuckDB reports.

Rows landed are counted apart from the load (``count_records``: Python's csv and json modules,
openpyxl for workbooks), so the raw gate's conservation check can catch a record the loader lost.
Rows that cannot be handed to DuckDB as they are (an unclosed quote, another encoding, NUL bytes)
are quarantined from that count with their line, and blanked in the copy DuckDB reads.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import logging
import re
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

from marketing_warehouse import duck
from marketing_warehouse.config import DEFAULT_DUCKDB_MEMORY_LIMIT, Plausibility
from marketing_warehouse.ingest import json_lines
from marketing_warehouse.ingest.contracts import (
    Column,
    Contract,
    conflicting_formats,
    normalise_value,
)
from marketing_warehouse.ingest.currencies import ISO_4217
from marketing_warehouse.ingest.formats import (
    DELIMITERS,
    MAX_LINE_SIZE,
    ROW_COLUMN,
    FormatError,
    PreReject,
    count_sheet_rows,
    json_to_csv,
    xlsx_to_csv,
)
from marketing_warehouse.ingest.quarantine import QUARANTINE_SCHEMA, Reason

log = logging.getLogger(__name__)
DEFAULT_PLAUSIBILITY = Plausibility()

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
#: A header cell that is a value, not a column name: an e-mail, or only digits and the separators
#: of numbers, dates, times and phone numbers. A headerless export's first line is a record, so a
#: header holding such a cell is never quoted in a message.
DATA_LIKE = re.compile(r"@|^[\s\d.,:;/+\-'()€$£%]*\d[\s\d.,:;/+\-'()€$£%]*$")
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
    #: How day and month were read in this file's dates when its contract lists both orders:
    #: day_first or month_first; ``date_order_assumed`` when no value told and the contract's
    #: default applied.
    date_order: str = ""
    date_order_assumed: bool = False
    #: Empty values taken from the first row of their record, per column header (Shopify orders).
    filled_values: dict[str, int] = field(default_factory=dict)
    #: Empty unless rows landed (counted apart from the load) differ from rows loaded + rows
    #: quarantined: then where in the file the records were lost; the raw gate stops the run.
    rows_lost_at: str = ""
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

#: File signatures of formats that are never text: such a file under a .csv/.json name is rejected.
BINARY_SIGNATURES = {
    b"\x89PNG": "a PNG image",
    b"PK\x03\x04": "a zip archive (a workbook?)",
    b"%PDF": "a PDF document",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"\x1f\x8b": "a gzip archive",
}
#: Control bytes (not tab, line feed, carriage return or NUL) that text never holds.
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (0, 9, 10, 13)) + b"\x7f"


def _binary_kind(head: bytes) -> str | None:
    """What a file that is not text is, from its first 64 KB; None for text (UTF-16 included).

    A text file may hold NUL bytes (a zeroed disk block, a stray NUL in a cell): those rows are
    quarantined (``nul_bytes``) while the rest loads, so NULs alone do not make a file binary; a
    known signature, nothing but NULs, or other control bytes in over 1 % of the rest do."""
    for signature, kind in BINARY_SIGNATURES.items():
        if head.startswith(signature):
            return kind
    rest = head.replace(b"\x00", b"")
    if not rest or sum(rest.count(c) for c in _CONTROL_BYTES) / len(rest) > 0.01:
        return "binary content"
    return None


def _utf16_variant(head: bytes) -> str | None:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    pairs = len(head) // 2 or 1
    even = head[0::2].count(0) / pairs
    odd = head[1::2].count(0) / pairs
    if odd > 0.3 and even < 0.05:
        return "utf-16-le"
    if even > 0.3 and odd < 0.05:
        return "utf-16-be"
    return None


def detect_encoding(path: Path) -> str:
    """utf-8, utf-8-sig, utf-16 (BOM), utf-16-le/be (no BOM) or cp1252: the encoding of the
    majority of the lines that are not plain ASCII.

    A UTF-8 export with one Windows-1252 byte stays UTF-8 (that line is quarantined as
    ``undecodable_row`` by ``count_records``); a file whose non-ASCII lines are mostly not UTF-8
    is Windows-1252. A tie is UTF-8: a UTF-8 line read as Windows-1252 would load as "jÃ¶rg"
    without a word, a Windows-1252 line read as UTF-8 is quarantined. A binary file (image,
    archive) is rejected rather than decoded into garbage.
    """
    with path.open("rb") as handle:
        head = handle.read(1 << 16)
        utf16 = _utf16_variant(head)
        if utf16:
            return utf16
        kind = _binary_kind(head)
        if kind:
            raise UnicodeError(f"it is {kind}, not text")
        handle.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            handle.seek(0)
            utf8 = other = 0
            for raw in handle:
                if raw.isascii():
                    continue
                try:
                    raw.decode("utf-8")
                    utf8 += 1
                except UnicodeDecodeError:
                    other += 1
            if other > utf8:
                return "cp1252"
    return "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8"


def _text_lines(path: Path, encoding: str) -> Iterator[tuple[str, bool]]:
    """The file's physical lines (ending at "\\n", ending kept) and whether each decoded.

    A line of an 8-bit file that is not valid in ``encoding`` comes back decoded with
    replacement characters and False, and so does a line of a Windows-1252 file that is valid
    UTF-8 with non-ASCII characters (it would decode, into "jÃ¶rg"); UTF-16 decodes whole or
    not at all."""
    if encoding.startswith("utf-16"):
        with path.open("r", encoding=encoding, newline="\n") as handle:
            for line in handle:
                yield line, True
        return
    codec = "utf-8" if encoding.startswith("utf-8") else encoding
    with path.open("rb") as handle:
        for number, raw in enumerate(handle):
            if number == 0 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                text = raw.decode(codec)
            except UnicodeDecodeError:
                yield raw.decode(codec, errors="replace"), False
                continue
            yield text, codec == "utf-8" or raw.isascii() or not _is_utf8(raw)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _as_plain_utf8(path: Path, encoding: str, workdir: Path) -> Path:
    """DuckDB reads plain UTF-8 only: transcode anything else to a temporary copy."""
    if encoding == "utf-8":
        return path
    target = workdir / "landed.utf8"  # never named after the landed file: names may be long
    errors = "replace" if encoding == "cp1252" else "strict"
    with (
        path.open("r", encoding=encoding, errors=errors, newline="") as src,
        target.open("w", encoding="utf-8", newline="") as dst,
    ):
        shutil.copyfileobj(src, dst, 1 << 20)
    return target


def split_header(line: str) -> tuple[list[str], str]:
    """A header line's cells and its delimiter: the one of ``DELIMITERS`` giving most cells."""
    counts = {d: len(next(csv.reader(io.StringIO(line), delimiter=d))) for d in DELIMITERS}
    delimiter = max(DELIMITERS, key=lambda d: (counts[d], -DELIMITERS.index(d)))
    return next(csv.reader(io.StringIO(line), delimiter=delimiter)), delimiter


def _find_header(path: Path, contract: Contract) -> tuple[str, str, int]:
    """The header line of a plain UTF-8 file, its delimiter and the number of lines before it."""
    with path.open("r", encoding="utf-8", newline="") as handle:
        return _header_in(handle, contract)


def _header_in(lines: Iterable[str], contract: Contract) -> tuple[str, str, int]:
    """The header line, its delimiter and the number of lines before it.

    Some tools put a title and a date range above the header (Google Ads): the header is the
    first of the first 30 non-blank lines that holds every required column; when none does,
    the first non-blank line is taken (and its missing columns are reported).
    """
    first: tuple[str, str, int] | None = None
    required = [c for c in contract.columns if c.required]
    seen = 0
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        fields, delimiter = split_header(line)
        if first is None:
            first = (line, delimiter, index)
        if all(any(c.matches(f) for f in fields) for c in required):
            return line, delimiter, index
        seen += 1
        if seen >= 30:
            break
    return first or ("", ",", 0)


# --- counting what landed ------------------------------------------------------------------------

csv.field_size_limit(1 << 30)  # a 5 MB cell must be counted (and quarantined), not crash the count


@dataclass
class Landed:
    """What ``count_records`` saw in a text file: its records, counted apart from the load."""

    #: Data records (after the header), blank lines not included.
    records: int = 0
    #: Records that cannot be loaded as they are (undecodable, NUL bytes, an unclosed quote that
    #: swallowed later lines); they are quarantined from here and blanked in the loader's copy.
    rejects: list[PreReject] = field(default_factory=list)
    blanked: set[int] = field(default_factory=set)  # 1-based physical lines
    crlf: int = 0
    lf: int = 0
    #: With ``trace``: each record left to the loader, in order, as (its first line, an MD5 of
    #: its fields joined by chr(31); JSON lines: the line number), to find where a loss is.
    trace: list[tuple[int, str]] = field(default_factory=list)

    #: The count again with ``trace`` (set by ``_screen``), when the load does not add up.
    recount: Callable[[], Landed] | None = field(default=None, repr=False, compare=False)

    @property
    def mixed_line_ends(self) -> bool:
        return bool(self.crlf and self.lf)


class _Feed:
    """Physical lines for ``csv.reader``, remembering those of the record being read; lines put
    back with ``again`` are read once more (as the start of new records)."""

    def __init__(self, lines: Iterator[tuple[int, str, bool]]) -> None:
        self.lines = lines
        self.pending: deque[tuple[int, str, bool]] = deque()
        self.taken: list[tuple[int, str, bool]] = []

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        item = self.pending.popleft() if self.pending else next(self.lines)
        self.taken.append(item)
        return item[1]

    def again(self, items: list[tuple[int, str, bool]]) -> None:
        self.pending.extendleft(reversed(items))


def _looks_complete(line: str, delimiter: str, width: int) -> bool:
    """Whether ``line``, inside a quoted value that began on an earlier line, is a record of its
    own: read alone it has ``width`` fields, or would have but for a quote it opens and never
    closes (a second unclosed quote: the csv module ends the first value there). A line whose
    first quote closes the value (not at the start of a field) is the end of a legitimate
    multi-line value, however many delimiters it holds."""
    quotes = line.count('"')
    first = line.find('"')
    opens = first == 0 or (first > 0 and line[first - 1] == delimiter)
    if quotes % 2 and not opens:
        return False
    try:
        if len(next(csv.reader([line], delimiter=delimiter), [])) == width:
            return True
        plain = next(csv.reader([line], delimiter=delimiter, quoting=csv.QUOTE_NONE), [])
    except csv.Error:
        return False
    return len(plain) == width and quotes % 2 == 1 and opens


def _shown(text: str) -> str:
    """A rejected line for quarantine raw_content: NUL runs named, not kept (PostgreSQL refuses
    them), and cut at 10,000 characters."""
    return re.sub("\x00+", lambda m: f"<{len(m[0])} NUL bytes>", text)[:10000]


def count_records(
    path: Path, encoding: str, skip: int, delimiter: str, width: int, fmt: str, trace: bool = False
) -> Landed:
    """Count the data records of a CSV (Python's csv module, no contract) or JSON-lines file.

    This count goes to the ledger as rows landed; the raw gate checks it against rows loaded +
    rows quarantined, so a record the loader loses stops the run. A CSV record is counted as the
    csv module reads it, with one exception: a quoted value that runs over later lines of which
    one on its own is a whole record (``width`` fields) is an unclosed quote, not a long value.
    That record (its lines up to the first whole-looking one) is quarantined as ``malformed_row``
    and the lines after it are read again as records, so one stray quote costs one row, never
    the rest of the file. A quoted value over lines that are not whole records (a note, an
    address) stays one record.

    A plain UTF-8 CSV without NUL bytes and multi-line values is counted by the csv module
    reading the file directly (``_count_plain``), twice as fast as line by line.
    """
    if fmt == "csv" and encoding in {"utf-8", "utf-8-sig"} and not trace:
        plain = _count_plain(path, encoding, skip, delimiter)
        if plain is not None:
            return plain
    landed = Landed()

    def numbered() -> Iterator[tuple[int, str, bool]]:
        for number, (text, ok) in enumerate(_text_lines(path, encoding), start=1):
            if text.endswith("\r\n"):
                landed.crlf += 1
            elif text.endswith("\n"):
                landed.lf += 1
            yield number, text, ok

    lines = numbered()
    for _ in range(skip + (fmt == "csv")):  # title lines above the header, and the header
        next(lines, None)

    def reject(items, reason: Reason, detail: str) -> None:
        landed.records += 1
        landed.blanked.update(n for n, _, _ in items)
        raw = "".join(t for _, t, _ in items)
        landed.rejects.append(PreReject(items[0][0], _shown(raw), detail, reason))

    def screened(items) -> bool:
        """Quarantine a record that does not decode or holds NUL bytes; True when it did."""
        numbers = [n for n, _, ok in items if not ok]
        if numbers:
            reject(
                items,
                Reason.UNDECODABLE_ROW,
                f"line {numbers[0]}: not in the encoding of the rest of the file ({encoding})",
            )
            return True
        numbers = [n for n, t, _ in items if "\x00" in t]
        if numbers:
            reject(items, Reason.NUL_BYTES, f"line {numbers[0]}: holds NUL bytes")
            return True
        return False

    if fmt == "jsonl":
        for item in lines:
            if item[1].strip() and not screened([item]):
                landed.records += 1
                if trace:
                    landed.trace.append((item[0], str(item[0])))
        return landed

    feed = _Feed(lines)
    reader = csv.reader(feed, delimiter=delimiter, quotechar='"', doublequote=True, strict=False)
    while True:
        feed.taken = []
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error:  # a carriage return inside an unquoted value
            number = feed.taken[0][0]
            reject(feed.taken, Reason.MALFORMED_ROW, f"line {number}: a line break inside a value")
            continue
        items = feed.taken
        if not fields:
            continue  # a blank line: not a record for either reader
        cut = next(
            (k for k in range(1, len(items)) if _looks_complete(items[k][1], delimiter, width)),
            None,
        )
        if cut is not None:
            feed.again(items[cut:])
            reject(
                items[:cut],
                Reason.MALFORMED_ROW,
                f"line {items[0][0]}: a quoted value opens here and is not closed before line "
                f"{items[cut][0]}, which is a whole record: an unclosed quote; lines from "
                f"{items[cut][0]} on are read as records of their own",
            )
            continue
        if not screened(items):
            landed.records += 1
            if trace:
                digest = hashlib.md5(chr(31).join(fields).encode(), usedforsecurity=False)
                landed.trace.append((items[0][0], digest.hexdigest()))
    return landed


def _count_plain(path: Path, encoding: str, skip: int, delimiter: str) -> Landed | None:
    """``count_records`` of a UTF-8 CSV by the csv module over the file itself; None when the file
    holds NUL bytes, a line that is not UTF-8, a record over several lines or a line break inside
    a value (then every line must be looked at)."""
    landed = Landed()
    with path.open("rb") as handle:
        carry = False
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            if b"\x00" in chunk:
                return None
            crlf = chunk.count(b"\r\n") + (carry and chunk.startswith(b"\n"))
            landed.crlf += crlf
            landed.lf += chunk.count(b"\n") - crlf
            carry = chunk.endswith(b"\r")
    try:
        with path.open("r", encoding=encoding, newline="\n") as handle:
            for _ in range(skip + 1):
                next(handle, None)
            reader = csv.reader(handle, delimiter=delimiter, quotechar='"', doublequote=True)
            last = 0
            for fields in reader:
                if reader.line_num - last > 1:
                    return None
                last = reader.line_num
                landed.records += bool(fields)
    except (csv.Error, UnicodeDecodeError):  # a line of another encoding: line by line
        return None
    return landed


def _clean_copy(path: Path, encoding: str, landed: Landed, workdir: Path) -> Path:
    """The file as plain UTF-8 with "\\n" line ends and the rejected records' lines left empty
    (the loader skips blank lines; other lines keep their numbers), or the file itself when it
    already is exactly that."""
    if encoding == "utf-8" and not landed.blanked and not landed.mixed_line_ends:
        return path
    target = workdir / "landed.txt"  # never named after the landed file: names may be long
    with target.open("w", encoding="utf-8", newline="") as out:
        for number, (text, _) in enumerate(_text_lines(path, encoding), start=1):
            if number in landed.blanked:
                out.write("\n")
            elif landed.mixed_line_ends and text.endswith("\r\n"):
                out.write(text[:-2] + "\n")
            else:
                out.write(text)
    return target


def count_json_records(path: Path) -> int:
    """Records of a JSON array file (or of the one list in a wrapper object), read with the json
    module apart from ``json_to_csv``; 0 when it is not JSON (the conversion rejects it)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8-sig", errors="replace") or "[]")
    except json.JSONDecodeError:
        return 0
    if isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list)]
        value = lists[0] if len(lists) == 1 else []
    return len(value) if isinstance(value, list) else 0


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


def parse_values(
    column: Column, values: list[str | None], contract: Contract, date_order: str | None = None
) -> list[object]:
    """Type ``values`` as the extractor types ``column`` of ``contract`` (same SQL, same engine).

    For tests and for checking a rule by hand: ``parse_values(col, ["1.234,56"], contract)``.
    ``date_order``: as in a file whose dates read that way (default: the contract's).
    """
    if not values:
        return []
    con = duckdb.connect()
    try:
        con.execute("create temp table v (i bigint, raw varchar)")
        con.executemany("insert into v values (?, ?)", list(enumerate(values)))
        typed, _, _ = _typed_expr(column, "raw", contract, date_order)
        rows = con.execute(
            f"select cast({typed} as {SQL_TYPES[column.type]}) from v order by i"
        ).fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


def _typed_expr(
    column: Column, raw: str, contract: Contract, date_order: str | None = None
) -> tuple[str, Reason | None, str]:
    """(SQL for the typed value, reason when a non-empty value fails to type, what was expected).

    ``date_order``: the file's (see ``infer_date_order``); by default the contract's."""
    text = f"nullif(trim({raw}), '')"
    kind = column.type
    if kind == "string" and column.accepted_values:
        spellings = {normalise_value(v): v for v in column.accepted_values}
        spellings |= column.value_aliases
        cases = " ".join(f"when {_sql_str(k)} then {_sql_str(v)}" for k, v in spellings.items())
        key = f"trim(regexp_replace(lower({text}), '[\\s_-]+', ' ', 'g'))"
        return (
            f"case {key} {cases} end",
            Reason.UNKNOWN_VALUE,
            f"one of {', '.join(column.accepted_values)}",
        )
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
        listed = contract.formats("date", date_order)
        formats = "[" + ", ".join(_sql_str(f) for f in listed) + "]"
        return (
            f"coalesce(try_strptime({text}, {formats})::date, try_cast({text} as date), "
            f"try_cast({text} as timestamp)::date)",
            Reason.INVALID_DATE,
            f"a date in one of {', '.join(listed)}",
        )
    if kind == "timestamp":
        # a trailing literal "Z" means UTC: such formats parse as naive UTC timestamps
        listed = contract.formats("timestamp", date_order)
        with_tz = [f for f in listed if "%z" in f or "%Z" in f]
        naive = [f for f in listed if f not in with_tz]
        parts = []
        if with_tz:
            fmts = "[" + ", ".join(_sql_str(f) for f in with_tz) + "]"
            parts.append(f"(try_strptime({text}, {fmts}) at time zone 'UTC')")
        if naive:
            fmts = "[" + ", ".join(_sql_str(f) for f in naive) + "]"
            parts.append(f"try_strptime({text}, {fmts})")
        # epoch milliseconds (11-13 digits: 1970-03 to 2286) and seconds (9-10 digits: 1973-03 to
        # 2286); before 2001-09-09 milliseconds have 12 digits and seconds 9. Eight digits or
        # fewer read as a number of days, a date (20261121) or a count, never as a time.
        parts.append(
            f"case when regexp_full_match({text}, '[0-9]{{11,13}}') "
            f"then make_timestamp({text}::bigint * 1000) "
            f"when regexp_full_match({text}, '[0-9]{{9,10}}') "
            f"then make_timestamp({text}::bigint * 1000000) end"
        )
        return (
            f"coalesce({', '.join(parts)})",
            Reason.INVALID_TIMESTAMP,
            f"a timestamp in one of {', '.join(listed)} or epoch milliseconds",
        )
    raise AssertionError(kind)


def _checks(
    column: Column,
    raw: str,
    typed: str,
    reason: Reason | None,
    expected: str,
    *,
    contract: Contract,
    positions: dict[str, int],
    load_date: date,
    plausibility: Plausibility,
) -> list[str]:
    """SQL expressions that yield ``code<SEP>detail`` when the column's value breaks the contract.

    ``typed`` is the typed (and, for ``fill_from_record``, filled) value; ``positions`` the file's
    column positions (for ``required_with``); amounts read the file's statistics ``_n:<name>`` and
    ``_median:<name>`` (see ``_amount_stats``)."""
    label = column.header.replace("'", "''")
    text = f"nullif(trim({raw}), '')"
    shown = f"left({text}, 200)"
    empty = f"{text} is null and {typed} is null"
    checks = [
        f"case when length({raw}) > {MAX_VALUE_CHARS} then '{Reason.VALUE_TOO_LONG}{SEP}"
        f"column \"{label}\": a value of ' || length({raw}) || ' characters, longer than the "
        f"{MAX_VALUE_CHARS} a cell can hold (an unclosed quote?)' end"
    ]
    if column.required:
        checks.append(
            f"case when {empty} then '{Reason.MISSING_REQUIRED_VALUE}{SEP}"
            f'column "{label}" is empty but required\' end'
        )
    others = [contract.column(n) for n in column.required_with if n in positions]
    if others and not column.required:
        filled = " or ".join(f"nullif(trim(c{positions[o.name]}), '') is not null" for o in others)
        names = ", ".join(f'"{o.header}"' for o in others).replace("'", "''")
        checks.append(
            f"case when {empty} and ({filled}) then '{Reason.MISSING_REQUIRED_VALUE}{SEP}"
            f'column "{label}" is empty but required when any of {names} is filled\' end'
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
    if column.max is not None:
        checks.append(
            f"case when {typed} > {column.max} then '{Reason.OUT_OF_RANGE}{SEP}"
            f"column \"{label}\": ' || {shown} || ' is above the maximum {column.max}' end"
        )
    if column.event_date:
        first = plausibility.earliest_date.isoformat()
        last = (load_date + timedelta(days=1)).isoformat()
        checks.append(
            f"case when cast({typed} as date) not between date '{first}' and date '{last}' "
            f"then '{Reason.IMPLAUSIBLE_DATE}{SEP}column \"{label}\": ' || {shown} || "
            f"' is outside {first} (MWH_EARLIEST_DATE) .. {last} (the load date + 1 day)' end"
        )
    if column.amount:
        scale = 100 if column.amount == "minor" else 1
        ceiling = plausibility.max_amount * scale
        n, median = _ident(f"_n:{column.name}"), _ident(f"_median:{column.name}")
        factor = plausibility.outlier_factor
        checks.append(
            f"case when {typed} > {ceiling} then '{Reason.IMPLAUSIBLE_AMOUNT}{SEP}"
            f"column \"{label}\": ' || {shown} || ' is above the ceiling of {ceiling:,f}"
            f"{' (minor units)' if scale > 1 else ''} (MWH_MAX_AMOUNT)' "
            f"when {n} >= {plausibility.outlier_min_values} and {typed} > {factor} * {median} "
            f"then '{Reason.IMPLAUSIBLE_AMOUNT}{SEP}column \"{label}\": ' || {shown} || "
            f"' is more than {factor:,} times the median ' || {median} || ' of the column''s ' "
            f"|| {n} || ' positive values in this file' end"
        )
    return checks


def _amount_stats(contract: Contract, positions: dict[str, int]) -> list[str]:
    """Per amount column of the file: how many positive values it holds and their median."""
    stats = []
    for column in contract.columns:
        if column.amount and column.name in positions:
            value = _ident(column.name)
            stats += [
                f"count({value}) filter (where {value} > 0) as {_ident(f'_n:{column.name}')}",
                f"median({value}) filter (where {value} > 0) as {_ident(f'_median:{column.name}')}",
            ]
    return stats


def _row_check_sql(contract: Contract, positions: dict[str, int]) -> list[str]:
    """The contract's ``row_checks`` whose columns are both in the file."""
    checks = []
    for check in contract.row_checks:
        if check.left not in positions or check.right not in positions:
            continue
        left, right = _ident(check.left), _ident(check.right)
        a, b = (contract.column(n).header.replace("'", "''") for n in (check.left, check.right))
        checks.append(
            f"case when not ({left} {check.op} {right}) then '{check.reason}{SEP}"
            f"column \"{a}\" (' || {left} || ') is not {check.op} "
            f"column \"{b}\" (' || {right} || ')' end"
        )
    return checks


def _day_month_pattern(formats: tuple[str, ...]) -> str:
    """A regular expression for dates in the shape of ``formats`` (the conflicting ones): one- or
    two-digit first and second fields ("5/11/2026") around their separators."""
    separators = sorted({f[2] for f in formats if len(f) > 2})
    sep = "[" + "".join(re.escape(c) for c in separators) + "]"
    return rf"^\s*([0-9]{{1,2}}){sep}([0-9]{{1,2}}){sep}[0-9]{{2,4}}"


def infer_date_order(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    positions: dict[str, int],
    filename: str,
) -> tuple[str | None, bool]:
    """(the file's day-month order, whether it was assumed) for a contract listing both orders.

    Evidence comes from every date and timestamp column with formats of both orders: a first field
    above 12 can only be a day, a second field above 12 only a day in second place. A file with
    evidence both ways is rejected (which reading applies to its other rows is unknowable); a file
    with none but values that read both ways is read in the contract's ``date_order``
    (``assumed``); a file with no date in that shape at all (ISO dates) needs no order: None."""
    values = []
    for column in contract.columns:
        if column.type not in {"date", "timestamp"} or column.name not in positions:
            continue
        listed = contract.date_formats if column.type == "date" else contract.timestamp_formats
        if conflicting := conflicting_formats(listed):
            pattern = _sql_str(_day_month_pattern(conflicting))
            values.append(
                f"select _row_number, {_sql_str(column.header)} as header, "
                f"c{positions[column.name]} as value, "
                f"try_cast(regexp_extract(c{positions[column.name]}, {pattern}, 1) as integer) "
                f"as first, "
                f"try_cast(regexp_extract(c{positions[column.name]}, {pattern}, 2) as integer) "
                f"as second from landed"
            )
    if not values:
        return None, False
    day_first = "first > 12 and second <= 12"
    month_first = "second > 12 and first <= 12"
    counts = con.execute(
        f"""
        select count(*) filter (where {day_first}), count(*) filter (where {month_first}),
            count(*) filter (where first <= 12 and second <= 12),
            arg_min(_row_number || ' (column "' || header || '": ' || left(value, 40) || ')',
                _row_number) filter (where {day_first}),
            arg_min(_row_number || ' (column "' || header || '": ' || left(value, 40) || ')',
                _row_number) filter (where {month_first})
        from ({" union all ".join(values)})
        """
    ).fetchone()
    days, months, either, day_example, month_example = counts
    if days and months:
        raise FileRejected(
            Reason.AMBIGUOUS_DATE_ORDER,
            f"{filename}: {days} date(s) are written day first (e.g. row {day_example}) and "
            f"{months} month first (e.g. row {month_example}); which order the "
            "other dates use cannot be told. Export the file again with one date format "
            "(YYYY-MM-DD is never ambiguous).",
        )
    if days or months:
        return ("day_first" if days else "month_first"), False
    return (contract.date_order, True) if either else (None, False)


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
        values = [i + 1 for i, h in enumerate(header) if DATA_LIKE.search(h)]
        found = (
            f"the first line holds values, not column names (cell(s) "
            f"{', '.join(map(str, values[:10]))} look like an e-mail, a number or a date): is the "
            f"header row missing? Its {len(header)} cells are not shown"
            if values
            else f"found {', '.join(repr(h) for h in header[:60] if h)}"
        )
        raise FileRejected(
            Reason.MISSING_REQUIRED_COLUMN,
            f"{filename}: required column(s) {', '.join(repr(m) for m in missing)} missing from "
            f"the header; {found}. Expected the {contract.source} {contract.entity} export layout.",
        )
    return positions, unknown


def _encoding(path: Path, result: FileResult) -> str:
    try:
        result.encoding = detect_encoding(path)
    except (UnicodeError, OSError) as exc:
        raise FileRejected(
            Reason.UNREADABLE_FILE, f"{path.name}: cannot be decoded as text ({exc})."
        ) from exc
    return result.encoding


def _screen(
    path: Path, contract: Contract, workdir: Path, result: FileResult
) -> tuple[Path, Landed, tuple[str, str, int]]:
    """Count a CSV or JSON-lines file's records (``count_records``) and make the loader's copy.

    Returns the copy, the count and, for a CSV, its header (line, delimiter, lines before it)."""
    encoding = _encoding(path, result)
    try:
        found, width = ("", ",", 0), 0
        if contract.format == "csv":
            found = _header_in((t for t, _ in _text_lines(path, encoding)), contract)
            width = len(next(csv.reader([found[0]], delimiter=found[1]), []))
        _, delimiter, skip = found
        landed = count_records(path, encoding, skip, delimiter, width, contract.format)
        landed.recount = lambda: count_records(
            path, encoding, skip, delimiter, width, contract.format, trace=True
        )
        return _clean_copy(path, encoding, landed, workdir), landed, found
    except UnicodeError as exc:
        raise FileRejected(
            Reason.UNREADABLE_FILE, f"{path.name}: cannot be decoded as text ({exc})."
        ) from exc


def _prepare(
    path: Path, contract: Contract, workdir: Path, result: FileResult, json_reader: str = "duckdb"
):
    """Any supported format -> (plain UTF-8 CSV path, delimiter, header, pre-rejects, lines
    before the header, record starts); ``result.rows_landed`` is counted here, apart from the
    load (``count_records``, ``count_json_records``, ``count_sheet_rows``). A JSON-lines file
    with ``json_reader`` "duckdb" comes back as its plain UTF-8 copy with no header: DuckDB
    reads it (``json_lines.landed_table``)."""
    pre_rejects: list[PreReject] = []
    recount: Callable[[], Landed] | None = None
    if path.stat().st_size == 0:
        raise FileRejected(Reason.EMPTY_FILE, f"{path.name}: the file is empty (0 bytes).")
    if contract.format == "csv":
        text_path, landed, (header_line, delimiter, skip) = _screen(path, contract, workdir, result)
        pre_rejects, recount = landed.rejects, landed.recount
        result.rows_landed = landed.records
    else:
        text_path = workdir / "landed.csv"  # never named after the landed file: names may be long
        try:
            if contract.format == "xlsx":
                result.encoding = "xlsx"
                skipped, sheet, header_row = xlsx_to_csv(
                    path, text_path, contract.sheet, _header_test(contract)
                )
                if skipped:
                    result.unknown_columns.append(f"(sheets not read: {', '.join(skipped)})")
                result.rows_landed = count_sheet_rows(path, sheet, header_row)
            elif contract.format == "jsonl":
                source, landed, _ = _screen(path, contract, workdir, result)
                result.rows_landed, recount = landed.records, landed.recount
                if json_reader == "duckdb":  # read in extract_file, or converted there
                    return source, "", None, landed.rejects, 0, recount
                pre_rejects = landed.rejects + json_to_csv(source, text_path, lines=True)
            else:
                source = _json_source(path, workdir, result)
                pre_rejects = json_to_csv(source, text_path, lines=False)
                result.rows_landed = count_json_records(source)
        except FormatError as exc:
            raise FileRejected(Reason.UNREADABLE_FILE, f"{path.name}: {exc}") from exc
        header_line, delimiter, skip = _find_header(text_path, contract)
    result.delimiter = delimiter if contract.format == "csv" else ""
    header = _csv_header(path, header_line, delimiter, pre_rejects)
    return text_path, delimiter, header, pre_rejects, skip, recount


def _csv_header(path: Path, header_line: str, delimiter: str, pre_rejects: list) -> list[str]:
    if not header_line:
        raise FileRejected(Reason.EMPTY_FILE, f"{path.name}: the file is empty (no header).")
    header = next(csv.reader(io.StringIO(header_line), delimiter=delimiter))
    if header == [ROW_COLUMN] and not pre_rejects:
        raise FileRejected(Reason.EMPTY_FILE, f"{path.name}: the file holds no records.")
    return header


def _json_source(path: Path, workdir: Path, result: FileResult) -> Path:
    """A JSON array file as plain UTF-8. Its records cannot be told apart by line, so a file
    holding lines that are not valid in its encoding is rejected whole, naming them."""
    encoding = _encoding(path, result)
    try:
        bad = [n for n, (_, ok) in enumerate(_text_lines(path, encoding), start=1) if not ok]
        if bad:
            raise FileRejected(
                Reason.UNREADABLE_FILE,
                f"{path.name}: line(s) {', '.join(map(str, bad[:10]))} are not valid {encoding} "
                "like the rest of the file; re-export it in one encoding (UTF-8).",
            )
        return _as_plain_utf8(path, encoding, workdir)
    except UnicodeError as exc:
        raise FileRejected(
            Reason.UNREADABLE_FILE, f"{path.name}: cannot be decoded as text ({exc})."
        ) from exc


def _summary_row_check(
    contract: Contract, positions: dict[str, int], data_columns: list[tuple[int, str]]
) -> str:
    """SQL flagging a report's total row by its structure, not by a name.

    Google Ads ends a download with rows such as ``Total: Account,,,EUR,1234,…`` or ``Total:
    Campaigns`` under an empty Day and Campaign ID: a cell matches ``summary_row_pattern`` and
    every date and key column is empty or is that cell. A campaign named "Total Sale Nov" has a
    day and an id, so it loads. A contract without date or key columns falls back to the first
    column matching the pattern."""
    pattern = _sql_str(contract.summary_row_pattern)
    keyed = [
        f"c{positions[c.name]}"
        for c in contract.columns
        if c.name in positions
        and (c.type in {"date", "timestamp"} or c.name in contract.primary_key)
    ]

    def label(col: str) -> str:
        return f"regexp_matches(coalesce({col}, ''), {pattern})"

    if keyed:
        cells = [f"c{i}" for i, _ in data_columns]
        condition = f"({' or '.join(label(c) for c in cells)}) and " + " and ".join(
            f"(nullif(trim({c}), '') is null or {label(c)})" for c in keyed
        )
    else:
        condition = label(f"c{data_columns[0][0]}")
    return (
        f"case when {condition} then '{Reason.SUMMARY_ROW}{SEP}"
        f"a summary row of the report (a total under empty date and key columns), not a record' end"
    )


def _header_test(contract: Contract):
    """Whether a spreadsheet row is the contract's header: it names every required column."""
    required = [c for c in contract.columns if c.required]

    def is_header(cells: list[str]) -> bool:
        return all(any(c.matches(cell) for cell in cells) for c in required)

    return is_header


#: DuckDB errors that are not a file's fault: out of memory, or a fatal error that invalidated the
#: database the files of a source share. Extraction fails the task on them (Airflow retries).
DUCKDB_RESOURCE_ERRORS = (duckdb.OutOfMemoryException, duckdb.FatalException)
#: How JSON-lines files can be read (``extract_file``'s ``json_reader``).
JSON_READERS = ("duckdb", "python")


def _reader_failed(path: Path, reader: str, exc: duckdb.Error) -> FileRejected:
    """The rejection of a file DuckDB's ``reader`` could not read: the error's first line only
    (the rest quotes the line, a person's record)."""
    return FileRejected(
        Reason.UNREADABLE_FILE,
        f"{path.name}: the {reader} reader failed: {str(exc).split(chr(10))[0][:500]}",
    )


def extract_file(
    path: Path,
    contract: Contract,
    load_date: date,
    out_file: Path,
    quarantine_file: Path,
    loaded_at: datetime,
    file_hash: str | None = None,
    database: duckdb.DuckDBPyConnection | None = None,
    plausibility: Plausibility = DEFAULT_PLAUSIBILITY,
    json_reader: str = "duckdb",
) -> FileResult:
    """Type one landed file into ``out_file`` (Parquet) and its rejects into ``quarantine_file``.

    ``file_hash``: the file's SHA-256 when the caller has already computed it. ``database``: an
    in-memory DuckDB database from ``extraction_database``, shared by the files extracted at the
    same time (each file gets its own connection to it, so its temporary tables are its own);
    by default a new one for this file. ``plausibility``: the bounds of ``event_date`` and
    ``amount`` columns (the settings'). ``json_reader``: how JSON-lines files are read,
    "duckdb" (``json_lines``) or "python" (``formats.json_to_csv``, the definition both give
    the rows of)."""
    if json_reader not in JSON_READERS:
        raise ValueError(f"json_reader must be one of {JSON_READERS}, not {json_reader!r}")
    file_hash = file_hash or file_sha256(path)
    result = FileResult(
        source_file=path.name, file_hash=file_hash, load_date=load_date.isoformat(), status="loaded"
    )
    with tempfile.TemporaryDirectory(prefix="mwh-extract-") as tmp:
        workdir = Path(tmp)
        text_path, delimiter, header, pre_rejects, skip, recount = _prepare(
            path, contract, workdir, result, json_reader
        )
        own = database is None
        if own:
            database = extraction_database(DEFAULT_DUCKDB_MEMORY_LIMIT, workdir / "spill")
        con = database.cursor()
        try:
            read = None
            if header is None:  # JSON lines, read by DuckDB unless the CSV path must read it
                try:
                    read = json_lines.landed_table(con, text_path, contract)
                except DUCKDB_RESOURCE_ERRORS:
                    raise  # not the file's fault
                except duckdb.Error as exc:
                    raise _reader_failed(path, "JSON", exc) from exc
                if read is None:
                    csv_path = workdir / "landed.csv"
                    pre_rejects = pre_rejects + json_to_csv(text_path, csv_path, lines=True)
                    header_line, delimiter, skip = _find_header(csv_path, contract)
                    header = _csv_header(path, header_line, delimiter, pre_rejects)
                    text_path = csv_path
                else:
                    header, json_rejects = read
                    pre_rejects = pre_rejects + json_rejects
            has_row_column = header[0] == ROW_COLUMN
            data_columns = [(i, h) for i, h in enumerate(header) if not (has_row_column and i == 0)]
            positions, unknown = _map_header(
                contract,
                [h if i or not has_row_column else "" for i, h in enumerate(header)],
                path.name,
            )
            result.unknown_columns = unknown + result.unknown_columns

            raw_cols = {f"c{i}": "VARCHAR" for i in range(len(header))}
            columns_sql = "{" + ", ".join(f"'{k}': 'VARCHAR'" for k in raw_cols) + "}"
            try:
                if read is None:  # else ``landed`` is there
                    con.execute(
                        f"""
                    create temp table landed as
                    select {"try_cast(c0 as bigint)" if has_row_column else "row_number() over ()"}
                        as _row_number, row_number() over () as _seq, *
                    from read_csv({_sql_str(str(text_path))},
                        header = true, auto_detect = false, skip = {skip},
                        delim = {_sql_str(delimiter)}, quote = '"', escape = '"',
                        columns = {columns_sql}, store_rejects = true,
                        max_line_size = {MAX_LINE_SIZE})
                    """
                    )
            except DUCKDB_RESOURCE_ERRORS:
                raise  # not the file's fault
            except duckdb.Error as exc:
                raise _reader_failed(path, "CSV", exc) from exc

            date_order, assumed = infer_date_order(con, contract, positions, path.name)
            if date_order:
                result.date_order, result.date_order_assumed = date_order, assumed
                if assumed:
                    log.warning(
                        "%s: no date tells whether day or month comes first; read as %s "
                        "(the %s contract's date_order)",
                        path.name,
                        date_order.replace("_", " "),
                        contract.key,
                    )
            group_text = (
                f"nullif(trim(c{positions[contract.record_group]}), '')"
                if contract.record_group in positions
                else None
            )
            select_typed = []
            checks: list[str] = []
            filled: list[str] = []
            for column in contract.columns:
                if column.name in positions:
                    raw = f"c{positions[column.name]}"
                    typed, reason, expected = _typed_expr(column, raw, contract, date_order)
                    if column.fill_from_record and group_text:
                        # an empty value: the record's first row's (Shopify order-level fields)
                        text = f"nullif(trim({raw}), '')"
                        typed = (
                            f"case when {text} is null and {group_text} is not null then "
                            f"first_value({typed}) over (partition by {group_text} order by _seq) "
                            f"else {typed} end"
                        )
                        filled.append(
                            f"case when {text} is null and {_ident(column.name)} is not null "
                            f"then {_sql_str(column.header)} end"
                        )
                    # checks read the typed column computed once in the inner query
                    checks += _checks(
                        column,
                        raw,
                        _ident(column.name),
                        reason,
                        expected,
                        contract=contract,
                        positions=positions,
                        load_date=load_date,
                        plausibility=plausibility,
                    )
                else:
                    typed = "null"
                select_typed.append(
                    f"cast({typed} as {SQL_TYPES[column.type]}) as {_ident(column.name)}"
                )
            checks += _row_check_sql(contract, positions)
            stats = _amount_stats(contract, positions)
            header_match = " and ".join(
                f"trim(c{i}) = {_sql_str(h.strip())}" for i, h in data_columns if h.strip()
            )
            checks.insert(
                0,
                f"case when {header_match or 'false'} then '{Reason.REPEATED_HEADER}{SEP}"
                f"the header row appears again inside the file' end",
            )
            if contract.summary_row_pattern:
                checks.insert(0, _summary_row_check(contract, positions, data_columns))
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
                ),
                file_stats as (
                    {f"select {', '.join(stats)} from typed_values" if stats else "select 1"}
                )
                select
                    _row_number,
                    _seq,
                    {", ".join(_ident(c.name) for c in contract.columns)},
                    list_filter([{", ".join(checks)}], x -> x is not null) as _errors,
                    list_filter([{", ".join(filled)}], x -> x is not null) as _filled
                from typed_values cross join file_stats
                """
            )
            if contract.unique_key:
                _quarantine_key_conflicts(con, contract)
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
                    [reject.row_number, reject.raw, str(reject.reason), reject.detail],
                )
            result.rows_loaded = con.execute(
                "select count(*) from typed where len(_errors) = 0"
            ).fetchone()[0]
            result.rows_quarantined = con.execute("select count(*) from quarantined").fetchone()[0]
            result.formula_values = _formula_counts(con, contract, positions)
            result.filled_values = dict(
                con.execute(
                    "select header, count(*) from (select unnest(_filled) as header from typed "
                    "where len(_errors) = 0) group by 1 order by 1"
                ).fetchall()
            )
            accounted = result.rows_loaded + result.rows_quarantined
            if accounted != result.rows_landed:
                result.rows_lost_at = _where_lost(con, result, accounted, recount, path.name)
                result.message = result.rows_lost_at
            result.quarantine_reasons = dict(
                con.execute(
                    "select reason_code, count(*) from quarantined group by 1 order by 1"
                ).fetchall()
            )
            if result.rows_landed == 0 and accounted == 0:
                raise FileRejected(
                    Reason.EMPTY_FILE, f"{path.name}: the file has a header but no data rows."
                )
            if result.rows_quarantined:
                quarantine_file.parent.mkdir(parents=True, exist_ok=True)
                # the declared types, whatever a reader's row numbers were (a DOUBLE here and a
                # BIGINT there would not merge on engines that check the files' schemas)
                typed_columns = ", ".join(
                    f"cast({_ident(n)} as {t}) as {_ident(n)}" for n, t in QUARANTINE_SCHEMA.items()
                )
                con.execute(
                    f"copy (select {typed_columns} from quarantined order by row_number) to "
                    f"{_sql_str(str(quarantine_file))} (format parquet)"
                )
        finally:
            con.close()
            if own:
                database.close()
    return result


def _quarantine_key_conflicts(con: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    """``unique_key``: among rows not already quarantined, a repeat of an identical row and every
    row of a key whose rows disagree go to quarantine (``conflicting_key``). Keys are compared
    typed (e-mails lower-cased); the detail names row numbers, never the key's values."""
    keys = ", ".join(_ident(k) for k in contract.primary_key)
    others = [c.name for c in contract.columns if c.name not in contract.primary_key]
    row_value = f"md5(cast(row({', '.join(_ident(n) for n in others) or 'null'}) as varchar))"
    key_label = ", ".join(contract.column(k).header for k in contract.primary_key).replace(
        "'", "''"
    )
    con.execute(
        f"""
        create temp table key_conflicts as
        select _seq, first_row, all_rows, distinct_rows from (
            select _seq, _row_number,
                min(_row_number) over w as first_row,
                array_to_string(list_sort(list(_row_number) over w), ', ') as all_rows,
                count(*) over w as copies,
                min({row_value}) over w <> max({row_value}) over w as distinct_rows
            from typed
            where len(_errors) = 0 and {" and ".join(f"{_ident(k)} is not null" for k in contract.primary_key)}
            window w as (partition by {keys})
        ) where copies > 1 and (distinct_rows or _row_number > first_row)
        """
    )
    con.execute(
        f"""
        update typed set _errors = [
            '{Reason.CONFLICTING_KEY}{SEP}' || case when key_conflicts.distinct_rows
                then 'rows ' || key_conflicts.all_rows || ' share the key ({key_label}) '
                    || 'but hold different values: which one is right cannot be told'
                else 'a repeat of row ' || key_conflicts.first_row
                    || ' (same key ({key_label}) and values)' end]
        from key_conflicts where typed._seq = key_conflicts._seq
        """
    )
    con.execute("drop table key_conflicts")


def _where_lost(
    con, result: FileResult, accounted: int, recount: Callable[[], Landed] | None, name: str
) -> str:
    """Name the file and the lines of the records the loader lost (or read in excess).

    The file is counted again, keeping each record's first line and a hash of its fields (JSON
    lines: the line number, which the loader keeps as ``__source_row``); the loader's records
    are lined up against them from both ends, and the lines in between are named."""
    text = (
        f"{name}: {result.rows_landed} records landed but {result.rows_loaded} loaded + "
        f"{result.rows_quarantined} quarantined = {accounted}"
    )
    if recount is None:
        return text + "; the rows of the file differ from what the loader read."
    rejected = {r[0] for r in con.execute("select distinct line from reject_errors").fetchall()}
    expected = [t for t in recount().trace if t[0] not in rejected]
    width = len(con.execute("select * from landed limit 0").description) - 2
    if expected and expected[0][1] == str(expected[0][0]):  # JSON lines
        key = "c0"
    else:
        key = (
            "md5(concat_ws(chr(31), "
            + ", ".join(f"coalesce(c{i}, '')" for i in range(width))
            + "))"
        )
    got = [r[0] for r in con.execute(f"select {key} from landed order by _seq").fetchall()]
    head = 0
    while head < min(len(expected), len(got)) and expected[head][1] == got[head]:
        head += 1
    tail = 0
    while tail < min(len(expected), len(got)) - head and expected[-1 - tail][1] == got[-1 - tail]:
        tail += 1
    missing = expected[head : len(expected) - tail]
    if not missing:
        after = f"line {expected[head - 1][0]}" if head else "the header"
        return f"{text}: the loader read {len(got) - len(expected)} record(s) more, after {after}."
    return (
        f"{text}: the {len(missing)} record(s) at lines {missing[0][0]}-{missing[-1][0]} did not "
        f"reach the loader as they are in the file (it read {len(got)} of {len(expected)})."
    )


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
            file_preview(path, file_hash),
            str(rejection.reason),
            rejection.message,
            loaded_at,
        ])  # fmt: skip
        con.execute(f"copy entry to {_sql_str(str(quarantine_file))} (format parquet)")
    finally:
        con.close()


def file_preview(path: Path, file_hash: str) -> str:
    """What a whole-file quarantine entry keeps of the file: its size, hash and, for a binary file,
    its kind; never its bytes (the first line of a headerless export is a person's record, and
    any file may be one). The landed file itself stays in the landing folder."""
    with path.open("rb") as handle:
        head = handle.read(1 << 16)
    kind = None if _utf16_variant(head) else _binary_kind(head)
    return (
        f"(content not copied: {path.stat().st_size} bytes, sha256 {file_hash}"
        + (f", {kind}" if kind else "")
        + ")"
    )


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
