"""Failure alerts delivered to real servers on loopback: a small SMTP server and a webhook receiver.

The SMTP server is written here on asyncio (enough of RFC 5321 for smtplib: EHLO, AUTH PLAIN,
MAIL, RCPT, DATA, QUIT), so the test needs no extra package. The callback is called as Airflow
calls it, with a task-level context (a task failed for good) and a DAG-level one (the run failed).
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from datetime import UTC, datetime
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest

from marketing_warehouse.config import ConfigError
from marketing_warehouse.ops import alerts
from marketing_warehouse.ops.alerts import failure_event, load_alert_settings, notify, on_failure

# --- servers ---------------------------------------------------------------------------------


class SmtpServer:
    """A loopback SMTP server in a background thread; received mails land in ``messages``."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.logins: list[tuple[str, str]] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._session, "127.0.0.1", 0)
        )
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def reply(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        await reply("220 localhost test SMTP")
        envelope: dict = {"rcpt": []}
        while line := await reader.readline():
            command = line.decode().rstrip("\r\n")
            verb = command.split(" ", 1)[0].upper()
            if verb in {"EHLO", "HELO"}:
                await reply("250-localhost")
                await reply("250 AUTH PLAIN")
            elif verb == "AUTH":
                _, user, password = base64.b64decode(command.split()[2]).split(b"\0")
                self.logins.append((user.decode(), password.decode()))
                await reply("235 2.7.0 Authentication successful")
            elif verb == "MAIL":
                envelope = {"from": command[10:].strip("<> "), "rcpt": []}
                await reply("250 OK")
            elif verb == "RCPT":
                envelope["rcpt"].append(command[8:].strip("<> "))
                await reply("250 OK")
            elif verb == "DATA":
                await reply("354 End data with <CR><LF>.<CR><LF>")
                data = b""
                while (chunk := await reader.readline()) not in (b".\r\n", b""):
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                self.messages.append(
                    {**envelope, "message": message_from_bytes(data, policy=policy.default)}
                )
                await reply("250 OK queued")
            elif verb == "QUIT":
                await reply("221 Bye")
                break
            else:
                await reply("250 OK")
        writer.close()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(
            {"path": self.path, "type": self.headers["Content-Type"], "json": json.loads(body)}
        )
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def smtp():
    server = SmtpServer()
    yield server
    server.close()


@pytest.fixture
def webhook(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    handler = type("Receiver", (Webhook,), {"received": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/mwh"
    yield handler
    server.shutdown()
    server.server_close()


@pytest.fixture
def alert_env(monkeypatch, smtp, webhook, settings):
    values = {
        "MWH_DATA_DIR": str(settings.data_dir),
        "MWH_ALERT_EMAIL_TO": "data-team@example.com, oncall@example.com",
        "MWH_ALERT_EMAIL_FROM": "warehouse@example.com",
        "MWH_SMTP_HOST": "127.0.0.1",
        "MWH_SMTP_PORT": str(smtp.port),
        "MWH_ALERT_WEBHOOK_URL": webhook.url,
        "MWH_ALERT_TIMEOUT": "5",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


# --- contexts as Airflow builds them ---------------------------------------------------------

LOGICAL = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
RUN_ID = "scheduled__2026-11-21T02:00:00+00:00"


def task_context(error: Exception) -> dict:
    """What the task runner passes to a task's on_failure_callback (the fields alerts read)."""
    ti = SimpleNamespace(
        dag_id="marketing_warehouse_nightly",
        task_id="extract_source",
        run_id=RUN_ID,
        map_index=4,
        try_number=3,
        log_url="http://localhost:8080/dags/marketing_warehouse_nightly/runs/x/tasks/extract_source?map_index=4",
    )
    dag_run = SimpleNamespace(dag_id=ti.dag_id, run_id=RUN_ID, logical_date=LOGICAL)
    return {
        "ti": ti,
        "task_instance": ti,
        "dag_run": dag_run,
        "run_id": RUN_ID,
        "ds": "2026-11-21",
        "logical_date": LOGICAL,
        "exception": error,
        "task": SimpleNamespace(task_id="extract_source"),
    }


def dag_context() -> dict:
    """What the dag processor passes to the DAG's on_failure_callback."""
    context = task_context(RuntimeError("unused"))
    del context["exception"]
    return {
        **context,
        "dag": SimpleNamespace(dag_id="marketing_warehouse_nightly"),
        "reason": "task_failure",
    }


# --- tests -----------------------------------------------------------------------------------


def test_a_failed_task_is_mailed_and_posted(alert_env, smtp, webhook, settings):
    report = settings.layout.run("2026-11-21").report
    report.parent.mkdir(parents=True)
    report.write_text("<html></html>")
    error = OSError(28, "No space left on device")

    outcome = on_failure(task_context(error))

    assert outcome == {"email": "sent", "webhook": "sent"}
    [mail] = smtp.messages
    assert mail["from"] == "warehouse@example.com"
    assert mail["rcpt"] == ["data-team@example.com", "oncall@example.com"]
    message = mail["message"]
    assert message["Subject"] == (
        "[marketing warehouse] marketing_warehouse_nightly: task extract_source[4] failed for "
        "2026-11-21 (try 3): OSError: [Errno 28] No space left on device"
    )
    body = message.get_content()
    assert "log_url: http://localhost:8080/dags/" in body and str(report) in body
    [post] = webhook.received
    assert post["path"] == "/hooks/mwh" and post["type"] == "application/json"
    payload = post["json"]
    assert payload["text"] == message["Subject"].removeprefix("[marketing warehouse] ")
    assert payload["event"] == "task_failed"
    assert (payload["task_id"], payload["map_index"], payload["try_number"]) == (
        "extract_source",
        4,
        3,
    )
    assert payload["logical_date"] == "2026-11-21" and payload["report"] == str(report)


def test_a_failed_run_is_announced_once_with_the_reason(alert_env, smtp, webhook):
    outcome = on_failure(dag_context())
    assert outcome == {"email": "sent", "webhook": "sent"}
    payload = webhook.received[0]["json"]
    assert payload["event"] == "run_failed"
    assert payload["text"] == (
        f"marketing_warehouse_nightly: run {RUN_ID} for 2026-11-21 failed (task_failure); "
        "last task extract_source[4]"
    )
    assert "task_failure" in smtp.messages[0]["message"]["Subject"]
    # the run's report is written before the alert, so the alert can point to it
    assert payload["report"].endswith("runs/2026-11-21/report.html")
    assert "FAILED" in Path(payload["report"]).read_text("utf-8")


def test_smtp_login_from_an_airflow_connection(alert_env, smtp, monkeypatch):
    monkeypatch.delenv("MWH_SMTP_HOST")
    monkeypatch.delenv("MWH_SMTP_PORT")
    monkeypatch.setenv("MWH_SMTP_CONN_ID", "mwh_smtp")
    connection = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": smtp.port,
        "login": "alerts",
        "password": "from-the-connection",
        "extra": {"security": "none"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_MWH_SMTP", json.dumps(connection))
    assert on_failure(task_context(ValueError("x")))["email"] == "sent"
    assert smtp.logins == [("alerts", "from-the-connection")]


def test_webhook_url_from_an_airflow_connection(alert_env, webhook, monkeypatch):
    monkeypatch.delenv("MWH_ALERT_WEBHOOK_URL")
    monkeypatch.setenv("MWH_ALERT_WEBHOOK_CONN_ID", "mwh_webhook")
    monkeypatch.setenv(
        "AIRFLOW_CONN_MWH_WEBHOOK", json.dumps({"conn_type": "http", "host": webhook.url})
    )
    assert on_failure(task_context(ValueError("x")))["webhook"] == "sent"
    assert webhook.received[0]["path"] == "/hooks/mwh"


def test_one_channel_down_does_not_stop_the_other_or_raise(alert_env, smtp, webhook, monkeypatch):
    webhook.status = 500
    outcome = on_failure(task_context(ValueError("x")))
    assert outcome["email"] == "sent"
    assert outcome["webhook"].startswith("failed: HTTPError") and "500" in outcome["webhook"]
    smtp.close()  # nothing listens on the port any more
    outcome = on_failure(task_context(ValueError("x")))
    assert outcome["email"].startswith("failed:")


def test_nothing_configured_sends_nothing(monkeypatch):
    for name in ("MWH_ALERT_EMAIL_TO", "MWH_ALERT_WEBHOOK_URL", "MWH_ALERT_WEBHOOK_CONN_ID"):
        monkeypatch.delenv(name, raising=False)
    assert on_failure(task_context(ValueError("x"))) == {
        "email": "not configured",
        "webhook": "not configured",
    }


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MWH_SMTP_SECURITY": "tls1.3"}, "none, starttls, ssl"),
        ({"MWH_SMTP_PORT": "smtp"}, "not a number"),
        ({"MWH_ALERT_WEBHOOK_URL": "hooks.example.com/x"}, "http"),
    ],
)
def test_bad_alert_settings_are_named_and_the_callback_survives(env, message, monkeypatch):
    with pytest.raises(ConfigError, match=message):
        load_alert_settings(env)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert message in on_failure(task_context(ValueError("x")))["email"]


def test_event_text_is_one_line_and_bounded():
    error = RuntimeError("raw gate failed: 2 critical expectation(s) not met\n  - a\n  - b" * 300)
    event = failure_event(task_context(error))
    assert "\n" not in event["text"] and len(event["text"]) < 450
    assert len(event["error"]) == 4000


def test_notify_reports_per_channel(alert_env, smtp, webhook):
    settings = alerts.load_alert_settings()
    event = failure_event(task_context(ValueError("boom")))
    assert notify(event, settings) == {"email": "sent", "webhook": "sent"}


def test_a_failed_run_never_overwrites_the_report_of_a_run_that_published_its_date(
    alert_env, smtp, webhook, settings
):
    """``mwh run`` published 2026-11-21 and wrote its report; then the scheduler's run of the
    same date fails at once. The callback keeps the good report and writes the failure beside
    it, and the alert points to the failure's report."""
    from conftest import make_build_db

    from marketing_warehouse import pipeline

    make_build_db(settings, 1)
    published = pipeline.publish("2026-11-21", "manual__2026-11-21T00:00:00+00:00", settings)
    good = Path(pipeline.run_report("2026-11-21", published, settings))
    before = good.read_text("utf-8")
    assert "SUCCESS" in before

    outcome = on_failure(dag_context())  # the scheduled run of 2026-11-21 failed

    assert outcome == {"email": "sent", "webhook": "sent"}
    assert good.read_text("utf-8") == before
    failed = settings.layout.run("2026-11-21").failed_report
    assert "FAILED" in failed.read_text("utf-8")
    assert webhook.received[0]["json"]["report"] == str(failed)


def test_a_failed_run_of_a_date_never_published_writes_the_report(alert_env, smtp, settings):
    """No run published the date: the failed run's report is the date's report."""
    on_failure(dag_context())
    folder = settings.layout.run("2026-11-21")
    assert "FAILED" in folder.report.read_text("utf-8")
    assert not folder.failed_report.exists()
