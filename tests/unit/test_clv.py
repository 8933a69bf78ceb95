"""Customer lifetime value: real fits (PyMC-Marketing, maximum a posteriori) on published data.

The reference values are those of the papers, on the CDNOW data set as the ``lifetimes`` package
ships it (2,357 customers of the 1/10th sample, weeks): Fader, Hardie and Lee (2005), "Counting
your customers the easy way" (BG/NBD) and Fader and Hardie (2013), "The Gamma-Gamma model of
monetary value". The mart's formulas are checked against ``lifetimes``' own implementation of
the modified BG/NBD, given the same parameters, and the RFM summary against its
``summary_data_from_transaction_data``. The first fit of a session compiles PyTensor's C code
(cached in ``~/.pytensor``), later fits take a second or two.
"""

from __future__ import annotations

import importlib.resources
import math
from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from marketing_warehouse import pipeline
from marketing_warehouse.predict import clv

DATASETS = importlib.resources.files("lifetimes") / "datasets"
CDNOW_SNAPSHOT = date(1997, 9, 30)  # the end of the 39-week calibration period (from 1997-01-01)


def same_to_significant_figures(value: float, reference: float, figures: int = 3) -> bool:
    """``value`` rounds to ``reference`` at ``figures`` significant figures (half a unit)."""
    unit = 10 ** (math.floor(math.log10(abs(reference))) - figures + 1)
    return abs(value - reference) <= unit / 2


@pytest.fixture(scope="module")
def cdnow_summary() -> pd.DataFrame:
    """The papers' data: x, t_x and T in weeks, zbar the mean repeat transaction value."""
    frame = pd.read_csv(DATASETS / "cdnow_customers_summary_with_transactions.csv")
    return frame.rename(
        columns={"ID": "customer_id", "x": "frequency", "t_x": "recency", "zbar": "monetary_value"}
    )


@pytest.fixture(scope="module")
def cdnow_orders() -> pd.DataFrame:
    """The CDNOW sample's transactions (customer, date, amount), 1997-01-01 to 1998-06-30."""
    frame = pd.read_csv(
        DATASETS / "CDNOW_sample.txt",
        sep=r"\s+",
        header=None,
        names=["customer_id", "sample_id", "order_date", "quantity", "amount"],
        dtype={"customer_id": str, "order_date": str},
    )
    frame["order_date"] = pd.to_datetime(frame["order_date"], format="%Y%m%d")
    return frame[["customer_id", "order_date", "amount"]]


@pytest.fixture(scope="module")
def cdnow_fit(cdnow_orders):
    summary = clv.rfm_summary(cdnow_orders, CDNOW_SNAPSHOT)
    fitted = clv.fit_models(summary)
    predictions = clv.predict(fitted, summary, CDNOW_SNAPSHOT, 12, 0.01, set(summary.customer_id))
    return summary, fitted, predictions.to_pandas()


def test_bg_nbd_map_fit_reproduces_fader_hardie_lee_2005(cdnow_summary):
    from pymc_marketing.clv import BetaGeoModel

    data = cdnow_summary[["customer_id", "frequency", "recency", "T"]]
    fit = clv.fit_map(BetaGeoModel(data, model_config=clv.flat_priors("r", "alpha", "a", "b")))
    params = fit.parameters()
    published = {"r": 0.2426, "alpha": 4.414, "a": 0.7930, "b": 2.426}
    for name, value in published.items():
        assert same_to_significant_figures(params[name], value), (name, params[name], value)
    assert same_to_significant_figures(fit.log_likelihood, -9582.4), fit.log_likelihood
    assert fit.is_converged and fit.customers_fitted == 2357


def test_gamma_gamma_map_fit_reproduces_fader_hardie(cdnow_summary):
    from pymc_marketing.clv import GammaGammaModel

    repeat = cdnow_summary[cdnow_summary["frequency"] > 0]
    fit = clv.fit_map(
        GammaGammaModel(
            repeat[["customer_id", "frequency", "monetary_value"]],
            model_config=clv.flat_priors("p", "q", "v"),
        )
    )
    params = fit.parameters()
    for name, value in {"p": 6.25, "q": 3.74, "v": 15.44}.items():
        assert same_to_significant_figures(params[name], value), (name, params[name], value)
    assert fit.is_converged and fit.customers_fitted == 946
    # the published model's log-likelihood, computed here from its formula (Fader-Hardie eq. 1a)
    p, q, v = params["p"], params["q"], params["v"]
    x, z = repeat["frequency"].to_numpy(float), repeat["monetary_value"].to_numpy(float)
    from scipy.special import gammaln

    by_hand = np.sum(
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * np.log(v)
        + (p * x - 1) * np.log(z)
        + p * x * np.log(x)
        - (p * x + q) * np.log(x * z + v)
    )
    assert fit.log_likelihood == pytest.approx(by_hand, rel=1e-9)


def test_rfm_summary_by_hand():
    snapshot = date(2026, 3, 31)
    orders = pd.DataFrame(
        [
            ("a", "2026-03-01", 10.0),
            ("a", "2026-03-01", 5.0),  # same day: one purchase of 15
            ("a", "2026-03-05", 20.0),
            ("a", "2026-03-09", 12.0),
            ("a", "2026-03-09", 18.0),  # the third purchase day: 30
            ("a", "2026-04-02", 99.0),  # after the snapshot: not counted
            ("b", "2026-01-15", 40.0),
            ("c", "2026-04-01", 7.0),  # first order after the snapshot: no row
        ],
        columns=["customer_id", "order_date", "amount"],
    )
    summary = clv.rfm_summary(orders, snapshot).set_index("customer_id")
    assert list(summary.index) == ["a", "b"]
    assert summary.loc["a"].to_dict() == {
        "frequency": 2,
        "recency": 8,
        "T": 30,
        "monetary_value": (20.0 + 30.0) / 2,
    }
    assert summary.loc["b"].to_dict() == {
        "frequency": 0,
        "recency": 0,
        "T": (snapshot - date(2026, 1, 15)).days,
        "monetary_value": 0.0,
    }


def test_rfm_summary_equals_lifetimes_on_cdnow(cdnow_orders):
    from lifetimes.utils import summary_data_from_transaction_data

    ours = clv.rfm_summary(cdnow_orders, CDNOW_SNAPSHOT).set_index("customer_id")
    theirs = summary_data_from_transaction_data(
        cdnow_orders,
        "customer_id",
        "order_date",
        monetary_value_col="amount",
        observation_period_end=pd.Timestamp(CDNOW_SNAPSHOT),
        freq="D",
    )
    assert len(ours) == len(theirs) == 2357
    theirs = theirs.loc[ours.index]
    for column in ("frequency", "recency", "T", "monetary_value"):
        np.testing.assert_allclose(ours[column], theirs[column], rtol=1e-12, err_msg=column)


def test_predictions_equal_the_library_and_lifetimes_formulas(cdnow_fit):
    from lifetimes import ModifiedBetaGeoFitter
    from pymc_marketing.clv.utils import customer_lifetime_value

    summary, fitted, predictions = cdnow_fit
    purchases, spend = fitted.purchases.model, fitted.spend.model
    assert fitted.purchases.is_converged and fitted.spend.is_converged
    assert list(predictions["customer_id"]) == list(summary["customer_id"])
    n = len(summary)

    # the library's own methods on the fitted model
    np.testing.assert_allclose(
        predictions["probability_alive"],
        clv.per_customer(purchases.expected_probability_alive(), n),
    )
    for days in clv.PURCHASE_HORIZONS_DAYS:
        np.testing.assert_allclose(
            predictions[f"expected_purchases_{days}d"],
            clv.per_customer(purchases.expected_purchases(future_t=days), n),
        )
    aov = clv.per_customer(spend.expected_customer_spend(summary), n)
    np.testing.assert_allclose(predictions["expected_average_order_value"], aov)
    library_clv = customer_lifetime_value(
        purchases,
        summary.assign(future_spend=aov),
        future_t=12,
        discount_rate=0.01,
        time_unit="D",
    )
    np.testing.assert_allclose(predictions["predicted_clv"], clv.per_customer(library_clv, n))

    # the same formulas as lifetimes implements them, given the fitted parameters
    independent = ModifiedBetaGeoFitter()
    independent.params_ = pd.Series(fitted.purchases.parameters())
    f, r, t = summary["frequency"], summary["recency"], summary["T"]
    np.testing.assert_allclose(
        predictions["probability_alive"],
        independent.conditional_probability_alive(f, r, t),
        rtol=1e-9,
    )

    def expected(days: float) -> np.ndarray:
        return np.asarray(
            independent.conditional_expected_number_of_purchases_up_to_time(days, f, r, t)
        )

    np.testing.assert_allclose(predictions["expected_purchases_90d"], expected(90), rtol=1e-9)
    params = fitted.spend.parameters()
    weight = params["p"] * f / (params["p"] * f + params["q"] - 1)
    population = params["p"] * params["v"] / (params["q"] - 1)
    by_hand_aov = (1 - weight) * population + weight * summary["monetary_value"]
    np.testing.assert_allclose(predictions["expected_average_order_value"], by_hand_aov)
    assert np.allclose(aov[f == 0], population)
    by_hand_clv = sum(
        (expected(30 * m) - expected(30 * (m - 1))) * by_hand_aov / 1.01**m for m in range(1, 13)
    )
    np.testing.assert_allclose(predictions["predicted_clv"], by_hand_clv, rtol=1e-9)

    # next order date: the first whole day on which one purchase is expected, within 360 days
    days_ahead = [
        None if pd.isna(d) else (d - CDNOW_SNAPSHOT).days
        for d in predictions["expected_next_order_date"]
    ]
    reaches = expected(360) >= 1
    assert reaches.any() and not reaches.all()
    for i, days in enumerate(days_ahead):
        if not reaches[i]:
            assert days is None, (i, summary.iloc[i].to_dict())
            continue
        one = independent.conditional_expected_number_of_purchases_up_to_time
        assert one(days, f.iloc[i], r.iloc[i], t.iloc[i]) >= 1 - 1e-12, i
        if days > 1:
            assert one(days - 1, f.iloc[i], r.iloc[i], t.iloc[i]) < 1, i

    monotone = predictions[
        ["expected_purchases_30d", "expected_purchases_90d", "expected_purchases_365d"]
    ].to_numpy()
    assert (np.diff(monotone, axis=1) >= 0).all()
    assert predictions["probability_alive"].between(0, 1).all()


def test_chunked_predictions_equal_one_batch(cdnow_fit):
    summary, fitted, predictions = cdnow_fit
    chunked = clv.predict(fitted, summary, CDNOW_SNAPSHOT, 12, 0.01, chunk=700).to_pandas()
    for column in ("probability_alive", "predicted_clv", "expected_next_order_date"):
        pd.testing.assert_series_equal(chunked[column], predictions[column])


def hand_built_orders(snapshot: date) -> tuple[pd.DataFrame, str, str]:
    """A shop of 120 customers buying at their own pace (seeded), plus two told apart by hand:
    one who bought once, 300 days before the snapshot, and one who bought every 10 days for a
    year, the last time two days before it."""
    rng = np.random.default_rng(7)
    rows = []
    for i in range(120):
        first = snapshot - timedelta(days=int(rng.integers(60, 400)))
        gap = rng.uniform(15, 90)
        lifetime = rng.exponential(200)
        day = 0.0
        while day <= min(lifetime, (snapshot - first).days):
            rows.append((f"c{i:03d}", first + timedelta(days=int(day)), rng.uniform(20, 80)))
            day += rng.exponential(gap)
    gone, loyal = "one_time_long_ago", "frequent_recent"
    rows.append((gone, snapshot - timedelta(days=300), 50.0))
    rows += [(loyal, snapshot - timedelta(days=2 + 10 * k), 60.0) for k in range(37)]
    return pd.DataFrame(rows, columns=["customer_id", "order_date", "amount"]), gone, loyal


def test_one_time_buyer_long_ago_is_probably_gone_and_a_frequent_recent_buyer_is_not():
    from pymc_marketing.clv import BetaGeoModel

    snapshot = date(2026, 11, 30)
    orders, gone, loyal = hand_built_orders(snapshot)
    summary = clv.rfm_summary(orders, snapshot)
    fitted = clv.fit_models(summary)
    predictions = clv.predict(fitted, summary, snapshot, 12, 0.01).to_pandas()
    by_id = predictions.set_index("customer_id")
    assert by_id.loc[gone, "probability_alive"] < 0.3, by_id.loc[gone].to_dict()
    assert by_id.loc[loyal, "probability_alive"] > 0.9, by_id.loc[loyal].to_dict()
    assert by_id.loc[loyal, "expected_purchases_30d"] > 2  # one purchase every 10 days
    assert pd.isna(by_id.loc[gone, "expected_next_order_date"])
    assert by_id.loc[loyal, "expected_next_order_date"] <= snapshot + timedelta(days=15)
    assert by_id.loc[loyal, "predicted_clv"] > 10 * by_id.loc[gone, "predicted_clv"]

    # why the mart uses the modified model: the plain BG/NBD keeps every one-time buyer alive
    plain = clv.fit_map(
        BetaGeoModel(
            summary[["customer_id", "frequency", "recency", "T"]],
            model_config=clv.flat_priors("r", "alpha", "a", "b"),
        )
    )
    alive = clv.per_customer(plain.model.expected_probability_alive(), len(summary))
    assert alive[list(summary["customer_id"]).index(gone)] == 1.0


def test_fit_sample_is_seeded_and_bounded(cdnow_orders):
    summary = clv.rfm_summary(cdnow_orders, CDNOW_SNAPSHOT)
    first, again = clv.fit_sample(summary, 500), clv.fit_sample(summary, 500)
    assert len(first) == 500 and list(first["customer_id"]) == list(again["customer_id"])
    assert clv.fit_sample(summary, 5000) is summary


def build_with_orders(settings, orders: pd.DataFrame) -> None:
    """A build database whose ``marts.fct_orders`` holds ``orders`` as revenue orders, plus a
    refund and an anonymous order the stage must leave out."""
    settings.build_path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.build_path))
    try:
        con.execute("create schema marts")
        con.register("orders", orders)
        con.execute(
            """
            create table marts.fct_orders as
            select customer_id, cast(order_date as date) as order_date,
                cast(amount as decimal(18, 2)) as total_amount_reporting, true as is_revenue_order
            from orders
            union all select 'c000', date '2026-11-01', 500, false
            union all select null, date '2026-11-01', 500, true
            """
        )
    finally:
        con.close()


def test_predict_stage_writes_one_partition_per_snapshot(settings):
    snapshot = date(2026, 11, 30)
    orders, _, _ = hand_built_orders(snapshot)
    build_with_orders(settings, orders)
    customers = orders["customer_id"].nunique()

    summary = pipeline.predict(snapshot.isoformat(), settings)
    assert summary["customers"] == customers and summary["fitted"] == customers
    assert summary["converged"] and summary["skipped"] == ""
    table = settings.layout.prediction_table("customer_predictions")
    written = pq.read_table(table.part_file(snapshot)).to_pandas()
    assert len(written) == customers and written["customer_id"].is_unique
    assert (written["snapshot_date"] == snapshot).all()
    # the refund and the anonymous order are not read: c000's history is its own orders only
    expected = clv.rfm_summary(orders, snapshot).set_index("customer_id")
    assert (
        written.set_index("customer_id").loc["c000", "frequency"]
        == (expected.loc["c000", "frequency"])
    )
    parameters = pq.read_table(
        settings.layout.prediction_table("clv_model_parameters").part_file(snapshot)
    ).to_pandas()
    assert set(zip(parameters["model"], parameters["parameter"], strict=True)) == {
        (clv.PURCHASE_MODEL, name) for name in ("a", "alpha", "b", "r")
    } | {(clv.SPEND_MODEL, name) for name in ("p", "q", "v")}

    # an earlier snapshot is kept; re-running a date replaces only that date
    earlier = snapshot - timedelta(days=30)
    pipeline.predict(earlier.isoformat(), settings)
    pipeline.predict(snapshot.isoformat(), settings)
    assert [p.parent.name for p in table.snapshot_files()] == [
        f"snapshot_date={earlier}",
        f"snapshot_date={snapshot}",
    ]
    again = pq.read_table(table.part_file(snapshot)).to_pandas()
    pd.testing.assert_frame_equal(again, written)
    assert settings.layout.run(snapshot.isoformat()).predict_summary.exists()


def test_a_shop_too_small_to_fit_gets_empty_typed_files(settings):
    snapshot = date(2026, 11, 30)
    orders = pd.DataFrame(
        [(f"c{i}", date(2026, 11, 1) + timedelta(days=i % 20), 30.0) for i in range(40)]
        + [("c1", date(2026, 11, 25), 30.0)],
        columns=["customer_id", "order_date", "amount"],
    )
    build_with_orders(settings, orders)
    summary = pipeline.predict(snapshot.isoformat(), settings)
    assert summary["customers"] == 40 and summary["repeat_customers"] == 1
    assert summary["fitted"] == 0 and not summary["converged"]
    assert "clv_min_repeat_customers" in summary["skipped"]
    for name, schema in (
        ("customer_predictions", clv.PREDICTION_SCHEMA),
        ("clv_model_parameters", clv.PARAMETER_SCHEMA),
    ):
        table = settings.layout.prediction_table(name)
        for path in (table.part_file(snapshot), table.schema_file):
            written = pq.read_table(path)
            assert written.num_rows == 0 and written.schema.equals(schema), path

    # no order at all up to the snapshot: the same, with zero customers
    summary = pipeline.predict("2026-10-01", settings)
    assert summary["customers"] == 0 and summary["skipped"]


def test_the_run_summary_says_what_the_predict_stage_did(settings):
    from marketing_warehouse.ops import summary

    snapshot = date(2026, 11, 30)
    build_with_orders(settings, pd.DataFrame(
        [("c1", date(2026, 11, 1), 30.0)], columns=["customer_id", "order_date", "amount"]
    ))  # fmt: skip
    pipeline.predict(snapshot.isoformat(), settings)
    text = summary.build(settings, snapshot.isoformat(), succeeded=False)
    assert "Predictions: none for 2026-11-30: 0 customer(s) with a repeat purchase" in text
