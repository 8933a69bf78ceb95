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

from marketing_warehouse.ingest.contracts import Column, Contract, load_contracts

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
    absent: tuple[str, ...] = ()  # in no message, ledger entry or quarantine entry


#: Cases whose landed file name is this long (filled up with "x"), not ``<stem>_<case><ext>``.
LONG_NAMES = {"long_file_name": 252}


def filename(contract: Contract, suffix: str) -> str:
    """A name the contract's file pattern matches, e.g. ``shopify_orders_<suffix>.csv``."""
    stem, ext = contract.file_pattern.split("*")
    name = f"{stem}_{suffix}{ext}"
    if suffix in LONG_NAMES:
        name = f"{stem}_{suffix}{'x' * (LONG_NAMES[suffix] - len(name))}{ext}"
    return name


def value(column: Column, row: int, contract: Contract) -> str:
    """A valid text value of ``column`` for data row ``row`` (distinct keys per row)."""
    kind = column.type
    if column.accepted_values:
        return column.accepted_values[0]
    if kind == "string":
        return f"#{1000 + row}" if column.name == contract.record_group else f"{column.name}-{row}"
    if kind == "date" and column.name in contract.primary_key:  # one key per row (FX rates)
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


# --- values: day-month order, plausibility and row rules (see contracts.py) -------------------
# These cases apply to the contracts that declare the rule (``APPLIES``), whatever their format.

#: case name -> which contracts it applies to (cases not listed apply to every contract)
APPLIES: dict[str, Callable[[Contract], bool]] = {}


def value_case(applies: Callable[[Contract], bool]):
    def register(func: Case) -> Case:
        CASES[func.__name__] = (ALL, func)
        APPLIES[func.__name__] = applies
        return func

    return register


def _order_column(contract: Contract) -> int:
    """The first date column of a contract that reads day-month text both ways."""
    return next(i for i, c in enumerate(contract.columns) if c.type == "date")


def _as_text(contract: Contract, body: list[list[object]], column: int, texts: list[str]) -> None:
    for row, text in zip(body, texts, strict=False):
        row[column] = text


@value_case(lambda c: c.has_date_order_choice)
def dates_day_first(contract: Contract, path: Path) -> Expect:
    """UK text dates: 05/11/2026 is 5 November because 21/11/2026 is in the same file."""
    body = rows(contract, 3)
    _as_text(contract, body, _order_column(contract), ["05/11/2026", "21/11/2026", "03/11/2026"])
    _write(contract, path, header(contract), body)
    return Expect("loaded", loaded=3)


@value_case(lambda c: c.has_date_order_choice)
def dates_month_first(contract: Contract, path: Path) -> Expect:
    """US dates: 11/05/2026 is 5 November because 11/25/2026 is in the same file."""
    body = rows(contract, 3)
    _as_text(contract, body, _order_column(contract), ["11/05/2026", "11/20/2026", "11/03/2026"])
    _write(contract, path, header(contract), body)
    return Expect("loaded", loaded=3)


@value_case(lambda c: c.has_date_order_choice)
def dates_in_both_orders(contract: Contract, path: Path) -> Expect:
    """Two exports of different locales pasted together: 21/11/2026 and 11/20/2026."""
    body = rows(contract, 4)
    texts = ["21/11/2026", "05/11/2026", "11/20/2026", "11/05/2026"]
    _as_text(contract, body, _order_column(contract), texts)
    _write(contract, path, header(contract), body)
    return Expect(
        "rejected", {"ambiguous_date_order": 1}, words=("day first (e.g. row", "month first")
    )


def _event_column(contract: Contract) -> int:
    return next(i for i, c in enumerate(contract.columns) if c.event_date)


def _date_text(contract: Contract, column: int, day: str) -> str:
    return day if contract.columns[column].type == "date" else f"{day} 10:00:00"


@value_case(lambda c: any(col.event_date for col in c.columns))
def implausible_event_dates(contract: Contract, path: Path) -> Expect:
    """Dates typed wrong (2100), a spreadsheet's zero date (1899-12-30), an epoch zero (1970) and
    the day after tomorrow are quarantined; 1998 history and tomorrow (time zones) load."""
    column = _event_column(contract)
    days = ["2100-01-01", "1899-12-30", "1970-01-01", "2026-11-23", "1998-07-01", "2026-11-22"]
    body = rows(contract, len(days))
    _as_text(contract, body, column, [_date_text(contract, column, d) for d in days])
    _write(contract, path, header(contract), body)
    return Expect(
        "loaded",
        {"implausible_date": 4},
        loaded=2,
        words=(contract.columns[column].header, "2100-01-01", "MWH_EARLIEST_DATE"),
    )


def _amount_column(contract: Contract) -> int:
    return next(i for i, c in enumerate(contract.columns) if c.amount)


def _money(contract: Contract, column: int, major: int | str) -> str:
    if contract.columns[column].amount == "minor":
        return str(int(float(major) * 100))
    return str(major)


@value_case(lambda c: any(col.amount for col in c.columns))
def implausible_amounts(contract: Contract, path: Path) -> Expect:
    """Among 30 ordinary amounts: 999,999,999,999 (above the ceiling) and 99,999,999 (100,000
    times the median) are quarantined; a 250,000 B2B order loads."""
    column = _amount_column(contract)
    body = rows(contract, 33)
    amounts = ["12.50"] * 30 + ["999999999999", "99999999", "250000"]
    _as_text(contract, body, column, [_money(contract, column, a) for a in amounts])
    _write(contract, path, header(contract), body)
    return Expect(
        "loaded",
        {"implausible_amount": 2},
        loaded=31,
        words=(contract.columns[column].header, "MWH_MAX_AMOUNT", "times the median"),
    )


@value_case(lambda c: any(col.amount for col in c.columns))
def large_amount_in_a_small_file(contract: Contract, path: Path) -> Expect:
    """Three invoices of a B2B shop, one of 5 million: too few values for a median rule."""
    column = _amount_column(contract)
    body = rows(contract, 3)
    _as_text(contract, body, column, [_money(contract, column, a) for a in ("40", "5000000", "12")])
    _write(contract, path, header(contract), body)
    return Expect("loaded", loaded=3)


@value_case(lambda c: any(col.max is not None for col in c.columns))
def value_above_maximum(contract: Contract, path: Path) -> Expect:
    """An FX rate of 12,000 (a pair typed the wrong way round): that row only."""
    column = next(i for i, c in enumerate(contract.columns) if c.max is not None)
    body = rows(contract, 3)
    body[1][column] = str(contract.columns[column].max + 2000)
    _write(contract, path, header(contract), body)
    return Expect("loaded", {"out_of_range": 1}, loaded=2, words=("above the maximum",))


@value_case(lambda c: any(col.accepted_values for col in c.columns))
def enumerated_values_in_other_spellings(contract: Contract, path: Path) -> Expect:
    """Known spellings load as the accepted value (case, spacing, aliases); a typo does not."""
    index, column = next((i, c) for i, c in enumerate(contract.columns) if c.accepted_values)
    accepted = column.accepted_values[0]
    alias = next((k for k, v in column.value_aliases.items() if v == accepted), accepted)
    spellings = [accepted.lower(), f"  {accepted.title()} ", alias.upper(), accepted + "x"]
    body = rows(contract, len(spellings))
    _as_text(contract, body, index, spellings)
    _write(contract, path, header(contract), body)
    return Expect("loaded", {"unknown_value": 1}, loaded=3, words=(column.header, "one of"))


@value_case(lambda c: c.unique_key)
def key_repeated_within_file(contract: Contract, path: Path) -> Expect:
    """Record 6 repeats record 1 (its e-mail in capitals); record 7 has record 2's key with another
    value: the repeat and both records of the conflict are quarantined, the other four load."""
    body = rows(contract, 5)
    keys = {contract.columns.index(contract.column(k)) for k in contract.primary_key}
    other = next(  # a free value: not a key, not an enumeration
        i
        for i, c in enumerate(contract.columns)
        if i not in keys and c.type in {"string", "decimal"} and not c.accepted_values
    )
    repeat = [
        str(v).upper() if contract.columns[i].type == "email" else v for i, v in enumerate(body[0])
    ]
    conflict = list(body[1])
    conflict[other] = "7.5" if contract.columns[other].type == "decimal" else "changed"
    body += [repeat, conflict]
    _write(contract, path, header(contract), body)
    return Expect(
        "loaded", {"conflicting_key": 3}, loaded=4, words=("a repeat of row", "share the key")
    )


@value_case(lambda c: bool(c.row_checks))
def row_check_broken(contract: Contract, path: Path) -> Expect:
    """More clicks than impressions (or an experiment ending before it starts) on one row."""
    check = contract.row_checks[0]
    left = contract.columns.index(contract.column(check.left))
    right = contract.columns.index(contract.column(check.right))
    body = rows(contract, 3)
    if contract.columns[left].type == "date":
        body[1][left], body[1][right] = "2026-11-21", "2026-11-01"
    else:
        body[1][left], body[1][right] = "50", "10"
    _write(contract, path, header(contract), body)
    return Expect(
        "loaded",
        {check.reason: 1},
        loaded=2,
        words=(f'"{contract.column(check.left).header}"', check.op),
    )


@value_case(lambda c: any(col.required_with for col in c.columns))
def amount_without_currency(contract: Contract, path: Path) -> Expect:
    """An order with a total but an empty Currency cell: that order, with a reason."""
    index, column = next((i, c) for i, c in enumerate(contract.columns) if c.required_with)
    body = rows(contract, 3)
    body[1][index] = ""
    _write(contract, path, header(contract), body)
    return Expect(
        "loaded",
        {"missing_required_value": 1},
        loaded=2,
        words=(f'"{column.header}" is empty but required when',),
    )


@value_case(lambda c: any(col.fill_from_record for col in c.columns))
def order_level_value_on_first_row_only(contract: Contract, path: Path) -> Expect:
    """Two orders of three lines; the order-level value on each order's first row only."""
    group = contract.columns.index(contract.column(contract.record_group))
    filled = [i for i, c in enumerate(contract.columns) if c.fill_from_record]
    body = rows(contract, 6)
    for n, row in enumerate(body):
        row[group] = "#1001" if n < 3 else "#1002"
        if n % 3:
            for i in filled:
                row[i] = ""
    _write(contract, path, header(contract), body)
    return Expect("loaded", loaded=6)


# --- landed bytes, encodings, names and headers ----------------------------------------------


def _text_column(contract: Contract) -> int:
    """A text column to damage (the last column when the contract has none, e.g. FX rates)."""
    return string_column(contract)


def _lines(contract: Contract, body: list[list[object]]) -> list[str]:
    """The file's text split into lines, each ending kept (JSON lines and CSV only)."""
    return text_for(contract, header(contract), body).splitlines(keepends=True)


def _data_line(contract: Contract, index: int) -> int:
    """Position in ``_lines`` of data record ``index`` (CSV: after the header)."""
    return index + (contract.format == "csv")


@case({"csv"})
def unclosed_quote_swallows_the_rest(contract: Contract, path: Path) -> Expect:
    """A quote opened in row 2 of 6 and never closed: the csv module and DuckDB both read rows
    2-6 as one value. Row 2 is quarantined, the four whole lines after it load."""
    lines = _lines(contract, rows(contract, 6))
    lines[2] = '"' + lines[2]
    path.write_text("".join(lines), encoding="utf-8")
    return Expect("loaded", {"malformed_row": 1}, loaded=5, words=("line 3", "unclosed quote"))


@case({"csv"})
def multi_line_quoted_value(contract: Contract, path: Path) -> Expect:
    """A note or an address over two lines is one value (the second line is not a record)."""
    body = rows(contract)
    column = _text_column(contract)
    if contract.columns[column].type == "string":
        body[1][column] = "Leave at the door\nthanks, Jörg"
    path.write_text(csv_text(header(contract), body), encoding="utf-8")
    return Expect("loaded", loaded=3)


@case({"csv", "jsonl"})
def one_line_in_another_encoding(contract: Contract, path: Path) -> Expect:
    """A UTF-8 export with "jörg" in two rows and one Windows-1252 byte in the last row: the file
    stays UTF-8 and only that row is quarantined."""
    body = rows(contract, 4)
    column = _text_column(contract)
    wrote = contract.columns[column].type == "string"
    if wrote:
        body[0][column] = body[1][column] = "jörg"
        body[3][column] = "REPLACE-ME"
    if contract.format == "jsonl":  # the umlauts as UTF-8, not as \u escapes
        text = "".join(
            json.dumps(r, ensure_ascii=False) + "\n"
            for r in records(contract, header(contract), body)
        )
    else:
        text = csv_text(header(contract), body)
    data = text.encode("utf-8").replace(b"REPLACE-ME", "Café".encode("cp1252"))
    if not wrote:  # no text column (FX rates are xlsx, so not here): damage the last line
        data = data.rstrip(b"\n") + b"\xe9\n"
    path.write_bytes(data)
    line = _data_line(contract, 3) + 1
    return Expect(
        "loaded", {"undecodable_row": 1}, loaded=3, words=(f"line {line}",), absent=("Caf",)
    )


@case({"csv", "jsonl"})
def mixed_line_endings(contract: Contract, path: Path) -> Expect:
    """Rows appended by another tool: some lines end CRLF, others LF."""
    lines = _lines(contract, rows(contract, 4))
    lines = [ln.replace("\n", "\r\n") if i % 2 else ln for i, ln in enumerate(lines)]
    path.write_bytes("".join(lines).encode("utf-8"))
    return Expect("loaded", loaded=4)


@case({"csv", "jsonl"})
def nul_byte_in_a_cell(contract: Contract, path: Path) -> Expect:
    body = rows(contract, 3)
    column = _text_column(contract)
    body[1][column] = "SUMMER\x00" if contract.columns[column].type == "string" else "1\x00"
    path.write_bytes(text_for(contract, header(contract), body).encode("utf-8"))
    line = _data_line(contract, 1) + 1
    return Expect("loaded", {"nul_bytes": 1}, loaded=2, words=(f"line {line}",))


@case({"csv", "jsonl"})
def nul_run_before_a_record(contract: Contract, path: Path) -> Expect:
    """4 KB of NUL bytes (a zeroed disk block) in front of the third record."""
    lines = _lines(contract, rows(contract, 4))
    lines[_data_line(contract, 2)] = "\x00" * 4096 + lines[_data_line(contract, 2)]
    path.write_bytes("".join(lines).encode("utf-8"))
    return Expect("loaded", {"nul_bytes": 1}, loaded=3)


@case(ALL)
def long_file_name(contract: Contract, path: Path) -> Expect:
    """A landed name of 252 characters (see ``LONG_NAMES``; 255 is the file system's limit), in
    an encoding that needs a converted copy where the format allows it."""
    assert len(path.name) == LONG_NAMES["long_file_name"]
    if contract.format == "xlsx":
        _write(contract, path, header(contract), rows(contract))
    else:
        path.write_text(text_for(contract, header(contract), rows(contract)), encoding="utf-16")
    return Expect("loaded", loaded=3)


@case({"json", "jsonl"})
def json_keys_in_another_case(contract: Contract, path: Path) -> Expect:
    """A later exporter version spells the keys in other case and spacing, nested ones too."""
    head = header(contract)
    other = [" " + h.upper() + " " for h in head]
    first = records(contract, head, rows(contract, 2))
    second = records(contract, other, rows(contract, 3)[2:])
    second = [{k.upper(): v for k, v in r.items()} for r in second]  # nested keys too
    items = first + second
    if contract.format == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in items), encoding="utf-8")
    else:
        path.write_text(json.dumps({"object": "list", "redemptions": items}), encoding="utf-8")
    return Expect("loaded", loaded=3)


@case(ALL)
def headerless(contract: Contract, path: Path) -> Expect:
    """Data rows only: the first person's record must not reach any message or entry."""
    body = rows(contract, 3)
    if contract.format == "xlsx":
        workbook(path, contract, body)
    elif contract.format == "csv":
        path.write_text(csv_text(body[0], body[1:]), encoding="utf-8")
    else:  # JSON keys are the header: a record whose keys are values
        path.write_text(text_for(contract, [str(v) for v in body[0]], body[1:]), encoding="utf-8")
    texts = {"string", "email"}  # free text; an enumerated value ("redemption") names no one
    values = tuple(
        str(v)
        for c, v in zip(contract.columns, body[0], strict=True)
        if c.type in texts and not c.accepted_values
    )
    return Expect("rejected", {"missing_required_column": 1}, words=("header",), absent=values)


@case(ALL)
def summary_rows_by_structure(contract: Contract, path: Path) -> Expect:
    """A real record named "Total Sale Nov" loads; a report's total row (the label in the first
    column, date and key columns empty) is a summary row where the contract declares them."""
    body = rows(contract, 3)
    column = _text_column(contract)
    named = contract.columns[column].type == "string" and column != 0
    if named:
        body[1][column] = "Total Sale Nov"
    if not contract.summary_row_pattern:
        _write(contract, path, header(contract), body)
        return Expect("loaded", loaded=3)
    total = [
        "" if c.type in {"date", "timestamp"} or c.name in contract.primary_key else v
        for c, v in zip(contract.columns, body[0], strict=True)
    ]
    total[0] = "Total: Account"
    campaigns = list(total)
    campaigns[0], campaigns[column] = "", "Total: Campaigns"
    _write(contract, path, header(contract), [*body, total, campaigns])
    return Expect("loaded", {"summary_row": 2}, loaded=3)


def corpus() -> list[tuple[str, str]]:
    """(contract key, case name) for every case that applies to a contract (its format, and for
    value cases the rule the contract declares)."""
    return [
        (contract.key, name)
        for contract in load_contracts()
        for name, (formats, _) in CASES.items()
        if contract.format in formats and APPLIES.get(name, lambda _: True)(contract)
    ]
