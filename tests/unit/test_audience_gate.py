"""The marts gate's audience checks (expectations/gates.yml, suite marts/audience_members) on
hand-built members: each computed column against a value worked out here."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import date

import duckdb

from marketing_warehouse.quality.gates import load_bindings, render_sql

DS = "2026-11-20"


def binding_sql(settings) -> str:
    (binding,) = [
        b for b in load_bindings(settings)["marts"] if b["suite"] == "marts/audience_members"
    ]
    return render_sql(settings, binding["sql"], date.fromisoformat(DS))


def build(con, members: list[tuple], customers: list[tuple]) -> None:
    con.execute("create schema marts")
    con.execute(
        "create table marts.audience_members (audience_name varchar, channel varchar, "
        "snapshot_date date, customer_id varchar, arm varchar, control_share double)"
    )
    con.execute(
        "create table marts.dim_customers (customer_id varchar, email varchar, phone varchar, "
        "is_email_marketable boolean, is_sms_marketable boolean)"
    )
    con.executemany(
        "insert into marts.audience_members values (?, ?, ?, ?, ?, ?)",
        [(a, ch, DS, c, arm, share) for a, ch, c, arm, share in members],
    )
    con.executemany("insert into marts.dim_customers values (?, ?, ?, ?, ?)", customers)


def test_the_checks_count_what_they_promise(settings):
    ok = [(f"c{i}", f"c{i}@example.com", None, True, False) for i in range(1000)]
    no_consent = ("nc", "nc@example.com", None, False, False)
    local_phone = ("lp", "lp@example.com", "0151123", True, True)
    erased = ("er", "er@example.com", None, True, False)
    members = [
        # 1000 members, 200 in control at a configured 10 %: z = 0.1 / sqrt(0.09 / 1000)
        *[
            ("big", "email", f"c{i}", "control" if i < 200 else "treatment", 0.1)
            for i in range(1000)
        ],
        ("small", "email", "c1", "treatment", 0.1),
        ("small", "email", "c1", "control", 0.1),  # one customer in both arms
        ("small", "email", "nc", "treatment", 0.1),  # no e-mail consent
        ("small", "sms", "lp", "treatment", 0.1),  # not E.164
        ("small", "email", "er", "treatment", 0.1),  # erased
    ]
    log = settings.layout.erasure_log
    log.parent.mkdir(parents=True)
    log.write_text(json.dumps({"subject_sha256": hashlib.sha256(b"er").hexdigest()}) + "\n")
    con = duckdb.connect()
    build(con, members, [*ok, no_consent, local_phone, erased])
    rows = con.execute(binding_sql(settings)).fetchall()
    names = [d[0] for d in con.description]
    found = {r[0]: dict(zip(names, r, strict=True)) for r in rows}
    big, small = found["big"], found["small"]
    assert big["members"] == 1000 and big["control_members"] == 200
    assert math.isclose(big["control_share_z"], 0.1 / math.sqrt(0.1 * 0.9 / 1000))
    assert big["control_share_z"] > 4  # the suite's audience_share_max_z: this split fails
    assert (big["unreachable_members"], big["erased_members"], big["customers_in_two_arms"]) == (
        0,
        0,
        0,
    )
    assert small["control_share_z"] is None  # 5 rows: below audience_share_check_min_members
    assert small["unreachable_members"] == 2  # nc (consent) and lp (phone)
    assert small["erased_members"] == 1
    assert small["customers_in_two_arms"] == 1
    assert small["control_shares"] == 1
