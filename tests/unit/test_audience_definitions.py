"""Audiences as code: validation of the definitions, their SQL for each engine, the arm rule,
and the members' SQL (the dbt macros, as dbt renders them) on hand-built customers (consent,
erasure, two nights)."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

import duckdb
import pytest
import yaml

from marketing_warehouse.config import load_settings
from marketing_warehouse.ops.identity import E164
from marketing_warehouse.transform.audiences import (
    AudienceError,
    allowed_columns,
    arm,
    bucket,
    channels,
    definitions,
    definitions_env,
    load_audiences,
    render,
)
from marketing_warehouse.transform.dbt_tasks import run_dbt

ROOT = Path(__file__).resolve().parents[2]
DBT = ROOT / "dbt_project"


def write(folder: Path, name: str, **fields) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    file_name = name if re.fullmatch(r"[a-z0-9_]+", name) else "bad_name"
    body = {"name": name, "description": "test audience", "channel": "email"}
    body.update(fields)
    body = {k: v for k, v in body.items() if v is not None}
    path = folder / f"{file_name}.yml"
    path.write_text(yaml.safe_dump(body), "utf-8")
    return path


def rejected(tmp_path: Path, field: str, **fields) -> str:
    fields = {"name": "bad", "filter": "frequency > 1", **fields}
    path = write(tmp_path / "aud", fields.pop("name"), **fields)
    with pytest.raises(AudienceError) as raised:
        load_audiences(DBT, tmp_path / "aud")
    message = str(raised.value)
    assert str(path) in message, message
    assert f"field '{field}'" in message, message
    return message


# --- the committed definitions ----------------------------------------------------------------


def test_the_committed_audiences_load():
    audiences = {a.name: a for a in load_audiences(DBT)}
    assert len(audiences) >= 3
    win_back = audiences["win_back_valuable"]
    assert win_back.control_share == 0.10
    assert win_back.channel == "email"
    assert "lifecycle_stage" in win_back.filter_sql and "value_tier" in win_back.filter_sql


def test_allowed_columns_are_the_documented_ones_without_personal_data():
    documented = {}
    for path in (DBT / "models").rglob("*.yml"):
        for model in (yaml.safe_load(path.read_text("utf-8")) or {}).get("models") or []:
            if model["name"] in ("dim_customer_segments", "dim_customers"):
                for column in model.get("columns") or []:
                    documented[column["name"]] = (column.get("meta") or {}).get("pii", False)
    expected = {c for c, pii in documented.items() if not pii} - {"snapshot_date"}
    assert set(allowed_columns(DBT)) == expected
    assert "email" not in expected and "phone" not in expected


def test_column_descriptions_carry_the_doc_blocks_text(tmp_path):
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT / "models", project / "models")
    (project / "models" / "_test_docs.md").write_text(
        "{% docs audience_test_block %}\nA block\nover two lines.\n{% enddocs %}\n", "utf-8"
    )
    segments = project / "models" / "marts" / "customers" / "_customers__models.yml"
    docs = yaml.safe_load(segments.read_text("utf-8"))
    model = next(m for m in docs["models"] if m["name"] == "dim_customer_segments")
    model["columns"].append(
        {"name": "test_score", "description": "Score: {{ doc('audience_test_block') }} (test)"}
    )
    segments.write_text(yaml.safe_dump(docs, sort_keys=False), "utf-8")
    described = allowed_columns(project)
    assert described["test_score"] == "Score: A block over two lines. (test)"
    assert not [c for c, text in described.items() if "{{" in text]


def test_a_newly_documented_column_is_usable_without_code_change(tmp_path):
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT / "models", project / "models")
    shutil.copy(DBT / "dbt_project.yml", project / "dbt_project.yml")
    models = project / "models" / "marts" / "customers" / "_customers__models.yml"
    docs = yaml.safe_load(models.read_text("utf-8"))
    segments = next(m for m in docs["models"] if m["name"] == "dim_customer_segments")
    segments["columns"].append({"name": "churn_risk_score", "description": "P(churn)."})
    models.write_text(yaml.safe_dump(docs), "utf-8")
    write(project / "audiences", "at_risk", filter="churn_risk_score > 0.7")
    with pytest.raises(AudienceError, match="unknown column 'churn_risk_score'"):
        load_audiences(DBT, project / "audiences")
    (audience,) = load_audiences(project)
    assert audience.filter_sql == "churn_risk_score > 0.7"


def test_the_sms_condition_uses_the_e164_pattern_of_identity():
    sms = channels(DBT)["sms"]
    pattern = re.search(r"regexp_full_match\(phone, '([^']+)'\)", sms)[1]
    assert "^" + pattern + "$" == E164.pattern


# --- one test per validation error ------------------------------------------------------------


def test_unknown_column(tmp_path):
    assert "unknown column 'churn_score'" in rejected(tmp_path, "filter", filter="churn_score > 1")


def test_personal_data_column_is_unknown(tmp_path):
    assert "unknown column 'email'" in rejected(tmp_path, "filter", filter="email like '%@x.com'")


def test_empty_filter(tmp_path):
    assert "missing or empty" in rejected(tmp_path, "filter", filter="")


def test_blank_filter(tmp_path):
    assert "empty" in rejected(tmp_path, "filter", filter="   ")


def test_two_statements(tmp_path):
    message = rejected(tmp_path, "filter", filter="frequency > 1; drop table marts.dim_customers")
    assert "statements" in message or "statement" in message


def test_a_statement(tmp_path):
    assert "statement" in rejected(tmp_path, "filter", filter="select 1")


def test_subquery(tmp_path):
    message = rejected(
        tmp_path, "filter", filter="customer_id in (select customer_id from marts.fct_orders)"
    )
    assert "subquery" in message


def test_function_outside_the_allowed_list(tmp_path):
    assert "function 'read_csv'" in rejected(tmp_path, "filter", filter="read_csv('x') = 1")


def test_now_is_not_allowed(tmp_path):
    assert "current_date" in rejected(tmp_path, "filter", filter="last_order_date < current_date")


def test_not_a_boolean_expression(tmp_path):
    assert "not a boolean" in rejected(tmp_path, "filter", filter="frequency + 1")


def test_qualified_column(tmp_path):
    assert "qualified" in rejected(tmp_path, "filter", filter="segments.frequency > 1")


def test_share_above_half(tmp_path):
    assert "0.6" in rejected(tmp_path, "control_share", control_share=0.6)


def test_negative_share(tmp_path):
    assert "-0.1" in rejected(tmp_path, "control_share", control_share=-0.1)


def test_share_not_a_number(tmp_path):
    assert "number" in rejected(tmp_path, "control_share", control_share="ten percent")


def test_unknown_channel(tmp_path):
    assert "'tiktok'" in rejected(tmp_path, "channel", channel="tiktok")


def test_bad_name(tmp_path):
    assert "lower-case" in rejected(tmp_path, "name", name="Win Back!")


def test_unknown_field(tmp_path):
    assert "unknown" in rejected(tmp_path, "controll_share", controll_share=0.1)


def test_duplicate_name(tmp_path):
    folder = tmp_path / "aud"
    first = write(folder, "twin", filter="frequency > 1")
    second = folder / "twin_copy.yml"
    second.write_text(first.read_text("utf-8"), "utf-8")
    with pytest.raises(AudienceError) as raised:
        load_audiences(DBT, folder)
    message = str(raised.value)
    assert message.startswith(f"{second}: field 'name'"), message
    assert str(first) in message


# --- the arm rule -----------------------------------------------------------------------------


def test_bucket_is_the_documented_formula():
    for cid in ("a", "0" * 32, hashlib.md5(b"x@example.com").hexdigest()):
        expected = int(hashlib.sha256(f"s1:{cid}".encode()).hexdigest()[:8], 16) / 2**32
        assert bucket("s1", cid) == expected
        assert arm("s1", cid, 0.1) == ("control" if expected < 0.1 else "treatment")


def test_the_sql_bucket_equals_the_python_bucket():
    ids = [hashlib.md5(f"c{i}".encode()).hexdigest() for i in range(2000)] + ["", "ä'é", "x:y"]
    con = duckdb.connect()
    con.execute("create table ids (customer_id varchar)")
    con.executemany("insert into ids values (?)", [[i] for i in ids])
    rows = con.execute(f"select customer_id, {compiled()['bucket']} from ids").fetchall()
    assert len(rows) == len(ids)
    for cid, value in rows:
        assert value == bucket("salt", cid), cid


def test_the_split_of_10000_ids_is_within_binomial_tolerance():
    n, share = 10_000, 0.1
    control = sum(arm("split", f"customer-{i}", share) == "control" for i in range(n))
    sd = math.sqrt(n * share * (1 - share))  # 30
    assert abs(control - n * share) <= 4 * sd, control
    # and another salt draws other arms for the same ids
    other = {i for i in range(n) if arm("other", f"customer-{i}", share) == "control"}
    same = {i for i in range(n) if arm("split", f"customer-{i}", share) == "control"}
    assert len(other & same) < len(same) / 2


# --- the members on hand-built customers ------------------------------------------------------

SEGMENT_COLUMNS = {
    "snapshot_date": "date",
    "customer_id": "varchar",
    "lifecycle_stage": "varchar",
    "value_tier": "varchar",
    "frequency": "integer",
    "is_email_marketable": "boolean",
    "is_sms_marketable": "boolean",
}
CUSTOMER_COLUMNS = {
    "customer_id": "varchar",
    "email": "varchar",
    "phone": "varchar",
    "country": "varchar",
    "is_email_marketable": "boolean",
    "is_sms_marketable": "boolean",
}


def customer(key: str, *, email=True, consent=True, sms=False, phone=None, stage="churned"):
    cid = hashlib.md5(f"{key}@example.com".encode()).hexdigest()
    return {
        "customer_id": cid,
        "email": f"{key}@example.com" if email else None,
        "phone": phone,
        "country": "DE",
        "is_email_marketable": bool(email and consent),
        "is_sms_marketable": sms,
        "lifecycle_stage": stage,
        "value_tier": "high",
        "frequency": 3,
    }


def warehouse(nights: dict[str, list[dict]], erased: list[str] = ()) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(
        "create table segments (" + ", ".join(f"{c} {t}" for c, t in SEGMENT_COLUMNS.items()) + ")"
    )
    con.execute(
        "create table customers ("
        + ", ".join(f"{c} {t}" for c, t in CUSTOMER_COLUMNS.items())
        + ")"
    )
    latest = {}
    for night, people in nights.items():
        for person in people:
            row = {**person, "snapshot_date": night}
            con.execute(
                f"insert into segments values ({', '.join('?' for _ in SEGMENT_COLUMNS)})",
                [row[c] for c in SEGMENT_COLUMNS],
            )
            latest[person["customer_id"]] = person
    for person in latest.values():
        con.execute(
            f"insert into customers values ({', '.join('?' for _ in CUSTOMER_COLUMNS)})",
            [person[c] for c in CUSTOMER_COLUMNS],
        )
    con.execute("create table erased (subject_sha256 varchar)")
    for cid in erased:
        con.execute("insert into erased values (?)", [hashlib.sha256(cid.encode()).hexdigest()])
    return con


def audience(name: str = "win_back", **fields) -> list:
    with tempfile.TemporaryDirectory() as folder:
        write(
            Path(folder),
            name,
            **{"filter": "lifecycle_stage = 'churned' and value_tier = 'high'", **fields},
        )
        return load_audiences(DBT, Path(folder))


#: The audiences the members tests run, by case.
CASES = {
    "email": lambda: audience(channel="email"),
    "sms": lambda: audience("sms_win_back", channel="sms"),
    "meta": lambda: audience("meta_win_back", channel="meta_ads"),
    "control": lambda: audience(control_share=0.3, salt="wb-2026"),
    "none": lambda: [],
}


@functools.cache
def compiled() -> dict[str, str]:
    """Each case's members (macro audience_members_select over the relations segments,
    customers and erased, for the snapshot given as the query's one parameter) and the arm
    bucket of ``customer_id`` for the salt 'salt' (macro audience_bucket), as dbt renders them
    on DuckDB: one ``dbt compile --inline`` for all."""
    env = dict(os.environ)
    calls = []
    for case, make in CASES.items():
        variable = f"MWH_TEST_AUDIENCES_{case.upper()}"
        env[variable] = json.dumps(definitions(make(), channels(DBT), "duckdb"))
        columns = f"{json.dumps(list(SEGMENT_COLUMNS))}, {json.dumps(list(CUSTOMER_COLUMNS))}"
        calls.append(
            f"{{{{ audience_members_select(fromjson(env_var('{variable}')), 'segments', "
            f"'customers', 'erased', 'cast(? as date)', {columns}) }}}}"
        )
    calls.append("{{ audience_bucket(\"'salt'\", 'customer_id') }}")
    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings({"MWH_DATA_DIR": folder})
        args = ["compile", "-q", "--output", "json", "--inline", " |||| ".join(calls)]
        done = run_dbt(settings, args, env)
        assert done.returncode == 0, done.stdout[-3000:]
    rendered = json.loads(done.stdout)["compiled"].split(" |||| ")
    return dict(zip([*CASES, "bucket"], rendered, strict=True))


def members(con, case: str, night: str) -> list[tuple]:
    return con.execute(
        "select audience_name, customer_id, arm, arm_bucket, channel "
        f"from ({compiled()[case]}) order by all",
        [night],
    ).fetchall()


def test_consent_decides_who_is_reachable():
    people = [
        customer("ok"),
        customer("refused", consent=False),
        customer("noemail", email=False),
        customer("sms_ok", consent=False, sms=True, phone="+4915112345678"),
        customer("sms_local", consent=False, sms=True, phone="015112345678"),
        customer("sms_noconsent", phone="+4915112345679"),
        customer("active", stage="active"),
    ]
    con = warehouse({"2026-11-20": people})
    email = members(con, "email", "2026-11-20")
    assert {row[1] for row in email} == {people[0]["customer_id"], people[5]["customer_id"]}
    sms = members(con, "sms", "2026-11-20")
    assert {row[1] for row in sms} == {people[3]["customer_id"]}
    meta = members(con, "meta", "2026-11-20")
    assert {row[1] for row in meta} == {row[1] for row in email}


def test_erased_customers_never_appear():
    people = [customer("kept"), customer("erased")]
    con = warehouse({"2026-11-20": people}, erased=[people[1]["customer_id"]])
    rows = members(con, "email", "2026-11-20")
    assert [row[1] for row in rows] == [people[0]["customer_id"]]


def test_arms_are_stable_across_two_nights_and_a_new_customer_gets_the_formula():
    first = [customer(f"p{i}") for i in range(300)]
    newcomer = customer("newcomer")
    con = warehouse({"2026-11-20": first, "2026-11-21": [*first, newcomer]})
    night1 = {row[1]: row[2] for row in members(con, "control", "2026-11-20")}
    night2 = {row[1]: row[2] for row in members(con, "control", "2026-11-21")}
    assert len(night1) == 300 and len(night2) == 301
    assert {cid: night2[cid] for cid in night1} == night1
    assert night2[newcomer["customer_id"]] == arm("wb-2026", newcomer["customer_id"], 0.3)
    for cid, chosen in night2.items():
        assert chosen == arm("wb-2026", cid, 0.3)
    assert 0 < sum(a == "control" for a in night2.values()) < 301


def test_no_control_share_puts_everyone_in_treatment():
    con = warehouse({"2026-11-20": [customer(f"q{i}") for i in range(50)]})
    rows = members(con, "email", "2026-11-20")
    assert len(rows) == 50 and {row[2] for row in rows} == {"treatment"}


def test_no_audiences_is_an_empty_relation():
    con = warehouse({"2026-11-20": [customer("x")]})
    assert members(con, "none", "2026-11-20") == []


# --- the definitions as dbt reads them, on each engine ----------------------------------------


def test_a_condition_for_spark_keeps_its_meaning():
    assert render("rfm_segment in ('champions', 'loyal') and frequency >= 3", "duckdb") == (
        "rfm_segment in ('champions', 'loyal') and frequency >= 3"
    )
    assert render("rfm_segment in ('champions', 'loyal') and frequency >= 3", "spark") == (
        "rfm_segment IN ('champions', 'loyal') AND frequency >= 3"
    )
    sms = channels(DBT)["sms"]
    # Spark's rlike finds a match anywhere: anchored; the backslash stays as written (the
    # project's Spark sessions keep string literals verbatim)
    assert render(sms, "spark") == ("is_sms_marketable AND phone RLIKE '^(?:\\+[1-9][0-9]{7,14})$'")
    with pytest.raises(AudienceError, match="quote"):
        render("lifecycle_stage = 'it''s'", "spark")


def test_every_definition_reaches_dbt_and_a_bad_one_as_its_error(tmp_path):
    committed = {a.name for a in load_audiences(DBT)}
    for engine in ("duckdb", "spark"):
        found = json.loads(definitions_env(DBT, engine))
        assert {d["name"] for d in found} == committed
        assert {d["definition_sha256"] for d in found} == {
            a.definition_sha256 for a in load_audiences(DBT)
        }  # the same definition on both engines
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT / "models", project / "models")
    shutil.copy(DBT / "dbt_project.yml", project / "dbt_project.yml")
    path = write(project / "audiences", "broken", filter="no_such_column > 1")
    error = json.loads(definitions_env(project, "duckdb"))["error"]
    assert error.startswith(f"{path}: field 'filter'") and "no_such_column" in error
