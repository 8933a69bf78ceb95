"""Point a fresh Metabase at the PostgreSQL serving database as the read-only reader role.

Run once by the compose stack (service ``metabase-setup``: ``mwh metabase-setup``) and safe to
run again: it waits for Metabase, creates the first admin through ``/api/setup`` when Metabase
is not set up yet (else logs in as that admin), and adds the warehouse database unless a
database of that name exists. Metabase's anonymous usage tracking is switched off in the setup.
Only the standard library is used: this talks to one local HTTP API.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

DATABASE_NAME = "Marketing warehouse"


class MetabaseSetupError(RuntimeError):
    """Metabase answered something the setup cannot continue from."""


@dataclass(frozen=True)
class Warehouse:
    host: str
    port: int
    dbname: str
    user: str
    password: str


def setup_payload(token: str, email: str, password: str, site_name: str) -> dict:
    return {
        "token": token,
        "user": {
            "email": email,
            "password": password,
            "first_name": "Warehouse",
            "last_name": "Admin",
            "site_name": site_name,
        },
        "prefs": {"site_name": site_name, "site_locale": "en", "allow_tracking": False},
    }


def database_payload(warehouse: Warehouse, name: str = DATABASE_NAME) -> dict:
    """The serving database as Metabase sees it: schema ``marts`` only, as the reader role."""
    return {
        "name": name,
        "engine": "postgres",
        "details": {
            "host": warehouse.host,
            "port": warehouse.port,
            "dbname": warehouse.dbname,
            "user": warehouse.user,
            "password": warehouse.password,
            "ssl": False,
            "schema-filters-type": "inclusion",
            "schema-filters-patterns": "marts",
        },
        "is_full_sync": True,
    }


def _call(base: str, method: str, path: str, body: dict | None = None, session: str = ""):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base.rstrip("/") + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if session:
        request.add_header("X-Metabase-Session", session)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as error:
        raise MetabaseSetupError(
            f"{method} {path} -> HTTP {error.code}: {error.read().decode()[:500]}"
        ) from error
    return json.loads(text) if text else {}


def wait_until_healthy(base: str, timeout_s: float = 600, interval_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if _call(base, "GET", "/api/health").get("status") == "ok":
                return
        except (OSError, MetabaseSetupError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise MetabaseSetupError(f"Metabase at {base} not healthy after {timeout_s:.0f}s")
        time.sleep(interval_s)


def configure(
    base: str, email: str, password: str, warehouse: Warehouse, site_name: str = "Marketing"
) -> str:
    """Set Metabase up (or log in) and make sure the warehouse database is there; return
    "created" or "exists" for the database."""
    properties = _call(base, "GET", "/api/session/properties")
    token = properties.get("setup-token")
    if token and not properties.get("has-user-setup"):
        session = _call(
            base, "POST", "/api/setup", setup_payload(token, email, password, site_name)
        )
    else:
        session = _call(base, "POST", "/api/session", {"username": email, "password": password})
    session_id = session.get("id")
    if not session_id:
        raise MetabaseSetupError(f"no session id in Metabase's answer: {session}")
    databases = _call(base, "GET", "/api/database", session=session_id)
    listed = databases.get("data", databases) if isinstance(databases, dict) else databases
    if any(db.get("name") == DATABASE_NAME for db in listed):
        return "exists"
    _call(base, "POST", "/api/database", database_payload(warehouse), session=session_id)
    return "created"
