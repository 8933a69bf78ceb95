"""marts.audience_members: one row per audience, snapshot date and customer, with the arm.

The definitions (dbt_project/audiences/*.yml) are loaded, and so validated again, on every run
by marketing_warehouse.transform.audiences, which also writes the SQL (filter, reachability on
the channel, erasure log, arm rule). Incremental: a run replaces its own snapshot date (pre-hook
in the YAML) and keeps the others, so "who was in the audience on the send date" stays answerable.
"""

import json
from pathlib import Path

from marketing_warehouse.transform.audiences import channels, load_audiences, members_sql


def erased_hashes(path):
    """subject_sha256 of every finished erasure (the log survives re-landing of the exports)."""
    log = Path(path) if path else None
    if log is None or not log.is_file():
        return []
    rows = [json.loads(line) for line in log.read_text("utf-8").splitlines() if line.strip()]
    return sorted({row["subject_sha256"] for row in rows if row.get("subject_sha256")})


def model(dbt, session):
    dbt.config(materialized="incremental")
    snapshot_date = dbt.config.get("snapshot_date")
    if not snapshot_date:
        # the default of macro snapshot_date(): the latest order date, else today
        orders = dbt.ref("fct_orders")
        snapshot_date = str(
            orders.aggregate("coalesce(max(order_date), current_date)").fetchone()[0]
        )
    # the paths come from the environment dbt is run with (Settings.dbt_env); a dbt command run
    # by hand without it falls back to the settings' defaults, never to "no one is erased"
    settings = None
    if not dbt.config.get("dbt_project_dir") or not dbt.config.get("erasure_log"):
        from marketing_warehouse.config import load_settings

        settings = load_settings()
    project_dir = Path(dbt.config.get("dbt_project_dir") or settings.dbt_project_dir)
    erasure_log = dbt.config.get("erasure_log") or str(settings.layout.erasure_log)
    audiences = load_audiences(project_dir)

    segments = dbt.ref("dim_customer_segments")
    customers = dbt.ref("dim_customers")
    # temporary views (this connection only): nothing but the model itself lands in the file
    for name, relation in (("segments", segments), ("customers", customers)):
        session.execute(
            f"create or replace temp view audience_input_{name} as {relation.sql_query()}"
        )
    hashes = erased_hashes(erasure_log)
    values = ", ".join("('" + h.replace("'", "") + "')" for h in hashes) or "(null)"
    session.execute(
        "create or replace temp view audience_input_erased as "
        f"select cast(column0 as varchar) as subject_sha256 from (values {values}) as erased(column0)"
    )
    sql = members_sql(
        audiences,
        segments="audience_input_segments",
        customers="audience_input_customers",
        erased="audience_input_erased",
        snapshot_date=snapshot_date,
        segment_columns=list(segments.columns),
        customer_columns=list(customers.columns),
        reachable=channels(project_dir),
    )
    return session.sql(sql)
