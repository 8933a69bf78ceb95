"""Ad platform exports below the campaign grain, written the way the tools export them, and the
totals a test expects from them, computed from the files alone (Python csv, not the pipeline).

* Meta Ads Manager -> Reports -> Export table data, at ad level (Ad set and Ad columns), broken
  down by Day, Age and Gender: one row per ad, age bracket, gender and day.
* Google Ads -> Ad groups -> Download -> CSV, segmented by Day: a title line, a date-range line,
  one row per ad group and day, then "Total: ..." rows.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

META_AD_LEVEL_HEADER = [
    "Reporting starts",
    "Reporting ends",
    "Campaign name",
    "Campaign ID",
    "Ad set name",
    "Ad set ID",
    "Ad name",
    "Ad ID",
    "Age",
    "Gender",
    "Day",
    "Currency",
    "Amount spent (EUR)",
    "Impressions",
    "Link clicks",
    "Results",
    "Result indicator",
    "Purchases conversion value",
]
GOOGLE_AD_GROUP_HEADER = [
    "Day",
    "Ad group",
    "Ad group ID",
    "Campaign",
    "Campaign ID",
    "Ad group state",
    "Currency code",
    "Impr.",
    "Clicks",
    "Cost",
    "Conversions",
    "Conv. value",
]
AGES = ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
GENDERS = ["female", "male", "unknown"]


def _days(first: date, count: int) -> list[date]:
    return [first + timedelta(days=i) for i in range(count)]


def write_meta_ad_level(path: Path, first: date, days: int, campaigns: dict[str, str]) -> int:
    """An ad-level export with an age and gender breakdown; returns its number of data rows.

    Each campaign has two ad sets of two ads; every ad has a row per age, gender and day."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(META_AD_LEVEL_HEADER)
        for c, (campaign_id, campaign_name) in enumerate(campaigns.items()):
            for s in range(2):
                ad_set_id = f"{campaign_id}{s:02d}"
                for a in range(2):
                    ad_id = f"{ad_set_id}{a:02d}"
                    for d, day in enumerate(_days(first, days)):
                        for g, age in enumerate(AGES):
                            for h, gender in enumerate(GENDERS):
                                seed = c * 7 + s * 5 + a * 3 + d * 11 + g * 2 + h
                                impressions = 40 + seed * 13 % 900
                                clicks = seed * 7 % 31
                                spend = Decimal(seed * 37 % 2000) / 100
                                writer.writerow([
                                    first.isoformat(),
                                    (first + timedelta(days=days - 1)).isoformat(),
                                    campaign_name,
                                    campaign_id,
                                    f"{campaign_name} - set {s + 1}",
                                    ad_set_id,
                                    f"Ad {a + 1}",
                                    ad_id,
                                    age,
                                    gender,
                                    day.isoformat(),
                                    "EUR",
                                    f"{spend:.2f}",
                                    impressions,
                                    clicks,
                                    seed % 3,
                                    "actions:offsite_conversion.fb_pixel_purchase",
                                    f"{Decimal(seed % 3) * Decimal('24.90'):.2f}",
                                ])  # fmt: skip
                                count += 1
    return count


def write_google_ad_groups(path: Path, first: date, days: int, campaigns: dict[str, str]) -> int:
    """An ad group download (three ad groups per campaign); returns its number of data rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    last = first + timedelta(days=days - 1)
    count = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("Ad group report\n")
        handle.write(f"{first:%B} {first.day}, {first.year} - {last:%B} {last.day}, {last.year}\n")
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(GOOGLE_AD_GROUP_HEADER)
        for c, (campaign_id, campaign_name) in enumerate(campaigns.items()):
            for g in range(3):
                for d, day in enumerate(_days(first, days)):
                    seed = c * 5 + g * 3 + d * 7
                    cost = Decimal(seed * 211 % 150000) / 100  # up to 1,499.99: thousands commas
                    writer.writerow([
                        day.isoformat(),
                        f"{campaign_name} | group {g + 1}",
                        f"{campaign_id}{g:03d}",
                        campaign_name,
                        campaign_id,
                        "Enabled",
                        "EUR",
                        f"{100 + seed * 17 % 5000:,}",
                        seed * 3 % 97,
                        f"{cost:,.2f}",
                        f"{Decimal(seed % 4) / 2:.2f}",
                        f"{Decimal(seed % 4) * 30:.2f}",
                    ])  # fmt: skip
                    count += 1
        for total in ("Total: Ad groups", "Total: Account"):
            writer.writerow([total, "", "", "", "", "", "EUR", "99,999", 999, "9,999.00", 9, 99])
    return count


def _number(text: str) -> Decimal:
    return Decimal(text.replace(",", "") or "0")


def _file_rows(path: Path) -> list[dict]:
    """(platform, campaign id, day, spend, impressions, clicks) of every data row of one file."""
    platform = "google_ads" if path.name.startswith("google_ads") else "meta_ads"
    with path.open(encoding="utf-8", newline="") as handle:
        lines = handle.read().splitlines()
    if platform == "google_ads":
        lines = lines[2:]  # title and date-range lines
    reader = csv.DictReader(lines)
    out = []
    for row in reader:
        if row["Day"].startswith("Total"):
            continue
        spend = next(v for k, v in row.items() if k.startswith(("Amount spent", "Cost")))
        out.append({
            "platform": platform,
            "campaign_id": row["Campaign ID"],
            "day": row["Day"],
            "spend": _number(spend),
            "impressions": int(_number(row.get("Impressions") or row.get("Impr.") or "0")),
            "clicks": int(_number(row.get("Link clicks") or row.get("Clicks") or "0")),
        })  # fmt: skip
    return out


def expected_ad_totals(landing: Path) -> dict[tuple[str, str], dict[str, object]]:
    """Spend, impressions and clicks per (platform, day) that the marts must show.

    Within a file, the rows of a campaign and day are summed; across files, the file delivered
    last for that campaign and day wins: the latest delivery folder, then the latest landed file
    (its modification time)."""
    per_file: dict[tuple, dict[tuple, dict]] = {}
    for path in sorted(landing.glob("*/*.csv")):
        if not path.name.startswith(("google_ads", "meta_ads")):
            continue
        delivered = (path.parent.name, os.stat(path).st_mtime_ns)
        sums: dict[tuple, dict] = defaultdict(lambda: {"spend": 0, "impressions": 0, "clicks": 0})
        for row in _file_rows(path):
            key = (row["platform"], row["campaign_id"], row["day"])
            for metric in ("spend", "impressions", "clicks"):
                sums[key][metric] += row[metric]
        per_file[delivered] = dict(sums)
    newest: dict[tuple, tuple] = {}
    for delivered, sums in per_file.items():
        for key in sums:
            newest[key] = max(newest.get(key, delivered), delivered)
    totals: dict[tuple[str, str], dict] = defaultdict(
        lambda: {"spend": Decimal(0), "impressions": 0, "clicks": 0}
    )
    for key, delivered in newest.items():
        platform, _, day = key
        for metric, value in per_file[delivered][key].items():
            totals[(platform, day)][metric] += value
    return dict(totals)
