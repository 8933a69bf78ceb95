"""What the DAG-run test files share: an environment for a run on its own folder, the demo landing
they run on, and hashes of the published marts to compare versions and builds.

tests/integration/test_dag.py runs the DAG itself (its tasks, its failures, a killed run);
tests/integration/test_dag_dates.py the dates a warehouse is run for (a backfill out of order, a
historical date). Each file sits in its own pytest-xdist process under ``make test``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from datetime import date
from pathlib import Path

import duckdb

from marketing_warehouse.serve.publish import PUBLISHED_MARTS

DAG_ID = "marketing_warehouse_nightly"
PROJECT = Path(__file__).resolve().parents[1]
#: subprocess.run arguments of a whole `mwh` command
RUN = {"capture_output": True, "text": True, "timeout": 900}
#: The date the demo landing ends on, and its days.
DEMO_END, DEMO_DAYS = date(2026, 11, 21), 10

#: Marts that keep one snapshot per run date (a backfill adds snapshots), and their date column.
SNAPSHOT_MARTS = {
    "audience_members": "snapshot_date",
    "clv_model_parameters": "snapshot_date",
    "customer_predictions": "snapshot_date",
    "dim_customer_segments": "snapshot_date",
    "kpi_channel_coverage": "date",
}


def mart_fingerprints(path: Path, snapshot: str | None = None) -> dict[str, str]:
    """A hash of every published mart's sorted rows; with ``snapshot``, the snapshot marts are
    hashed for that one date."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        prints = {}
        for mart in PUBLISHED_MARTS:
            where = ""
            if snapshot and mart in SNAPSHOT_MARTS:
                where = f" where {SNAPSHOT_MARTS[mart]} = date '{snapshot}'"
            rows = con.execute(f"select * from marts.{mart}{where} order by all").fetchall()
            prints[mart] = hashlib.sha256(repr(rows).encode()).hexdigest()
        return prints
    finally:
        con.close()


def version_digest(path: Path) -> str:
    """One hash of all published marts: tells versions of the serving file apart."""
    prints = mart_fingerprints(path)
    return hashlib.sha256(json.dumps(prints, sort_keys=True).encode()).hexdigest()


def run_env(root: Path) -> dict[str, str]:
    """A clean environment on ``root``: its own data folder and Airflow home, ten demo days."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MWH_", "AIRFLOW"))}
    return base | {
        "MWH_DATA_DIR": str(root / "data"),
        "MWH_DEMO_DAYS": str(DEMO_DAYS),
        "MWH_TASK_RETRIES": "0",
        "AIRFLOW_HOME": str(root / "airflow"),
    }


def mwh_run(ds: str) -> list[str]:
    return [str(Path(sys.executable).parent / "mwh"), "run", "--date", ds]


def settings_for(env: dict[str, str], expectations: Path | None = None):
    """The settings a run with ``env`` (and a copy of the expectations) would load."""
    from marketing_warehouse.config import load_settings

    more = {"MWH_EXPECTATIONS_DIR": str(expectations)} if expectations else {}
    return load_settings(env | more)


#: Ad exports below the campaign grain, landed beside the demo's campaign-level reports: a Meta
#: ad-level export broken down by age and gender, and a Google Ads ad group download.
META_AD_LEVEL = ("2026-11-18", "meta_ads_ads_by_age_gender.csv", "2026-11-15", 3)
GOOGLE_AD_GROUPS = ("2026-11-19", "google_ads_ad_groups.csv", "2026-11-16", 3)
FINER_GRAIN_CAMPAIGNS = {"91001": "Prospecting | ads", "91002": "Retargeting | ads"}


def land_demo_days(landing: Path) -> Path:
    """Ten demo days up to 2026-11-21 (seed 42, scale 0.01) in ``landing``, and the finer-grain
    ad exports beside them."""
    from ad_exports import write_google_ad_groups, write_meta_ad_level

    from marketing_warehouse.tools import demo

    demo.generate(landing, DEMO_END, DEMO_DAYS, seed=42, scale=0.01)
    for (folder, name, first, days), write in (
        (META_AD_LEVEL, write_meta_ad_level),
        (GOOGLE_AD_GROUPS, write_google_ad_groups),
    ):
        first_day = date.fromisoformat(first)
        write(landing / folder / name, first_day, days, FINER_GRAIN_CAMPAIGNS)
    return landing
