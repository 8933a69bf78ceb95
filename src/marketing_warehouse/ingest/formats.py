"""JSON, JSON-lines and Excel exports -> one plain CSV the typing step reads like any other.

The CSV written here starts with a ``__source_row`` column holding each record's position in the
original file (JSON-lines: the line number; JSON array: the 1-based index; xlsx: the sheet's row
number), so quarantine entries point back to the original file. Records that cannot be parsed at
all come back as ``PreReject`` entries and are quarantined as ``malformed_row``.
Nested JSON objects are flattened with dots (``{"customer": {"email": …}}`` -> ``customer.email``).
JSON keys match like CSV headers: ``messageId``, ``MessageID`` and `` messageid `` are one column
(named as first seen), so records from two versions of an exporter load together.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from itertools import zip_longest
from pathlib import Path

from marketing_warehouse.ingest.contracts import normalise_header
from marketing_warehouse.ingest.quarantine import Reason

ROW_COLUMN = "__source_row"
#: Delimiters a CSV header is split by (the one giving most cells wins).
DELIMITERS = (",", ";", "\t", "|")
#: The longest line DuckDB's CSV reader is given (``max_line_size``); a longer one fails it.
MAX_LINE_SIZE = 10_000_000


class FormatError(ValueError):
    """The file as a whole is not valid in its declared format."""


@dataclass(frozen=True)
class PreReject:
    row_number: int
    raw: str
    detail: str
    reason: Reason = Reason.MALFORMED_ROW


def _flatten(record: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float | Decimal):
        # a number written "1.085" would read as 1085 to a reader guessing thousands separators:
        # a trailing zero ("1.0850") keeps the value and removes the doubt
        text = str(value)
        return text + "0" if re.fullmatch(r"-?[0-9]{1,3}\.[0-9]{3}", text) else text
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _write(target: Path, records: list[tuple[int, dict[str, object]]], keys: list[str]) -> None:
    with target.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([ROW_COLUMN, *keys])
        for number, record in records:
            writer.writerow([number, *(_cell(record.get(k)) for k in keys)])


def _ordered_keys(records: list[tuple[int, dict[str, object]]]) -> list[str]:
    keys: dict[str, None] = {}
    for _, record in records:
        keys.update(dict.fromkeys(record))
    return list(keys)


def _same_keys(record: dict[str, object], spelling: dict[str, str]) -> dict[str, object]:
    """``record`` with each key spelt as the first key seen that matches it as a header would
    (``normalise_header``); of two matching keys in one record the first non-null value wins."""
    out: dict[str, object] = {}
    for key, item in record.items():
        name = spelling.setdefault(normalise_header(key), key)
        if out.get(name) is None:
            out[name] = item
    return out


def _holds_nul(record: dict[str, object]) -> str | None:
    """The first key whose value holds a NUL character (JSON ``\\u0000``), if any."""
    return next((k for k, v in record.items() if "\x00" in _cell(v)), None)


def parse_json_line(number: int, line: str) -> dict[str, object] | PreReject:
    """One line of a JSON-lines export: its object, or why the line is rejected."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        return PreReject(number, line[:10000], f"line {number}: invalid JSON ({exc.msg})")
    if not isinstance(value, dict):
        return PreReject(number, line[:10000], f"line {number}: not a JSON object")
    return value


def json_to_csv(path: Path, target: Path, lines: bool) -> list[PreReject]:
    """JSON-lines (one object per line) or a JSON array of objects -> CSV."""
    records: list[tuple[int, dict[str, object]]] = []
    rejects: list[PreReject] = []
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    if lines:  # lines end at "\n" only: U+2028 and other separators may sit inside a value
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            value = parse_json_line(number, line)
            if isinstance(value, PreReject):
                rejects.append(value)
                continue
            records.append((number, _flatten(value)))
    else:
        try:
            value = json.loads(text) if text.strip() else []
        except json.JSONDecodeError as exc:
            hint = (
                "; it ends in the middle of a value: the file looks truncated"
                if exc.pos >= len(text.rstrip()) - 1
                else ""
            )
            raise FormatError(
                f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}{hint}"
            ) from None
        if isinstance(value, dict):  # {"data": [...]} or {"redemptions": [...]} wrappers
            lists = [v for v in value.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise FormatError("expected a JSON array of records or an object holding one")
            value = lists[0]
        if not isinstance(value, list):
            raise FormatError("expected a JSON array of records")
        for number, item in enumerate(value, start=1):
            if isinstance(item, dict):
                records.append((number, _flatten(item)))
            else:
                rejects.append(
                    PreReject(
                        number, json.dumps(item)[:10000], f"record {number}: not a JSON object"
                    )
                )
    spelling: dict[str, str] = {}
    kept = []
    for number, record in records:
        record = _same_keys(record, spelling)
        key = _holds_nul(record)
        if key is None:
            kept.append((number, record))
        else:
            raw = json.dumps(record, ensure_ascii=False, default=str)  # NUL shown as \u0000
            rejects.append(
                PreReject(
                    number,
                    raw[:10000],
                    f"{'line' if lines else 'record'} {number}: key {key!r} holds NUL characters",
                    Reason.NUL_BYTES,
                )
            )
    _write(target, kept, _ordered_keys(kept))
    return rejects


def _header_cells(row: tuple) -> list[str]:
    """Header names of a row; an empty cell right of a named one (a merged header cell keeps its
    value in the first cell only) is named after it with its position."""
    header, previous = [], ""
    for index, value in enumerate(row):
        name = _cell(value).strip()
        if not name and previous:
            name = f"{previous} {index}"
        header.append(name)
        previous = name or previous
    return header


def _blank(row: tuple | None) -> bool:
    return row is None or all(v is None or (isinstance(v, str) and not v.strip()) for v in row)


def _sheet_table(
    rows, is_header: Callable[[list[str]], bool] | None
) -> tuple[list[str] | None, list[tuple[int, dict[str, object]]], bool, int]:
    """(header, records, whether the header passed ``is_header``, the header's row) of one sheet.

    The header is the first of the first 30 non-blank rows that ``is_header`` accepts (a title,
    merged across the columns, and notes may sit above it); failing that, the first non-blank row.
    Rows above the header are not records.
    """
    buffered: list[tuple[int, tuple]] = []
    header: list[str] | None = None
    found = False
    header_row = 0
    records: list[tuple[int, dict[str, object]]] = []
    for number, row in enumerate(rows, start=1):
        if _blank(row):
            continue
        if header is None:
            buffered.append((number, row))
            if is_header is None or is_header(_header_cells(row)):
                header, found, header_row = _header_cells(row), True, number
                buffered = []
            elif len(buffered) >= 30:  # no header in sight: the first row is the header
                header, header_row = _header_cells(buffered[0][1]), buffered[0][0]
                records = [(n, _record(header, r)) for n, r in buffered[1:]]
                buffered = []
            continue
        records.append((number, _record(header, row)))
    if header is None and buffered:  # no row names the required columns: take the first one
        header, header_row = _header_cells(buffered[0][1]), buffered[0][0]
        records = [(n, _record(header, r)) for n, r in buffered[1:]]
    return header, records, found, header_row


def _record(header: list[str], row: tuple) -> dict[str, object]:
    return {h: v for h, v in zip(header, row, strict=False) if h}


def xlsx_to_csv(
    path: Path,
    target: Path,
    sheet: str | None,
    is_header: Callable[[list[str]], bool] | None = None,
) -> tuple[list[str], str, int]:
    """One sheet of a workbook -> CSV; returns the names of the sheets that were not read, the
    sheet read and its header's row number (for ``count_sheet_rows``).

    ``sheet`` None means the first sheet whose header ``is_header`` accepts (a "Read me" sheet in
    front is passed over), else the first sheet. Fully empty rows (blank trailing rows included)
    are not records. A formula cell is read as the value Excel last computed; a formula never
    computed (a workbook written by a script) is read as its text, ``=…``, so it is seen and
    quarantined or flagged instead of silently becoming an empty cell.

    Values are read with calamine; a workbook calamine cannot read exactly as openpyxl does (a
    formula without a cached value, a sheet without a ``<dimension>``, a whole number past 2^53,
    anything calamine fails on) is read with openpyxl, which also names what is wrong with a
    damaged file.
    """
    try:
        return _xlsx_to_csv_calamine(path, target, sheet, is_header)
    except _NotForCalamine:
        return xlsx_to_csv_openpyxl(path, target, sheet, is_header)


def xlsx_to_csv_openpyxl(
    path: Path,
    target: Path,
    sheet: str | None,
    is_header: Callable[[list[str]], bool] | None = None,
) -> tuple[list[str], str, int]:
    """``xlsx_to_csv`` read with openpyxl alone (cached values, then formulas)."""
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
        formulas = load_workbook(path, read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises many types for a damaged or non-xlsx file
        raise FormatError(f"not a readable .xlsx workbook ({type(exc).__name__}: {exc})") from None
    try:
        return _convert(
            workbook.sheetnames,
            lambda name: _with_formulas(
                workbook[name].iter_rows(values_only=True),
                formulas[name].iter_rows(values_only=True),
            ),
            target,
            sheet,
            is_header,
        )
    finally:
        workbook.close()
        formulas.close()


def _convert(names, rows_of, target, sheet, is_header) -> tuple[list[str], str, int]:
    if sheet is not None and sheet not in names:
        raise FormatError(f"sheet {sheet!r} not found; the workbook has {names}")
    candidates = [sheet] if sheet is not None else names
    chosen, header, records, header_row = candidates[0], None, [], 0
    for index, name in enumerate(candidates):
        table = _sheet_table(rows_of(name), is_header)
        if index == 0 or table[2]:
            chosen, header, records, header_row = name, table[0], table[1], table[3]
        if table[2]:
            break
    _write(target, records, [h for h in header or [] if h])
    return [n for n in names if n != chosen], chosen, header_row


class _NotForCalamine(Exception):
    """The workbook is read with openpyxl instead."""


_REL_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_WORKSHEET_TYPE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"
_DIMENSION = re.compile(rb"<(?:\w+:)?dimension\s+ref=\"(?:[A-Z]+[0-9]+:)?([A-Z]+)([0-9]+)\"")
_CELL = re.compile(rb"<(?:\w+:)?c[\s>][^>]*?(?<!/)>(.*?)</(?:\w+:)?c>", re.DOTALL)
_FORMULA = re.compile(rb"<(?:\w+:)?f[\s>/]")
_VALUE = re.compile(rb"<(?:\w+:)?v(?:\s[^>]*)?>[^<]")  # a value, not an empty <v />
_CELL_START = re.compile(rb"<(?:\w+:)?c[\s>]")


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + letter - 64
    return number


def _sheet_plan(path: Path) -> dict[str, tuple[int, int]]:
    """Each sheet's (rows, columns) as its ``<dimension>`` gives them (openpyxl reads that many),
    in workbook order; raises ``_NotForCalamine`` unless every sheet is a worksheet with a
    dimension and no formula cell without a cached value."""
    import zipfile
    from xml.etree import ElementTree

    try:
        with zipfile.ZipFile(path) as archive:
            rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
            targets = {r.get("Id"): (r.get("Type"), r.get("Target")) for r in rels}
            book = ElementTree.fromstring(archive.read("xl/workbook.xml"))
            plan: dict[str, tuple[int, int]] = {}
            for node in book.iter():
                if not node.tag.endswith("}sheet"):
                    continue
                kind, member = targets[node.get(f"{_REL_NS}id")]
                if kind != _WORKSHEET_TYPE:
                    raise _NotForCalamine
                member = member.lstrip("/") if member.startswith("/") else f"xl/{member}"
                with archive.open(member) as handle:
                    plan[node.get("name")] = _scan_sheet(handle)
            return plan
    except _NotForCalamine:
        raise
    except Exception:  # damaged or not a workbook: openpyxl names what is wrong
        raise _NotForCalamine from None


def _scan_sheet(handle) -> tuple[int, int]:
    """(rows, columns) of a sheet's XML stream; ``_NotForCalamine`` for a sheet without a
    dimension or with a formula cell that holds no cached value (streamed, chunk by chunk)."""
    dimension = None
    carry = b""
    while chunk := handle.read(1 << 20):
        buffer = carry + chunk
        if dimension is None:
            found = _DIMENSION.search(buffer)
            if found:
                dimension = (int(found.group(2)), _column_number(found.group(1)))
            elif b"<sheetData" in buffer:
                raise _NotForCalamine
        starts = [m.start() for m in _CELL_START.finditer(buffer, max(0, len(buffer) - 65536))]
        cut = starts[-1] if starts else len(buffer)
        if _FORMULA.search(buffer, 0, cut):
            for cell in _CELL.finditer(buffer, 0, cut):
                body = cell.group(1)
                if _FORMULA.search(body) and not _VALUE.search(body):
                    raise _NotForCalamine
        carry = buffer[cut:]
    if carry and _FORMULA.search(carry):
        for cell in _CELL.finditer(carry):
            if _FORMULA.search(cell.group(1)) and not _VALUE.search(cell.group(1)):
                raise _NotForCalamine
    if dimension is None:
        raise _NotForCalamine
    return dimension


_EXACT = 2**53


def _as_openpyxl(value: object) -> object:
    """A calamine value as openpyxl gives it: whole numbers as ``int`` (xlsx stores ``<v>1</v>``
    for an integer), a date cell as a ``datetime`` at midnight, times to the millisecond."""
    if value == "" or value is None:
        return None
    if isinstance(value, bool | str):
        return value
    if isinstance(value, float):
        if value.is_integer():
            if abs(value) >= _EXACT:  # openpyxl reads the digits exactly, a float cannot
                raise _NotForCalamine
            return int(value)
        return value
    if isinstance(value, datetime):
        return _to_millisecond(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, time):
        return _to_millisecond(datetime.combine(date(2000, 1, 1), value)).time()
    return value


def _to_millisecond(value: datetime) -> datetime:
    from datetime import timedelta

    micro = value.microsecond
    rounded = round(micro / 1000) * 1000
    return value.replace(microsecond=0) + timedelta(microseconds=rounded)


def _xlsx_to_csv_calamine(path, target, sheet, is_header) -> tuple[list[str], str, int]:
    from python_calamine import CalamineWorkbook

    plan = _sheet_plan(path)
    try:
        workbook = CalamineWorkbook.from_path(str(path))
    except Exception:
        raise _NotForCalamine from None
    try:
        if list(workbook.sheet_names) != list(plan):
            raise _NotForCalamine

        def rows_of(name: str):
            height, width = plan[name]
            try:
                data = workbook.get_sheet_by_name(name).to_python(skip_empty_area=False)
            except Exception:
                raise _NotForCalamine from None
            blank = (None,) * width
            for index in range(height):
                if index >= len(data):
                    yield blank
                    continue
                row = [_as_openpyxl(v) for v in data[index][:width]]
                yield tuple(row) + (None,) * (width - len(row))

        return _convert(list(plan), rows_of, target, sheet, is_header)
    finally:
        workbook.close()


def count_sheet_rows(path: Path, sheet: str, header_row: int) -> int:
    """Rows of ``sheet`` below ``header_row`` that hold anything (a value or a formula).

    The landed count of a workbook for the load ledger, read apart from ``xlsx_to_csv``: a row the
    conversion drops shows up as a difference between landed and loaded + quarantined."""
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=False)
    try:
        return sum(
            1
            for row in workbook[sheet].iter_rows(min_row=header_row + 1, values_only=True)
            if any(v is not None and str(v).strip() for v in row)
        )
    finally:
        workbook.close()


def _with_formulas(values, formulas):
    """Cached values, with the formula text where a formula cell has no cached value."""
    for row, source in zip_longest(values, formulas, fillvalue=()):
        yield tuple(
            f if v is None and isinstance(f, str) and f.startswith("=") else v
            for v, f in zip_longest(row or (), source or ())
        )
