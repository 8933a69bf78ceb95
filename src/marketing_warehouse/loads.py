"""Idempotent loads of landed files into raw partitions, recorded in a load ledger.

Layout (all under ``<data>/raw``)::

    <source>__<entity>/load_date=YYYY-MM-DD/<hash>.parquet     typed rows, one file per landed file
    <source>__<entity>/_schema/empty.parquet                  zero rows, keeps staging readable
    _quarantine/<source>__<entity>/load_date=YYYY-MM-DD/<hash>.parquet
    _ledger/<source>__<entity>/load_date=YYYY-MM-DD.json      what each landed file became

Rules for a run of logical date ``ds`` (landing folders are ``<landing>/YYYY-MM-DD/``):

* the folder of ``ds`` itself is reloaded from scratch and its partition replaced, so re-running a
  date gives the same raw data;
* files in earlier folders that no ledger knows (by content hash) are late arrivals and are added
  to their own folder's partition;
* a file whose content hash is already in the ledger (a re-sent export, the same file under another
  name) is skipped and recorded as ``skipped_duplicate``;
* later folders are never touched, so dates can be backfilled in any order.

Each partition is written in ``<data>/raw/_staging/`` (outside every folder dbt and the gates read,
so a crash mid-load leaves nothing half-written in sight) and swapped in by renames; the ledger
entry is written last, and a ledger entry whose Parquet file is missing does not count as loaded.
A file that breaks the extractor in an unforeseen way is quarantined whole (``extract_failed``) so
the other files still load; an error of the machine (disk full, permissions) fails the task, which
Airflow retries, and leaves the previous partition in place.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path

import duckdb

from marketing_warehouse.config import Settings
from marketing_warehouse.contracts import Contract
from marketing_warehouse.extract import (
    DUCKDB_RESOURCE_ERRORS,
    FileRejected,
    FileResult,
    empty_quarantine_file,
    empty_raw_file,
    extract_file,
    extraction_database,
    file_sha256,
    write_file_rejection,
)
from marketing_warehouse.quarantine import Reason

DATE_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: Under the raw folder, one file per source: hash -> [load date, file name] of landed files an
#: erasure rewrote (outside the ledger's folder, which dbt reads as load_ledger).
ERASED_HASHES_DIR = "_erased"
log = logging.getLogger(__name__)


def landing_folders(landing_dir: Path, until: date) -> list[tuple[date, Path]]:
    """Dated landing folders up to and including ``until``, oldest first."""
    if not landing_dir.is_dir():
        return []
    found = []
    for entry in landing_dir.iterdir():
        if entry.is_dir() and DATE_FOLDER.match(entry.name):
            try:
                day = date.fromisoformat(entry.name)
            except ValueError:
                continue
            if day <= until:
                found.append((day, entry))
    return sorted(found)


def _partition(base: Path, day: date) -> Path:
    return base / f"load_date={day.isoformat()}"


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


def staging_dir(settings: Settings, contract: Contract) -> Path:
    """Where a partition is assembled before it is swapped in; not read by dbt or the gates."""
    return settings.raw_dir / "_staging" / contract.key


class Ledger:
    """The load ledger of one source entity."""

    def __init__(self, settings: Settings, contract: Contract) -> None:
        self.dir = settings.ledger_dir / contract.key
        self.raw_dir = settings.raw_dir / contract.key

    def path(self, day: date) -> Path:
        return self.dir / f"load_date={day.isoformat()}.json"

    def entries(self, day: date) -> list[dict]:
        path = self.path(day)
        return json.loads(path.read_text("utf-8")) if path.exists() else []

    def all_entries(self) -> list[dict]:
        if not self.dir.is_dir():
            return []
        return [
            e
            for p in sorted(self.dir.glob("load_date=*.json"))
            for e in json.loads(p.read_text("utf-8"))
        ]

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

    def _erased(self) -> set[tuple[str, str, str]]:
        """(load date, file name, hash) of landed files an erasure rewrote, before and after:
        the same export as the one the ledger records, never a late arrival."""
        path = self.erased_path
        if not path.exists():
            return set()
        return {(day, name, h) for h, (day, name) in json.loads(path.read_text("utf-8")).items()}

    @property
    def erased_path(self) -> Path:
        return self.raw_dir.parent / ERASED_HASHES_DIR / f"{self.raw_dir.name}.json"

    def recorded(self) -> set[tuple[str, str, str]]:
        """(load date, file name, hash) of every file dealt with (loaded ones with their Parquet)."""
        return {
            (e["load_date"], e["source_file"], e["file_hash"])
            for e in self.all_entries()
            if e["status"] != "loaded" or self._has_parquet(e)
        } | self._erased()

    def _has_parquet(self, entry: dict) -> bool:
        part = _partition(self.raw_dir, date.fromisoformat(entry["load_date"]))
        return (part / f"{entry['file_hash'][:16]}.parquet").exists()

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
) -> FileResult:
    name = f"{file_hash[:16]}.parquet"
    try:
        return extract_file(
            path,
            contract,
            day,
            raw_part / name,
            quarantine_part / name,
            loaded_at,
            file_hash,
            database,
        )
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


def load_source(
    settings: Settings, contract: Contract, ds: date, loaded_at: datetime
) -> list[FileResult]:
    """Load every file of ``contract`` that the run of ``ds`` is responsible for (see module doc)."""
    ledger = Ledger(settings, contract)
    raw_base = settings.raw_dir / contract.key
    quarantine_base = settings.quarantine_dir / contract.key
    schema_file = raw_base / "_schema" / "empty.parquet"
    if not schema_file.exists():
        empty_raw_file(contract, schema_file)
    q_schema = quarantine_base / "_schema" / "empty.parquet"
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
    raw_base = settings.raw_dir / contract.key
    quarantine_base = settings.quarantine_dir / contract.key
    known = ledger.known_hashes(exclude_day=ds)
    recorded = ledger.recorded()
    # (day, its results, or None for a file that still has to be extracted, with its arguments)
    plan: list[tuple[date, list[FileResult | None], list[tuple]]] = []
    for day, folder in landing_folders(settings.landing_dir, ds):
        files = sorted(p for p in folder.iterdir() if p.is_file() and contract.matches_file(p.name))
        if day == ds:
            raw_part = staging / f"raw-{day.isoformat()}"
            q_part = staging / f"quarantine-{day.isoformat()}"
        else:
            raw_part, q_part = _partition(raw_base, day), _partition(quarantine_base, day)
        slots: list[FileResult | None] = []
        jobs: list[tuple] = []
        seen: set[str] = set()
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
        extracted = pool.map(lambda job: _load_file(*job, database), all_jobs)
        for day, slots, _ in plan:
            day_results = [slot if slot is not None else next(extracted) for slot in slots]
            if day == ds:
                _swap_in(staging / f"raw-{day.isoformat()}", _partition(raw_base, day), staging)
                _swap_in(
                    staging / f"quarantine-{day.isoformat()}",
                    _partition(quarantine_base, day),
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


def _duplicate(path: Path, file_hash: str, day: date) -> FileResult:
    return FileResult(
        source_file=path.name,
        file_hash=file_hash,
        load_date=day.isoformat(),
        status="skipped_duplicate",
        message=f"{path.name}: same content as a file already loaded; skipped.",
    )
