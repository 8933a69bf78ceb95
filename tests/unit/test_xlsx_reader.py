"""The calamine reader writes the same CSV as the openpyxl reader, cell for cell, and hands a
workbook it cannot read exactly (uncached formulas, huge ids, damage) to openpyxl."""

from __future__ import annotations

import zipfile
from datetime import date, datetime, time, timedelta

import pytest

from marketing_warehouse.ingest import formats
from marketing_warehouse.ingest.formats import FormatError, xlsx_to_csv, xlsx_to_csv_openpyxl


def _both(path, tmp_path, sheet=None, is_header=None):
    new, old = tmp_path / "new.csv", tmp_path / "old.csv"
    got = xlsx_to_csv(path, new, sheet, is_header)
    want = xlsx_to_csv_openpyxl(path, old, sheet, is_header)
    return got, want, new.read_text("utf-8"), old.read_text("utf-8")


def _typed_workbook(path):
    from openpyxl import Workbook

    workbook = Workbook()
    notes = workbook.active
    notes.title = "Read me"
    notes.append(["This workbook lists the experiments"])
    sheet = workbook.create_sheet("Assignments")
    sheet.append(["Plan of the quarter"])
    sheet.merge_cells("A1:D1")
    sheet.append([])
    sheet.append(
        ["id", "whole", "float", "half", "when", "day", "at", "flag", "share", "text", None]
    )
    rows = [
        [1, 1, 1.0, 1.5, datetime(2026, 3, 1, 8, 30, 15), date(2026, 3, 1), time(13, 5, 7)],
        [2, 12345678901, 2.0, -0.25, datetime(2026, 3, 2, 0, 0), date(1999, 12, 31), time(0, 0)],
        [3, 0, 1e15, 1.085, datetime(2026, 3, 3, 23, 59, 59, 500000), None, time(23, 59, 59)],
        [4, -7, 3.14159, 1e-7, None, date(2026, 2, 28), None],
    ]
    extras = [
        [True, 0.15, "00123", None],
        [False, 1.0, "1.0", "x"],
        [None, 0.5, "1e5", None],
        [True, None, " 42 ", None],
    ]
    for row, extra in zip(rows, extras, strict=True):
        sheet.append(row + extra)
    for number in range(4, 8):
        sheet.cell(number, 5).number_format = "yyyy-mm-dd hh:mm:ss"
        sheet.cell(number, 9).number_format = "0%"
    sheet.append([])
    sheet.append([5, None, None, None, None, None, None, None, None, "after a blank row"])
    sheet.cell(12, 11).value = None
    sheet.cell(12, 11).number_format = "0.00"  # a styled empty cell widens the sheet
    workbook.save(path)
    return path


def test_every_kind_of_cell_comes_out_as_openpyxl_reads_it(tmp_path):
    path = _typed_workbook(tmp_path / "experiments.xlsx")
    got, want, new, old = _both(path, tmp_path, is_header=lambda h: "id" in h)
    assert got == want == (["Read me"], "Assignments", 3)
    assert new == old
    lines = new.splitlines()
    assert lines[1].split(",")[:4] == ["4", "1", "1", "1"]  # 1 and 1.0 both read as 1
    assert "12345678901" in lines[2] and "1000000000000000" in lines[3]
    assert "2026-03-01 00:00:00" in lines[1] and "13:05:07" in lines[1]  # dates as datetimes
    assert "00123" in lines[1] and "1.0850" in lines[3]


def test_whole_numbers_read_as_int_dates_as_datetimes():
    assert formats._as_openpyxl(1.0) == 1 and isinstance(formats._as_openpyxl(1.0), int)
    assert formats._as_openpyxl(1.5) == 1.5
    assert formats._as_openpyxl(date(2026, 1, 2)) == datetime(2026, 1, 2)
    assert formats._as_openpyxl(True) is True and formats._as_openpyxl("") is None
    assert formats._as_openpyxl(datetime(2026, 1, 1, 0, 0, 0, 999600)) == datetime(
        2026, 1, 1, 0, 0, 1
    )
    assert formats._as_openpyxl(time(1, 2, 3, 400)) == time(1, 2, 3)
    assert formats._as_openpyxl(timedelta(hours=30)) == timedelta(hours=30)
    with pytest.raises(formats._NotForCalamine):
        formats._as_openpyxl(float(2**60))


def test_ids_past_two_to_the_53_read_as_openpyxl_reads_them(tmp_path):
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.active.append(["id"])
    workbook.active.append([12345678901234567891])
    path = tmp_path / "ids.xlsx"
    workbook.save(path)
    _, _, new, old = _both(path, tmp_path)
    assert new == old  # a float cannot hold every such id: openpyxl reads these workbooks
    assert new.splitlines()[1].startswith("2,123456789012345")


def test_formula_without_cached_value_is_read_as_its_text(tmp_path):
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.active.append(["a", "b"])
    workbook.active.append([1, "=A2*2"])
    path = tmp_path / "formulas.xlsx"
    workbook.save(path)
    with (
        zipfile.ZipFile(path) as archive,
        archive.open("xl/worksheets/sheet1.xml") as handle,
        pytest.raises(formats._NotForCalamine),
    ):
        formats._scan_sheet(handle)
    _, _, new, old = _both(path, tmp_path)
    assert new == old
    assert new.splitlines()[1] == "2,1,=A2*2"


def test_formula_with_a_cached_value_stays_on_calamine(tmp_path):
    sheet = (
        b'<worksheet><dimension ref="A1:B2"/><sheetData><row r="1"><c r="A1"><v>1</v></c>'
        b'<c r="B1"><f>A1*2</f><v>2</v></c></row></sheetData></worksheet>'
    )
    import io

    assert formats._scan_sheet(io.BytesIO(sheet)) == (2, 2)
    uncached = sheet.replace(b"<v>2</v>", b"")
    with pytest.raises(formats._NotForCalamine):
        formats._scan_sheet(io.BytesIO(uncached))


def test_damaged_and_non_xlsx_files_name_what_is_wrong(tmp_path):
    fake = tmp_path / "fake.xlsx"
    fake.write_text("id,name\n1,a\n")
    with pytest.raises(FormatError, match=r"not a readable \.xlsx workbook \(\w+"):
        xlsx_to_csv(fake, tmp_path / "out.csv", None)
    path = _typed_workbook(tmp_path / "whole.xlsx")
    truncated = tmp_path / "truncated.xlsx"
    truncated.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(FormatError, match=r"not a readable \.xlsx workbook"):
        xlsx_to_csv(truncated, tmp_path / "out.csv", None)
    with pytest.raises(FormatError, match="sheet 'Nope' not found"):
        xlsx_to_csv(path, tmp_path / "out.csv", "Nope")


@pytest.mark.parametrize(
    ("ref", "header", "rows"),
    [("A1", "a", 0), ("A1:B2", "a,b", 1), ("A1:E9", "a,b,c,c 3,c 3 4", 2)],
)
def test_the_sheets_dimension_bounds_what_is_read_as_with_openpyxl(tmp_path, ref, header, rows):
    import re

    from openpyxl import Workbook

    workbook = Workbook()
    for row in (["a", "b", "c"], [1, 2, 3], [4, 5, 6]):
        workbook.active.append(row)
    written = tmp_path / "written.xlsx"
    workbook.save(written)
    path = tmp_path / "dimension.xlsx"
    with zipfile.ZipFile(written) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = re.sub(rb'<dimension ref="[^"]*"', f'<dimension ref="{ref}"'.encode(), data)
            target.writestr(item, data)
    _, _, new, old = _both(path, tmp_path)
    assert new == old
    lines = new.splitlines()
    assert lines[0] == f"__source_row,{header}"
    assert len(lines) - 1 == rows
