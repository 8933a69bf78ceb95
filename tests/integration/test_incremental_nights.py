"""Nights built incrementally give the tables one full build gives, row for row.

Three nights of demo exports are loaded and built one night at a time (each build after the
first is incremental: the latest-copy models rank only the copies the night loaded against the
ones kept). Between the nights the landing gets what real deliveries bring:

- night 2: a Shopify export re-sent with one order's status changed (the later folder's copy
  wins), Klaviyo events without a channel of their own (they take their campaign's), and a
  HubSpot contact of night 1 exported again with another e-mail (its identity takes it);
- before night 3: a person is erased (the raw files that held them are rewritten under new
  hashes: the kept copies' files are gone, so those records are recomputed from what is left);
- night 3: a late Shopify file dropped into night 1's folder, with another copy of that order
  (an older folder: it loses) and an order no other file has (it is new), the campaign
  restated with another channel (its unlabelled events take the new one), and a product event
  of night 1 re-sent without its user (it no longer names a person: its identity row goes).

Then the same raw layer is built once in full into a fresh build database, and every table of
the intermediate, marts and audit schemas is compared by a hash of its sorted rows. The history
tables (segment and audience snapshots, and the channel coverage counted from them) hold one
snapshot per night in the incremental build and the last night's only in the full one: their
last snapshot is compared.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from datetime import date, timedelta

import duckdb
import pytest
from mart_fingerprints import fingerprints

from marketing_warehouse.config import load_settings
from marketing_warehouse.ops.erasure import erase
from marketing_warehouse.pipeline import extract_source, prepare
from marketing_warehouse.tools import demo
from marketing_warehouse.transform.dbt_tasks import run_dbt
from marketing_warehouse.transform.incremental import STATE_TABLE, latest_copy_models

pytestmark = pytest.mark.integration

END = date(2026, 11, 21)
NIGHTS = [END - timedelta(days=2 - i) for i in range(3)]
#: Tables that keep one snapshot per night (and the mart counted from every snapshot): compared
#: on the last night's snapshot.
HISTORY = {
    "marts.dim_customer_segments": "snapshot_date",
    "marts.audience_members": "snapshot_date",
    "marts.kpi_channel_coverage": "date",
}
SCHEMAS = ("intermediate", "marts", "audit")


def _build(settings, ds: date) -> None:
    built = run_dbt(
        settings,
        ["build", "--exclude", "resource_type:test", "resource_type:unit_test",
         "--vars", json.dumps({"snapshot_date": ds.isoformat()})],
        dict(os.environ),
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-4000:]


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _night(settings, ds: date) -> None:
    prepared = prepare(ds.isoformat(), settings)
    for key in prepared["sources"]:
        extract_source(key, ds.isoformat(), settings)
    _build(settings, ds)


def _csv_rows(path):
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def _write(path, header, rows) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, header)
        writer.writeheader()
        writer.writerows(rows)


def _order(rows, name):
    return [dict(row) for row in rows if row["Name"] == name]


def _last_snapshot(db, tables) -> dict:
    con = duckdb.connect(str(db))
    try:
        for table, day in tables.items():
            con.execute(f"delete from {table} where {day} < (select max({day}) from {table})")
    finally:
        con.close()
    return fingerprints(db, SCHEMAS)


def _identity_rows(settings, message_id: str) -> int:
    con = duckdb.connect(str(settings.build_path), read_only=True)
    try:
        return con.execute(
            "select count(*) from intermediate.int_customer_identities "
            "where source = 'product' and source_record_id = ?",
            [message_id],
        ).fetchone()[0]
    finally:
        con.close()


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    root = tmp_path_factory.mktemp("nights")
    settings = load_settings({**os.environ, "MWH_DATA_DIR": str(root / "incremental")})
    demo.generate(settings.landing_dir, END, len(NIGHTS), seed=5, scale=0.01)
    landing = settings.landing_dir
    shopify = {ds: next(landing.glob(f"{ds}/shopify_orders_*.csv")) for ds in NIGHTS}
    header, first_night = _csv_rows(shopify[NIGHTS[0]])
    names = list(dict.fromkeys(row["Name"] for row in first_night))
    resent, erased_order = names[0], names[1]

    _night(settings, NIGHTS[0])
    warnings = _Warnings()
    logging.getLogger("marketing_warehouse.transform.incremental").addHandler(warnings)

    # night 2: the first order again in a re-sent export, voided; Klaviyo events without a
    # channel of their own (they take their campaign's)
    changed = _order(first_night, resent)
    changed[0]["Financial Status"] = "voided"
    night2 = landing / NIGHTS[1].isoformat()
    _write(night2 / "shopify_orders_resent.csv", header, changed)
    campaign_file = sorted(landing.glob("*/klaviyo_campaigns_*.csv"))[-1]
    assert campaign_file.parent.name <= NIGHTS[1].isoformat()
    campaign_header, campaign_rows = _csv_rows(campaign_file)
    events_header, events = _csv_rows(next(landing.glob("*/klaviyo_events_*.csv")))
    unlabelled = [
        event
        | {
            "Event ID": f"evt_unlabelled_{number}",
            "Campaign ID": campaign_rows[0]["Campaign ID"],
            "Channel": "",
        }
        for number, event in enumerate(events[:5])
    ]
    _write(night2 / "klaviyo_events_unlabelled.csv", events_header, unlabelled)
    contacts_header, contacts = _csv_rows(next(landing.glob(f"{NIGHTS[0]}/hubspot_contacts_*.csv")))
    exported_later = {
        row["Record ID"]
        for ds in NIGHTS[1:]
        for path in landing.glob(f"{ds}/hubspot_contacts_*.csv")
        for row in _csv_rows(path)[1]
    }
    erased_email = _order(first_night, erased_order)[0]["Email"]  # erased before night 3
    contact = next(
        row
        for row in contacts
        if row["Record ID"] not in exported_later and row["Email"] != erased_email
    ) | {"Email": "Changed.Contact@example.com"}
    _write(night2 / "hubspot_contacts_changed.csv", contacts_header, [contact])
    _night(settings, NIGHTS[1])
    events_file = next(landing.glob(f"{NIGHTS[0]}/product_events_*.jsonl"))
    named = next(
        event
        for event in map(json.loads, events_file.read_text("utf-8").splitlines())
        if event.get("userId")
    )
    identity_rows = _identity_rows(settings, named["messageId"])

    # an erasure before night 3
    erase(settings, email=erased_email)

    # night 3: a late file in night 1's folder: the order as pending (loses), and a new order;
    # the campaign restated with another channel
    late = _order(first_night, resent)
    late[0]["Financial Status"] = "pending"
    new = _order(first_night, names[2])
    for row in new:
        row["Name"] = "#990001"
    _write(landing / NIGHTS[0].isoformat() / "shopify_orders_late.csv", header, late + new)
    assert campaign_rows[0]["Channel"] != "Push"
    restated = [row | {"Channel": "Push"} for row in campaign_rows]
    night3 = landing / NIGHTS[2].isoformat()
    _write(night3 / "klaviyo_campaigns_restated.csv", campaign_header, restated)
    anonymous = {key: value for key, value in named.items() if key not in ("userId", "email")}
    (night3 / "product_events_resent.jsonl").write_text(
        json.dumps(anonymous | {"anonymousId": "anon-resent"}) + "\n", "utf-8"
    )
    _night(settings, NIGHTS[2])
    logging.getLogger("marketing_warehouse.transform.incremental").removeHandler(warnings)

    full = load_settings({**os.environ, "MWH_DATA_DIR": str(root / "full")})
    shutil.copytree(settings.data_dir / "raw", full.data_dir / "raw")
    shutil.copytree(settings.layout.predictions, full.layout.predictions)
    if settings.layout.erasure_log.exists():
        full.layout.erasure_log.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(settings.layout.erasure_log, full.layout.erasure_log)
    _build(full, NIGHTS[-1])
    return (
        settings,
        full,
        {
            "resent": resent,
            "erased": erased_email,
            "events": len(unlabelled),
            "rebuilt": warnings.messages,
            "anonymous": named["messageId"],
            "contact": contact["Record ID"],
            "identity_rows": identity_rows,
        },
    )


def test_incremental_nights_build_the_tables_of_one_full_build(nights, tmp_path):
    incremental, full, _ = nights
    copies = {}
    for name, settings in (("incremental", incremental), ("full", full)):
        # the same file name: the views name their database by it
        copies[name] = tmp_path / name / settings.build_path.name
        copies[name].parent.mkdir()
        shutil.copy2(settings.build_path, copies[name])
    got = _last_snapshot(copies["incremental"], HISTORY)
    want = _last_snapshot(copies["full"], HISTORY)
    assert set(got) == set(want)
    assert len(got) > 30
    differing = sorted(table for table in want if got[table] != want[table])
    assert differing == [], {t: (got[t], want[t]) for t in differing}


def test_the_nights_exercised_every_path_of_the_rule(nights):
    incremental, _, case = nights
    # no night after the first rebuilt a latest-copy table in full
    assert case["rebuilt"] == []
    con = duckdb.connect(str(incremental.build_path), read_only=True)
    try:
        status = con.execute(
            "select financial_status, load_date from intermediate.int_orders_deduplicated "
            "where source_order_key = ?",
            [case["resent"]],
        ).fetchone()
        new_order = con.execute(
            "select count(*) from intermediate.int_orders_deduplicated "
            "where source_order_key = '#990001'"
        ).fetchone()[0]
        erased = con.execute(
            "select count(*) from intermediate.int_orders_deduplicated where email = ?",
            [case["erased"].strip().lower()],
        ).fetchone()[0]
        relabelled = con.execute(
            "select count(*) from intermediate.int_klaviyo_events_deduplicated "
            "where event_id like 'evt_unlabelled_%' and channel = 'push'"
        ).fetchone()[0]
        anonymous = con.execute(
            "select user_id, load_date from intermediate.int_product_events_deduplicated "
            "where message_id = ?",
            [case["anonymous"]],
        ).fetchone()
        contact = con.execute(
            "select email, load_date from intermediate.int_customer_identities "
            "where source = 'hubspot' and source_record_id = ?",
            [case["contact"]],
        ).fetchall()
        models = {m for (m,) in con.execute(f"select model from {STATE_TABLE}").fetchall()}
    finally:
        con.close()
    # the re-sent copy of the later folder won; the late file of the older folder lost
    assert status == ("voided", NIGHTS[1])
    assert new_order == 1
    assert erased == 0
    assert relabelled == case["events"]
    # the product event named its user until night 3's copy without one won: its row is gone
    assert case["identity_rows"] == 1
    assert anonymous == (None, NIGHTS[2])
    assert _identity_rows(incremental, case["anonymous"]) == 0
    # the contact's copy of night 2 won over night 1's
    assert contact == [("changed.contact@example.com", NIGHTS[1])]
    assert (
        models
        == set(latest_copy_models(incremental))
        >= {
            "int_orders_deduplicated",
            "int_klaviyo_events_deduplicated",
            "int_product_events_deduplicated",
            "int_customer_identities",
        }
    )
