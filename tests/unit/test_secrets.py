"""No credential is committed: connection settings come from the environment or Airflow connections.

The scan reads every file git tracks and fails on what looks like a real secret: private keys,
cloud access keys, tokens, passwords in URLs / DSNs and secret-named settings with a value. Values
that are documented placeholders (``change-me…``, ``${VAR}`` interpolation, empty) are allowed.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Values that are placeholders, not secrets (documented in .env.example).
PLACEHOLDER = re.compile(
    r"^(|change-?me.*|<[^>]*>|\$\{[^}]*\}|\$[A-Z_]+|\*+|x{3,}|\.\.\.|example|placeholder|"
    r"your[-_].*|secret|password|none|null)$",
    re.I,
)
SECRET_NAME = r"[A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|FERNET_KEY)[A-Z0-9_]*"
PATTERNS: dict[str, re.Pattern[str]] = {
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret key": re.compile(r"aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+=]{40}"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "Slack webhook": re.compile(r"hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+"),
    "Stripe live key": re.compile(r"\b[sr]k_live_[A-Za-z0-9]{16,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
}
#: scheme://user:password@host — the password group is checked against PLACEHOLDER.
URL_PASSWORD = re.compile(
    r"\b[a-z][a-z0-9+.-]*://(?:\$\{[^}]*\}|[^/\s:@'\"]+):(\$\{[^}]*\}|[^@\s'\"]+)@", re.I
)
#: NAME=value / NAME: value for secret-looking names (env files, YAML, shell, Python defaults).
ASSIGNMENT = re.compile(
    rf"(?<![A-Za-z0-9_{{])({SECRET_NAME})\s*[:=]\s*['\"]?(\$\{{[^}}]*\}}|[^'\"\s#,}}]*)", re.I
)
TYPE_NAMES = {"str", "bytes", "int", "float", "bool", "None", "SecretStr", "Any"}
CREDENTIAL_FILES = re.compile(
    r"(^|/)(\.env(\..+)?|.*\.pem|.*\.key|.*\.p12|.*\.pfx|id_(rsa|dsa|ecdsa|ed25519)|"
    r"\.netrc|\.pgpass|credentials(\.json)?|.*service[-_]account.*\.json)$"
)
ALLOWED_FILES = {".env.example"}
#: This file describes secrets (patterns, samples assembled at run time): it is not scanned.
NOT_SCANNED = {"tests/unit/test_secrets.py"}
#: npm packages' own files, vendored unchanged for GX's data docs (quality/data_docs.py, their
#: versions checked by tests/unit/test_data_docs.py): minified code such as jQuery's names
#: variables like ``tokenize``.
THIRD_PARTY = "src/marketing_warehouse/quality/data_docs_assets/"


def findings(path: str, text: str) -> list[str]:
    """What in ``text`` looks like a credential (empty when nothing does)."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for name, pattern in PATTERNS.items():
            if pattern.search(line):
                found.append(f"{path}:{number}: {name}")
        for match in URL_PASSWORD.finditer(line):
            if not PLACEHOLDER.match(match.group(1)):
                found.append(f"{path}:{number}: password in a URL")
        for match in ASSIGNMENT.finditer(line):
            name, value = match.group(1), match.group(2)
            if "(" in value or value.startswith(("settings.", "env", "os.", "self.")):
                continue  # code reading the value from somewhere, not a value
            if value in TYPE_NAMES:
                continue  # a type annotation: ``smtp_password: str = ...``
            if "_" not in name and not name.isupper() and "=" not in match.group(0):
                continue  # the word in prose ("the password: set it in .env")
            if not PLACEHOLDER.match(value):
                found.append(f"{path}:{number}: {match.group(1)} has a value")
    return found


def tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    return [p for p in out.decode().split("\0") if p]


def test_no_tracked_file_holds_a_credential():
    problems = []
    for name in tracked_files():
        path = ROOT / name
        if name in NOT_SCANNED or name.startswith(THIRD_PARTY):
            continue
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        data = path.read_bytes()
        if b"\0" in data[:8000]:
            continue  # binary
        problems += findings(name, data.decode("utf-8", errors="replace"))
    assert problems == []


def test_no_credential_file_is_tracked_and_env_is_ignored():
    tracked = [p for p in tracked_files() if CREDENTIAL_FILES.search(p)]
    assert [p for p in tracked if p not in ALLOWED_FILES] == []
    for name in (".env", ".env.local", "data/x", ".airflow/airflow.cfg"):
        ignored = subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT)
        assert ignored.returncode == 0, f"{name} is not git-ignored"
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


def test_env_example_holds_placeholders_only():
    for number, line in enumerate((ROOT / ".env.example").read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, value = line.partition("=")
        if re.fullmatch(SECRET_NAME, name.strip(), re.I):
            assert PLACEHOLDER.match(value.strip()), f".env.example:{number}: {name} = {value!r}"


# Samples are assembled at run time, so the scanner never finds them in this file.
AWS = "AKIA" + "Q" * 16
KEY = "-----BEGIN " + "RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (KEY, "private key"),
        (f"aws_access_key_id = {AWS}", "AWS access key id"),
        ("SQL_ALCHEMY_CONN=postgresql://airflow:" + "s3cr3t-Pa55@db:5432/airflow", "URL"),
        ("POSTGRES_PASSWORD=" + "hunter2", "POSTGRES_PASSWORD has a value"),
        ("  smtp_password: " + "'Tr0ub4dor&3'", "smtp_password has a value"),
        ("token = 'gh" + "p_" + "a" * 36 + "'", "GitHub token"),
        ("url: https://hooks.slack.com/services/" + "T0000/B0000/abcdefghij", "Slack webhook"),
    ],
)
def test_the_scanner_finds_real_looking_secrets(text, kind):
    assert any(kind in f for f in findings("sample", text)), findings("sample", text)


@pytest.mark.parametrize(
    "text",
    [
        "POSTGRES_PASSWORD=change-me",
        "AIRFLOW_FERNET_KEY=",
        "AIRFLOW__API__SECRET_KEY: ${AIRFLOW_API_SECRET_KEY:-change-me}",
        "conn: postgresql+psycopg2://${POSTGRES_USER:-a}:${POSTGRES_PASSWORD:-airflow}@postgres/x",
        "password = settings.smtp_password",
        "MWH_ALERT_SMTP_PASSWORD=",
        "see https://example.com/docs and user@example.com",
        "help: SMTP password: set it in .env only",
        "    smtp_password: str = field(default='', repr=False)",
    ],
)
def test_placeholders_and_code_are_not_secrets(text):
    assert findings("sample", text) == []
