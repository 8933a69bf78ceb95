"""One run at a time: a lock file under the data folder, held from a run's first task to its end.

A run is many processes (``mwh run`` starts ``airflow dags test``; a scheduler starts one process
per task), so the lock cannot be an ``flock`` that dies with one process. It is a file,
``<data>/.run.lock``, holding the holder's run id, pid, host and start time, created with
``O_EXCL``; every read-modify-write of it happens under an ``flock`` on ``<data>/.run.lock.guard``
so two processes never both take it.

Who may go on while the lock is held:

* the same run again (an Airflow retry of the first task);
* a process started by the holder (the tasks of ``mwh run``'s ``airflow dags test``);
* anyone, when the holder was a command on this host whose process is gone (a crash): the stale
  lock is taken over with a warning;
* an Airflow run, when the holder was another Airflow run: the DAG allows one active run
  (``max_active_runs=1``), so a lock left by an earlier Airflow run (its teardown never ran) is
  stale by construction; taken over with a warning.

Everyone else is refused at once with ``RunLocked`` and changes nothing; ``mwh`` exits with
``RUN_LOCKED_EXIT``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from marketing_warehouse.config import Settings
from marketing_warehouse.ingest.extract import utc_now
from marketing_warehouse.layout import exclusive_lock

#: ``mwh`` exit code when another run holds the lock (EX_TEMPFAIL: try again later).
RUN_LOCKED_EXIT = 75
#: Holder kinds: a command line process (its pid lives as long as the run) or an Airflow run.
CLI, AIRFLOW = "cli", "airflow"
log = logging.getLogger(__name__)


class RunLocked(RuntimeError):
    """Another run holds the run lock; nothing was changed."""


def lock_path(settings: Settings) -> Path:
    return settings.layout.run_lock


def _process_start(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (tells a reused pid apart), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return os.getppid() if pid == os.getpid() else None


def _is_ancestor(pid: int) -> bool:
    current = os.getpid()
    while current and current > 1:
        current = _parent(current)
        if current == pid:
            return True
    return False


def _alive(holder: dict) -> bool:
    """False only when the holder's process is known to be gone (same host, pid not running or
    reused); a holder on another host counts as alive."""
    if holder.get("host") != socket.gethostname():
        return True
    pid = int(holder.get("pid", 0))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = holder.get("process_start")
    return started is None or _process_start(pid) in (None, started)


def read_holder(settings: Settings) -> dict | None:
    """The lock's holder record, or None when no run holds it."""
    try:
        return json.loads(lock_path(settings).read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, OSError):
        return {"run_id": "(unreadable lock file)", "kind": "unknown"}


def _guard(settings: Settings) -> contextlib.AbstractContextManager[None]:
    return exclusive_lock(settings.layout.run_lock_guard)


def _describe(holder: dict) -> str:
    return (
        f"run {holder.get('run_id')!r} ({holder.get('kind')}, pid {holder.get('pid')} on "
        f"{holder.get('host')}, since {holder.get('started_at')})"
    )


def acquire_run_lock(settings: Settings, run_id: str, kind: str = CLI) -> dict:
    """Take the run lock for ``run_id`` (or confirm this process's run holds it) and return the
    holder record; raise ``RunLocked`` when another live run holds it."""
    path = lock_path(settings)
    with _guard(settings):
        holder = read_holder(settings)
        if holder is not None:
            if holder.get("run_id") == run_id:
                return holder
            if holder.get("kind") == CLI and _is_ancestor(int(holder.get("pid", 0))):
                return holder  # a task of the run this command started
            stale = (holder.get("kind") == CLI and not _alive(holder)) or (
                holder.get("kind") == AIRFLOW and kind == AIRFLOW
            )
            if not stale:
                raise RunLocked(
                    f"another run holds {path}: {_describe(holder)}. This one ({run_id!r}) was "
                    "refused and changed nothing; start it again when that run has finished"
                    + (
                        " (if that Airflow run is no longer active, delete the lock file)"
                        if holder.get("kind") != CLI
                        else ""
                    )
                )
            log.warning("took over the run lock %s left behind by %s", path, _describe(holder))
            path.unlink()
        record = {
            "run_id": run_id,
            "kind": kind,
            "pid": os.getpid(),
            "process_start": _process_start(os.getpid()),
            "host": socket.gethostname(),
            "started_at": utc_now().isoformat(timespec="seconds"),
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
        return record


def release_run_lock(settings: Settings, run_id: str) -> bool:
    """Remove the lock if ``run_id`` holds it; True when it was removed."""
    with _guard(settings):
        holder = read_holder(settings)
        if holder is None or holder.get("run_id") != run_id:
            return False
        lock_path(settings).unlink()
        return True


@contextlib.contextmanager
def run_lock(settings: Settings, run_id: str) -> Iterator[dict]:
    """Hold the run lock for the duration of a command (``mwh run``, ``mwh erase``)."""
    holder = acquire_run_lock(settings, run_id, CLI)
    try:
        yield holder
    finally:
        release_run_lock(settings, run_id)  # a no-op when the lock was the parent run's


def take_for_airflow_run(run_id: str | None) -> dict:
    """The DAG's first task takes the lock for its Airflow run; a refusal fails the task without
    retries (``AirflowFailException``), so the run stops before touching anything."""
    from airflow.sdk.exceptions import AirflowFailException

    from marketing_warehouse.config import load_settings

    try:
        return acquire_run_lock(load_settings(), run_id or "", AIRFLOW)
    except RunLocked as refused:
        raise AirflowFailException(str(refused)) from refused
