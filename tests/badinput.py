"""A generated corpus of bad input files, one set per source contract.

Each case writes one landed file for a contract (in the contract's own format: CSV, JSON,
JSON lines or xlsx) and says what must become of it: loaded (possibly with some rows quarantined)
or rejected whole, with which quarantine reasons and which words in the message. Files are
generated, not committed, so the corpus follows the contracts when they change.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from marketing_warehouse.contracts import Column, Contract, load_contracts

FORMULAS = ('=HYPERLINK("http://evil.example/x","click")', "+cmd|' /C calc'!A0", "@SUM(1+1)")
HUGE = "x" * (5 * 1024 * 1024)


@dataclass
class Expect:
    status: str  # loaded | rejected
    reasons: dict[str, int] = field(default_factory=dict)  # quarantine reason -> rows
    loaded: int | None = None
    words: tuple[str, ...] = ()  # in the message (rejected) or the quarantine details (loaded)
    unknown: tuple[str, ...] = ()  # reported as unknown columns
    formula_values: int = 0


def filename(contract: Contract, suffix: str) -> str:
    """A name the contract's file pattern matches, e.g. ``shopify_orders_<suffix>.csv``."""
    stem, ext = contract.file_pattern.split("*")
    return f"{stem}_{suffix}{ext}"


def value(column: Column, row: int, contract: Contract) -> str:
    """A valid text value of ``column`` for data row ``row`` (distinct keys per row)."""
    kind = column.type
    if kind == "string":
        return f"#{1000 + row}" if column.name == contract.record_group else f"{column.name}-{row}"
    if kind == "date" and column.name in contract.primary_key:  # FX rates: one rate a day
        return (date(2026, 11, 21) - timedelta(days=row)).isoformat()
    return {
        "email": f"person{row}@example.com",
        "integer": str(row + 1),
        "decimal": "12.50",
        "timestamp": "2026-11-21 10:00:00",
        "date": "2026-11-21",
        "boolean": "true",
        "currency": "EUR",
    }[kind]


def header(contract: Contract) -> list[str]:
    return [c.header for c in contract.columns]


def rows(contract: Contract, n: int = 3) -> list[list[object]]:
    return [[value(c, i, contract) for c in contract.columns] for i in range(n)]


def first(contract: Contract, kind: str, required: bool | None = None) -> int:
    """Position of the first column of ``kind`` (optionally only required / optional ones)."""
    for index, column in enumerate(contract.columns):
        if column.type == kind and (required is None or column.required == required):
            return index
    return -1


def string_column(contract: Contract) -> int:
    """An optional string column if there is one, else a required one, else -1 (FX rates).

    Never the record group (a Shopify order name) or a key, so one bad value touches one row.
    """
    keys = set(contract.primary_key) | {contract.record_group}
    candidates = [
        i for i, c in enumerate(contract.columns) if c.type == "string" and c.name not in keys
    ]
    optional = [i for i in candidates if not contract.columns[i].required]
    return (optional or candidates or [-1])[0]


# --- writers, one per format ----------------------------------------------------------------


def _typed(column: Column, text: object) -> object:
    """JSON wants numbers and booleans as such."""
    if not isinstance(text, str):
        return text
    if column.type == "integer" and text.isdigit():
        return int(text)
    if column.type == "boolean" and text in {"true", "false"}:
        return text == "true"
    return text


def _nest(record: dict[str, object]) -> dict[str, object]:
    nested: dict[str, object] = {}
    for key, item in record.items():
        target = nested
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = item
    return nested


def records(contract: Contract, head: list[str], body: list[list[object]]) -> list[dict]:
    by_header = {c.header: c for c in contract.columns}
    out = []
    for row in body:
        record = {}
        for name, cell in zip(head, row, strict=False):
            if cell is None:
                continue
            column = by_header.get(name)
            record[name] = _typed(column, cell) if column else cell
        out.append(_nest(record))
    return out


def csv_text(head: list[str], body: list[list[object]], delimiter: str = ",") -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(head)
    writer.writerows(body)
    return buffer.getvalue()


def json_text(contract: Contract, head: list[str], body: list[list[object]]) -> str:
    return json.dumps({"object": "list", "redemptions": records(contract, head, body)})


def jsonl_text(contract: Contract, head: list[str], body: list[list[object]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records(contract, head, body))


def text_for(contract: Contract, head: list[str], body: list[list[object]]) -> str:
    if contract.format == "json":
        return json_text(contract, head, body)
    if contract.format == "jsonl":
        return jsonl_text(contract, head, body)
    return csv_text(head, body)


def workbook(
    path: Path,
    contract: Contract,
    table: list[list[object]],
    before: dict[str, list[list[object]]] | None = None,
    merge: list[str] | None = None,
    title: str | None = None,
) -> None:
    """An xlsx with the contract's sheet holding ``table``; ``before`` sheets come first."""
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for name, content in (before or {}).items():
        sheet = book.create_sheet(name)
        for row in content:
            sheet.append(row)
    sheet = book.create_sheet(contract.sheet or "Sheet1")
    if title:  # a title merged across the table's width, above the header
        sheet.append([title])
        sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(table[0]))
        sheet.append([])
    for row in table:
        sheet.append(row)
    for cell_range in merge or []:
        sheet.merge_cells(cell_range)
    book.save(path)


def _inflate(path: Path, placeholder: str, text: str) -> None:
    """Replace a cell's text inside an xlsx (as a tool without Excel's cell limit would write)."""
    import zipfile

    with zipfile.ZipFile(path) as source:
        parts = {name: source.read(name) for name in source.namelist()}
    for name, data in parts.items():
        if name.endswith(".xml") and placeholder.encode() in data:
            parts[name] = data.replace(placeholder.encode(), text.encode())
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in parts.items():
            target.writestr(name, data)


# --- the cases ------------------------------------------------------------------------------

Case = Callable[[Contract, Path], Expect]
CASES: dict[str, tuple[set[str], Case]] = {}


def case(formats: set[str]):
    def register(func: Case) -> Case:
        CASES[func.__name__] = (formats, func)
        return func

    return register


ALL = {"csv", "json", "jsonl", "xlsx"}
TEXT = {"csv", "json", "jsonl"}


def _write(contract: Contract, path: Path, head: list[str], body: list[list[object]]) -> None:
    if contract.format == "xlsx":
        workbook(path, contract, [head, *body])
    else:
        path.write_text(text_for(contract, head, body), encoding="utf-8")


@case(ALL)
def empty(contract: Contract, path: Path) -> Expect:
    path.write_bytes(b"")
    return Expect("rejected", {"empty_file": 1}, words=("empty (0 bytes)",))


@case(ALL)
def header_only(contract: Contract, path: Path) -> Expect:
    if contract.format == "jsonl":
        path.write_text("\n  \n\n", encoding="utf-8")  # blank lines only: no records
    else:
        _write(contract, path, header(contract), [])
    words = "no data rows" if contract.format in {"csv", "xlsx"} else "no records"
    return Expect("rejected", {"empty_file": 1}, words=(words,))


@case(ALL)
def truncated_mid_row(contract: Contract, path: Path) -> Expect:
    """The export stopped in the middle of its last record (a broken upload or sync)."""
    if contract.format == "xlsx":
        buffer = path.with_suffix(".tmp")
        _write(contract, buffer, header(contract), rows(contract))
        data = buffer.read_bytes()
        buffer.unlink()
        path.write_bytes(data[: len(data) // 2])
        return Expect("rejected", {"unreadable_file": 1}, words=("not a readable .xlsx",))
    text = text_for(contract, header(contract), rows(contract)).rstrip("\n")
    last_line = text.rfind("\n") + 1  # a JSON array is one line: cut it in half
    path.write_text(text[: last_line + (len(text) - last_line) // 2], encoding="utf-8")
    if contract.format == "json":
        return Expect("rejected", {"unreadable_file": 1}, words=("invalid JSON", "truncated"))
    line = "line 3" if contract.format == "jsonl" else "line 4"
    return Expect("loaded", {"malformed_row": 1}, loaded=2, words=(line,))


@case({"csv"})
def truncated_inside_quotes(contract: Contract, path: Path) -> Expect:
    """An opening quote with no closing one: the reader must not swallow the file silently."""
    text = csv_text(header(contract), rows(contract))
    path.write_text(text + '"' + text.splitlines()[1][:15], encoding="utf-8")
    return Expect("loaded", {"malformed_row": 1}, loaded=3)


def _delimited(delimiter: str) -> Case:
    def write(contract: Contract, path: Path) -> Expect:
        path.write_text(csv_text(header(contract), rows(contract), delimiter), encoding="utf-8")
        return Expect("loaded", loaded=3)

    return write


for _name, _delimiter in (("semicolon", ";"), ("tab", "\t"), ("pipe", "|")):
    CASES[f"{_name}_delimiter"] = ({"csv"}, _delimited(_delimiter))


@case({"csv"})
def unsupported_delimiter(contract: Contract, path: Path) -> Expect:
    path.write_text(csv_text(header(contract), rows(contract), ":"), encoding="utf-8")
    return Expect("rejected", {"missing_required_column": 1}, words=("missing from the header",))


@case(TEXT)
def utf16_with_bom(contract: Contract, path: Path) -> Expect:
    path.write_text(text_for(contract, header(contract), rows(contract)), encoding="utf-16")
    return Expect("loaded", loaded=3)


@case(TEXT)
def utf16_without_bom(contract: Contract, path: Path) -> Expect:
    path.write_bytes(text_for(contract, header(contract), rows(contract)).encode("utf-16-le"))
    return Expect("loaded", loaded=3)


@case(TEXT)
def windows_1252(contract: Contract, path: Path) -> Expect:
    body = rows(contract)
    body[0][string_column(contract)] = "Café Müller \u2013 Größe"
    path.write_bytes(text_for(contract, header(contract), body).encode("cp1252"))
    return Expect("loaded", loaded=3)


@case(TEXT)
def utf8_bom_crlf(contract: Contract, path: Path) -> Expect:
    text = text_for(contract, header(contract), rows(contract)).replace("\n", "\r\n")
    path.write_bytes(codecs.BOM_UTF8 + text.encode("utf-8"))
    return Expect("loaded", loaded=3)


@case({"csv"})
def header_twice_at_top(contract: Contract, path: Path) -> Expect:
    path.write_text(
        csv_text(header(contract), [header(contract), *rows(contract)]), encoding="utf-8"
    )
    return Expect("loaded", {"repeated_header": 1}, loaded=3, words=("header row",))


@case({"csv", "xlsx"})
def header_repeated_mid_file(contract: Contract, path: Path) -> Expect:
    """Two exports pasted together: the second one's header sits between records."""
    body = rows(contract, 4)
    _write(contract, path, header(contract), [*body[:2], header(contract), *body[2:]])
    return Expect("loaded", {"repeated_header": 1}, loaded=4, words=("header row",))


@case(ALL)
def extra_columns(contract: Contract, path: Path) -> Expect:
    head = [*header(contract), "Internal notes", "utm_content"]
    _write(contract, path, head, [[*r, "n", "u"] for r in rows(contract)])
    return Expect("loaded", loaded=3, unknown=("Internal notes", "utm_content"))


@case(ALL)
def missing_required_column(contract: Contract, path: Path) -> Expect:
    gone = next(i for i, c in enumerate(contract.columns) if c.required)
    head = [h for i, h in enumerate(header(contract)) if i != gone]
    body = [[v for i, v in enumerate(r) if i != gone] for r in rows(contract)]
    _write(contract, path, head, body)
    return Expect(
        "rejected",
        {"missing_required_column": 1},
        words=(repr(contract.columns[gone].header), "missing from the header"),
    )


@case(ALL)
def missing_optional_columns(contract: Contract, path: Path) -> Expect:
    keep = [i for i, c in enumerate(contract.columns) if c.required]
    head = [header(contract)[i] for i in keep]
    _write(contract, path, head, [[r[i] for i in keep] for r in rows(contract)])
    return Expect("loaded", loaded=3)


@case(ALL)
def renamed_required_column(contract: Contract, path: Path) -> Expect:
    gone = next(i for i, c in enumerate(contract.columns) if c.required)
    head = header(contract)
    old = head[gone]
    head[gone] = f"{old} (renamed)"
    _write(contract, path, head, rows(contract))
    return Expect(
        "rejected",
        {"missing_required_column": 1},
        words=(repr(old), repr(head[gone])),
        unknown=(),
    )


@case({"csv", "xlsx"})
def header_case_and_spacing_changed(contract: Contract, path: Path) -> Expect:
    head = ["  " + h.upper().replace(" ", "  ") + " " for h in header(contract)]
    _write(contract, path, head, rows(contract))
    return Expect("loaded", loaded=3)


@case(ALL)
def huge_single_field(contract: Contract, path: Path) -> Expect:
    body = rows(contract)
    column = string_column(contract)  # -1: the last column, whatever its type
    if contract.format == "xlsx":  # openpyxl cuts cells to 32767 characters: inflate afterwards
        body[1][column] = "HUGE-CELL"
        _write(contract, path, header(contract), body)
        _inflate(path, "HUGE-CELL", HUGE)
    else:
        body[1][column] = HUGE
        _write(contract, path, header(contract), body)
    return Expect(
        "loaded",
        {"value_too_long": 1},
        loaded=2,
        words=(contract.columns[column].header, "5242880 characters"),
    )


@case(ALL)
def formula_injection(contract: Contract, path: Path) -> Expect:
    body = rows(contract, len(FORMULAS) + 1)
    column = string_column(contract)
    for row, formula in zip(body, FORMULAS, strict=False):
        row[column] = formula
    body[-1][column] = "-10% off"  # text that starts with a minus: a formula to a spreadsheet
    _write(contract, path, header(contract), body)
    if column < 0:  # no text column (FX rates): formulas are not numbers, so never loaded
        return Expect("loaded", {"invalid_number": len(body)}, loaded=0, words=("=HYPERLINK",))
    return Expect("loaded", loaded=len(body), formula_values=len(body))


@case(ALL)
def mixed_types_in_one_column(contract: Contract, path: Path) -> Expect:
    """One numeric (or date) column holding numbers, words, fractions and blanks."""
    kind = next(k for k in ("integer", "decimal", "date", "timestamp") if first(contract, k) >= 0)
    column = first(contract, kind)
    body = rows(contract, 5)
    bad = {
        "integer": ["3.7", "three", "1,5"],
        "decimal": ["12,5", "n/a", "12.3.4"],
        "date": ["2026-11-21", "yesterday", "45982"],
        "timestamp": ["2026-11-21 10:00:00", "soon", "2026-13-45 10:00:00"],
    }[kind]
    good_first = kind in {"decimal", "date", "timestamp"}
    body[1][column], body[2][column], body[3][column] = bad
    if contract.format != "csv":  # native cell / JSON types as well
        body[4][column] = {
            "integer": 7,
            "decimal": 7.25,
            "date": datetime(2026, 11, 20),
            "timestamp": datetime(2026, 11, 20, 8) if contract.format == "xlsx" else 1763719200000,
        }[kind]
    reason = {
        "integer": "invalid_number",
        "decimal": "invalid_number",
        "date": "invalid_date",
        "timestamp": "invalid_timestamp",
    }[kind]
    _write(contract, path, header(contract), body)
    header_name = contract.columns[column].header
    quarantined = 2 if good_first else 3
    return Expect(
        "loaded",
        {reason: quarantined},
        loaded=5 - quarantined,
        words=(header_name,),
    )


@case({"xlsx"})
def several_sheets_wanted_one_not_first(contract: Contract, path: Path) -> Expect:
    notes = {"Read me": [["How to fill in this workbook"], ["One row per record."]]}
    workbook(path, contract, [header(contract), *rows(contract)], before=notes)
    return Expect("loaded", loaded=3)


@case({"xlsx"})
def merged_title_above_header(contract: Contract, path: Path) -> Expect:
    workbook(path, contract, [header(contract), *rows(contract)], title=f"{contract.entity} 2026")
    return Expect("loaded", loaded=3)


@case({"xlsx"})
def merged_header_cells(contract: Contract, path: Path) -> Expect:
    """The last header cell merged over two columns: the spare column is reported, not fatal."""
    head = [*header(contract), None]
    body = [[*r, "spill"] for r in rows(contract)]
    last = len(head)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    workbook(path, contract, [head, *body], merge=[f"{letters[last - 2]}1:{letters[last - 1]}1"])
    return Expect("loaded", loaded=3, unknown=(f"{head[-2]} {last - 1}",))


@case(ALL)
def binary_garbage(contract: Contract, path: Path) -> Expect:
    """Another file type saved under the expected name (a PNG, a zip)."""
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    if contract.format == "xlsx":
        return Expect("rejected", {"unreadable_file": 1}, words=("not a readable .xlsx",))
    return Expect("rejected", {"unreadable_file": 1}, words=("binary",))


def corpus() -> list[tuple[str, str]]:
    """(contract key, case name) for every case that applies to a contract's format."""
    return [
        (contract.key, name)
        for contract in load_contracts()
        for name, (formats, _) in CASES.items()
        if contract.format in formats
    ]
