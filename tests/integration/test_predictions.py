"""The predictions on the shared demo build (``dbt_built``: the dbt stages with the predict stage
between the marts and the segments): the marts equal the stage's Parquet files, the churn-risk
band follows the vars, dim_customer_segments carries the snapshot's predictions, and the GX
suite's dataset (gates.yml) holds on them."""

from __future__ import annotations

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from marketing_warehouse.predict import clv

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def built(dbt_built):
    con = duckdb.connect(str(dbt_built.build_path), read_only=True)
    ds = con.execute("select max(snapshot_date) from marts.dim_customer_segments").fetchone()[0]
    yield dbt_built, con, ds
    con.close()


def test_customer_predictions_are_the_stage_files_with_the_churn_band(built):
    settings, con, ds = built
    table = settings.layout.prediction_table("customer_predictions")
    written = pq.read_table(table.part_file(ds)).to_pandas()
    mart = con.execute(
        "select * from marts.customer_predictions where snapshot_date = ? order by customer_id",
        [ds],
    ).df()
    buyers = con.execute(
        "select count(distinct customer_id) from marts.fct_orders "
        "where is_revenue_order and customer_id is not null and order_date <= ?",
        [ds],
    ).fetchone()[0]
    assert buyers > 0 and len(mart) == len(written) == buyers  # the demo shop is fitted
    written = written.sort_values("customer_id").reset_index(drop=True)
    for column in clv.PREDICTION_SCHEMA.names:
        ours, theirs = mart[column], written[column]
        if column.endswith("_date"):  # DuckDB gives timestamps, Arrow dates
            ours, theirs = pd.to_datetime(ours), pd.to_datetime(theirs)
        pd.testing.assert_series_equal(ours, theirs, check_names=False, check_dtype=False)
    high = settings.dbt_var("churn_risk_high_below")
    medium = settings.dbt_var("churn_risk_medium_below")
    expected = [
        "high" if p < high else "medium" if p < medium else "low" for p in mart["probability_alive"]
    ]
    assert list(mart["churn_risk"]) == expected
    parameters = con.execute(
        "select model, parameter, is_converged from marts.clv_model_parameters "
        "where snapshot_date = ?",
        [ds],
    ).fetchall()
    assert len(parameters) == 7 and all(row[2] for row in parameters)


def test_segments_join_the_snapshots_predictions(built):
    _, con, ds = built
    mismatched = con.execute(
        """
        select count(*) from marts.dim_customer_segments as segments
        left join marts.customer_predictions as predictions
            on predictions.customer_id = segments.customer_id
            and predictions.snapshot_date = segments.snapshot_date
        where segments.snapshot_date = ?
            and (segments.probability_alive is distinct from predictions.probability_alive
                 or segments.predicted_clv is distinct from predictions.predicted_clv
                 or segments.churn_risk is distinct from predictions.churn_risk)
        """,
        [ds],
    ).fetchone()[0]
    assert mismatched == 0
    leads = con.execute(
        "select count(*), count(churn_risk) from marts.dim_customer_segments "
        "where snapshot_date = ? and frequency = 0",
        [ds],
    ).fetchone()
    assert leads[1] == 0  # no revenue order: no prediction


def test_the_gate_dataset_of_the_predictions_holds(built):
    settings, con, ds = built
    gates = yaml.safe_load((settings.expectations_dir / "gates.yml").read_text("utf-8"))
    [entry] = [e for e in gates["marts"] if e["suite"] == "marts/customer_predictions"]
    rows = con.execute(entry["sql"].replace("{ds}", str(ds))).df()
    assert len(rows) > 0
    assert rows["has_revenue_order"].all() and rows["is_fitted"].all()
    assert rows["is_in_dim_customers"].all()
    assert (rows["has_prediction"] == rows["is_fitted"]).all()
    assert (rows["expected_purchases_365d"] >= rows["expected_purchases_90d"]).all()
    assert rows["probability_alive"].between(0, 1).all()


def test_the_marts_gate_passes_the_predictions_suite(built, tmp_path):
    """The marts gate on a copy of the demo build: every check of marts/customer_predictions
    passes (the gate writes its results into the copy, not into the shared build)."""
    import shutil

    from marketing_warehouse.config import load_settings
    from marketing_warehouse.quality.gates import run_gate

    shared, _, ds = built
    settings = load_settings({"MWH_DATA_DIR": str(tmp_path / "data")})
    settings.build_path.parent.mkdir(parents=True)
    shutil.copy2(shared.build_path, settings.build_path)
    outcome = run_gate(settings, "marts", ds, "manual__predictions")
    checks = [c for c in outcome.checks if c.suite == "marts/customer_predictions"]
    assert len(checks) == 10
    assert [c.describe() for c in checks if not c.success] == []
    counted = [c for c in checks if c.column == "has_revenue_order"]
    assert counted and counted[0].element_count > 0
