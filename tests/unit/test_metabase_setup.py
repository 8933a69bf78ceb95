"""``mwh metabase-setup``'s API conversation, against a small stand-in for Metabase's HTTP API on
loopback (the real Metabase runs only in the compose stack)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from marketing_warehouse.serve.metabase_setup import (
    DATABASE_NAME,
    MetabaseSetupError,
    Warehouse,
    configure,
    wait_until_healthy,
)


class FakeMetabase(BaseHTTPRequestHandler):
    state: ClassVar[dict] = {}

    def _reply(self, body, status=200):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def _authorised(self):
        return self.headers.get("X-Metabase-Session") == "session-1"

    def do_GET(self):
        state = self.state
        if self.path == "/api/health":
            return self._reply({"status": "ok"})
        if self.path == "/api/session/properties":
            return self._reply(
                {"setup-token": "token-1", "has-user-setup": state["admin"] is not None}
            )
        if self.path == "/api/database" and self._authorised():
            return self._reply({"data": state["databases"], "total": len(state["databases"])})
        return self._reply({"message": "no"}, 401)

    def do_POST(self):
        state, body = self.state, self._body()
        if self.path == "/api/setup" and body["token"] == "token-1" and not state["admin"]:
            state["admin"] = body
            return self._reply({"id": "session-1"})
        if self.path == "/api/session":
            admin = state["admin"]["user"]
            if (body["username"], body["password"]) == (admin["email"], admin["password"]):
                return self._reply({"id": "session-1"})
            return self._reply({"errors": {"password": "did not match"}}, 401)
        if self.path == "/api/database" and self._authorised():
            state["databases"].append(body)
            return self._reply({"id": len(state["databases"]), **body})
        return self._reply({"message": "no"}, 400)

    def log_message(self, *args):
        pass


@pytest.fixture
def metabase():
    FakeMetabase.state = {"admin": None, "databases": []}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeMetabase)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", FakeMetabase.state
    server.shutdown()
    server.server_close()


WAREHOUSE = Warehouse("warehouse-db", 5432, "warehouse", "bi_reader", "reader-secret")


def test_first_run_sets_up_metabase_and_adds_the_warehouse_as_the_reader(metabase):
    url, state = metabase
    wait_until_healthy(url, timeout_s=5, interval_s=0.1)
    assert configure(url, "admin@example.com", "pw-1", WAREHOUSE) == "created"
    assert state["admin"]["prefs"]["allow_tracking"] is False
    (database,) = state["databases"]
    assert database["name"] == DATABASE_NAME and database["engine"] == "postgres"
    assert database["details"]["user"] == "bi_reader"
    assert database["details"]["host"] == "warehouse-db"


def test_second_run_logs_in_and_changes_nothing(metabase):
    url, state = metabase
    configure(url, "admin@example.com", "pw-1", WAREHOUSE)
    assert configure(url, "admin@example.com", "pw-1", WAREHOUSE) == "exists"
    assert len(state["databases"]) == 1
    with pytest.raises(MetabaseSetupError, match="HTTP 401"):
        configure(url, "admin@example.com", "wrong", WAREHOUSE)
