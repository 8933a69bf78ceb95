"""Idempotent loads of landed files into raw partitions, recorded in a load ledger.

The raw partitions, quarantine files and ledger files a load writes are laid out by
``marketing_warehouse.layout`` (``Layout.source``): one Parquet file per landed file and load date,
named by the file's content hash, and one ledger file per load date.

Rules for a run of logical date ``ds`` (landing folders are ``<landing>/YYYY-MM-DD/``):

* the folder of ``ds`` itself is reloaded from scratch and its partition replaced, so re-running a
  date gives the same raw data;
* files in earlier folders that no ledger knows (by content hash) are late arrivals and are added
  to their own folder's partition;
* a file whose content hash is already in the ledger (a re-sent export, the same file under another
  name) is skipped and recorded as ``skipped_duplicate``; so is a file whose typed rows equal those
  of a file already loaded (the same export saved in another encoding or with other line ends),
  once it has been extracted;
* later folders are never touched, so dates can be backfilled in any order.

Each partition is written in ``<data>/raw/_staging/`` (outside every folder dbt and the gates read,
so a crash mid-load leaves nothing half-written in sight) and swapped in by renames; the ledger
entry is written last, and a ledger entry whose Parquet file is missing does not count as loaded.
A file that breaks the extractor in an unforeseen way is quarantined whole (``extract_failed``) so
the other files still load; an error of the machine (disk full, permissions) fails the task, which
Airflow retries, and leaves the previous partition in place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path

import duckdb

from marketing_warehouse.config import Plausibility, Settings
from marketing_warehouse.ingest.contracts import Contract
from marketing_warehouse.ingest.extract import (
    DUCKDB_RESOURCE_ERRORS,
    LINEAGE_COLUMNS,
    FileRejected,
    FileResult,
    empty_quarantine_file,
    empty_raw_file,
    extract_file,
    extraction_database,
    file_sha256,
    write_file_rejection,
)
from marketing_warehouse.ingest.quarantine import Reason
from marketing_warehouse.layout import landing_folder_day, raw_file_name

#: Under the raw folder, one file per source: hash -> [load date, file name] of landed files an
#: erasure rewrote (outside the ledger's folder, which dbt reads as load_ledger).
log = logging.getLogger(__name__)


def landing_folders(landing_dir: Path, until: date) -> list[tuple[date, Path]]:
    """Dated landing folders up to and including ``until``, oldest first."""
    if not landing_dir.is_dir():
        return []
    found = []
    for entry in landing_dir.iterdir():
        day = landing_folder_day(entry.name) if entry.is_dir() else None
        if day is not None and day <= until:
            found.append((day, entry))
    return sorted(found)


def _inside(path: Path, landing_dir: Path) -> bool:
    """Whether ``path``, with every symlink followed, stays inside the landing folder."""
    return path.resolve().is_relative_to(landing_dir.resolve())


def landing_files(
    folder: Path, landing_dir: Path, contract: Contract
) -> tuple[list[Path], list[Path]]:
    """The files of a dated ``folder`` that ``contract`` claims, by name: (files to load, files
    that resolve outside ``landing_dir``). A symlink whose target is inside the landing folder is
    an ordinary file; one that leads out of it is refused unread (``unsafe_path``)."""
    claimed = sorted(p for p in folder.iterdir() if p.is_file() and contract.matches_file(p.name))
    inside = [p for p in claimed if _inside(p, landing_dir)]
    return inside, [p for p in claimed if p not in inside]


#: Why the landing scan ignores an entry (see ``scan_landing``).
IGNORED_REASONS = {
    "outside_date_folder": "not in a YYYY-MM-DD folder: no run reads it",
    "nested_folder": "in a sub-folder of a date folder: only a date folder's own files are read",
    "no_contract": "its name matches no source's file pattern",
    "not_a_regular_file": "not a regular file (a broken link, a device or a pipe)",
}


def scan_landing(landing_dir: Path, ds: date, contracts) -> list[dict]:
    """Every entry of the landing folder the run of ``ds`` is concerned with: the files of date
    folders up to ``ds`` and everything outside date folders, each with ``ignored_reason`` (a key
    of ``IGNORED_REASONS``) or ``None`` for a file a contract claims. Later date folders belong to
    later runs and are left out. Nothing is opened: names and file types only."""
    if not landing_dir.is_dir():
        return []
    dated = {folder: day for day, folder in landing_folders(landing_dir, date.max)}
    found = []

    def add(path: Path, reason: str | None) -> None:
        found.append({"path": path.relative_to(landing_dir).as_posix(), "ignored_reason": reason})

    def walk(entry: Path, reason: str) -> None:
        """``entry`` and everything under it, ignored for ``reason`` (linked folders are listed,
        not followed: a link may lead out of the landing folder or back up into it)."""
        if entry.is_dir() and not entry.is_symlink():
            for item in sorted(entry.iterdir()):
                walk(item, reason)
        else:
            add(entry, reason if entry.is_file() or entry.is_dir() else "not_a_regular_file")

    for entry in sorted(landing_dir.iterdir()):
        if entry not in dated:
            walk(entry, "outside_date_folder")
        elif dated[entry] <= ds:
            for item in sorted(entry.iterdir()):
                if item.is_dir():
                    walk(item, "nested_folder")
                elif not item.is_file():
                    add(item, "not_a_regular_file")
                else:
                    claimed = any(c.matches_file(item.name) for c in contracts)
                    add(item, None if claimed else "no_contract")
    return found


def _write_json_atomic(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _swap_in(new_dir: Path, target: Path, staging: Path) -> None:
    """Replace ``target`` by ``new_dir`` with two renames (old copy removed afterwards)."""
    old = staging / f"old-{target.parent.name}-{target.name}"
    if target.exists():
        os.replace(target, old)
    if new_dir.exists():
        os.replace(new_dir, target)
    if old.exists():
        shutil.rmtree(old)


def _schema_is_current(contract: Contract, schema_file: Path) -> bool:
    """Whether the zero-row schema file has every column the contract and lineage now have."""
    if not schema_file.exists():
        return False
    found = {
        row[0]
        for row in duckdb.sql(
            f"describe select * from read_parquet('{str(schema_file).replace(chr(39), chr(39) * 2)}')"
        ).fetchall()
    }
    return found >= {c.name for c in contract.columns} | set(LINEAGE_COLUMNS)


def staging_dir(settings: Settings, contract: Contract) -> Path:
    """Where a partition is assembled before it is swapped in; not read by dbt or the gates."""
    return settings.layout.source(contract.key).staging


class Ledger:
    """The load ledger of one source entity."""

    def __init__(self, settings: Settings, contract: Contract) -> None:
        self.source = settings.layout.source(contract.key)

    def path(self, day: date) -> Path:
        return self.source.ledger_file(day)

    def entries(self, day: date) -> list[dict]:
        path = self.path(day)
        return json.loads(path.read_text("utf-8")) if path.exists() else []

    def all_entries(self) -> list[dict]:
        return [e for p in self.source.ledger_files() for e in json.loads(p.read_text("utf-8"))]

    def known_hashes(self, exclude_day: date | None = None) -> set[str]:
        """Hashes of files already dealt with; a loaded entry counts only if its Parquet exists."""
        known = set()
        for entry in self.all_entries():
            if exclude_day is not None and entry["load_date"] == exclude_day.isoformat():
                continue
            if entry["status"] == "loaded" and not self._has_parquet(entry):
                continue
            if entry["status"] != "skipped_duplicate":
                known.add(entry["file_hash"])
        known.update(
            h for day, _, h in self._erased() if exclude_day is None or day != str(exclude_day)
        )
        return known

    def known_rows(self, exclude_day: date) -> dict[str, str]:
        """Rows digest -> file name of every loaded file (with its Parquet) of other days."""
        return {
            entry["rows_hash"]: entry["source_file"]
            for entry in self.all_entries()
            if entry["load_date"] != exclude_day.isoformat()
            and entry["status"] == "loaded"
            and entry.get("rows_hash")
            and self._has_parquet(entry)
        }

    def _erased(self) -> set[tuple[str, str, str]]:
        """(load date, file name, hash) of landed files an erasure rewrote, before and after:
        the same export as the one the ledger records, never a late arrival."""
        path = self.erased_path
        if not path.exists():
            return set()
        return {(day, name, h) for h, (day, name) in json.loads(path.read_text("utf-8")).items()}

    @property
    def erased_path(self) -> Path:
        return self.source.erased_hashes

    def recorded(self) -> set[tuple[str, str, str]]:
        """(load date, file name, hash) of every file dealt with (loaded ones with their Parquet)."""
        return {
            (e["load_date"], e["source_file"], e["file_hash"])
            for e in self.all_entries()
            if e["status"] != "loaded" or self._has_parquet(e)
        } | self._erased()

    def _has_parquet(self, entry: dict) -> bool:
        return self.source.raw_file(entry["load_date"], entry["file_hash"]).exists()

    def write(self, day: date, results: list[FileResult]) -> None:
        _write_json_atomic(self.path(day), [asdict(r) for r in results])


def _load_file(
    path: Path,
    contract: Contract,
    day: date,
    raw_part: Path,
    quarantine_part: Path,
    loaded_at: datetime,
    file_hash: str,
    database: duckdb.DuckDBPyConnection,
    plausibility: Plausibility,
) -> FileResult:
    name = raw_file_name(file_hash)
    try:
        result = extract_file(
            path,
            contract,
            day,
            raw_part / name,
            quarantine_part / name,
            loaded_at,
            file_hash,
            database,
            plausibility,
        )
        _check_keys(path, contract, raw_part / name, database)
        result.rows_hash = _rows_hash(contract, raw_part / name, result, database)
        return result
    except FileRejected as caught:
        rejection = caught
    except (OSError, duckdb.IOException, *DUCKDB_RESOURCE_ERRORS):
        raise  # the machine, not the file: fail the task so that Airflow retries it
    except Exception as exc:  # a file that breaks the extractor must not stop the other files
        log.exception("%s: extraction failed; quarantining the file whole", path.name)
        rejection = FileRejected(
            Reason.EXTRACT_FAILED,
            f"{path.name}: extraction failed ({type(exc).__name__}: {str(exc)[:500]}); the file "
            "is quarantined whole. Please report it with the file attached.",
        )
    (raw_part / name).unlink(missing_ok=True)
    (quarantine_part / name).unlink(missing_ok=True)
    write_file_rejection(
        path, contract, day, rejection, file_hash, quarantine_part / name, loaded_at
    )
    return FileResult(
        source_file=path.name,
        file_hash=file_hash,
        load_date=day.isoformat(),
        status="rejected",
        message=rejection.message,
        quarantine_reasons={str(rejection.reason): 1},
    )


#: Key groups named in an ``unresolvable_keys`` message (10 row numbers each); the rest are counted.
CONFLICTS_SHOWN = 5


def _check_keys(
    path: Path, contract: Contract, out_file: Path, database: duckdb.DuckDBPyConnection
) -> None:
    """Reject an ad report whose loaded rows cannot be summed to the contract's key.

    With ``additive_columns`` the rows of a key are summed, so each must be told apart by the
    ``grain_columns`` (a repeated row would count twice) and agree on every other column (one
    campaign, one currency). Contracts whose key names one row quarantine their conflicting rows
    at extraction instead (``conflicting_key``). Row numbers only, never values, go into the
    message."""
    key = list(contract.primary_key)
    if not contract.additive_columns or not out_file.exists():
        return
    ident = [f'"{c}"' for c in key]
    others = [
        f'"{c.name}"'
        for c in contract.columns
        if c.name not in key + list(contract.additive_columns) + list(contract.grain_columns)
    ]
    grain = ident + [f'"{c}"' for c in contract.grain_columns]
    checks = [
        (grain, "count(*) > 1", "repeat the same " + ", ".join(key + list(contract.grain_columns))
         + " (rows are summed, so a repeated row would count twice)"),
        (ident, f"count(distinct ({', '.join(others)})) > 1" if others else "false",
         f"share {', '.join(key)} but differ in " + ", ".join(c.strip('"') for c in others)),
    ]  # fmt: skip
    source = f"read_parquet('{str(out_file).replace(chr(39), chr(39) * 2)}')"
    con = database.cursor()
    try:
        for columns, condition, what in checks:
            groups = con.execute(
                f"select list(_row_number order by _row_number)[1:10], count(*) over () "
                f"from {source} group by {', '.join(columns)} having {condition} "
                f"order by min(_row_number) limit {CONFLICTS_SHOWN}"
            ).fetchall()
            if groups:
                count = groups[0][1]
                shown = "; ".join("rows " + ", ".join(str(n) for n in rows) for rows, _ in groups)
                more = f" and {count - len(groups)} more" if count > len(groups) else ""
                raise FileRejected(
                    Reason.UNRESOLVABLE_KEYS,
                    f"{path.name}: {count} group{'s' if count > 1 else ''} of rows {what}: "
                    f"{shown}{more}. Which row is right cannot be told, so the file is "
                    "quarantined whole; export it again without the repeated rows (or with the "
                    "columns that tell them apart).",
                )
    finally:
        con.close()


def _rows_hash(
    contract: Contract, out_file: Path, result: FileResult, database: duckdb.DuckDBPyConnection
) -> str:
    """A digest of the loaded rows' typed values in file order, with the landed and quarantined
    counts; empty for a file that loaded nothing (such files are told apart by their bytes)."""
    if not result.rows_loaded or not out_file.exists():
        return ""
    columns = ", ".join(f'"{c.name}"' for c in contract.columns)
    source = f"read_parquet('{str(out_file).replace(chr(39), chr(39) * 2)}')"
    con = database.cursor()
    try:
        digest = con.execute(
            f"select md5(string_agg(md5(cast(row({columns}) as varchar)), '' "
            f"order by _row_number)) from {source}"
        ).fetchone()[0]
    finally:
        con.close()
    return f"{result.rows_landed}:{result.rows_quarantined}:{digest}"


def load_source(
    settings: Settings, contract: Contract, ds: date, loaded_at: datetime
) -> list[FileResult]:
    """Load every file of ``contract`` that the run of ``ds`` is responsible for (see module doc)."""
    ledger = Ledger(settings, contract)
    source = settings.layout.source(contract.key)
    schema_file = source.raw_schema_file
    if not _schema_is_current(contract, schema_file):  # a contract that gained columns
        empty_raw_file(contract, schema_file)
    q_schema = source.quarantine_schema_file
    if not q_schema.exists():
        empty_quarantine_file(q_schema)

    staging = staging_dir(settings, contract)
    if staging.exists():  # left by a run that crashed: never swapped in, never read
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        return _load_folders(settings, contract, ds, loaded_at, ledger, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _load_folders(
    settings: Settings,
    contract: Contract,
    ds: date,
    loaded_at: datetime,
    ledger: Ledger,
    staging: Path,
) -> list[FileResult]:
    """Decide file by file, in date and name order, what to load; then extract the files to load
    on ``settings.extract_workers`` threads (each file has its own single-threaded DuckDB
    connection, which releases the GIL) and record the results day by day, in order."""
    source = settings.layout.source(contract.key)
    known = ledger.known_hashes(exclude_day=ds)
    known_rows = ledger.known_rows(exclude_day=ds)
    recorded = ledger.recorded()
    # (day, its results, or None for a file that still has to be extracted, with its arguments)
    plan: list[tuple[date, list[FileResult | None], list[tuple]]] = []
    for day, folder in landing_folders(settings.landing_dir, ds):
        files, unsafe = landing_files(folder, settings.landing_dir, contract)
        if day == ds:
            raw_part = source.staged_partition("raw", day)
            q_part = source.staged_partition("quarantine", day)
        else:
            raw_part, q_part = source.raw_partition(day), source.quarantine_partition(day)
        slots: list[FileResult | None] = []
        jobs: list[tuple] = []
        seen: set[str] = set()
        for path in unsafe:
            refusal = _unsafe(path, day)
            if day == ds or (day.isoformat(), path.name, refusal.file_hash) not in recorded:
                slots.append(refusal)
        for path in files:
            file_hash = file_sha256(path)
            if day != ds and (day.isoformat(), path.name, file_hash) in recorded:
                continue  # dealt with by an earlier run
            if file_hash in known or file_hash in seen:
                slots.append(_duplicate(path, file_hash, day))
                continue
            if day == ds:
                seen.add(file_hash)
            else:
                known.add(file_hash)
            slots.append(None)
            jobs.append((path, contract, day, raw_part, q_part, loaded_at, file_hash))
        if day == ds or slots:
            plan.append((day, slots, jobs))

    all_jobs = [job for _, _, jobs in plan for job in jobs]
    workers = max(1, min(settings.extract_workers, len(all_jobs)))
    results: list[FileResult] = []
    spill = tempfile.TemporaryDirectory(prefix="mwh-extract-spill-")
    database = extraction_database(settings.duckdb_memory_limit, spill.name)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="extract")
    try:
        extracted = pool.map(
            lambda job: _load_file(*job, database, settings.plausibility), all_jobs
        )
        for day, slots, _ in plan:
            day_results = [slot if slot is not None else next(extracted) for slot in slots]
            for index, result in enumerate(day_results):
                if result.status != "loaded" or not result.rows_hash:
                    continue
                if result.rows_hash not in known_rows:
                    known_rows[result.rows_hash] = result.source_file
                    continue
                # the same rows in other bytes (another encoding, other line ends): one delivery
                name = raw_file_name(result.file_hash)
                if day == ds:
                    parts = (
                        source.staged_partition("raw", day),
                        source.staged_partition("quarantine", day),
                    )
                else:
                    parts = (source.raw_partition(day), source.quarantine_partition(day))
                for part in parts:
                    (part / name).unlink(missing_ok=True)
                day_results[index] = _duplicate(
                    Path(result.source_file),
                    result.file_hash,
                    day,
                    f"the same rows as {known_rows[result.rows_hash]} in other bytes",
                )
            if day == ds:
                _swap_in(source.staged_partition("raw", day), source.raw_partition(day), staging)
                _swap_in(
                    source.staged_partition("quarantine", day),
                    source.quarantine_partition(day),
                    staging,
                )
                ledger.write(day, day_results)
            else:
                previous = [
                    e
                    for e in ledger.entries(day)
                    if (e["source_file"], e["file_hash"])
                    not in {(r.source_file, r.file_hash) for r in day_results}
                ]
                ledger.write(day, [FileResult(**e) for e in previous] + day_results)
            results += day_results
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # a machine error: stop, do not go on
        raise
    finally:
        pool.shutdown(wait=True)
        database.close()
        spill.cleanup()
    return results


def _duplicate(
    path: Path, file_hash: str, day: date, what: str = "same content as a file already loaded"
) -> FileResult:
    return FileResult(
        source_file=path.name,
        file_hash=file_hash,
        load_date=day.isoformat(),
        status="skipped_duplicate",
        message=f"{path.name}: {what}; skipped.",
    )


def _unsafe(path: Path, day: date) -> FileResult:
    """A file that leads out of the landing folder: refused without reading a byte of it. Its
    hash is that of the name and the target path, so the ledger records the refusal once."""
    key = f"{Reason.UNSAFE_PATH}\0{path.name}\0{path.resolve()}".encode()
    return FileResult(
        source_file=path.name,
        file_hash=hashlib.sha256(key).hexdigest(),
        load_date=day.isoformat(),
        status="rejected",
        message=(
            f"{day.isoformat()}/{path.name}: a link to a file outside the landing folder; refused "
            "unread. Copy the export into the landing folder instead of linking to it."
        ),
        quarantine_reasons={str(Reason.UNSAFE_PATH): 1},
    )
