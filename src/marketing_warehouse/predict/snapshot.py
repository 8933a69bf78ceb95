"""One snapshot of predictions: the build database's revenue orders in, two Parquet files out.

Too little history is not an error: with fewer than ``clv_min_repeat_customers`` repeat buyers
(a new or tiny shop) the models cannot be fitted meaningfully, so the snapshot's files are
written empty and the summary says why; no number is made up.
"""

from __future__ import annotations

import logging
import time
from datetime import date

import pandas as pd

from marketing_warehouse import duck
from marketing_warehouse.config import Settings
from marketing_warehouse.predict import clv, store

log = logging.getLogger(__name__)

#: The orders the models read: revenue orders of known customers up to the snapshot, as one
#: amount per customer and day (a day's orders are one purchase, as in ``clv.rfm_summary``).
ORDERS_SQL = """
    select customer_id, order_date, sum(total_amount_reporting)::double as amount
    from marts.fct_orders
    where is_revenue_order and customer_id is not null and order_date <= ?
    group by customer_id, order_date
"""


def read_orders(settings: Settings, snapshot: date) -> pd.DataFrame:
    con = duck.connect(settings.duckdb_memory_limit, settings.build_path, read_only=True)
    try:
        return con.execute(ORDERS_SQL, [snapshot]).df()
    finally:
        con.close()


def predict_snapshot(settings: Settings, snapshot: date) -> dict:
    """Fit both models on the orders up to ``snapshot``, write the snapshot's predictions and
    parameters (replacing an earlier run of the date) and return a summary: ``customers``
    (with a revenue order), ``fitted`` (customers the purchase model was fitted on),
    ``repeat_customers``, ``seconds``, ``converged``, ``skipped`` (why nothing was fitted, or "")."""
    started = time.monotonic()
    horizon = int(settings.dbt_var("clv_horizon_months"))
    rate = float(settings.dbt_var("clv_monthly_discount_rate"))
    max_customers = int(settings.dbt_var("clv_fit_max_customers"))
    min_repeat = int(settings.dbt_var("clv_min_repeat_customers"))

    summary = clv.rfm_summary(read_orders(settings, snapshot), snapshot)
    sample = clv.fit_sample(summary, max_customers)
    repeat = int((sample["frequency"] > 0).sum())
    result = {
        "snapshot_date": snapshot.isoformat(),
        "customers": len(summary),
        "fitted": 0,
        "repeat_customers": repeat,
        "converged": False,
        "skipped": "",
    }
    if repeat < min_repeat:
        result["skipped"] = (
            f"{repeat} customer(s) with a repeat purchase up to {snapshot} "
            f"(at least {min_repeat}, var clv_min_repeat_customers): no model fitted, "
            f"no predictions written"
        )
        tables = {name: schema.empty_table() for name, schema in store.SCHEMAS.items()}
    else:
        fitted = clv.fit_models(sample)
        result["fitted"] = len(sample)
        result["converged"] = fitted.purchases.is_converged and fitted.spend.is_converged
        parameters = clv.parameter_rows(fitted, snapshot)
        if result["converged"]:
            predictions = clv.predict(
                fitted, summary, snapshot, horizon, rate, set(sample["customer_id"])
            )
        else:
            result["skipped"] = (
                "the optimiser did not converge (see clv_model_parameters.is_converged): "
                "no predictions written"
            )
            predictions = clv.PREDICTION_SCHEMA.empty_table()
        tables = {"customer_predictions": predictions, "clv_model_parameters": parameters}
    result["files"] = store.write_snapshot(settings, snapshot, tables)
    result["seconds"] = round(time.monotonic() - started, 2)
    if result["skipped"]:
        log.warning("predictions of %s: %s", snapshot, result["skipped"])
    return result
