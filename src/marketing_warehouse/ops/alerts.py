"""Failure notifications: Airflow's ``on_failure_callback`` sends an e-mail and/or a webhook POST.

The DAG wires ``on_failure`` twice: on every task (through ``default_args``; it fires once a task
has failed for good, after its retries, with the error and the log link) and on the DAG (once per
failed run, with Airflow's reason). Both channels are optional and independent; each is configured
by ``MWH_*`` environment variables or an Airflow connection, never by a value in the repository.
A notification that cannot be delivered is logged and never raises: the run's state is what counts.

E-mail: ``MWH_ALERT_EMAIL_TO`` (comma-separated) through ``MWH_SMTP_HOST`` / ``MWH_SMTP_PORT`` with
``MWH_SMTP_SECURITY`` none | starttls | ssl and optional ``MWH_SMTP_USER`` / ``MWH_SMTP_PASSWORD``;
or ``MWH_SMTP_CONN_ID`` naming an Airflow connection (host, port, login, password; extra
``{"security": "starttls"}``).

Webhook: ``MWH_ALERT_WEBHOOK_URL`` or ``MWH_ALERT_WEBHOOK_CONN_ID`` (an Airflow connection whose
host is the URL, or host + schema + port + extra ``endpoint``). The body is JSON with a ``text``
line (what Slack, Teams and Mattermost incoming webhooks display) and the details as fields.
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from marketing_warehouse.config import ConfigError, environment, load_settings

log = logging.getLogger(__name__)
SECURITY = ("none", "starttls", "ssl")


@dataclass(frozen=True)
class AlertSettings:
    email_to: tuple[str, ...] = ()
    email_from: str = "marketing-warehouse@localhost"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_security: str = "none"
    smtp_conn_id: str = ""
    webhook_url: str = field(default="", repr=False)
    webhook_conn_id: str = ""
    timeout: float = 10.0

    @property
    def email_enabled(self) -> bool:
        return bool(self.email_to)

    @property
    def webhook_enabled(self) -> bool:
        return bool(self.webhook_url or self.webhook_conn_id)


def load_alert_settings(env: dict[str, str] | None = None) -> AlertSettings:
    """Read the ``MWH_ALERT_*`` / ``MWH_SMTP_*`` settings (default: the environment over
    ``.env``, ``config.environment``) and validate them."""
    env = environment() if env is None else dict(env)
    security = env.get("MWH_SMTP_SECURITY", "none").strip().lower()
    if security not in SECURITY:
        raise ConfigError(f"MWH_SMTP_SECURITY={security!r} is not one of {', '.join(SECURITY)}.")
    numbers = {}
    for name, default in (("MWH_SMTP_PORT", "25"), ("MWH_ALERT_TIMEOUT", "10")):
        value = env.get(name, "").strip() or default
        try:
            numbers[name] = float(value) if name == "MWH_ALERT_TIMEOUT" else int(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a number.") from None
    url = env.get("MWH_ALERT_WEBHOOK_URL", "").strip()
    if url and not url.startswith(("http://", "https://")):
        raise ConfigError("MWH_ALERT_WEBHOOK_URL must start with http:// or https://.")
    return AlertSettings(
        email_to=tuple(
            a.strip() for a in env.get("MWH_ALERT_EMAIL_TO", "").split(",") if a.strip()
        ),
        email_from=env.get("MWH_ALERT_EMAIL_FROM", "").strip() or AlertSettings.email_from,
        smtp_host=env.get("MWH_SMTP_HOST", "").strip() or AlertSettings.smtp_host,
        smtp_port=numbers["MWH_SMTP_PORT"],
        smtp_user=env.get("MWH_SMTP_USER", ""),
        smtp_password=env.get("MWH_SMTP_PASSWORD", ""),
        smtp_security=security,
        smtp_conn_id=env.get("MWH_SMTP_CONN_ID", "").strip(),
        webhook_url=url,
        webhook_conn_id=env.get("MWH_ALERT_WEBHOOK_CONN_ID", "").strip(),
        timeout=numbers["MWH_ALERT_TIMEOUT"],
    )


# --- what happened ---------------------------------------------------------------------------


def _get(obj: Any, name: str, default: Any = None) -> Any:
    try:
        value = getattr(obj, name, default)
    except Exception:  # a lazy attribute of a partially built task instance
        return default
    return default if value is None else value


def failure_event(context: dict[str, Any]) -> dict[str, Any]:
    """The facts of a failure from an Airflow callback context (task or DAG level)."""
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    dag_run = context.get("dag_run")
    exception = context.get("exception")
    level = "task" if exception is not None or "reason" not in context else "run"
    dag_id = _get(dag, "dag_id") or _get(ti, "dag_id") or _get(dag_run, "dag_id") or "?"
    run_id = context.get("run_id") or _get(ti, "run_id") or _get(dag_run, "run_id") or "?"
    ds = context.get("ds") or ""
    if not ds:
        logical = context.get("logical_date") or _get(dag_run, "logical_date")
        ds = logical.date().isoformat() if hasattr(logical, "date") else ""
    task_id = _get(ti, "task_id", "")
    map_index = _get(ti, "map_index", -1)
    task_label = f"{task_id}[{map_index}]" if task_id and map_index not in (-1, None) else task_id
    error = f"{type(exception).__name__}: {exception}" if exception is not None else ""
    try:
        log_url = _get(ti, "log_url", "")
    except Exception:
        log_url = ""
    report = ""
    if ds:
        try:
            path = load_settings().layout.run(ds).report
            report = str(path) if path.exists() else ""
        except ConfigError:
            pass
    if level == "task":
        text = f"{dag_id}: task {task_label or '?'} failed for {ds or run_id}"
        try_number = _get(ti, "try_number")
        if try_number:
            text += f" (try {try_number})"
        if error:
            text += f": {error.splitlines()[0][:300]}"
    else:
        text = f"{dag_id}: run {run_id} for {ds or '?'} failed ({context.get('reason') or '?'})"
        if task_label:
            text += f"; last task {task_label}"
    return {
        "event": f"{level}_failed",
        "text": text,
        "dag_id": dag_id,
        "run_id": run_id,
        "logical_date": ds,
        "task_id": task_id,
        "map_index": map_index,
        "try_number": _get(ti, "try_number"),
        "reason": context.get("reason") or "",
        "error": error[:4000],
        "log_url": log_url,
        "report": report,
    }


# --- channels --------------------------------------------------------------------------------


def _smtp_target(alerts: AlertSettings) -> tuple[str, int, str, str, str]:
    if not alerts.smtp_conn_id:
        return (
            alerts.smtp_host,
            alerts.smtp_port,
            alerts.smtp_user,
            alerts.smtp_password,
            alerts.smtp_security,
        )
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(alerts.smtp_conn_id)
    extra = conn.extra_dejson or {}
    security = str(extra.get("security", alerts.smtp_security)).lower()
    if security not in SECURITY:
        raise ConfigError(f"connection {alerts.smtp_conn_id}: security {security!r} unknown")
    return (
        conn.host or alerts.smtp_host,
        int(conn.port or alerts.smtp_port),
        conn.login or "",
        conn.password or "",
        security,
    )


def send_email(event: dict[str, Any], alerts: AlertSettings) -> None:
    host, port, user, password, security = _smtp_target(alerts)
    message = EmailMessage()
    message["Subject"] = f"[marketing warehouse] {event['text'][:180]}"
    message["From"] = alerts.email_from
    message["To"] = ", ".join(alerts.email_to)
    lines = [event["text"], ""]
    for key in ("dag_id", "run_id", "logical_date", "task_id", "try_number", "reason", "log_url"):
        if event.get(key) not in (None, "", -1):
            lines.append(f"{key}: {event[key]}")
    if event.get("report"):
        lines.append(f"run report: {event['report']}")
    if event.get("error"):
        lines += ["", "error:", event["error"]]
    message.set_content("\n".join(lines) + "\n")
    if security == "ssl":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            host, port, timeout=alerts.timeout, context=ssl.create_default_context()
        )
    else:
        client = smtplib.SMTP(host, port, timeout=alerts.timeout)
    with client:
        if security == "starttls":
            client.starttls(context=ssl.create_default_context())
        if user:
            client.login(user, password)
        client.send_message(message)


def _webhook_url(alerts: AlertSettings) -> str:
    if not alerts.webhook_conn_id:
        return alerts.webhook_url
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(alerts.webhook_conn_id)
    host = conn.host or ""
    if host.startswith(("http://", "https://")):
        return host
    port = f":{conn.port}" if conn.port else ""
    endpoint = str((conn.extra_dejson or {}).get("endpoint", "")).lstrip("/")
    return f"{conn.schema or 'https'}://{host}{port}/{endpoint}"


def send_webhook(event: dict[str, Any], alerts: AlertSettings) -> int:
    request = urllib.request.Request(
        _webhook_url(alerts),
        data=json.dumps(event, default=str).encode("utf-8"),
        headers={"Content-Type": "application/json", "User-Agent": "marketing-warehouse-alerts"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=alerts.timeout) as response:
        return response.status


def notify(event: dict[str, Any], alerts: AlertSettings) -> dict[str, str]:
    """Send ``event`` on every configured channel; the outcome per channel, never an exception."""
    outcome = {}
    channels = (
        ("email", alerts.email_enabled, send_email),
        ("webhook", alerts.webhook_enabled, send_webhook),
    )
    for name, enabled, send in channels:
        if not enabled:
            outcome[name] = "not configured"
            continue
        try:
            send(event, alerts)
            outcome[name] = "sent"
        except Exception as exc:  # an unreachable server must not hide the failure itself
            outcome[name] = f"failed: {type(exc).__name__}: {exc}"
            log.error("could not send the %s alert (%s): %s", name, event["text"], exc)
    return outcome


def failure_report_path(settings, ds: str) -> Path:
    """Where a failed run's report goes: the run folder's report, unless that is the report of
    a run that published ``ds`` (a scheduled run failing after ``mwh run`` published the date):
    then beside it (``failed_report``), so a failure never overwrites a success."""
    from marketing_warehouse.serve.publish import runs_that_published

    folder = settings.layout.run(ds)
    if folder.report.exists() and runs_that_published(settings, ds):
        return folder.failed_report
    return folder.report


def _write_report(context: dict[str, Any]) -> str:
    ds = context.get("ds")
    if not ds:
        return ""
    try:
        from marketing_warehouse.ops import report

        settings = load_settings()
        target = failure_report_path(settings, ds)
        if target != settings.layout.run(ds).report:
            log.info(
                "kept the report of the run that published %s; this failed run's report: %s",
                ds,
                target,
            )
        return str(report.write(settings, ds, succeeded=False, target=target))
    except Exception as exc:  # the alert matters more than the report
        log.error("could not write the run report for %s: %s", ds, exc)
        return ""


def on_failure(context: dict[str, Any]) -> dict[str, str]:
    """Airflow ``on_failure_callback`` for tasks and the DAG."""
    try:
        alerts = load_alert_settings()
    except ConfigError as exc:
        log.error("alerts are misconfigured, nothing sent: %s", exc)
        return {"email": f"failed: {exc}", "webhook": f"failed: {exc}"}
    written = ""
    if "reason" in context and context.get("exception") is None:
        written = _write_report(context)  # a failed run: its report, for the alert to point to
    event = failure_event(context)
    if written:
        event["report"] = written
    outcome = notify(event, alerts)
    log.info("failure alert %r: %s", event["text"], outcome)
    return outcome
