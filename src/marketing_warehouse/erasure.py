"""Erasure of one person (``mwh erase``): landing archives, raw Parquet, quarantine, DuckDB files.

A person is named by e-mail or by ``customer_id`` (``md5(lower(trim(email)))``, the warehouse's
customer key); a row is theirs when an e-mail column of it hashes to that id. Erasure:

* rewrites every landed export that holds them without their rows (same format, encoding and
  delimiter), and moves the file's ledger entry, raw and quarantine Parquet to the new content hash,
  so the next run neither reloads the file as new nor brings the rows back;
* removes their rows from every raw Parquet file and quarantine entry (a whole-file quarantine
  entry keeps its reason but loses the file preview); the ledger's row counts are lowered to match,
  so rows landed = rows loaded + rows quarantined still holds;
* deletes their rows from every table with an ``email``, ``customer_id`` or ``raw_content`` column
  in the build file, the serving file and the kept serving versions (aggregates such as
  ``kpi_daily`` are rebuilt without them by the next run);
* appends a record to ``<data>/audit/erasures.jsonl`` with the SHA-256 of the customer id, the
  counts per place and the time: never the e-mail itself.

It needs the warehouse files free: run it when no DAG run is active and no BI tool holds the
serving file open for writing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from marketing_warehouse.config import Settings
from marketing_warehouse.contracts import Contract, load_contracts
from marketing_warehouse.extract import (
    _as_plain_utf8,
    _detect_encoding,
    _find_header,
    _sql_str,
    file_sha256,
    utc_now,
)
from marketing_warehouse.formats import _flatten
from marketing_warehouse.loads import Ledger, landing_folders
from marketing_warehouse.publish import versions_dir

EMAIL_PATTERN = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
_CUSTOMER_ID = re.compile(r"^[0-9a-f]{32}$")


class ErasureError(ValueError):
    """The request cannot be carried out as given (bad id, a file locked by another process)."""


def customer_id(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode("utf-8")).hexdigest()


@dataclass
class Erasure:
    customer_id: str
    landing_files: dict[str, int] = field(default_factory=dict)  # file -> rows removed
    raw_rows: int = 0
    quarantine_rows: int = 0
    quarantine_previews: int = 0
    warehouse_rows: dict[str, int] = field(default_factory=dict)  # file:table -> rows removed

    def record(self, erased_at: str) -> dict:
        """The audit record: counts and a hash of the id, nothing that names the person."""
        return {
            "erased_at": erased_at,
            "subject_sha256": hashlib.sha256(self.customer_id.encode()).hexdigest(),
            "landing_files_rewritten": len(self.landing_files),
            "landing_rows_removed": sum(self.landing_files.values()),
            "raw_rows_removed": self.raw_rows,
            "quarantine_rows_removed": self.quarantine_rows,
            "quarantine_previews_redacted": self.quarantine_previews,
            "warehouse_rows_removed": self.warehouse_rows,
        }


def _email_headers(contract: Contract) -> list:
    return [c for c in contract.columns if c.type == "email" or c.name == "email"]


def _is_theirs(value: object, cid: str) -> bool:
    return isinstance(value, str) and bool(value.strip()) and customer_id(value) == cid


# --- landed files ----------------------------------------------------------------------------


def _rewrite_csv(path: Path, contract: Contract, cid: str, tmp: Path) -> int:
    encoding = _detect_encoding(path)
    plain = _as_plain_utf8(path, encoding, tmp)
    _, delimiter, skip = _find_header(plain, contract)
    text = plain.read_text("utf-8")
    newline = "\r\n" if "\r\n" in text[:100_000] else "\n"
    lines = text.splitlines(keepends=True)
    head, body = "".join(lines[:skip]), "".join(lines[skip:])
    rows = list(csv.reader(io.StringIO(body, newline=""), delimiter=delimiter))
    if not rows:
        return 0
    columns = [
        i for i, h in enumerate(rows[0]) if any(c.matches(h) for c in _email_headers(contract))
    ]
    kept = [rows[0]] + [
        r for r in rows[1:] if not any(i < len(r) and _is_theirs(r[i], cid) for i in columns)
    ]
    removed = len(rows) - len(kept)
    if removed:
        out = io.StringIO()
        csv.writer(out, delimiter=delimiter, lineterminator=newline).writerows(kept)
        target = "utf-8" if encoding == "utf-8" else encoding
        path.write_bytes((head + out.getvalue()).encode(target, errors="replace"))
    return removed


def _record_is_theirs(record: object, contract: Contract, cid: str) -> bool:
    if not isinstance(record, dict):
        return False
    flat = _flatten(record)
    return any(
        _is_theirs(v, cid)
        for k, v in flat.items()
        for c in _email_headers(contract)
        if c.matches(k)
    )


def _rewrite_json(path: Path, contract: Contract, cid: str, tmp: Path) -> int:
    encoding = _detect_encoding(path)
    text = path.read_text(encoding)
    if contract.format == "jsonl":
        lines = text.splitlines(keepends=True)
        kept = []
        for line in lines:
            try:
                theirs = (
                    _record_is_theirs(json.loads(line), contract, cid) if line.strip() else False
                )
            except json.JSONDecodeError:
                theirs = any(customer_id(t) == cid for t in re.findall(EMAIL_PATTERN, line))
            if not theirs:
                kept.append(line)
        removed = len(lines) - len(kept)
        new_text = "".join(kept)
    else:
        data = json.loads(text)
        holder, key = (data, None)
        if isinstance(data, dict):
            key = next(k for k, v in data.items() if isinstance(v, list))
            holder = data[key]
        kept_records = [r for r in holder if not _record_is_theirs(r, contract, cid)]
        removed = len(holder) - len(kept_records)
        if key is None:
            data = kept_records
        else:
            data[key] = kept_records
        new_text = json.dumps(data, ensure_ascii=False)
    if removed:
        path.write_bytes(new_text.encode("utf-8" if encoding == "utf-8-sig" else encoding))
    return removed


def _rewrite_xlsx(path: Path, contracts: list[Contract], cid: str, tmp: Path) -> int:
    from openpyxl import load_workbook

    workbook = load_workbook(path)
    removed = 0
    headers = [c for contract in contracts for c in _email_headers(contract)]
    for sheet in workbook.worksheets:
        header_row, columns = None, []
        for row in sheet.iter_rows(min_row=1, max_row=min(sheet.max_row, 30)):
            found = [
                c.column
                for c in row
                if isinstance(c.value, str) and any(h.matches(c.value) for h in headers)
            ]
            if found:
                header_row, columns = row[0].row, found
                break
        if header_row is None:
            continue
        for number in range(sheet.max_row, header_row, -1):
            if any(_is_theirs(sheet.cell(number, col).value, cid) for col in columns):
                sheet.delete_rows(number)
                removed += 1
    if removed:
        workbook.save(path)
    workbook.close()
    return removed


# --- raw layer, quarantine and ledger --------------------------------------------------------


def _filter_parquet(path: Path, where_kept: str, replace: str = "") -> int:
    """Rewrite ``path`` keeping rows where ``where_kept``; returns the number of rows removed."""
    con = duckdb.connect()
    try:
        src = _sql_str(str(path))
        before = con.execute(f"select count(*) from read_parquet({src})").fetchone()[0]
        kept = con.execute(
            f"select count(*) from read_parquet({src}) where {where_kept}"
        ).fetchone()[0]
        if kept == before and not replace:
            return 0
        tmp = path.with_name(f".{path.name}.erasing")
        con.execute(
            f"copy (select *{replace} from read_parquet({src}) where {where_kept}) "
            f"to {_sql_str(str(tmp))} (format parquet)"
        )
        os.replace(tmp, path)
        return before - kept
    finally:
        con.close()


def _theirs_sql(cid: str, column: str = "email") -> str:
    return f"coalesce(md5(lower(trim({column}))) = '{cid}', false)"


def _raw_content_theirs(cid: str) -> str:
    return (
        f"coalesce(len(list_filter(regexp_extract_all(raw_content, '{EMAIL_PATTERN}'), "
        f"x -> md5(lower(trim(x))) = '{cid}')) > 0, false)"
    )


def _erase_source(settings: Settings, contract: Contract, cid: str, moved: dict, result: Erasure):
    """Raw and quarantine Parquet of one source; the ledger follows (hashes and counts)."""
    ledger = Ledger(settings, contract)
    changes: dict[tuple[str, str], dict[str, int]] = {}  # (load_date, old hash16) -> removed
    raw_base = settings.raw_dir / contract.key
    q_base = settings.quarantine_dir / contract.key
    has_email = bool(_email_headers(contract))
    for base, kind in ((raw_base, "raw"), (q_base, "quarantine")):
        for path in sorted(base.glob("load_date=*/*.parquet")):
            day = path.parent.name.removeprefix("load_date=")
            old16 = path.stem
            new = moved.get(old16)
            if kind == "raw":
                removed = 0
                if has_email or new:
                    removed = _filter_parquet(
                        path,
                        f"not {_theirs_sql(cid)}" if has_email else "true",
                        f" replace ({_sql_str(new)} as _file_hash)" if new else "",
                    )
                result.raw_rows += removed
            else:
                theirs = _raw_content_theirs(cid)
                redact = (
                    f" replace (case when row_number is null and {theirs} then "
                    "'(file preview removed by an erasure)' else raw_content end as raw_content"
                    + (f", {_sql_str(new)} as file_hash" if new else "")
                    + ")"
                )
                con = duckdb.connect()
                previews = con.execute(
                    f"select count(*) from read_parquet({_sql_str(str(path))}) "
                    f"where row_number is null and {theirs}"
                ).fetchone()[0]
                con.close()
                result.quarantine_previews += previews
                removed = _filter_parquet(
                    path,
                    f"row_number is null or not {theirs}",
                    redact if (previews or new) else "",
                )
                result.quarantine_rows += removed
            if removed:
                changes.setdefault((day, old16), {})[kind] = removed
            if new:
                os.replace(path, path.with_name(f"{new[:16]}.parquet"))
    for ledger_file in sorted(ledger.dir.glob("load_date=*.json")) if ledger.dir.is_dir() else []:
        day = ledger_file.stem.removeprefix("load_date=")
        entries = json.loads(ledger_file.read_text("utf-8"))
        changed = False
        for entry in entries:
            old16 = entry["file_hash"][:16]
            removed = changes.get((day, old16), {})
            if removed:
                entry["rows_loaded"] -= removed.get("raw", 0)
                entry["rows_quarantined"] -= removed.get("quarantine", 0)
                entry["rows_landed"] -= removed.get("raw", 0) + removed.get("quarantine", 0)
                changed = True
            if old16 in moved:
                entry["file_hash"] = moved[old16]
                changed = True
        if changed:
            tmp = ledger_file.with_name(f".{ledger_file.name}.erasing")
            tmp.write_text(json.dumps(entries, indent=1, sort_keys=True), "utf-8")
            os.replace(tmp, ledger_file)


# --- DuckDB files ----------------------------------------------------------------------------


def _erase_database(path: Path, cid: str, result: Erasure) -> None:
    try:
        con = duckdb.connect(str(path))
    except duckdb.Error as exc:
        raise ErasureError(
            f"{path} cannot be opened for writing ({exc}); stop the DAG run or the tool holding "
            "it and erase again."
        ) from exc
    try:
        tables = con.execute(
            "select t.schema_name, t.table_name, list(c.column_name) from duckdb_tables() t "
            "join duckdb_columns() c using (database_name, schema_name, table_name) "
            "where t.database_name = current_database() group by 1, 2"
        ).fetchall()
        for schema, table, columns in tables:
            conditions = []
            if "email" in columns:
                conditions.append(_theirs_sql(cid))
            if "customer_id" in columns:
                conditions.append(f"coalesce(customer_id = '{cid}', false)")
            if "raw_content" in columns:
                conditions.append(_raw_content_theirs(cid))
            if not conditions:
                continue
            name = f'"{schema}"."{table}"'
            removed = con.execute(f"delete from {name} where {' or '.join(conditions)}").fetchone()[
                0
            ]
            if removed:
                result.warehouse_rows[f"{path.name}:{schema}.{table}"] = removed
        con.execute("checkpoint")
    finally:
        con.close()


# --- entry point -----------------------------------------------------------------------------


def erase(settings: Settings, *, email: str | None = None, customer: str | None = None) -> Erasure:
    """Erase one person everywhere the warehouse keeps data (see the module doc)."""
    if bool(email) == bool(customer):
        raise ErasureError("name the person by exactly one of an e-mail or a customer id")
    if email:
        cid = customer_id(email)
    else:
        cid = customer.strip().lower()
        if not _CUSTOMER_ID.match(cid):
            raise ErasureError(
                f"{customer!r} is not a customer id (32 hex characters, md5 of the e-mail)"
            )
    result = Erasure(customer_id=cid)
    contracts = [c for c in load_contracts() if _email_headers(c)]
    tmp = settings.data_dir / ".erasure-tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    moved: dict[str, str] = {}  # old hash[:16] -> new full hash
    try:
        for _, folder in landing_folders(settings.landing_dir, date.max):
            for path in sorted(p for p in folder.iterdir() if p.is_file()):
                matching = [c for c in contracts if c.matches_file(path.name)]
                if not matching:
                    continue
                old = file_sha256(path)
                if matching[0].format == "xlsx":
                    removed = _rewrite_xlsx(path, matching, cid, tmp)
                elif matching[0].format == "csv":
                    removed = _rewrite_csv(path, matching[0], cid, tmp)
                else:
                    removed = _rewrite_json(path, matching[0], cid, tmp)
                if removed:
                    result.landing_files[f"{folder.name}/{path.name}"] = removed
                    moved[old[:16]] = file_sha256(path)
        for contract in load_contracts():
            _erase_source(settings, contract, cid, moved, result)
        databases = [settings.build_path, settings.warehouse_path]
        databases += sorted(versions_dir(settings).glob("*.duckdb"))
        for path in databases:
            if path.exists():
                _erase_database(path, cid, result)
    finally:
        for leftover in tmp.glob("*"):
            leftover.unlink()
        tmp.rmdir()
    log_path = settings.data_dir / "audit" / "erasures.jsonl"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(result.record(utc_now().isoformat() + "Z"), sort_keys=True) + "\n")
    return result
