"""Customer lifetime value as pure functions: RFM summary, model fits, predictions, parameters.

Time is in days throughout. The purchase model is PyMC-Marketing's modified BG/NBD
(``ModifiedBetaGeoModel``): unlike the plain BG/NBD, a customer who bought once long ago is
probably gone. The spend model is the Gamma-Gamma (``GammaGammaModel``), fitted on customers with
at least one repeat purchase. Both are fitted by maximum a posteriori with flat priors, which is
the maximum-likelihood fit of the papers (and of the ``lifetimes`` package).

PyMC is imported inside the functions: importing it takes seconds, and the DAG file and the CLI
import this package's callers at every start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa

#: Days in a month of the CLV horizon (PyMC-Marketing's ``customer_lifetime_value`` with
#: ``time_unit="D"`` uses the same 30).
DAYS_PER_MONTH = 30
#: Horizons of ``expected_purchases_<n>d``.
PURCHASE_HORIZONS_DAYS = (30, 90, 365)
#: Customers predicted per batch: bounds the memory of the prediction arrays.
PREDICTION_CHUNK = 50_000
FIT_SEED = 20261201

PREDICTION_SCHEMA = pa.schema(
    [
        ("snapshot_date", pa.date32()),
        ("customer_id", pa.string()),
        ("frequency", pa.int64()),
        ("recency_days", pa.int64()),
        ("customer_age_days", pa.int64()),
        ("repeat_order_value", pa.float64()),
        ("probability_alive", pa.float64()),
        ("expected_purchases_30d", pa.float64()),
        ("expected_purchases_90d", pa.float64()),
        ("expected_purchases_365d", pa.float64()),
        ("expected_average_order_value", pa.float64()),
        ("predicted_clv", pa.float64()),
        ("expected_next_order_date", pa.date32()),
        ("is_in_fit_sample", pa.bool_()),
    ]
)
PARAMETER_SCHEMA = pa.schema(
    [
        ("snapshot_date", pa.date32()),
        ("model", pa.string()),
        ("parameter", pa.string()),
        ("value", pa.float64()),
        ("customers_fitted", pa.int64()),
        ("log_likelihood", pa.float64()),
        ("is_converged", pa.bool_()),
    ]
)
#: The ``model`` values of the parameters table.
PURCHASE_MODEL = "modified_bg_nbd"
SPEND_MODEL = "gamma_gamma"


def rfm_summary(orders: pd.DataFrame, snapshot: date) -> pd.DataFrame:
    """One row per customer with an order on or before ``snapshot`` (columns ``customer_id``,
    ``order_date``, ``amount``), as lifetimes' ``summary_data_from_transaction_data`` (daily):

    - the orders of one day are one purchase whose amount is their sum;
    - ``frequency``: repeat purchase days (distinct order days - 1);
    - ``recency``: days from the first to the last purchase day;
    - ``T``: days from the first purchase day to ``snapshot``;
    - ``monetary_value``: mean amount of the repeat purchase days (0 without one).
    """
    columns = ["customer_id", "frequency", "recency", "T", "monetary_value"]
    day = pd.to_datetime(orders["order_date"]).dt.normalize()
    kept = orders.assign(order_day=day)[day <= pd.Timestamp(snapshot)]
    if kept.empty:
        return pd.DataFrame(
            {
                "customer_id": pd.Series(dtype=str),
                "frequency": pd.Series(dtype="int64"),
                "recency": pd.Series(dtype="int64"),
                "T": pd.Series(dtype="int64"),
                "monetary_value": pd.Series(dtype="float64"),
            }
        )
    days = (
        kept.groupby(["customer_id", "order_day"], sort=True)["amount"]
        .sum()
        .astype("float64")
        .reset_index()
    )
    days["is_first"] = ~days.duplicated("customer_id")
    per = days.groupby("customer_id", sort=True).agg(
        first_day=("order_day", "min"), last_day=("order_day", "max"), days=("order_day", "size")
    )
    repeat = days[~days["is_first"]].groupby("customer_id")["amount"].mean()
    summary = pd.DataFrame(
        {
            "customer_id": per.index.astype(str),
            "frequency": (per["days"] - 1).astype("int64").to_numpy(),
            "recency": (per["last_day"] - per["first_day"]).dt.days.astype("int64").to_numpy(),
            "T": (pd.Timestamp(snapshot) - per["first_day"]).dt.days.astype("int64").to_numpy(),
            "monetary_value": repeat.reindex(per.index).fillna(0.0).to_numpy(),
        }
    )
    return summary[columns].reset_index(drop=True)


@dataclass
class Fit:
    """One fitted model: the PyMC-Marketing object, and what the optimiser said."""

    model: object
    log_likelihood: float
    is_converged: bool
    customers_fitted: int

    def parameters(self) -> dict[str, float]:
        posterior = self.model.fit_result
        return {
            name: float(np.asarray(posterior[name]).reshape(-1)[0])
            for name in sorted(posterior.data_vars)
        }


@dataclass
class FittedModels:
    purchases: Fit
    spend: Fit


def fit_map(clv_model, seed: int = FIT_SEED) -> Fit:
    """Fit a PyMC-Marketing CLV model by maximum a posteriori, keeping the optimiser's result.

    The same steps as ``CLVModel.fit(method="map")`` (``pymc.find_MAP``, the point stored as a
    one-draw posterior), except that the optimiser's own result is kept: ``is_converged`` is
    scipy's success flag, and ``log_likelihood`` the data's log-likelihood at the point (the
    observed variables and likelihood potentials -- the Gamma-Gamma model's likelihood is a
    ``pm.Potential`` -- without prior or Jacobian).
    """
    import pymc as pm
    from pymc.backends.base import MultiTrace
    from pymc.backends.ndarray import NDArray

    clv_model.build_model()
    model = clv_model.model
    point, result = pm.find_MAP(model=model, return_raw=True, progressbar=False, seed=seed)
    values = {v.name: point[v.name] for v in model.value_vars}
    trace = NDArray(model=model)
    trace.setup(draws=1, chain=0)
    trace.record(values)
    trace.close()
    idata = pm.to_inference_data(MultiTrace([trace]), model=model)
    clv_model.idata = idata
    clv_model.set_idata_attrs(idata)
    terms = [*model.observed_RVs, *model.potentials]
    log_likelihood = float(model.compile_logp(vars=terms, jacobian=False)(values))
    converged = bool(result is not None and result.success and math.isfinite(log_likelihood))
    return Fit(clv_model, log_likelihood, converged, len(clv_model.data))


def flat_priors(*names: str) -> dict:
    """Flat priors on ``names``: the maximum a posteriori point is the maximum-likelihood fit."""
    from pymc_extras.prior import Prior

    return {name: Prior("HalfFlat") for name in names}


def fit_sample(summary: pd.DataFrame, max_customers: int, seed: int = FIT_SEED) -> pd.DataFrame:
    """The customers the models are fitted on: all of them, or a seeded random sample of
    ``max_customers`` when there are more (predictions still cover every customer)."""
    if len(summary) <= max_customers:
        return summary
    return summary.sample(n=max_customers, random_state=seed).sort_values("customer_id")


def fit_models(sample: pd.DataFrame, seed: int = FIT_SEED) -> FittedModels:
    """Fit the modified BG/NBD on ``sample`` (an ``rfm_summary``) and the Gamma-Gamma on its
    customers with at least one repeat purchase."""
    from pymc_marketing.clv import GammaGammaModel, ModifiedBetaGeoModel

    purchases = ModifiedBetaGeoModel(
        sample[["customer_id", "frequency", "recency", "T"]],
        model_config=flat_priors("r", "alpha", "a", "b"),
    )
    repeat = sample[sample["frequency"] > 0]
    spend = GammaGammaModel(
        repeat[["customer_id", "frequency", "monetary_value"]],
        model_config=flat_priors("p", "q", "v"),
    )
    return FittedModels(fit_map(purchases, seed), fit_map(spend, seed))


def per_customer(values, customers: int) -> np.ndarray:
    """A prediction of a one-point (MAP) posterior as one float per customer."""
    array = np.asarray(values.transpose(..., "customer_id"), dtype="float64").reshape(-1)
    if array.size != customers:
        raise ValueError(f"expected {customers} values (one per customer), got {array.size}")
    return array


def spend_population_mean(spend: Fit) -> float:
    """The Gamma-Gamma mean order value of a customer with no repeat purchase: p v / (q - 1)
    (infinite, so NaN, when q <= 1)."""
    params = spend.parameters()
    return params["p"] * params["v"] / (params["q"] - 1) if params["q"] > 1 else float("nan")


def days_to_one_purchase(purchases_model, data: pd.DataFrame, horizon_days: int) -> np.ndarray:
    """Per customer, the smallest whole number of days d in 1..``horizon_days`` with at least one
    expected purchase in the next d days (``expected_purchases(d) >= 1``), NaN when even
    ``horizon_days`` falls short. Expected purchases grow with d: bisection, ~log2(horizon) calls."""
    n = len(data)

    def expected(days: np.ndarray) -> np.ndarray:
        return per_customer(purchases_model.expected_purchases(data, future_t=days), n)

    reaches = expected(np.full(n, float(horizon_days))) >= 1
    low = np.zeros(n)  # expected(low) < 1 (0 days: none)
    high = np.full(n, float(horizon_days))  # expected(high) >= 1 where reaches
    while np.any(reaches & (high - low > 1)):
        middle = np.floor((low + high) / 2)
        hit = expected(np.maximum(middle, 1)) >= 1
        high = np.where(reaches & hit, middle, high)
        low = np.where(reaches & ~hit, middle, low)
    return np.where(reaches, high, np.nan)


def predict(
    fitted: FittedModels,
    summary: pd.DataFrame,
    snapshot: date,
    horizon_months: int,
    monthly_discount_rate: float,
    fitted_ids: set[str] | None = None,
    chunk: int = PREDICTION_CHUNK,
) -> pa.Table:
    """Predictions for every customer of ``summary``, ``chunk`` customers at a time:

    - ``probability_alive``: the modified BG/NBD probability that the customer has not dropped out;
    - ``expected_purchases_<n>d``: expected purchases (purchase days) in the next n days;
    - ``expected_average_order_value``: the Gamma-Gamma conditional expectation of the
      customer's mean order value (the population mean p v / (q - 1) without a repeat purchase);
    - ``predicted_clv``: PyMC-Marketing's ``customer_lifetime_value``: over each month m of the
      horizon, expected purchases in month m x expected order value / (1 + monthly rate)^m;
    - ``expected_next_order_date``: snapshot + the smallest number of days within the horizon in
      which at least one purchase is expected (``days_to_one_purchase``), else null.
    """
    from pymc_marketing.clv.utils import customer_lifetime_value

    purchases_model = fitted.purchases.model
    spend_model = fitted.spend.model
    horizon_days = horizon_months * DAYS_PER_MONTH
    fitted_ids = fitted_ids or set()
    batches = []
    for start in range(0, len(summary), chunk):
        part = summary.iloc[start : start + chunk].reset_index(drop=True)
        n = len(part)
        data = part[["customer_id", "frequency", "recency", "T"]]
        columns = {
            "probability_alive": per_customer(purchases_model.expected_probability_alive(data), n),
        }
        for days in PURCHASE_HORIZONS_DAYS:
            columns[f"expected_purchases_{days}d"] = per_customer(
                purchases_model.expected_purchases(data, future_t=days), n
            )
        spend = per_customer(
            spend_model.expected_customer_spend(
                part[["customer_id", "frequency", "monetary_value"]]
            ),
            n,
        )
        columns["expected_average_order_value"] = spend
        clv = customer_lifetime_value(
            purchases_model,
            data.assign(future_spend=spend),
            future_t=horizon_months,
            discount_rate=monthly_discount_rate,
            time_unit="D",
        )
        columns["predicted_clv"] = per_customer(clv, n)
        next_days = days_to_one_purchase(purchases_model, data, horizon_days)
        next_dates = [
            None if math.isnan(d) else snapshot + timedelta(days=int(d)) for d in next_days
        ]
        batches.append(
            pa.table(
                {
                    "snapshot_date": pa.array([snapshot] * n, pa.date32()),
                    "customer_id": pa.array(part["customer_id"].astype(str), pa.string()),
                    "frequency": pa.array(part["frequency"], pa.int64()),
                    "recency_days": pa.array(part["recency"], pa.int64()),
                    "customer_age_days": pa.array(part["T"], pa.int64()),
                    "repeat_order_value": pa.array(part["monetary_value"], pa.float64()),
                    **{
                        name: pa.array(_finite_or_null(values), pa.float64())
                        for name, values in columns.items()
                    },
                    "expected_next_order_date": pa.array(next_dates, pa.date32()),
                    "is_in_fit_sample": pa.array(
                        part["customer_id"].astype(str).isin(fitted_ids), pa.bool_()
                    ),
                },
                schema=PREDICTION_SCHEMA,
            )
        )
    if not batches:
        return PREDICTION_SCHEMA.empty_table()
    return pa.concat_tables(batches)


def _finite_or_null(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values]


def parameter_rows(fitted: FittedModels, snapshot: date) -> pa.Table:
    """One row per model and parameter: its value, the customers it was fitted on, the data's
    log-likelihood at the fit and whether the optimiser converged."""
    rows = []
    for model, fit in ((PURCHASE_MODEL, fitted.purchases), (SPEND_MODEL, fitted.spend)):
        for parameter, value in fit.parameters().items():
            rows.append(
                {
                    "snapshot_date": snapshot,
                    "model": model,
                    "parameter": parameter,
                    "value": value,
                    "customers_fitted": fit.customers_fitted,
                    "log_likelihood": fit.log_likelihood,
                    "is_converged": fit.is_converged,
                }
            )
    return pa.Table.from_pylist(rows, schema=PARAMETER_SCHEMA)
