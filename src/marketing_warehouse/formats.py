"""JSON, JSON-lines and Excel exports -> one plain CSV the typing step reads like any other.

The CSV written here starts with a ``__source_row`` column holding each record's position in the
original file (JSON-lines: the line number; JSON array: the 1-based index; xlsx: the sheet's row
number), so quarantine entries point back to the original file. Records that cannot be parsed at
all come back as ``PreReject`` entries and are quarantined as ``malformed_row``.
Nested JSON objects are flattened with dots (``{"customer": {"email": …}}`` -> ``customer.email``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

ROW_COLUMN = "__source_row"


class FormatError(ValueError):
    """The file as a whole is not valid in its declared format."""


@dataclass(frozen=True)
class PreReject:
    row_number: int
    raw: str
    detail: str


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


def json_to_csv(path: Path, target: Path, lines: bool) -> list[PreReject]:
    """JSON-lines (one object per line) or a JSON array of objects -> CSV."""
    records: list[tuple[int, dict[str, object]]] = []
    rejects: list[PreReject] = []
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    if lines:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                rejects.append(
                    PreReject(number, line[:10000], f"line {number}: invalid JSON ({exc.msg})")
                )
                continue
            if not isinstance(value, dict):
                rejects.append(PreReject(number, line[:10000], f"line {number}: not a JSON object"))
                continue
            records.append((number, _flatten(value)))
    else:
        try:
            value = json.loads(text) if text.strip() else []
        except json.JSONDecodeError as exc:
            raise FormatError(
                f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
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
    _write(target, records, _ordered_keys(records))
    return rejects


def xlsx_to_csv(path: Path, target: Path, sheet: str | None) -> list[str]:
    """One sheet of a workbook -> CSV; returns the names of the sheets that were not read.

    The header is the first row with any value; fully empty rows (blank trailing rows included)
    are not records. Merged header cells keep their value in the first cell only, so an empty
    header cell right of a merged one is named after it with a numeric suffix.
    """
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged or non-xlsx file
        raise FormatError(f"not a readable .xlsx workbook ({type(exc).__name__}: {exc})") from None
    try:
        names = workbook.sheetnames
        if sheet is not None and sheet not in names:
            raise FormatError(f"sheet {sheet!r} not found; the workbook has {names}")
        chosen = sheet or names[0]
        rows = workbook[chosen].iter_rows(values_only=True)
        header: list[str] | None = None
        records: list[tuple[int, dict[str, object]]] = []
        for number, row in enumerate(rows, start=1):
            if row is None or all(v is None or (isinstance(v, str) and not v.strip()) for v in row):
                continue
            if header is None:
                header, previous = [], ""
                for index, value in enumerate(row):
                    name = _cell(value).strip()
                    if not name and previous:
                        name = f"{previous} {index}"
                    header.append(name)
                    previous = name or previous
                continue
            records.append((number, {h: v for h, v in zip(header, row, strict=False) if h}))
        _write(target, records, [h for h in header or [] if h])
        return [n for n in names if n != chosen]
    finally:
        workbook.close()
