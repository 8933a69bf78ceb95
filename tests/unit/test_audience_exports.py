"""Audience files in each tool's import layout: headers as each tool documents them, identifiers
normalised and hashed as each tool documents it (checked against hashlib on values normalised by
hand here), the folder written as a whole, and erasure of one person from it."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re

import duckdb
import pytest

from marketing_warehouse.ops import audience_exports
from marketing_warehouse.ops.audience_exports import Member, build_files, erase_from_exports, export

# The documented headers, as literals (not read from the code under test):
# Klaviyo, "Create and add contacts to a new list" (help.klaviyo.com/hc/en-us/articles/115005078967):
# first column Email (or Phone Number), other columns named after Klaviyo properties.
KLAVIYO_EMAIL_HEADER = ["Email", "Phone Number", "First Name", "Last Name", "Country"]
KLAVIYO_SMS_HEADER = ["Phone Number", "Email", "First Name", "Last Name", "Country"]
# HubSpot, "Import contacts" (knowledge.hubspot.com/import-and-export/import-objects): columns
# matched to contact property labels; Audience is the custom property naming the list.
HUBSPOT_HEADER = ["Email", "First Name", "Last Name", "Phone Number", "Audience"]
# Meta, "Customer list custom audiences: prepare your customer file" (identifier columns
# email, phone, fn, ln, zip, ct, st, country, ...).
META_HEADER = ["email", "phone", "fn", "ln", "zip", "country"]
# Google Ads Help, "Customer Match: upload a customer list" CSV template.
GOOGLE_HEADER = ["Email", "Phone", "First Name", "Last Name", "Country", "Zip"]
PLAIN_HEADER = ["customer_id", "audience_name", "channel", "arm"]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cid(email: str) -> str:
    return hashlib.md5(email.encode()).hexdigest()


def rows_of(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"))))


ANNA = Member(
    "vip", "email", cid("anna.b@gmail.com"), "treatment", "anna.b@gmail.com", "+4915112345678", "DE"
)
BOB = Member("vip", "email", cid("bob@example.com"), "control", "bob@example.com", None, "FR")
CARL = Member(
    "vip", "email", cid("carl@example.com"), "treatment", "carl@example.com", "0301234", None
)


def test_email_audience_layouts_header_by_header():
    files, manifest = build_files([ANNA, BOB, CARL])
    assert sorted(files) == [
        "vip.control.csv",
        "vip.hubspot.csv",
        "vip.klaviyo.csv",
        "vip.plain.csv",
    ]
    klaviyo = rows_of(files["vip.klaviyo.csv"])
    assert klaviyo[0] == KLAVIYO_EMAIL_HEADER
    # treatment only; a phone without a country code is left out (cannot be matched)
    assert klaviyo[1:] == [
        ["anna.b@gmail.com", "+4915112345678", "", "", "DE"],
        ["carl@example.com", "", "", "", ""],
    ]
    hubspot = rows_of(files["vip.hubspot.csv"])
    assert hubspot[0] == HUBSPOT_HEADER
    assert hubspot[1:] == [
        ["anna.b@gmail.com", "", "", "+4915112345678", "vip"],
        ["carl@example.com", "", "", "", "vip"],
    ]
    control = rows_of(files["vip.control.csv"])
    assert control == [PLAIN_HEADER, [BOB.customer_id, "vip", "email", "control"]]
    plain = rows_of(files["vip.plain.csv"])
    assert plain[0] == PLAIN_HEADER and len(plain) == 4
    assert manifest["audiences"] == [
        {"audience": "vip", "channel": "email", "treatment": 2, "control": 1}
    ]
    by_file = {e["file"]: e for e in manifest["files"]}
    for name, data in files.items():
        assert by_file[name]["sha256"] == hashlib.sha256(data).hexdigest()
        assert by_file[name]["rows"] == len(rows_of(data)) - 1


def test_sms_audience_puts_the_phone_first():
    member = Member(
        "sms_vip", "sms", cid("d@example.com"), "treatment", "d@example.com", "+4915112345678", "DE"
    )
    files, _ = build_files([member])
    assert rows_of(files["sms_vip.klaviyo.csv"]) == [
        KLAVIYO_SMS_HEADER,
        ["+4915112345678", "d@example.com", "", "", "DE"],
    ]


def test_meta_file_is_normalised_and_hashed_as_meta_documents():
    member = Member(
        "ads", "meta_ads", cid("x"), "treatment", "  Anna.B@GMAIL.com ", "0049 151 1234-5678", "DE"
    )
    files, _ = build_files([member])
    rows = rows_of(files["ads.meta.csv"])
    assert rows[0] == META_HEADER
    # by hand: e-mail trimmed and lower-cased; phone digits with country code, no "+"; country
    # lower-case ISO code; every identifier SHA-256 (lower-case hex); no names or zip held
    assert rows[1] == [sha("anna.b@gmail.com"), sha("4915112345678"), "", "", "", sha("de")]


def test_google_file_is_normalised_and_hashed_as_google_documents():
    member = Member(
        "ads", "google_ads", cid("x"), "treatment", " Anna.B@GMAIL.com", "+49 151 12345678", "DE"
    )
    other = Member("ads", "google_ads", cid("y"), "treatment", "A.B@Example.com", None, None)
    files, _ = build_files([member, other])
    rows = rows_of(files["ads.google.csv"])
    assert rows[0] == GOOGLE_HEADER
    # gmail.com: the periods before the @ removed; other domains keep them; phone E.164 with
    # "+"; Country and Zip are not hashed
    assert rows[1] == [sha("annab@gmail.com"), sha("+4915112345678"), "", "", "DE", ""]
    assert rows[2] == [sha("a.b@example.com"), "", "", "", "", ""]


def serving_file(settings, members: list[Member], ds: str) -> None:
    settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute("create schema marts")
    con.execute(
        "create table marts.audience_members (audience_name varchar, channel varchar, "
        "snapshot_date date, customer_id varchar, arm varchar)"
    )
    con.execute(
        "create table marts.dim_customers (customer_id varchar, email varchar, phone varchar, "
        "country varchar)"
    )
    for m in members:
        con.execute(
            "insert into marts.audience_members values (?, ?, ?, ?, ?)",
            [m.audience, m.channel, ds, m.customer_id, m.arm],
        )
        con.execute(
            "insert into marts.dim_customers values (?, ?, ?, ?)",
            [m.customer_id, m.email, m.phone, m.country],
        )
    # another night's member is not exported
    con.execute(
        "insert into marts.audience_members values ('vip', 'email', date '2026-11-19', ?, 'treatment')",
        [ANNA.customer_id],
    )
    con.close()


def test_export_replaces_the_folder_as_a_whole(settings):
    ds = "2026-11-20"
    serving_file(settings, [ANNA, BOB, CARL], ds)
    stale = settings.layout.export_dir(ds)
    stale.mkdir(parents=True)
    (stale / "old_audience.klaviyo.csv").write_text("Email\r\nold@example.com\r\n", "utf-8")
    result = export(settings, ds)
    folder = settings.layout.export_dir(ds)
    assert result["folder"] == str(folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json",
        "vip.control.csv",
        "vip.hubspot.csv",
        "vip.klaviyo.csv",
        "vip.plain.csv",
    ]
    manifest = json.loads(settings.layout.export_manifest(ds).read_text("utf-8"))
    for entry in manifest["files"]:
        data = (folder / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert not settings.layout.export_scratch(ds).exists()
    assert not settings.layout.export_old(ds).exists()


def test_a_failed_export_leaves_the_previous_folder(settings, monkeypatch):
    ds = "2026-11-20"
    serving_file(settings, [ANNA, BOB, CARL], ds)
    export(settings, ds)
    before = {p.name: p.read_bytes() for p in settings.layout.export_dir(ds).iterdir()}

    def broken(header, rows):
        raise OSError("disk full")

    monkeypatch.setattr(audience_exports, "_csv_bytes", broken)
    with pytest.raises(OSError):
        export(settings, ds)
    after = {p.name: p.read_bytes() for p in settings.layout.export_dir(ds).iterdir()}
    assert after == before


def test_erasure_removes_the_person_from_every_file_and_recounts(settings):
    ds = "2026-11-20"
    ads = Member("ads", "google_ads", ANNA.customer_id, "treatment", ANNA.email, ANNA.phone, "DE")
    meta = Member("meta", "meta_ads", ANNA.customer_id, "treatment", ANNA.email, ANNA.phone, "DE")
    serving_file(settings, [ANNA, BOB, CARL], ds)
    con = duckdb.connect(str(settings.warehouse_path))
    for m in (ads, meta):
        con.execute(
            "insert into marts.audience_members values (?, ?, ?, ?, ?)",
            [m.audience, m.channel, ds, m.customer_id, m.arm],
        )
    con.close()
    export(settings, ds)
    folder = settings.layout.export_dir(ds)
    removed = erase_from_exports(settings, ANNA.customer_id, ["anna.b@gmail.com", "+4915112345678"])
    # klaviyo, hubspot, plain of vip; google and plain of ads; meta and plain of meta
    assert removed == 7
    manifest = json.loads(settings.layout.export_manifest(ds).read_text("utf-8"))
    for entry in manifest["files"]:
        data = (folder / entry["file"]).read_bytes()
        text = data.decode("utf-8")
        assert "anna" not in text.lower() and ANNA.customer_id not in text
        assert sha("annab@gmail.com") not in text and sha("anna.b@gmail.com") not in text
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert entry["rows"] == len(rows_of(data)) - 1
    counts = {a["audience"]: (a["treatment"], a["control"]) for a in manifest["audiences"]}
    assert counts == {"ads": (0, 0), "meta": (0, 0), "vip": (1, 1)}
    # the others stay
    assert "carl@example.com" in (folder / "vip.klaviyo.csv").read_text("utf-8")
    assert erase_from_exports(settings, ANNA.customer_id, ["anna.b@gmail.com"]) == 0


def test_the_summary_and_the_report_list_the_files_with_counts_per_arm(settings):
    from marketing_warehouse.ops import report, summary

    ds = "2026-11-20"
    serving_file(settings, [ANNA, BOB, CARL], ds)
    published = {"audience_exports": export(settings, ds)}
    lines = "\n".join(summary.export_lines(published))
    assert str(settings.layout.export_dir(ds)) in lines
    assert re.search(r"vip\s+email\s+treatment\s+2\s+control\s+1", lines), lines
    for name, arm, count in (
        ("vip.klaviyo.csv", "treatment", 2),
        ("vip.control.csv", "control", 1),
    ):
        assert re.search(rf"{re.escape(name)}\s+{arm}\s+{count} rows", lines), lines
    html = "\n".join(report._exports_html(published))
    assert "<h2>Audience exports" in html
    assert "<td>vip</td><td>email</td><td class=n>2</td><td class=n>1</td>" in html
    assert "vip.hubspot.csv" in html
