"""Audiences end to end on the demo warehouse (``dbt_built``): the marts gate's audience checks,
the real publish stage writing the exports, and ``mwh erase`` taking a person out of them.

The members are recomputed here from dim_customer_segments and dim_customers with the committed
audiences' filters written out by hand, so the mart, the exports and the manifest are each held
against an independent result."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
from datetime import date

import duckdb
import pytest

from marketing_warehouse.config import load_settings
from marketing_warehouse.ops.erasure import erase
from marketing_warehouse.pipeline import publish
from marketing_warehouse.quality.gates import run_gate
from marketing_warehouse.transform.dbt_tasks import run_dbt

pytestmark = pytest.mark.integration

#: The committed audiences' filters and channel rules, by hand (dbt_project/audiences/*.yml).
EXPECTED_SQL = {
    "vip_email": "s.rfm_segment in ('champions', 'loyal') and s.frequency >= 3",
    "meta_exclude_recent_buyers": "s.recency_days <= 30",
    "win_back_valuable": (
        "s.value_tier in ('high', 'medium') and (s.recency_days > 30"
        " or s.churn_risk in ('high', 'medium') or s.lifecycle_stage in ('at_risk', 'churned'))"
    ),
}


def rows(path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text("utf-8"))))


@pytest.fixture
def warehouse(dbt_built, tmp_path):
    settings = load_settings({"MWH_DATA_DIR": str(tmp_path / "data"), "MWH_TASK_RETRIES": "0"})
    settings.build_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(dbt_built.build_path, settings.build_path)
    return settings


def expected_members(con, ds: str) -> dict[str, set[str]]:
    found = {}
    for name, condition in EXPECTED_SQL.items():
        found[name] = {
            r[0]
            for r in con.execute(
                f"""
                select s.customer_id
                from marts.dim_customer_segments as s
                inner join marts.dim_customers as c on s.customer_id = c.customer_id
                where s.snapshot_date = cast(? as date) and ({condition})
                    and c.email is not null and c.is_email_marketable
                """,
                [ds],
            ).fetchall()
        }
    return found


def test_publish_writes_the_exports_and_erasure_removes_a_person(warehouse):
    settings = warehouse
    con = duckdb.connect(str(settings.build_path), read_only=True)
    ds = str(con.execute("select max(snapshot_date) from marts.audience_members").fetchone()[0])
    expected = expected_members(con, ds)
    mart = {}
    for name, customer, chosen in con.execute(
        "select audience_name, customer_id, arm from marts.audience_members "
        "where snapshot_date = cast(? as date)",
        [ds],
    ).fetchall():
        mart.setdefault(name, {})[customer] = chosen
    emails = dict(con.execute("select customer_id, email from marts.dim_customers").fetchall())
    con.close()
    assert {k: set(v) for k, v in mart.items() if v} == {k: v for k, v in expected.items() if v}
    assert expected["meta_exclude_recent_buyers"], "the demo data should have recent buyers"

    outcome = run_gate(settings, "marts", date.fromisoformat(ds), "test-run")
    audience_checks = [c for c in outcome.checks if c.suite == "marts/audience_members"]
    assert audience_checks and all(c.success for c in audience_checks), [
        c.describe() for c in audience_checks if not c.success
    ]

    published = publish(ds, "manual__audiences", settings)
    folder = settings.layout.export_dir(ds)
    assert published["audience_exports"]["folder"] == str(folder)
    manifest = json.loads(settings.layout.export_manifest(ds).read_text("utf-8"))
    for entry in manifest["files"]:
        data = (folder / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["file"]
        assert len(rows(folder / entry["file"])) == entry["rows"], entry["file"]

    meta = rows(folder / "meta_exclude_recent_buyers.meta.csv")
    treatment = {c for c, a in mart["meta_exclude_recent_buyers"].items() if a == "treatment"}
    by_hand = {hashlib.sha256(emails[c].strip().lower().encode()).hexdigest() for c in treatment}
    assert {r["email"] for r in meta} == by_hand
    assert list(meta[0]) == ["email", "phone", "fn", "ln", "zip", "country"]
    plain = rows(folder / "meta_exclude_recent_buyers.plain.csv")
    assert {r["customer_id"]: r["arm"] for r in plain} == mart["meta_exclude_recent_buyers"]
    counts = {a["audience"]: a for a in manifest["audiences"]}
    for name, members in mart.items():
        assert counts[name]["treatment"] == sum(a == "treatment" for a in members.values())
        assert counts[name]["control"] == sum(a == "control" for a in members.values())
    record = settings.layout.run(ds).record().published
    assert record["audience_exports"]["files"] == manifest["files"]

    person = sorted(treatment)[0]
    result = erase(settings, customer=person)
    assert result.export_rows >= 2  # the Meta file and the plain file at least
    hashed = hashlib.sha256(emails[person].encode()).hexdigest()
    for path in folder.iterdir():
        text = path.read_text("utf-8")
        assert person not in text and hashed not in text and emails[person] not in text
    manifest = json.loads(settings.layout.export_manifest(ds).read_text("utf-8"))
    entry = next(e for e in manifest["files"] if e["file"] == "meta_exclude_recent_buyers.meta.csv")
    assert entry["rows"] == len(treatment) - 1


def test_a_person_in_the_erasure_log_stays_out_when_a_tool_exports_them_again(warehouse):
    """The landed exports may carry an erased person again (a tool that still has them): the
    model leaves out everyone in the erasure log, even while dim_customers has them."""
    settings = warehouse
    con = duckdb.connect(str(settings.build_path), read_only=True)
    ds = str(con.execute("select max(snapshot_date) from marts.audience_members").fetchone()[0])
    before = con.execute(
        "select customer_id from marts.audience_members where snapshot_date = cast(? as date) "
        "order by customer_id",
        [ds],
    ).fetchall()
    con.close()
    person = before[0][0]
    log = settings.layout.erasure_log
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(
        json.dumps({"subject_sha256": hashlib.sha256(person.encode()).hexdigest()}) + "\n", "utf-8"
    )
    built = run_dbt(
        settings,
        ["run", "--select", "audience_members", "--vars", json.dumps({"snapshot_date": ds})],
        dict(os.environ),
    )
    assert built.returncode == 0, built.stdout[-3000:]
    con = duckdb.connect(str(settings.build_path), read_only=True)
    after = con.execute(
        "select customer_id from marts.audience_members where snapshot_date = cast(? as date) "
        "order by customer_id",
        [ds],
    ).fetchall()
    still_customer = con.execute(
        "select count(*) from marts.dim_customers where customer_id = ?", [person]
    ).fetchone()[0]
    con.close()
    assert still_customer == 1
    assert after == [row for row in before if row[0] != person]
