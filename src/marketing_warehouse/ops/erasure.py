"""Erasure of one person (``mwh erase``): a resumable job that leaves no trace of them.

A person is named by e-mail or by ``customer_id`` (md5 of the normalised e-mail, see
``identity.py``, the same rule dbt uses); a row is theirs when an e-mail column of it normalises to
that id. The job is planned first and journalled in ``<data>/audit/erasure-journal.json``: every
step (one per landed file, per source's raw and quarantine files, per DuckDB file, PostgreSQL,
per folder of reports, docs and logs) is marked done as it ends, and every step can run again
with the same result, so a crash or a rerun of ``mwh erase`` (or ``mwh erase --resume``) finishes
the job. The steps:

* **landing**: every landed export that holds them is rewritten without their rows (same format,
  encoding and delimiter; a temporary copy renamed over the file). Before the rename, the old and
  the new content hash are added to the source's ``raw/_erased/<source>.json``, which
  the loader counts as known: a file erasure rewrote is never reloaded as a late arrival, even if
  the job stopped half-way. A landed file that cannot be read (a binary under a ``.csv`` name) is
  reported, with whether its bytes hold the address, and does not stop the job;
* **raw**: their rows leave every raw Parquet file, quarantined rows that hold their address
  leave the quarantine, a whole-file quarantine preview loses the address; Parquet files and
  ledger entries follow the landed file's new hash, and the ledger's counts are recounted from the
  Parquet files (rows landed = rows loaded + rows quarantined still holds);
* **duckdb**: the build file, the serving file and every kept version are copied into a fresh file
  without their rows (``email``/``customer_id`` columns) and with their address replaced in every
  other text column, then renamed over the original (hard links between the serving file and its
  version kept), so no freed block of the old file survives and BI tools holding the serving file
  open read-only do not block it (they read the old version until they reconnect);
* **postgres** (``MWH_POSTGRES_DSN`` set): the erased serving file is published again, both
  schemas in one transaction (``serve_postgres.publish_to_postgres``);
* **exports**: the person's rows leave every kept audience export folder (tool files matched by
  their e-mail, or by its hash in the Meta and Google files; the plain and control files by
  customer id), each folder rewritten as a whole with its manifest recounted
  (``audience_exports.erase_from_exports``); the erasure log keeps them out of every later
  export, since ``audience_members`` leaves out everyone in it;
* **files**: run folders, GX and dbt docs, dbt's target and logs and Airflow's task logs have the
  address replaced by ``[erased]`` (Parquet files rewritten, text files edited in place);
* **finish**: a record is appended to ``<data>/audit/erasures.jsonl`` (SHA-256 of the customer id,
  counts per place, the time: never the e-mail) and the journal is deleted.

The journal holds the person's address while the job runs (it is needed to finish it) and is
deleted at the end. ``MWH_ERASURE_STOP_AFTER=N`` makes the process exit hard at the N-th
checkpoint: the fault-injection tests use it to prove that a rerun finishes the job.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from marketing_warehouse.config import Settings
from marketing_warehouse.ingest.contracts import Contract, load_contracts
from marketing_warehouse.ingest.extract import (
    _as_plain_utf8,
    _find_header,
    _sql_str,
    detect_encoding,
    file_sha256,
    utc_now,
)
from marketing_warehouse.ingest.formats import _flatten
from marketing_warehouse.ingest.loads import Ledger, landing_folders
from marketing_warehouse.layout import hash_name, partition_day, raw_file_name
from marketing_warehouse.ops.audience_exports import erase_from_exports
from marketing_warehouse.ops.identity import (
    EMAIL_SHAPE,
    customer_id,
    customer_id_sql,
    normalize_email,
)
from marketing_warehouse.serve.publish import publish_lock

#: Addresses in free text (quarantined raw content); matched by their customer id.
EMAIL_PATTERN = r"[^\s@\"',;<>()\[\]{}:]+@[^\s@\"',;<>()\[\]{}:]+\.[^\s@\"',;<>()\[\]{}:.]+"
_CUSTOMER_ID = re.compile(r"^[0-9a-f]{32}$")
REDACTED = "[erased]"
STOP_AFTER_ENV = "MWH_ERASURE_STOP_AFTER"
#: Suffixes of files the ``files`` step never edits byte by byte (databases, archives, images).
_BINARY_SUFFIXES = {".duckdb", ".db", ".sqlite", ".wal", ".xlsx", ".zip", ".gz", ".png", ".jpg"}


class ErasureError(ValueError):
    """The request cannot be carried out as given (bad address, unknown person, a locked file)."""


class UnknownPerson(ErasureError):
    """No source, raw file or DuckDB file knows the person: nothing was erased."""


def journal_path(settings: Settings) -> Path:
    return settings.layout.erasure_journal


def log_path(settings: Settings) -> Path:
    return settings.layout.erasure_log


@dataclass
class Erasure:
    customer_id: str
    landing_files: dict[str, int] = field(default_factory=dict)  # file -> rows removed
    unreadable_files: dict[str, str] = field(default_factory=dict)  # file -> what went wrong
    raw_rows: int = 0
    quarantine_rows: int = 0
    quarantine_previews: int = 0
    warehouse_rows: dict[str, int] = field(default_factory=dict)  # file:table -> rows removed
    postgres_tables: int = 0
    files_redacted: list[str] = field(default_factory=list)
    export_rows: int = 0
    resumed: bool = False

    def record(self, erased_at: str) -> dict:
        """The audit record: counts and a hash of the id, nothing that names the person."""
        return {
            "erased_at": erased_at,
            "subject_sha256": hashlib.sha256(self.customer_id.encode()).hexdigest(),
            "landing_files_rewritten": len(self.landing_files),
            "landing_rows_removed": sum(self.landing_files.values()),
            "landing_files_unreadable": sorted(self.unreadable_files),
            "raw_rows_removed": self.raw_rows,
            "quarantine_rows_removed": self.quarantine_rows,
            "quarantine_previews_redacted": self.quarantine_previews,
            "warehouse_rows_removed": self.warehouse_rows,
            "postgres_tables_republished": self.postgres_tables,
            "files_redacted": len(self.files_redacted),
            "audience_export_rows_removed": self.export_rows,
        }


# --- the journal -----------------------------------------------------------------------------


class Journal:
    """The plan and progress of one erasure, saved atomically after every change."""

    def __init__(self, path: Path, state: dict) -> None:
        self.path = path
        self.state = state

    @classmethod
    def load(cls, settings: Settings) -> Journal | None:
        path = journal_path(settings)
        return cls(path, json.loads(path.read_text("utf-8"))) if path.exists() else None

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.state, indent=1, sort_keys=True), "utf-8")
        os.replace(tmp, self.path)

    @property
    def needles(self) -> list[str]:
        return self.state["needles"]

    def add_needles(self, values: object) -> None:
        for value in values:
            text = str(value).strip()
            normalized = normalize_email(text)
            for candidate in (text, normalized):
                if candidate and candidate not in self.needles:
                    self.needles.append(candidate)


_checkpoints = 0


def _checkpoint() -> None:
    """A point where a crash must leave a state a rerun can finish (fault-injection hook)."""
    global _checkpoints
    _checkpoints += 1
    stop = os.environ.get(STOP_AFTER_ENV)
    if stop and _checkpoints >= int(stop):
        os._exit(75)


# --- matching --------------------------------------------------------------------------------


def _email_headers(contract: Contract) -> list:
    return [c for c in contract.columns if c.type == "email" or c.name == "email"]


def _is_theirs(value: object, cid: str) -> bool:
    return isinstance(value, str) and customer_id(value) == cid


def _needle_regex(needles: list[str]) -> str:
    """A case-insensitive RE2/Python pattern matching any of ``needles`` (longest first)."""
    return "(?i)(" + "|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True)) + ")"


def _text_theirs_sql(column: str, cid: str, needles: list[str]) -> str:
    """SQL: ``column`` (free text) holds one of the needles or an address with the person's id."""
    found = (
        f"len(list_filter(regexp_extract_all({column}, {_sql_str(EMAIL_PATTERN)}), "
        f"x -> {customer_id_sql('x')} = '{cid}')) > 0"
    )
    if needles:
        found += f" or regexp_matches({column}, {_sql_str(_needle_regex(needles))})"
    return f"coalesce({found}, false)"


def _scrubbed_sql(column: str, needles: list[str]) -> str:
    pattern = _sql_str(_needle_regex(needles))
    return f"regexp_replace({column}, {pattern}, {_sql_str(REDACTED)}, 'g')"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --- landed files ----------------------------------------------------------------------------


def _rewrite_csv(path: Path, contract: Contract, cid: str, tmp: Path) -> tuple[bytes, int, set]:
    encoding = detect_encoding(path)
    plain = _as_plain_utf8(path, encoding, tmp)
    _, delimiter, skip = _find_header(plain, contract)
    text = plain.read_text("utf-8")
    newline = "\r\n" if "\r\n" in text[:100_000] else "\n"
    lines = text.splitlines(keepends=True)
    head, body = "".join(lines[:skip]), "".join(lines[skip:])
    rows = list(csv.reader(io.StringIO(body, newline=""), delimiter=delimiter))
    if not rows:
        return b"", 0, set()
    columns = [
        i for i, h in enumerate(rows[0]) if any(c.matches(h) for c in _email_headers(contract))
    ]
    kept, found = [rows[0]], set()
    for row in rows[1:]:
        theirs = [row[i] for i in columns if i < len(row) and _is_theirs(row[i], cid)]
        found.update(theirs)
        if not theirs:
            kept.append(row)
    removed = len(rows) - len(kept)
    if not removed:
        return b"", 0, found
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator=newline).writerows(kept)
    target = "utf-8" if encoding == "utf-8" else encoding
    return (head + out.getvalue()).encode(target, errors="replace"), removed, found


def _theirs_in_record(record: object, contract: Contract, cid: str) -> list[str]:
    if not isinstance(record, dict):
        return []
    flat = _flatten(record)
    return [
        v
        for k, v in flat.items()
        if any(c.matches(k) for c in _email_headers(contract)) and _is_theirs(v, cid)
    ]


def _rewrite_json(path: Path, contract: Contract, cid: str, tmp: Path) -> tuple[bytes, int, set]:
    encoding = detect_encoding(path)
    text = path.read_bytes().decode(encoding)
    found: set[str] = set()
    if contract.format == "jsonl":
        lines = text.splitlines(keepends=True)
        kept = []
        for line in lines:
            try:
                theirs = _theirs_in_record(json.loads(line), contract, cid) if line.strip() else []
            except json.JSONDecodeError:
                theirs = [t for t in re.findall(EMAIL_PATTERN, line) if customer_id(t) == cid]
            found.update(theirs)
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
        kept_records = []
        for record in holder:
            theirs = _theirs_in_record(record, contract, cid)
            found.update(theirs)
            if not theirs:
                kept_records.append(record)
        removed = len(holder) - len(kept_records)
        if key is None:
            data = kept_records
        else:
            data[key] = kept_records
        new_text = json.dumps(data, ensure_ascii=False)
    if not removed:
        return b"", 0, found
    return new_text.encode("utf-8" if encoding == "utf-8-sig" else encoding), removed, found


def _rewrite_xlsx(
    path: Path, contracts: list[Contract], cid: str, tmp: Path
) -> tuple[bytes, int, set]:
    from openpyxl import load_workbook

    workbook = load_workbook(path)
    removed, found = 0, set()
    headers = [c for contract in contracts for c in _email_headers(contract)]
    for sheet in workbook.worksheets:
        header_row, columns = None, []
        for row in sheet.iter_rows(min_row=1, max_row=min(sheet.max_row, 30)):
            hits = [
                c.column
                for c in row
                if isinstance(c.value, str) and any(h.matches(c.value) for h in headers)
            ]
            if hits:
                header_row, columns = row[0].row, hits
                break
        if header_row is None:
            continue
        for number in range(sheet.max_row, header_row, -1):
            theirs = [
                sheet.cell(number, col).value
                for col in columns
                if _is_theirs(sheet.cell(number, col).value, cid)
            ]
            if theirs:
                found.update(theirs)
                sheet.delete_rows(number)
                removed += 1
    out = io.BytesIO()
    if removed:
        workbook.save(out)
    workbook.close()
    return out.getvalue(), removed, found


def _holds_needle(data: bytes, needles: list[str]) -> bool:
    lowered = data.lower()
    for needle in needles:
        for encoding in ("utf-8", "utf-16-le", "utf-16-be", "cp1252"):
            try:
                if needle.lower().encode(encoding) in lowered:
                    return True
            except UnicodeEncodeError:
                continue
    return False


def _landing_step(settings: Settings, journal: Journal, rel: str, result: Erasure) -> None:
    """Rewrite one landed file without the person (idempotent: a second pass finds nothing)."""
    cid = journal.state["customer_id"]
    path = settings.landing_dir / rel
    if not path.exists():
        return
    contracts = [c for c in load_contracts() if _email_headers(c) and c.matches_file(path.name)]
    scratch = settings.layout.landing_scratch
    scratch.mkdir(exist_ok=True)
    try:
        if contracts[0].format == "xlsx":
            content, removed, found = _rewrite_xlsx(path, contracts, cid, scratch)
        elif contracts[0].format == "csv":
            content, removed, found = _rewrite_csv(path, contracts[0], cid, scratch)
        else:
            content, removed, found = _rewrite_json(path, contracts[0], cid, scratch)
    except OSError:
        raise
    except Exception as exc:  # a file no extractor can read either: report it, go on
        holds = _holds_needle(path.read_bytes(), journal.needles)
        journal.state["unreadable"][rel] = f"cannot be read ({type(exc).__name__}); " + (
            "its bytes hold the address: delete or fix the file" if holds else "no trace found"
        )
        return
    finally:
        for leftover in scratch.glob("*"):
            leftover.unlink()
    journal.add_needles(found)
    if not removed:
        return
    old = file_sha256(path)
    tmp = scratch / f"{path.name}.new"
    tmp.write_bytes(content)
    new = file_sha256(tmp)
    journal.state["moved"][hash_name(old)] = new
    journal.state["landing"][rel] = removed
    journal.save()
    for contract in [c for c in load_contracts() if c.matches_file(path.name)]:
        # every source reading the file must know both contents before either is on disk
        _add_erased_hashes(settings, contract, {old, new}, rel.split("/"))
    _checkpoint()
    os.replace(tmp, path)


def _add_erased_hashes(settings: Settings, contract: Contract, hashes: set, where: list) -> None:
    path = Ledger(settings, contract).erased_path
    known = json.loads(path.read_text("utf-8")) if path.exists() else {}
    if all(known.get(h) == where for h in hashes):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    new = known | dict.fromkeys(hashes, where)
    tmp.write_text(json.dumps(new, indent=1, sort_keys=True), "utf-8")
    os.replace(tmp, path)


# --- raw layer, quarantine and ledger --------------------------------------------------------


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"describe select * from {relation}").fetchall()]


def _copy_sql(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    remove: str,
    needles: list[str],
    replace: dict[str, str] | None = None,
) -> tuple[str, int, int]:
    """The select that copies ``relation`` without the rows matching ``remove`` and with the
    needles replaced in every text column; the rows it removes and the values it redacts."""
    columns = _columns(con, relation)
    text = [name for name, kind in columns if kind == "VARCHAR"]
    scrub = []
    if needles and text:
        pattern = _sql_str(_needle_regex(needles))
        flags = con.execute(
            "select "
            + ", ".join(
                f"count(*) filter (where regexp_matches({_quote(c)}, {pattern}))" for c in text
            )
            + f" from {relation} where not ({remove})"
        ).fetchone()
        scrub = [c for c, n in zip(text, flags, strict=True) if n]
        redacted = sum(flags)
    else:
        redacted = 0
    removed = con.execute(f"select count(*) from {relation} where {remove}").fetchone()[0]
    replace = dict(replace or {})
    for c in scrub:
        replace.setdefault(c, _scrubbed_sql(_quote(c), needles))
    items = ", ".join(f"{expr} as {_quote(c)}" for c, expr in replace.items())
    select = (
        f"select * {f'replace ({items})' if items else ''} from {relation} where not ({remove})"
    )
    return select, removed, redacted


def _erase_parquet(path: Path, remove: str, needles: list[str], rename: str | None) -> tuple:
    """Rewrite one Parquet file (to ``rename``.parquet when given); (rows removed, redacted)."""
    con = duckdb.connect()
    try:
        relation = f"read_parquet({_sql_str(str(path))})"
        replace = {}
        if rename and "_file_hash" in dict(_columns(con, relation)):
            replace["_file_hash"] = _sql_str(rename)
        if rename and "file_hash" in dict(_columns(con, relation)):
            replace["file_hash"] = _sql_str(rename)
        select, removed, redacted = _copy_sql(con, relation, remove, needles, replace)
        target = path.with_name(raw_file_name(rename)) if rename else path
        if removed or redacted or rename:
            tmp = path.with_name(f".{path.name}.erasing")
            con.execute(f"copy ({select}) to {_sql_str(str(tmp))} (format parquet)")
            os.replace(tmp, target)
            if target != path:
                path.unlink()
        return removed, redacted
    finally:
        con.close()


def _raw_step(settings: Settings, journal: Journal, key: str, result: Erasure) -> None:
    """Raw and quarantine Parquet of one source, then its ledger (hashes and recounted rows)."""
    contract = next(c for c in load_contracts() if c.key == key)
    cid, needles, moved = journal.state["customer_id"], journal.needles, journal.state["moved"]
    counts = journal.state["counts"]
    email = [c.name for c in _email_headers(contract)]
    raw_remove = " or ".join(
        f"coalesce({customer_id_sql(_quote(c))} = '{cid}', false)" for c in email
    )
    touched = journal.state["touched"]
    source = settings.layout.source(key)
    for files, kind in ((source.raw_files(), "raw"), (source.quarantine_files(), "quarantine")):
        for path in files:
            rename = moved.get(path.stem)
            if kind == "raw":
                remove = raw_remove or "false"
            else:
                remove = (
                    f"row_number is not null and {_text_theirs_sql('raw_content', cid, needles)}"
                )
            removed, redacted = _erase_parquet(path, remove, needles, rename)
            label = f"{kind}:{path.parent.name}/{path.stem}"
            if removed or redacted:
                counts[label] = [removed, redacted]
                touched += [
                    h for h in (path.stem, hash_name(rename or "")) if h and h not in touched
                ]
            journal.save()
            _checkpoint()
    _recount_ledger(settings, contract, moved, set(touched) | set(moved))


def _rows(path: Path) -> int:
    if not path.exists():
        return 0
    return duckdb.sql(f"select count(*) from read_parquet({_sql_str(str(path))})").fetchone()[0]


def _recount_ledger(settings: Settings, contract: Contract, moved: dict, touched: set) -> None:
    """Ledger entries follow the new hashes; a touched entry's counts are those of its files."""
    source = settings.layout.source(contract.key)
    for ledger_file in source.ledger_files():
        day = partition_day(ledger_file.name)
        entries = json.loads(ledger_file.read_text("utf-8"))
        before = json.dumps(entries, sort_keys=True)
        for entry in entries:
            if hash_name(entry["file_hash"]) in moved:
                entry["file_hash"] = moved[hash_name(entry["file_hash"])]
            if entry["status"] == "loaded" and hash_name(entry["file_hash"]) in touched:
                # rows landed stay counted apart from the load: lowered by the rows removed
                loaded = _rows(source.raw_file(day, entry["file_hash"]))
                quarantined = _rows(source.quarantine_file(day, entry["file_hash"]))
                entry["rows_landed"] -= (entry["rows_loaded"] - loaded) + (
                    entry["rows_quarantined"] - quarantined
                )
                entry["rows_loaded"], entry["rows_quarantined"] = loaded, quarantined
        if json.dumps(entries, sort_keys=True) != before:
            tmp = ledger_file.with_name(f".{ledger_file.name}.erasing")
            tmp.write_text(json.dumps(entries, indent=1, sort_keys=True), "utf-8")
            os.replace(tmp, ledger_file)


# --- DuckDB files ----------------------------------------------------------------------------


def _database_groups(settings: Settings) -> list[list[Path]]:
    """The DuckDB files, hard links of one file together (the serving file and its version)."""
    paths = [settings.build_path, settings.warehouse_path]
    paths += sorted(settings.layout.versions.glob("*.duckdb"))
    groups: dict[tuple[int, int], list[Path]] = {}
    for path in paths:
        if path.exists():
            stat = path.stat()
            groups.setdefault((stat.st_dev, stat.st_ino), []).append(path)
    return list(groups.values())


def _theirs_sql(names: set[str], cid: str, needles: list[str]) -> str:
    """The condition of a warehouse table's rows that are the person's, by its columns ``names``:
    their e-mail or customer id, or a quarantined row's text."""
    remove = []
    if "email" in names:
        remove.append(f"coalesce({customer_id_sql('email')} = '{cid}', false)")
    if "customer_id" in names:
        remove.append(f"coalesce(customer_id = '{cid}', false)")
    if {"raw_content", "row_number"} <= names:
        remove.append(
            f"(row_number is not null and {_text_theirs_sql('raw_content', cid, needles)})"
        )
    return " or ".join(remove) or "false"


def _spark_step(settings: Settings, cid: str, needles: list[str], result: Erasure) -> None:
    """Spark's tables (``MWH_ENGINE=spark``): each Parquet file that holds the person is
    rewritten in place without them (its checksum file, now stale, is removed; Spark reads a
    file without one unchecked). The build database on Spark is views over these files."""
    warehouse = settings.layout.spark_warehouse
    for path in sorted(warehouse.rglob("*.parquet")) if warehouse.is_dir() else []:
        con = duckdb.connect()
        try:
            names = {c for c, _ in _columns(con, f"read_parquet({_sql_str(str(path))})")}
        finally:
            con.close()
        removed, redacted = _erase_parquet(path, _theirs_sql(names, cid, needles), needles, None)
        if removed or redacted:
            path.with_name(f".{path.name}.crc").unlink(missing_ok=True)
            table = path.relative_to(warehouse).parts[:2]
            key = f"spark:{table[0].removesuffix('.db')}.{table[1]}"
            result.warehouse_rows[key] = result.warehouse_rows.get(key, 0) + removed


def _rewrite_database(group: list[Path], cid: str, needles: list[str], result: Erasure) -> None:
    """Copy the file into a fresh one without the person and rename it over every link."""
    source = group[0]
    tmp = source.with_name(f".{source.stem}.erasing.tmp.duckdb")
    for stale in (tmp, tmp.with_name(tmp.name + ".wal")):
        stale.unlink(missing_ok=True)
    con = duckdb.connect()
    catalog = _quote(source.stem)
    try:
        try:
            con.execute(f"attach {_sql_str(str(source))} as erasure_source (read_only)")
        except duckdb.Error as exc:
            raise ErasureError(
                f"{source} cannot be read ({type(exc).__name__}); stop the DAG run writing it and "
                "run `mwh erase --resume`"
            ) from exc
        con.execute(f"attach {_sql_str(str(tmp))} as {catalog}")
        schemas = con.execute(
            "select schema_name from duckdb_schemas() where database_name = 'erasure_source' "
            "and not internal"
        ).fetchall()
        for (schema,) in schemas:
            con.execute(f"create schema if not exists {catalog}.{_quote(schema)}")
        tables = con.execute(
            "select schema_name, table_name from duckdb_tables() "
            "where database_name = 'erasure_source' order by 1, 2"
        ).fetchall()
        for schema, table in tables:
            relation = f"erasure_source.{_quote(schema)}.{_quote(table)}"
            remove = _theirs_sql({c for c, _ in _columns(con, relation)}, cid, needles)
            select, removed, _ = _copy_sql(con, relation, remove, needles)
            con.execute(f"create table {catalog}.{_quote(schema)}.{_quote(table)} as {select}")
            if removed:
                result.warehouse_rows[f"{source.name}:{schema}.{table}"] = removed
        views = con.execute(
            "select schema_name, view_name, sql from duckdb_views() "
            "where database_name = 'erasure_source' and not internal"
        ).fetchall()
        con.execute(f"use {catalog}")
        pending = list(views)
        while pending:  # views on views: create each once what it reads exists
            failed = []
            for view in pending:
                try:
                    con.execute(f"use {catalog}.{_quote(view[0])}")
                    con.execute(view[2])
                except duckdb.CatalogException:
                    failed.append(view)
            if len(failed) == len(pending):
                raise ErasureError(
                    f"{source}: views {[f'{v[0]}.{v[1]}' for v in failed]} cannot be copied"
                )
            pending = failed
        con.execute("use memory")
        con.execute(f"detach {catalog}")
        con.execute("detach erasure_source")
    finally:
        con.close()
    _checkpoint()
    for other in group[1:]:
        link = other.with_name(f".{other.name}.erasing-link")
        link.unlink(missing_ok=True)
        os.link(tmp, link)
        os.replace(link, other)
    os.replace(tmp, source)


# --- PostgreSQL and the files around the warehouse -------------------------------------------


def _postgres_step(settings: Settings, result: Erasure) -> None:
    """Serve the erased serving file in PostgreSQL: both schemas replaced in one transaction."""
    from marketing_warehouse.serve.postgres import PostgresPublishError, publish_to_postgres

    if not settings.warehouse_path.exists():
        return
    from marketing_warehouse.serve.publish import pinned_version

    try:  # the same version as before, now without the person
        result.postgres_tables = len(
            publish_to_postgres(settings, version_id=pinned_version(settings))
        )
    except PostgresPublishError as exc:
        raise ErasureError(f"{exc}; run `mwh erase --resume` once PostgreSQL is reachable") from exc


def _file_roots(settings: Settings) -> list[Path]:
    """Folders where reports, docs and logs the project writes can hold personal values."""
    airflow_home = Path(os.environ.get("AIRFLOW_HOME", settings.project_dir / ".airflow"))
    return [
        settings.data_dir,
        settings.dbt_project_dir / "target",
        settings.dbt_project_dir / "logs",
        airflow_home / "logs",
    ]


def _skipped(settings: Settings, path: Path) -> bool:
    """Files other steps erase (or that must stay as they are)."""
    handled = [
        settings.landing_dir,
        settings.layout.raw,
        settings.warehouse_path.parent,
        settings.layout.exports,
    ]
    if any(path.is_relative_to(p) for p in handled):
        return True
    return path in (journal_path(settings), log_path(settings), settings.build_path)


def _text_variants(needle: str) -> list[bytes]:
    """How a text file may spell the value: as is, JSON-escaped, HTML- and URL-escaped."""
    variants = {
        needle.encode("utf-8"),
        json.dumps(needle)[1:-1].encode("ascii"),
        needle.replace("@", "&#64;").encode("utf-8"),
        needle.replace("@", "%40").encode("utf-8"),
    }
    return sorted(variants, key=len, reverse=True)


def _files_step(settings: Settings, journal: Journal, root: Path, result: Erasure) -> None:
    if not root.is_dir():
        return
    needles = journal.needles
    pattern = re.compile(
        b"|".join(re.escape(v) for n in needles for v in _text_variants(n)), re.IGNORECASE
    )
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        if _skipped(settings, path) or path.suffix.lower() in _BINARY_SUFFIXES:
            continue
        if path.suffix == ".parquet":
            # the predictions of every snapshot: the person's rows go (customer_id is theirs)
            theirs = (
                f"customer_id = {_sql_str(journal.state['customer_id'])}"
                if path.is_relative_to(settings.layout.predictions)
                and path.parent.parent.name == "customer_predictions"
                else "false"
            )
            removed, redacted = _erase_parquet(path, theirs, needles, None)
            changed = bool(removed or redacted)
        else:
            data = path.read_bytes()
            new = pattern.sub(REDACTED.encode(), data)
            changed = new != data
            if changed:
                tmp = path.with_name(f".{path.name}.erasing")
                tmp.write_bytes(new)
                os.replace(tmp, path)
        if changed:
            result.files_redacted.append(str(path))


# --- planning and the job --------------------------------------------------------------------


def _subject(email: str | None, customer: str | None) -> tuple[str, list[str]]:
    if bool(email) == bool(customer):
        raise ErasureError("name the person by exactly one of an e-mail or a customer id")
    if email:
        normalized = normalize_email(email)
        if not normalized or not EMAIL_SHAPE.fullmatch(normalized):
            raise ErasureError(
                "the e-mail given is not an address (expected name@domain.tld, no spaces); "
                "nothing was erased"
            )
        return customer_id(normalized), [normalized]
    cid = customer.strip().lower()
    if not _CUSTOMER_ID.match(cid):
        raise ErasureError("not a customer id (32 hex characters, md5 of the e-mail)")
    return cid, []


def _landed_files(settings: Settings) -> list[str]:
    contracts = [c for c in load_contracts() if _email_headers(c)]
    return [
        f"{folder.name}/{path.name}"
        for _, folder in landing_folders(settings.landing_dir, date.max)
        for path in sorted(p for p in folder.iterdir() if p.is_file())
        if any(c.matches_file(path.name) for c in contracts)
    ]


def _known_spellings(settings: Settings, cid: str, needles: list[str]) -> set[str]:
    """The person's addresses as the raw files and DuckDB files hold them (empty: unknown)."""
    found: set[str] = set()
    con = duckdb.connect()
    try:
        for contract in load_contracts():
            for column in (c.name for c in _email_headers(contract)):
                files = settings.layout.source(contract.key).raw_files()
                if files:
                    listing = ", ".join(_sql_str(str(f)) for f in files)
                    found.update(
                        r[0]
                        for r in con.execute(
                            f"select distinct {_quote(column)} from read_parquet([{listing}], "
                            f"union_by_name = true) where {customer_id_sql(_quote(column))} = '{cid}'"
                        ).fetchall()
                    )
        quarantined = settings.layout.all_quarantine_files()
        if quarantined:
            listing = ", ".join(_sql_str(str(f)) for f in quarantined)
            for (spelling,) in con.execute(  # addresses in quarantined rows and previews
                f"select distinct unnest(list_filter(regexp_extract_all(raw_content, "
                f"{_sql_str(EMAIL_PATTERN)}), x -> {customer_id_sql('x')} = '{cid}')) "
                f"from read_parquet([{listing}], union_by_name = true)"
            ).fetchall():
                found.add(spelling)
        for group in _database_groups(settings):
            try:
                con.execute(f"attach {_sql_str(str(group[0]))} as probe (read_only)")
            except duckdb.Error:
                continue  # locked or broken: the duckdb step says so
            for schema, table, columns in con.execute(
                "select schema_name, table_name, list(column_name) from duckdb_columns() "
                "where database_name = 'probe' group by 1, 2"
            ).fetchall():
                relation = f"probe.{_quote(schema)}.{_quote(table)}"
                if "email" in columns:
                    found.update(
                        r[0]
                        for r in con.execute(
                            f"select distinct email from {relation} "
                            f"where {customer_id_sql('email')} = '{cid}'"
                        ).fetchall()
                    )
                if (
                    "customer_id" in columns
                    and con.execute(
                        f"select count(*) from {relation} where customer_id = '{cid}'"
                    ).fetchone()[0]
                ):
                    found.add(cid)
            con.execute("detach probe")
    finally:
        con.close()
    return {f for f in found if f}


def _plan(settings: Settings, cid: str, needles: list[str]) -> Journal:
    journal = Journal(
        journal_path(settings),
        {
            "customer_id": cid,
            "started_at": utc_now().isoformat() + "Z",
            "needles": [],
            "steps": [],
            "moved": {},
            "landing": {},
            "unreadable": {},
            "counts": {},
            "touched": [],
            "warehouse_rows": {},
            "postgres_tables": 0,
            "files_redacted": [],
        },
    )
    journal.add_needles(needles)
    known = _known_spellings(settings, cid, needles)
    journal.add_needles(s for s in known if s != cid)
    landed = _landed_files(settings)
    if not known:  # not loaded anywhere yet: perhaps in a landed file no run has loaded
        probe = Erasure(customer_id=cid)
        for rel in landed:
            _landing_probe(settings, journal, rel, probe)
        if not journal.state.pop("found_in_landing", False):
            raise UnknownPerson(
                "no landed file, raw file or DuckDB file knows this person: nothing was erased "
                "and no erasure was recorded"
            )
    steps = [f"landing:{rel}" for rel in landed]
    steps += [f"raw:{c.key}" for c in load_contracts()]
    if settings.layout.spark_warehouse.is_dir():
        steps.append("spark")
    steps += ["duckdb:" + "|".join(str(p) for p in g) for g in _database_groups(settings)]
    if settings.postgres_dsn:
        steps.append("postgres")
    steps.append("exports")
    steps += [f"files:{root}" for root in _file_roots(settings)]
    journal.state["steps"] = [{"step": s, "done": False} for s in steps]
    journal.save()
    return journal


def _landing_probe(settings: Settings, journal: Journal, rel: str, probe: Erasure) -> None:
    """Whether a landed file holds the person, without changing it."""
    cid = journal.state["customer_id"]
    path = settings.landing_dir / rel
    contracts = [c for c in load_contracts() if _email_headers(c) and c.matches_file(path.name)]
    scratch = settings.layout.landing_scratch
    scratch.mkdir(exist_ok=True)
    try:
        rewrite: Callable = {"xlsx": _rewrite_xlsx, "csv": _rewrite_csv}.get(
            contracts[0].format, _rewrite_json
        )
        _, removed, found = rewrite(
            path, contracts if contracts[0].format == "xlsx" else contracts[0], cid, scratch
        )
    except OSError:
        raise
    except Exception:
        removed, found = 0, set()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if removed:
        journal.state["found_in_landing"] = True
        journal.add_needles(found)


def _exports_step(settings: Settings, journal: Journal, result: Erasure) -> None:
    removed = erase_from_exports(settings, journal.state["customer_id"], journal.needles)
    journal.state["export_rows"] = journal.state.get("export_rows", 0) + removed
    result.export_rows = journal.state["export_rows"]


def _steps(
    settings: Settings, journal: Journal, result: Erasure
) -> Iterator[tuple[dict, Callable]]:
    for step in journal.state["steps"]:
        kind, _, target = step["step"].partition(":")
        if kind == "landing":
            yield step, lambda t=target: _landing_step(settings, journal, t, result)
        elif kind == "raw":
            yield step, lambda t=target: _raw_step(settings, journal, t, result)
        elif kind == "duckdb":
            group = [Path(p) for p in target.split("|") if Path(p).exists()]
            cid = journal.state["customer_id"]

            def run(group=group, cid=cid):
                if not group:
                    return
                with publish_lock(settings):
                    _rewrite_database(group, cid, journal.needles, result)

            yield step, run
        elif kind == "spark":
            yield (
                step,
                lambda: _spark_step(
                    settings, journal.state["customer_id"], journal.needles, result
                ),
            )
        elif kind == "postgres":
            yield step, lambda: _postgres_step(settings, result)
        elif kind == "exports":
            yield step, lambda: _exports_step(settings, journal, result)
        else:
            yield step, lambda t=target: _files_step(settings, journal, Path(t), result)


def erase(
    settings: Settings,
    *,
    email: str | None = None,
    customer: str | None = None,
    resume: bool = False,
) -> Erasure:
    """Erase one person everywhere the warehouse keeps data (see the module doc); a pending
    erasure of the same person is finished, one of another person must be resumed first."""
    journal = Journal.load(settings)
    if resume:
        if journal is None:
            raise ErasureError("no erasure is pending: nothing to resume")
    else:
        cid, needles = _subject(email, customer)
        if journal is not None and journal.state["customer_id"] != cid:
            raise ErasureError(
                "another erasure is pending; run `mwh erase --resume` to finish it first"
            )
        if journal is None:
            journal = _plan(settings, cid, needles)
    result = Erasure(customer_id=journal.state["customer_id"], resumed=resume)
    for step, run in _steps(settings, journal, result):
        if step["done"]:
            continue
        before = dict(result.warehouse_rows)
        run()
        journal.state["warehouse_rows"].update(
            {k: v for k, v in result.warehouse_rows.items() if k not in before or v != before[k]}
        )
        journal.state["postgres_tables"] = max(
            journal.state["postgres_tables"], result.postgres_tables
        )
        journal.state["files_redacted"] += [
            f for f in result.files_redacted if f not in journal.state["files_redacted"]
        ]
        step["done"] = True
        journal.save()
        _checkpoint()
    _fill(result, journal)
    log = log_path(settings)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(result.record(utc_now().isoformat() + "Z"), sort_keys=True) + "\n")
    journal.path.unlink()
    shutil.rmtree(settings.layout.landing_scratch, ignore_errors=True)
    return result


def _fill(result: Erasure, journal: Journal) -> None:
    """The result of the whole job, from the journal (steps of an earlier process included)."""
    state = journal.state
    result.landing_files = dict(state["landing"])
    result.unreadable_files = dict(state["unreadable"])
    for label, (removed, redacted) in state["counts"].items():
        if label.startswith("raw:"):
            result.raw_rows += removed
        else:
            result.quarantine_rows += removed
            result.quarantine_previews += 1 if redacted and not removed else 0
    result.warehouse_rows = dict(state["warehouse_rows"])
    result.postgres_tables = state["postgres_tables"]
    result.files_redacted = list(state["files_redacted"])
    result.export_rows = state.get("export_rows", 0)
