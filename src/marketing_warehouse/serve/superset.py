"""Superset, the BI tool: started locally on the serving DuckDB file, dashboards imported as code.

``mwh bi start`` (``make bi``) runs Superset from its own virtualenv (``.bi/venv``, ``make
bi-install``: it pins SQLAlchemy < 2 and older pandas/numpy than the warehouse, so it cannot share
``.venv``). Nothing of Superset is imported here: its bootstrap (``bi/superset_bootstrap.py``: db
upgrade, admin, init, in one process) and gunicorn run as subprocesses with the committed
``bi/superset_config.py``; this module talks to the running server over HTTP only (the form login,
session cookie and CSRF token, as a browser does).

On every start the committed bundle (``bi/superset-assets/``, see ``superset_bundle``) is zipped with the
real connection (the serving file ``MWH_WAREHOUSE_PATH``, opened read-only, or PostgreSQL as the
reader role) and imported through ``POST /api/v1/assets/import/``, which overwrites by uuid.
Metadata is SQLite in ``<data>/bi/``; the secret key and the local admin password are created once
in ``<data>/bi/credentials.json`` (mode 600) unless ``SUPERSET_SECRET_KEY`` /
``SUPERSET_ADMIN_PASSWORD`` are set.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from marketing_warehouse.config import Settings
from marketing_warehouse.layout import bi_bootstrap, bi_bundle, bi_config, bi_venv
from marketing_warehouse.serve import superset_bundle

ADMIN_USERNAME = "admin"
#: gunicorn as STACK_NOTES measured it: one worker process, eight threads
GUNICORN_ARGS = ("-w", "1", "--threads", "8", "-k", "gthread", "--timeout", "120")


class SupersetError(RuntimeError):
    """Superset is not installed, did not start, or answered something unexpected."""


@dataclass(frozen=True)
class Credentials:
    secret_key: str = field(repr=False)
    admin_password: str = field(repr=False)
    admin_username: str = ADMIN_USERNAME


def credentials(settings: Settings, env: dict[str, str] | None = None) -> Credentials:
    """The secret key and admin password: from the environment when set, else the ones kept in
    ``<data>/bi/credentials.json`` (created on first use, readable by its owner only)."""
    env = os.environ if env is None else env
    path = settings.layout.bi_credentials
    stored: dict[str, str] = {}
    if path.exists():
        stored = json.loads(path.read_text("utf-8"))
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        stored = {
            "secret_key": secrets.token_urlsafe(48),
            "admin_password": secrets.token_urlsafe(18),
        }
        path.touch(mode=0o600)
        path.write_text(json.dumps(stored, indent=2), "utf-8")
    return Credentials(
        secret_key=env.get("SUPERSET_SECRET_KEY") or stored["secret_key"],
        admin_password=env.get("SUPERSET_ADMIN_PASSWORD") or stored["admin_password"],
    )


def duckdb_uri(path: Path) -> str:
    """SQLAlchemy URI of a DuckDB file (absolute path: four slashes)."""
    return f"duckdb:///{path.resolve()}"


def superset_python(settings: Settings) -> Path:
    python = bi_venv(settings.project_dir) / "bin" / "python"
    if not python.exists():
        raise SupersetError(
            f"{python} does not exist: Superset has its own virtualenv; run `make bi-install`."
        )
    return python


def superset_env(settings: Settings, creds: Credentials) -> dict[str, str]:
    """The environment of Superset's processes (nothing of the warehouse's venv leaks in)."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env |= {
        "SUPERSET_CONFIG_PATH": str(bi_config(settings.project_dir)),
        "SUPERSET_HOME": str(settings.layout.bi_home),
        "SUPERSET_METADATA_URI": f"sqlite:///{settings.layout.bi_metadata}",
        "SUPERSET_SECRET_KEY": creds.secret_key,
        "SUPERSET_ADMIN_USERNAME": creds.admin_username,
        "SUPERSET_ADMIN_PASSWORD": creds.admin_password,
        "SCARF_ANALYTICS": "false",
        "SUPERSET_LOAD_EXAMPLES": "no",
        "PYTHONUNBUFFERED": "1",
    }
    return env


def host_port(url: str) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(url)
    return parsed.hostname or "127.0.0.1", parsed.port or (443 if parsed.scheme == "https" else 80)


@dataclass
class Server:
    """A started Superset: its gunicorn process and its base URL."""

    url: str
    process: subprocess.Popen
    log: Path
    creds: Credentials = field(repr=False)

    def stop(self, timeout: float = 20) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_bootstrap(settings: Settings, creds: Credentials) -> subprocess.Popen:
    """Start db upgrade, admin, init in one Superset process (``bi/superset_bootstrap.py``); the
    caller may do other work meanwhile and then ``finish_bootstrap``."""
    python = superset_python(settings)
    settings.layout.bi_home.mkdir(parents=True, exist_ok=True)
    with settings.layout.bi_log.open("a") as log:
        return subprocess.Popen(
            [str(python), str(bi_bootstrap(settings.project_dir))],
            env=superset_env(settings, creds),
            cwd=settings.layout.bi_home,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def finish_bootstrap(settings: Settings, process: subprocess.Popen) -> None:
    if process.wait() != 0:
        raise SupersetError(
            f"Superset's bootstrap exited {process.returncode}; see {settings.layout.bi_log}"
        )


def start_server(settings: Settings, creds: Credentials, url: str | None = None) -> Server:
    """gunicorn on ``url`` (default ``MWH_BI_URL``), waited for until ``/health`` answers."""
    url = (url or settings.bi_url).rstrip("/")
    host, port = host_port(url)
    python = superset_python(settings)
    log = settings.layout.bi_log.open("a")
    process = subprocess.Popen(
        [str(python.parent / "gunicorn"), *GUNICORN_ARGS, "-b", f"{host}:{port}",
         "superset.app:create_app()"],
        env=superset_env(settings, creds),
        cwd=settings.layout.bi_home,
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    server = Server(url, process, settings.layout.bi_log, creds)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SupersetError(f"gunicorn exited {process.returncode}; see {server.log}")
        if healthy(url):
            return server
        time.sleep(0.5)
    server.stop()
    raise SupersetError(f"Superset did not answer {url}/health within 120 s; see {server.log}")


class Client:
    """Superset's REST API as the admin, logged in through the form login (session cookie and
    CSRF token; with a JWT the admin's database list came back empty)."""

    def __init__(self, url: str, username: str, password: str):
        self.url = url.rstrip("/")
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        page = self._open("GET", "/login/").decode()
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
            r'value="([^"]+)"[^>]*name="csrf_token"', page
        )
        if not token:
            raise SupersetError(f"{self.url}/login/: no csrf_token in the login form")
        form = urllib.parse.urlencode(
            {"username": username, "password": password, "csrf_token": token.group(1)}
        ).encode()
        self._open("POST", "/login/", form, {"Content-Type": "application/x-www-form-urlencoded"})
        if not self.session_cookie():
            raise SupersetError(f"{self.url}/login/: no session cookie after the form login")
        me = self.get("/api/v1/me/")
        if me.get("result", {}).get("username") != username:
            raise SupersetError(f"{self.url}/login/: the login as {username!r} was refused")
        self.csrf = self.get("/api/v1/security/csrf_token/")["result"]

    def session_cookie(self) -> str:
        return next((c.value for c in self.cookies if c.name == "session"), "")

    def _open(self, method: str, path: str, body: bytes | None = None, headers=None) -> bytes:
        request = urllib.request.Request(self.url + path, data=body, method=method)
        request.add_header("Referer", self.url + "/")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with self.opener.open(request, timeout=120) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            raise SupersetError(
                f"{method} {path} -> HTTP {error.code}: {error.read().decode()[:1000]}"
            ) from error

    def get(self, path: str) -> dict:
        return json.loads(self._open("GET", path))

    def post_json(self, path: str, body: dict) -> dict:
        headers = {"Content-Type": "application/json", "X-CSRFToken": self.csrf}
        return json.loads(self._open("POST", path, json.dumps(body).encode(), headers))

    def import_assets(self, bundle: bytes, passwords: dict[str, str] | None = None) -> dict:
        """``POST /api/v1/assets/import/``: every object of the bundle, overwritten by uuid."""
        boundary = uuid.uuid4().hex
        parts = [
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="bundle"; '
                'filename="bundle.zip"\r\nContent-Type: application/zip\r\n\r\n'
            ).encode()
            + bundle
            + b"\r\n"
        ]
        if passwords:
            parts.append(
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="passwords"\r\n\r\n'
                    f"{json.dumps(passwords)}\r\n"
                ).encode()
            )
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "X-CSRFToken": self.csrf,
        }
        return json.loads(self._open("POST", "/api/v1/assets/import/", body, headers))

    def listing(self, resource: str, columns: tuple[str, ...]) -> list[dict]:
        """Every row of ``/api/v1/<resource>/`` with ``columns`` (rison query, pages of 100)."""
        rows: list[dict] = []
        page = 0
        while True:
            query = f"(columns:!({','.join(columns)}),page:{page},page_size:100)"
            found = self.get(f"/api/v1/{resource}/?q={urllib.parse.quote(query)}")
            rows += found["result"]
            if len(rows) >= found["count"] or not found["result"]:
                return rows
            page += 1

    def chart_data(self, body: dict) -> dict:
        return self.post_json("/api/v1/chart/data", body)


def login(server: Server) -> Client:
    return Client(server.url, server.creds.admin_username, server.creds.admin_password)


def import_bundle(
    client: Client,
    settings: Settings,
    folder: Path | None = None,
    *,
    uri: str | None = None,
    password: str = "",
) -> dict:
    """Zip the bundle with the real connection and import it (default: the serving DuckDB file,
    read-only); the zip is kept in ``<data>/bi/bundle.zip``."""
    folder = folder or bi_bundle(settings.project_dir)
    uri = uri or duckdb_uri(settings.warehouse_path)
    extra = superset_bundle.DUCKDB_EXTRA if uri.startswith("duckdb:") else {}
    data = superset_bundle.bundle_zip(folder, uri, extra)
    settings.layout.bi_bundle_zip.parent.mkdir(parents=True, exist_ok=True)
    settings.layout.bi_bundle_zip.write_bytes(data)
    passwords = None
    if password:
        name = f"databases/{superset_bundle._file_name(superset_bundle.DATABASE_NAME)}.yaml"
        passwords = dict.fromkeys([name], password)
    return client.import_assets(data, passwords)


def start(
    settings: Settings, url: str | None = None, bootstrapping: subprocess.Popen | None = None
) -> Server:
    """Bootstrap, start and import: what ``make bi`` runs before it waits on the server
    (``bootstrapping``: a bootstrap already started with ``start_bootstrap``)."""
    if not settings.warehouse_path.exists():
        raise SupersetError(
            f"{settings.warehouse_path}: no serving file yet; run `make run` first "
            "(or set MWH_WAREHOUSE_PATH)."
        )
    creds = credentials(settings)
    finish_bootstrap(settings, bootstrapping or start_bootstrap(settings, creds))
    server = start_server(settings, creds, url)
    try:
        import_bundle(login(server), settings)
    except BaseException:
        server.stop()
        raise
    return server


def serve_forever(settings: Settings) -> int:
    """``mwh bi start``: start, say where, and wait on gunicorn until interrupted (Ctrl-C or
    SIGTERM: gunicorn is stopped with it, never left behind)."""

    def interrupted(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    server = start(settings)
    print(
        f"Superset on {server.url}: log in as {server.creds.admin_username} (password in "
        f"{settings.layout.bi_credentials}); dashboards "
        + ", ".join(d.url(server.url) for d in superset_bundle.DASHBOARDS)
    )
    try:
        return server.process.wait()
    except KeyboardInterrupt:
        server.stop()
        return 0
    finally:
        sys.stdout.flush()


def postgres_reader_uri(settings: Settings) -> str:
    """The serving PostgreSQL database as the read-only reader role, for Superset (psycopg2, the
    driver its image ships); every session read-only. The password is masked: it goes apart."""
    from psycopg.conninfo import conninfo_to_dict

    dsn = conninfo_to_dict(settings.postgres_dsn)
    host, port = str(dsn.get("host", "localhost")), dsn.get("port") or 5432
    query = {"options": "-c default_transaction_read_only=on"}
    if host.startswith("/"):  # a unix socket folder goes in the query, not the URL's host
        query |= {"host": host, "port": str(port)}
        where = ""
    else:
        where = f"{host}:{port}"
    return (
        f"postgresql+psycopg2://{settings.postgres_reader_role}:XXXXXXXXXX@{where}/"
        f"{dsn.get('dbname', '')}?{urllib.parse.urlencode(query, quote_via=urllib.parse.quote)}"
    )


def healthy(url: str) -> bool:
    """Whether Superset at ``url`` answers its health check with OK."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=5) as response:
            return response.read().strip() == b"OK"
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def wait_until_healthy(url: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if healthy(url):
            return
        time.sleep(2)
    raise SupersetError(f"{url}/health did not answer OK within {timeout:.0f} s")


def import_into_running(settings: Settings, url: str | None, *, postgres: bool = False) -> int:
    """``mwh bi import``: the bundle into a Superset already running (the compose service), on
    the serving DuckDB file or, with ``postgres``, on PostgreSQL as the reader role."""
    url = (url or settings.bi_url).rstrip("/")
    password = os.environ.get("SUPERSET_ADMIN_PASSWORD", "")
    if not password:
        raise SupersetError("set SUPERSET_ADMIN_PASSWORD (see .env.example)")
    if postgres:
        from marketing_warehouse.serve.postgres import prepare_reader

        if not settings.postgres_dsn or not settings.postgres_reader_password:
            raise SupersetError(
                "set MWH_POSTGRES_DSN and MWH_POSTGRES_READER_PASSWORD (see .env.example)"
            )
        prepare_reader(settings)
    wait_until_healthy(url)
    client = Client(url, os.environ.get("SUPERSET_ADMIN_USERNAME", ADMIN_USERNAME), password)
    if postgres:
        uri = postgres_reader_uri(settings)
        import_bundle(client, settings, uri=uri, password=settings.postgres_reader_password)
    else:
        import_bundle(client, settings)
    print(f"Superset at {url}: {len(superset_bundle.DASHBOARDS)} dashboards imported")
    return 0
