"""``mwh erase``: one person leaves every landed file, raw and quarantine Parquet and DuckDB file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest
from conftest import order_row, write_shopify

from marketing_warehouse.cli import main
from marketing_warehouse.ingest.contracts import load_contracts
from marketing_warehouse.ingest.extract import file_sha256
from marketing_warehouse.ingest.loads import Ledger, load_source
from marketing_warehouse.ops.erasure import ErasureError, customer_id, erase
from marketing_warehouse.tools.demo_marketing import write_workbook

AT = datetime(2026, 11, 22, 2, 0)
ALICE, BOB = "alice@example.com", "bob@example.com"


def land(settings):
    day1 = settings.landing_dir / "2026-11-20"
    day2 = settings.landing_dir / "2026-11-21"
    write_shopify(
        day1 / "shopify_orders_a.csv",
        [
            order_row("#1", "Alice@Example.com", "2026-11-20 10:00:00 +0100", Total="10,5"),
            order_row("#1", "Alice@Example.com", "2026-11-20 10:00:00 +0100", qty="2"),
            order_row("#2", BOB, "2026-11-20 11:00:00 +0100", **{"Billing Name": "Bøb"}),
            order_row("#3", ALICE, "not a date"),  # quarantined: invalid_timestamp
        ],
        delimiter=";",
        encoding="cp1252",
    )
    (day2 / "stripe_payments_x.csv").parent.mkdir(parents=True)
    (day2 / "stripe_payments_x.csv").write_text(
        "id,Created date (UTC),Amount,Currency,Status,Customer Email\r\n"
        f"ch_1,2026-11-21 10:00:00,10.00,eur,Paid,{ALICE}\r\n"
        f"ch_2,2026-11-21 11:00:00,12.00,eur,Paid,{BOB}\r\n",
        encoding="utf-8-sig",
    )
    redemptions = [
        {"id": f"r{i}", "object": "redemption", "date": "2026-11-21T10:00:00Z",
         "result": "SUCCESS", "customer": {"email": email}}
        for i, email in enumerate((ALICE, BOB))
    ]  # fmt: skip
    (day2 / "voucher_redemptions_x.json").write_text(
        json.dumps({"redemptions": redemptions}), encoding="utf-8"
    )
    (day2 / "product_events_x.jsonl").write_text(
        json.dumps(
            {"messageId": "m1", "event": "login", "timestamp": 1763719200000, "email": ALICE}
        )
        + "\n"
        + json.dumps(
            {"messageId": "m2", "event": "login", "timestamp": 1763719200000, "email": BOB}
        )
        + "\n"
        + '{"messageId": "m3", "email": "alice@example.com", \n',  # malformed: quarantined
        encoding="utf-8",
    )
    write_workbook(
        day2 / "experiments_plan.xlsx",
        {
            "plan": [["Experiment", "Start", "End", "Primary metric"],
                     ["EXP-1", date(2026, 11, 1), date(2026, 11, 30), "conversion"]],
            "assignments": [["Experiment", "Email", "Variant"], ["EXP-1", ALICE, "control"],
                            ["EXP-1", BOB, "treatment"]],
        },
    )  # fmt: skip
    # rejected whole (no Create Date): the quarantine keeps the file's first bytes, Alice's too
    (day2 / "hubspot_contacts_x.csv").write_text(f"Record ID,Email\n1,{ALICE}\n", "utf-8")


def load_all(settings, day: str) -> list:
    return [
        r for c in load_contracts() for r in load_source(settings, c, date.fromisoformat(day), AT)
    ]


def build_warehouses(settings):
    """Build and serving files as dbt and publish leave them (the tables erasure must reach)."""
    settings.build_path.parent.mkdir(parents=True, exist_ok=True)
    q_glob = settings.layout.quarantine / "*" / "*" / "*.parquet"
    for path in (settings.build_path, settings.warehouse_path):
        con = duckdb.connect(str(path))
        con.execute("create schema marts; create schema audit")
        con.execute(
            "create table marts.dim_customers as select md5(e) as customer_id, e as email "
            f"from (values ('{ALICE}'), ('{BOB}')) t(e)"
        )
        con.execute(
            "create table marts.fct_orders as select * from (values "
            f"('#1', md5('{ALICE}')), ('#2', md5('{BOB}'))) t(order_name, customer_id)"
        )
        con.execute(
            f"create table audit.quarantine as select * from read_parquet('{q_glob}', "
            "union_by_name = true)"
        )
        con.close()
    settings.layout.versions.mkdir(parents=True)
    old = settings.layout.versions / "warehouse.20261120T020000.2026-11-20.abcdef.duckdb"
    old.write_bytes(settings.warehouse_path.read_bytes())


def everything(settings) -> str:
    """All data the project keeps, as lower-case text, to search for a person."""
    from openpyxl import load_workbook

    parts = []
    for path in sorted(settings.landing_dir.rglob("*.*")):
        if path.suffix == ".xlsx":
            book = load_workbook(path, read_only=True)
            parts += [repr(r) for s in book.worksheets for r in s.iter_rows(values_only=True)]
            book.close()
        else:
            parts.append(path.read_bytes().decode("utf-8", "replace").replace("\0", ""))
            parts.append(path.read_bytes().decode("cp1252", "replace"))
    for path in sorted(settings.layout.raw.rglob("*.parquet")):
        parts += [repr(r) for r in duckdb.sql(f"select * from read_parquet('{path}')").fetchall()]
    for db in [settings.build_path, settings.warehouse_path, *settings.layout.versions.iterdir()]:
        con = duckdb.connect(str(db), read_only=True)
        for schema, table in con.execute(
            "select schema_name, table_name from duckdb_tables()"
        ).fetchall():
            parts += [repr(r) for r in con.execute(f"select * from {schema}.{table}").fetchall()]
        con.close()
    return "\n".join(parts).lower()


def conservation(settings) -> None:
    """Every ledger entry: landed = loaded + quarantined, and the Parquet files agree."""
    for contract in load_contracts():
        for entry in Ledger(settings, contract).all_entries():
            if entry["status"] != "loaded":
                continue
            part = f"load_date={entry['load_date']}/{entry['file_hash'][:16]}.parquet"
            raw = settings.layout.raw / contract.key / part
            q = settings.layout.quarantine / contract.key / part
            loaded = duckdb.sql(f"select count(*) from read_parquet('{raw}')").fetchone()[0]
            quarantined = (
                duckdb.sql(f"select count(*) from read_parquet('{q}')").fetchone()[0]
                if q.exists()
                else 0
            )
            assert entry["rows_landed"] == entry["rows_loaded"] + entry["rows_quarantined"]
            assert (loaded, quarantined) == (entry["rows_loaded"], entry["rows_quarantined"]), (
                contract.key,
                entry,
            )


@pytest.fixture
def warehouse(settings):
    land(settings)
    load_all(settings, "2026-11-20")
    load_all(settings, "2026-11-21")
    build_warehouses(settings)
    data = everything(settings)
    assert ALICE in data and BOB in data
    conservation(settings)
    return settings


def test_erasing_by_email_removes_the_person_everywhere_and_keeps_the_rest(warehouse):
    settings = warehouse
    result = erase(settings, email="  Alice@EXAMPLE.com ")

    data = everything(settings)
    assert ALICE not in data
    assert BOB in data and "bøb" in data  # the others, and their encoding, untouched
    assert result.landing_files == {
        "2026-11-20/shopify_orders_a.csv": 3,
        "2026-11-21/experiments_plan.xlsx": 1,
        "2026-11-21/hubspot_contacts_x.csv": 1,
        "2026-11-21/product_events_x.jsonl": 2,
        "2026-11-21/stripe_payments_x.csv": 1,
        "2026-11-21/voucher_redemptions_x.json": 1,
    }
    assert result.quarantine_previews == 0  # a whole-file entry keeps no content to redact
    assert result.warehouse_rows["build.duckdb:marts.dim_customers"] == 1
    assert result.warehouse_rows["warehouse.duckdb:marts.fct_orders"] == 1
    assert any(k.startswith("warehouse.2026") for k in result.warehouse_rows)  # old version too
    conservation(settings)
    ledger = settings.layout.ledger / "*" / "*.json"  # the glob of dbt's source load_ledger
    assert duckdb.sql(f"select count(*) from read_json('{ledger}', format = 'array')").fetchone()
    shopify = (settings.landing_dir / "2026-11-20" / "shopify_orders_a.csv").read_bytes()
    assert b";" in shopify and "Bøb".encode("cp1252") in shopify  # same delimiter and encoding

    # the audit trail names no one: the hash of the customer id only
    [line] = (settings.data_dir / "audit" / "erasures.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert "alice" not in line.lower() and customer_id(ALICE) not in line
    assert record["subject_sha256"] == hashlib.sha256(customer_id(ALICE).encode()).hexdigest()
    assert record["raw_rows_removed"] == result.raw_rows > 0


def test_the_next_runs_neither_reload_rewritten_files_nor_bring_the_person_back(warehouse):
    settings = warehouse
    erase(settings, email=ALICE)
    again = load_all(settings, "2026-11-21")  # the day is reloaded from its (rewritten) files
    assert {r.load_date for r in again} == {"2026-11-21"}  # 2026-11-20 is not seen as late
    assert all(r.status in {"loaded", "rejected"} for r in again)
    load_all(settings, "2026-11-22")
    assert ALICE not in everything(settings)
    conservation(settings)


def test_erasing_by_customer_id_and_bad_requests(warehouse, monkeypatch, capsys):
    settings = warehouse
    monkeypatch.setenv("MWH_DATA_DIR", str(settings.data_dir))
    assert main(["erase", "--customer-id", customer_id(BOB).upper()]) == 0
    out = capsys.readouterr().out
    assert "2026-11-21/stripe_payments_x.csv: 1 row(s) removed" in out
    assert BOB not in everything(settings)
    assert main(["erase", "--customer-id", "bob"]) == 1
    assert "not a customer id" in capsys.readouterr().err
    with pytest.raises(ErasureError, match="exactly one"):
        erase(settings, email=ALICE, customer=customer_id(ALICE))


# --- odd spellings, unknown and malformed addresses, unreadable files -----------------------

ODD = "İlke@Example.com\t"  # Python's lower() and DuckDB's lower() disagree on İ; trim on tab


def land_odd_person(settings):
    write_shopify(
        settings.landing_dir / "2026-11-20" / "shopify_orders_b.csv",
        [
            order_row("#7", ODD, "2026-11-20 12:00:00 +0100", **{"Billing Name": "Ilke Q"}),
            order_row("#8", BOB, "2026-11-20 12:30:00 +0100"),
        ],
    )


def add_odd_person_to_warehouses(settings):
    """As dbt builds it: the e-mail through the normalize_email macro, customer_id its md5."""
    from marketing_warehouse.ops.identity import email_sql

    for path in (settings.build_path, settings.warehouse_path):
        con = duckdb.connect(str(path))
        con.execute(
            f"insert into marts.dim_customers select md5({email_sql('e')}), {email_sql('e')} "
            "from (values (?)) t(e)",
            [ODD],
        )
        con.close()


def test_odd_spellings_are_erased_from_sql_built_tables_too(warehouse):
    settings = warehouse
    land_odd_person(settings)
    load_all(settings, "2026-11-21")  # 2026-11-20's new file arrives late
    add_odd_person_to_warehouses(settings)
    assert "ilke@example.com" in everything(settings).replace("i̇", "i")
    result = erase(settings, email="  İlke@example.COM ")
    data = everything(settings)
    assert "lke@example.com" not in data
    assert result.landing_files == {"2026-11-20/shopify_orders_b.csv": 1}
    assert result.warehouse_rows["build.duckdb:marts.dim_customers"] == 1
    assert result.warehouse_rows["warehouse.duckdb:marts.dim_customers"] == 1
    assert BOB in data
    conservation(settings)


def test_unknown_and_malformed_addresses_are_refused_and_not_recorded(
    warehouse, monkeypatch, capsys
):
    settings = warehouse
    monkeypatch.setenv("MWH_DATA_DIR", str(settings.data_dir))
    before = everything(settings)
    assert main(["erase", "--email", "nobody@example.com"]) == 2
    assert "no landed file, raw file or DuckDB file knows this person" in capsys.readouterr().err
    for malformed in ("alice at example.com", "alice@", "al ice@example.com", " \t "):
        assert main(["erase", "--email", malformed]) == 1
        err = capsys.readouterr().err
        assert "not an address" in err and "alice" not in err
    assert not (settings.data_dir / "audit" / "erasures.jsonl").exists()
    assert not (settings.data_dir / "audit" / "erasure-journal.json").exists()
    assert everything(settings) == before


def test_an_unreadable_landed_file_is_reported_and_the_rest_erased(warehouse, monkeypatch, capsys):
    settings = warehouse
    binary = settings.landing_dir / "2026-11-21" / "shopify_orders_z.csv"
    binary.write_bytes(bytes(range(256)) * 40 + ALICE.encode("utf-16-le"))
    monkeypatch.setenv("MWH_DATA_DIR", str(settings.data_dir))
    code = main(["erase", "--email", ALICE])
    out = capsys.readouterr().out
    assert code == 3  # erased where it could; one file still holds the address
    assert "2026-11-21/shopify_orders_z.csv: cannot be read" in out
    assert "its bytes hold the address" in out and ALICE not in out
    binary.unlink()
    assert ALICE not in everything(settings)
    conservation(settings)
    [line] = (settings.data_dir / "audit" / "erasures.jsonl").read_text().splitlines()
    assert json.loads(line)["landing_files_unreadable"] == ["2026-11-21/shopify_orders_z.csv"]


def test_gate_samples_of_personal_columns_hold_hashes(tmp_path):
    from marketing_warehouse.config import load_settings
    from marketing_warehouse.quality.gates import run_gate, sample_hash

    suites = tmp_path / "expectations"
    (suites / "staging").mkdir(parents=True)
    (suites / "gates.yml").write_text(
        "staging:\n  - suite: staging/customers\n"
        f"    sql: select * from (values ('{ALICE}', 'x'), ('not-an-address', 'y')) t(email, code)\n"
    )
    expectations = [
        {"type": "expect_column_values_to_match_regex", "severity": "warning",
         "kwargs": {"column": "email", "regex": "^bob@"}},
        {"type": "expect_column_values_to_be_in_set", "severity": "warning",
         "kwargs": {"column": "code", "value_set": ["x"]}},
    ]  # fmt: skip
    (suites / "staging" / "customers.json").write_text(
        json.dumps({"name": "staging/customers", "expectations": expectations})
    )
    settings = load_settings(
        {"MWH_DATA_DIR": str(tmp_path / "data"), "MWH_EXPECTATIONS_DIR": str(suites)}
    )
    settings.build_path.parent.mkdir(parents=True)
    duckdb.connect(str(settings.build_path)).close()  # the staging gate reads the build file
    run_gate(settings, "staging", date(2026, 11, 21), "run-1")
    results = settings.layout.run("2026-11-21").gate_results("staging")
    samples = dict(duckdb.sql(f"select column_name, unexpected_sample from '{results}'").fetchall())
    assert sorted(json.loads(samples["email"])) == sorted(
        [sample_hash(ALICE), sample_hash("not-an-address")]
    )
    assert json.loads(samples["code"]) == ["y"]  # not personal: the value itself


# --- fault injection: a crash at any point, then a rerun, equals an uninterrupted erasure -----


def state(settings) -> dict:
    """Everything erasure changes, in a comparable form (workbooks by cell, Parquet by row)."""
    from openpyxl import load_workbook

    found: dict = {}
    for path in sorted(settings.landing_dir.rglob("*")):
        if not path.is_file():
            continue
        rel = str(path.relative_to(settings.data_dir))
        if path.suffix == ".xlsx":
            book = load_workbook(path, read_only=True)
            found[rel] = [list(s.iter_rows(values_only=True)) for s in book.worksheets]
            book.close()
        else:
            found[rel] = path.read_bytes()
    for path in sorted(settings.layout.raw.rglob("*")):
        rel = str(path.relative_to(settings.data_dir))
        if path.suffix == ".parquet":
            found[rel] = sorted(map(repr, duckdb.sql(f"select * from '{path}'").fetchall()))
        elif path.is_file():
            found[rel] = json.loads(path.read_text("utf-8"))
    for db in [settings.build_path, settings.warehouse_path, *settings.layout.versions.iterdir()]:
        con = duckdb.connect(str(db), read_only=True)
        for schema, table in con.execute(
            "select schema_name, table_name from duckdb_tables() order by 1, 2"
        ).fetchall():
            rows = con.execute(f"select * from {schema}.{table}").fetchall()
            found[f"{db.name}:{schema}.{table}"] = sorted(map(repr, rows))
        con.close()
    log = settings.data_dir / "audit" / "erasures.jsonl"
    found["log"] = [
        {k: v for k, v in json.loads(line).items() if k != "erased_at"}
        for line in log.read_text().splitlines()
    ]
    found["journal left"] = (settings.data_dir / "audit" / "erasure-journal.json").exists()
    # openpyxl stamps the save time into a workbook: a rewritten workbook's hash differs per run
    text = json.dumps(found, default=repr, sort_keys=True)
    for book in settings.landing_dir.rglob("*.xlsx"):
        text = text.replace(file_sha256(book), "<workbook>").replace(file_sha256(book)[:16], "<w>")
    for erased in (settings.layout.raw / "_erased").glob("*.json"):
        for digest in json.loads(erased.read_text()):
            text = text.replace(digest, "<erased>")
    return json.loads(text)


def mwh(settings, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "mwh"), *args],
        env={**os.environ, "MWH_DATA_DIR": str(settings.data_dir), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_an_erasure_killed_at_any_point_is_finished_by_a_rerun(warehouse, tmp_path):
    from marketing_warehouse.config import load_settings

    baseline = warehouse
    copies = {}
    for stop in (1, 2, 4, 7, 9, 12, 16, 22):
        target = tmp_path / f"stop{stop}"
        shutil.copytree(baseline.data_dir, target)
        copies[stop] = load_settings({"MWH_DATA_DIR": str(target), "MWH_TASK_RETRIES": "0"})
    done = mwh(baseline, "erase", "--email", ALICE)
    assert done.returncode == 0, done.stderr
    expected = state(baseline)
    assert not expected["journal left"] and len(expected["log"]) == 1

    stopped = 0
    for stop, settings in copies.items():
        killed = mwh(settings, "erase", "--email", ALICE, MWH_ERASURE_STOP_AFTER=str(stop))
        assert killed.returncode in (0, 75), killed.stderr
        if killed.returncode == 75:
            stopped += 1
            assert not (settings.data_dir / "audit" / "erasures.jsonl").exists()
            # the nightly run before anyone reruns the erasure: nothing is reloaded as late
            assert load_all(settings, "2026-11-22") == []
            assert mwh(settings, "erase", "--email", "bob@example.com").returncode == 1
            again = mwh(settings, "erase", "--resume")
            assert again.returncode == 0, again.stderr
        assert state(settings) == expected, stop
    assert stopped >= 6


def test_erasure_swaps_fresh_files_in_while_a_bi_tool_holds_the_serving_file(warehouse):
    settings = warehouse
    version = next(settings.layout.versions.iterdir())
    current = settings.layout.versions / "warehouse.20261121T020000.2026-11-21.fedcba.duckdb"
    os.link(settings.warehouse_path, current)  # publish keeps the served file as a version
    reader = subprocess.Popen(  # a BI tool: read-only connections, kept open
        [sys.executable, "-c", (
            "import duckdb, sys, time\n"
            f"cons = [duckdb.connect({str(settings.warehouse_path)!r}, read_only=True),\n"
            f"        duckdb.connect({str(version)!r}, read_only=True)]\n"
            "print(cons[0].execute('select count(*) from marts.dim_customers').fetchone()[0])\n"
            "sys.stdout.flush(); time.sleep(60)"
        )],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert reader.stdout.readline().strip() == "2"
        result = erase(settings, email=ALICE)
        assert result.warehouse_rows["warehouse.duckdb:marts.dim_customers"] == 1
        assert reader.poll() is None  # the tool was not disturbed
    finally:
        reader.kill()
        reader.wait()
    assert ALICE not in everything(settings)
    assert os.path.samefile(current, settings.warehouse_path)  # still the current version
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    assert con.execute("select count(*) from marts.dim_customers").fetchone()[0] == 1
    con.close()


def test_erasure_removes_the_persons_predictions_of_every_snapshot(warehouse):
    """The predictions live outside the warehouse files (every snapshot kept): the person's rows
    go from each snapshot's file, the others' stay, the schema file is left as it is."""
    import pyarrow as pa

    from marketing_warehouse.predict.clv import PREDICTION_SCHEMA
    from marketing_warehouse.predict.store import write_snapshot

    settings = warehouse
    alice, bob = customer_id(ALICE), customer_id(BOB)
    for day in (date(2026, 11, 20), date(2026, 11, 21)):
        rows = [
            {name: None for name in PREDICTION_SCHEMA.names}
            | {"snapshot_date": day, "customer_id": cid, "probability_alive": 0.5}
            for cid in (alice, bob)
        ]
        table = pa.Table.from_pylist(rows, schema=PREDICTION_SCHEMA)
        write_snapshot(settings, day, {"customer_predictions": table})
    files = settings.layout.prediction_table("customer_predictions").snapshot_files()
    assert len(files) == 2

    erase(settings, email=ALICE)
    for path in files:
        left = duckdb.sql(f"select customer_id from read_parquet('{path}')").fetchall()
        assert left == [(bob,)], path
