"""``mwh airflow standalone`` (``make airflow``): a real Airflow started and stopped with SIGTERM,
as a terminal, a service manager or a container runtime stops it; no process of it survives."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api_server")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(root: int) -> dict[int, tuple[str, str]]:
    """Every live process below ``root``: pid -> (start time in ticks, command line)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat(int(entry.name))
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = {}, [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            fields = _stat(pid)
            if fields and fields[0] != "Z":
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    cmd = ""
                found[pid] = (fields[19], cmd)
                todo.append(pid)
    return found


def still_running(processes: dict[int, tuple[str, str]]) -> dict[int, str]:
    """Those of ``processes`` alive now (same pid and start time, not a zombie)."""
    alive = {}
    for pid, (started, cmd) in processes.items():
        fields = _stat(pid)
        if fields and fields[0] != "Z" and fields[19] == started:
            alive[pid] = cmd
    return alive


def test_sigterm_stops_airflow_standalone_and_every_child(tmp_path, dbt_manifest):
    api = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MWH_", "AIRFLOW"))}
    env = base | {
        "MWH_DATA_DIR": str(tmp_path / "data"),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # nothing gets scheduled
        "AIRFLOW__API__PORT": str(api),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{api}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    }
    log = (tmp_path / "standalone.log").open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "mwh"), "airflow", "standalone"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    seen: dict[int, tuple[str, str]] = {}
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            seen |= descendants(proc.pid)
            commands = " ".join(cmd for _, cmd in seen.values())
            if all(name in commands for name in COMPONENTS):
                break
            time.sleep(1)
        text = (tmp_path / "standalone.log").read_text()
        assert proc.poll() is None, text[-3000:]
        commands = " ".join(cmd for _, cmd in seen.values())
        assert all(name in commands for name in COMPONENTS), (commands, text[-3000:])
        time.sleep(3)  # let the components start their own workers
        seen |= descendants(proc.pid)

        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
        time.sleep(1)
        assert still_running(seen) == {}
        assert code == 128 + signal.SIGTERM
    finally:
        for pid in still_running(seen):  # only what this test started
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
        log.close()
