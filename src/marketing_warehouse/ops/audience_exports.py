"""Audience files for the tools: each audience of a run, in each tool's import layout.

After publish has swapped in the new serving file, ``export`` reads ``marts.audience_members``
of the run's snapshot date (with e-mail, phone and country from ``marts.dim_customers``) and
writes ``<data>/exports/<ds>/`` (``layout.Layout.export_dir``) as one unit: the files are
assembled in a scratch folder, then renamed into place, so a reader sees yesterday's complete
folder or today's, never a mix. Per audience:

* the tool files of its channel, treatment arm only (``LAYOUTS``): email -> Klaviyo list import
  and HubSpot contact import; sms -> Klaviyo (phone first); meta_ads -> Meta Custom Audience
  customer file; google_ads -> Google Ads Customer Match;
* ``<audience>.plain.csv``: every member with customer_id and arm (the record), and
  ``<audience>.control.csv``: the control arm alone (never uploaded; kept to compare against);
* ``manifest.json``: each file's audience, layout, arm, rows and SHA-256, and the members per arm.

Values come from ``identity``'s one normalisation (e-mail trimmed with ASCII lower-casing; phone
digits with ``+``). A phone goes to a tool only in E.164 (``+`` and 8 to 15 digits): without a
country code it cannot be matched. The warehouse holds no first or last names and no postal
code, so those documented columns are present and empty (every layout accepts that).

``erase_from_exports`` removes one person from every kept export folder (``mwh erase``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from marketing_warehouse import duck
from marketing_warehouse.config import Settings
from marketing_warehouse.layout import EXPORT_MANIFEST, export_file_name
from marketing_warehouse.ops.identity import E164, customer_id, normalize_email, normalize_phone

_GMAIL = re.compile(r"^(gmail|googlemail)\.com$")


def sha256_hex(value: str | None) -> str:
    """Lower-case hex SHA-256 of the UTF-8 value; empty for an empty value (a blank cell)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest() if value else ""


def e164(phone: str | None) -> str | None:
    """The phone as identity normalises it, when it is E.164 (``+``, 8 to 15 digits); else None."""
    normalized = normalize_phone(phone)
    return normalized if normalized and E164.match(normalized) else None


def meta_email(email: str | None) -> str | None:
    """Meta Custom Audiences, "Prepare your customer list" (customer file data formatting
    guidelines): e-mail trimmed of leading and trailing whitespace and lower-cased."""
    return normalize_email(email)


def meta_phone(phone: str | None) -> str | None:
    """Meta: digits only, with the country code, no ``+`` and no leading zeros."""
    number = e164(phone)
    return number[1:] if number else None


def google_email(email: str | None) -> str | None:
    """Google Ads Customer Match / enhanced conversions, "Normalize and hash user-provided
    data": trim, lower-case; for gmail.com and googlemail.com addresses also remove every
    period before the ``@`` (the Google Ads API's ``normalize_and_hash_email_address``
    example does the same)."""
    normalized = normalize_email(email)
    if not normalized or "@" not in normalized:
        return normalized
    local, _, domain = normalized.rpartition("@")
    if _GMAIL.match(domain):
        local = local.replace(".", "")
    return f"{local}@{domain}"


def google_phone(phone: str | None) -> str | None:
    """Google: E.164 with the leading ``+`` (e.g. +14155550123), then hashed."""
    return e164(phone)


@dataclass(frozen=True)
class Member:
    """One treatment or control member as the export reads it (personal values: never logged)."""

    audience: str
    channel: str
    customer_id: str
    arm: str
    email: str | None
    phone: str | None
    country: str | None


@dataclass(frozen=True)
class ToolLayout:
    """One tool's import file: its documented header and how a member becomes a row."""

    kind: str
    header: tuple[str, ...]
    row: Callable[[Member], list[str]]
    #: Identifies a person's row for erasure: (row as dict, customer id, their addresses).
    is_theirs: Callable[[dict, str, list[str]], bool]


def _email_theirs(column: str) -> Callable[[dict, str, list[str]], bool]:
    return lambda row, cid, needles: customer_id(row.get(column)) == cid


def _hashed_theirs(column: str, normalize: Callable) -> Callable[[dict, str, list[str]], bool]:
    def check(row: dict, cid: str, needles: list[str]) -> bool:
        hashes = {sha256_hex(normalize(n)) for n in needles if customer_id(n) == cid}
        return bool(row.get(column)) and row[column] in hashes

    return check


KLAVIYO_EMAIL = ToolLayout(
    "klaviyo",
    # Klaviyo, "Create and add contacts to a new list": the first column is Email (or Phone
    # Number); other columns named after Klaviyo properties map to them.
    ("Email", "Phone Number", "First Name", "Last Name", "Country"),
    lambda m: [normalize_email(m.email) or "", e164(m.phone) or "", "", "", m.country or ""],
    _email_theirs("Email"),
)
KLAVIYO_SMS = ToolLayout(
    "klaviyo",
    ("Phone Number", "Email", "First Name", "Last Name", "Country"),
    lambda m: [e164(m.phone) or "", normalize_email(m.email) or "", "", "", m.country or ""],
    _email_theirs("Email"),
)
HUBSPOT = ToolLayout(
    "hubspot",
    # HubSpot contact import: columns matched to contact properties by label; "Audience" is a
    # custom contact property (or a static list created from the import) naming the audience.
    ("Email", "First Name", "Last Name", "Phone Number", "Audience"),
    lambda m: [normalize_email(m.email) or "", "", "", e164(m.phone) or "", m.audience],
    _email_theirs("Email"),
)
META = ToolLayout(
    "meta",
    # Meta customer file identifiers (email, phone, fn, ln, zip, ct, st, country, ...); every
    # value normalised, then SHA-256 hashed (country as a lower-case ISO 3166-1 alpha-2 code).
    ("email", "phone", "fn", "ln", "zip", "country"),
    lambda m: [
        sha256_hex(meta_email(m.email)),
        sha256_hex(meta_phone(m.phone)),
        "",
        "",
        "",
        sha256_hex(m.country.lower() if m.country else None),
    ],
    _hashed_theirs("email", meta_email),
)
GOOGLE = ToolLayout(
    "google",
    # Google Ads Customer Match CSV template: Email, Phone, First Name, Last Name, Country, Zip.
    # E-mail, phone and names are SHA-256 hashed; Country (ISO code) and Zip are not hashed.
    ("Email", "Phone", "First Name", "Last Name", "Country", "Zip"),
    lambda m: [
        sha256_hex(google_email(m.email)),
        sha256_hex(google_phone(m.phone)),
        "",
        "",
        m.country or "",
        "",
    ],
    _hashed_theirs("Email", google_email),
)
PLAIN_HEADER = ("customer_id", "audience_name", "channel", "arm")
#: The tool files each channel's audiences are exported to (treatment arm only).
LAYOUTS: dict[str, tuple[ToolLayout, ...]] = {
    "email": (KLAVIYO_EMAIL, HUBSPOT),
    "sms": (KLAVIYO_SMS,),
    "meta_ads": (META,),
    "google_ads": (GOOGLE,),
}
_PLAIN = ToolLayout(
    "plain",
    PLAIN_HEADER,
    lambda m: [m.customer_id, m.audience, m.channel, m.arm],
    lambda row, cid, needles: row.get("customer_id") == cid,
)
_CONTROL = ToolLayout("control", PLAIN_HEADER, _PLAIN.row, _PLAIN.is_theirs)
_BY_KIND = {layout.kind: layout for layouts in LAYOUTS.values() for layout in layouts}


def _layout_for(channel: str, kind: str) -> ToolLayout:
    if kind == "plain":
        return _PLAIN
    if kind == "control":
        return _CONTROL
    return next((lay for lay in LAYOUTS.get(channel, ()) if lay.kind == kind), _BY_KIND[kind])


_MEMBERS_SQL = """
select
    members.audience_name,
    members.channel,
    members.customer_id,
    members.arm,
    customers.email,
    customers.phone,
    customers.country
from marts.audience_members as members
inner join marts.dim_customers as customers on members.customer_id = customers.customer_id
where members.snapshot_date = cast(? as date)
order by members.audience_name, members.customer_id
"""


def read_members(settings: Settings, ds: str, database: Path | None = None) -> list[Member]:
    """The members of snapshot ``ds`` in the serving file (or ``database``)."""
    con = duck.connect(
        settings.duckdb_memory_limit, database or settings.warehouse_path, read_only=True
    )
    try:
        tables = {
            row[0]
            for row in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            ).fetchall()
        }
        if "audience_members" not in tables:
            return []
        rows = con.execute(_MEMBERS_SQL, [ds]).fetchall()
    finally:
        con.close()
    return [Member(*row) for row in rows]


def _csv_bytes(header: tuple[str, ...], rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def build_files(members: list[Member]) -> tuple[dict[str, bytes], dict]:
    """File name -> content, and the manifest, for one snapshot's members."""
    files: dict[str, bytes] = {}
    entries: list[dict] = []
    audiences: list[dict] = []
    by_audience: dict[str, list[Member]] = {}
    for member in members:
        by_audience.setdefault(member.audience, []).append(member)
    for name, group in sorted(by_audience.items()):
        channel = group[0].channel
        treatment = [m for m in group if m.arm == "treatment"]
        control = [m for m in group if m.arm == "control"]
        audiences.append(
            {
                "audience": name,
                "channel": channel,
                "treatment": len(treatment),
                "control": len(control),
            }
        )
        outputs = [(lay, "treatment", treatment) for lay in LAYOUTS[channel]]
        outputs += [(_PLAIN, "all", group), (_CONTROL, "control", control)]
        for layout, arm, chosen in outputs:
            file_name = export_file_name(name, layout.kind)
            data = _csv_bytes(layout.header, [layout.row(m) for m in chosen])
            files[file_name] = data
            entries.append(
                {
                    "audience": name,
                    "channel": channel,
                    "layout": layout.kind,
                    "arm": arm,
                    "file": file_name,
                    "rows": len(chosen),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
    return files, {"audiences": audiences, "files": entries}


def _replace_folder(settings: Settings, ds: str, files: dict[str, bytes], manifest: dict) -> Path:
    """Assemble the folder in scratch, then rename it into place (see the module doc)."""
    layout = settings.layout
    final, scratch, old = layout.export_dir(ds), layout.export_scratch(ds), layout.export_old(ds)
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    scratch.mkdir(parents=True)
    for file_name, data in files.items():
        (scratch / file_name).write_bytes(data)
    (scratch / EXPORT_MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True), "utf-8")
    if final.exists():
        os.replace(final, old)
    os.replace(scratch, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def export(settings: Settings, ds: str, database: Path | None = None) -> dict:
    """Write ``<data>/exports/<ds>/`` from the serving file; return the manifest (with the
    folder), which the run's publish record, summary and report show."""
    files, manifest = build_files(read_members(settings, ds, database))
    manifest = {"ds": ds, **manifest}
    folder = _replace_folder(settings, ds, files, manifest)
    return {**manifest, "folder": str(folder)}


def erase_from_exports(settings: Settings, cid: str, needles: list[str]) -> int:
    """Remove the person (customer id ``cid``; ``needles``: their known addresses, which
    identify them in the hashed files) from every kept export folder, recounting the manifest;
    return the rows removed. Each folder is rewritten as a whole, like ``export`` writes it."""
    removed = 0
    for folder in settings.layout.export_dirs():
        manifest_path = folder / EXPORT_MANIFEST
        if not manifest_path.is_file():
            continue
        manifest = json.loads(manifest_path.read_text("utf-8"))
        files: dict[str, bytes] = {}
        changed = False
        for entry in manifest["files"]:
            layout = _layout_for(entry["channel"], entry["layout"])
            text = (folder / entry["file"]).read_text("utf-8")
            rows = list(csv.DictReader(io.StringIO(text)))
            kept = [r for r in rows if not layout.is_theirs(r, cid, needles)]
            if len(kept) != len(rows):
                changed = True
                removed += len(rows) - len(kept)
            data = _csv_bytes(layout.header, [[r[c] for c in layout.header] for r in kept])
            files[entry["file"]] = data
            entry["rows"] = len(kept)
            entry["sha256"] = hashlib.sha256(data).hexdigest()
        if not changed:
            continue
        counts: dict[str, dict[str, int]] = {}
        for entry in manifest["files"]:
            if entry["layout"] == "plain":
                rows = list(csv.DictReader(io.StringIO(files[entry["file"]].decode("utf-8"))))
                counts[entry["audience"]] = {
                    arm: sum(1 for r in rows if r["arm"] == arm) for arm in ("treatment", "control")
                }
        for audience in manifest["audiences"]:
            audience.update(counts.get(audience["audience"], {}))
        _replace_folder(settings, folder.name, files, manifest)
    return removed
