"""A throwaway PostgreSQL cluster for tests: initdb into a temporary folder, listen only on a unix
socket there, stop and delete at teardown. ``make test`` installs the server package when it is
missing (see the Makefile's ``postgres`` target); nothing here is mocked.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "mwh_owner"
PASSWORD = "change-me-owner"
READER = "bi_reader"
READER_PASSWORD = "change-me-reader"


def server_bin_dir() -> Path | None:
    """Folder of initdb/pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<major>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    return Path(candidates[-1]).parent if candidates else None


@dataclass
class Cluster:
    root: Path
    bin_dir: Path
    port: int
    user: str | None  # OS user the server runs as (initdb refuses root)

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    def dsn(self, user: str = SUPERUSER, password: str = PASSWORD, dbname: str = "warehouse"):
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=str(self.socket_dir), port=self.port, dbname=dbname, user=user, password=password
        )

    def reader_dsn(self) -> str:
        """The read-only reader role's connection string (as a BI tool would log in)."""
        return self.dsn(READER, READER_PASSWORD)

    def serving_env(self) -> dict[str, str]:
        """Settings that switch the PostgreSQL serving target on, for this cluster."""
        return {
            "MWH_POSTGRES_DSN": self.dsn(),
            "MWH_POSTGRES_READER_ROLE": READER,
            "MWH_POSTGRES_READER_PASSWORD": READER_PASSWORD,
        }

    def _run(self, *args: str) -> None:
        kwargs = {"user": self.user} if self.user else {}
        subprocess.run(
            [str(self.bin_dir / args[0]), *args[1:]],
            check=True,
            capture_output=True,
            text=True,
            **kwargs,
        )

    def start(self) -> None:
        data = self.root / "data"
        pwfile = self.root / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        self.socket_dir.mkdir()
        if self.user:
            entry = pwd.getpwnam(self.user)
            for path in (self.root, self.socket_dir, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            "--pwfile",
            str(pwfile),
            "--auth",
            "scram-sha-256",
            "-E",
            "UTF8",
            "--locale",
            "C",
        )
        options = (
            f"-c listen_addresses='' -c unix_socket_directories='{self.socket_dir}' "
            f"-c port={self.port} -c fsync=off -c shared_buffers=32MB -c max_connections=20"
        )
        self._run(
            "pg_ctl", "-D", str(data), "-o", options, "-l", str(self.root / "log"), "-w", "start"
        )
        import psycopg

        with psycopg.connect(self.dsn(dbname="postgres"), autocommit=True) as con:
            con.execute("create database warehouse")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")


def start_cluster() -> Cluster:
    bin_dir = server_bin_dir()
    if bin_dir is None:
        raise RuntimeError(
            "PostgreSQL server binaries not found: run `make postgres` (installs the Debian "
            "package postgresql) or put initdb on PATH"
        )
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", user], check=True)
    root = Path(tempfile.mkdtemp(prefix="mwh-pg-"))
    port = 40000 + os.getpid() % 20000
    cluster = Cluster(root=root, bin_dir=bin_dir, port=port, user=user)
    try:
        cluster.start()
    except subprocess.CalledProcessError as exc:
        log = root / "log"
        detail = log.read_text() if log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {exc.stderr}\n{detail}") from exc
    return cluster
