"""The six Superset dashboards as code: one spec here, rendered to the committed bundle.

``bi/superset-assets/`` (metadata.yaml, databases/, datasets/, charts/, dashboards/) is Superset's own
export format, written from ``DASHBOARDS`` by ``mwh bi bundle``; a unit test fails when the committed
files differ from what the spec renders, so the spec is the one place to change a chart. Every
object has a fixed uuid (derived from its key), and ``POST /api/v1/assets/import/`` overwrites by
uuid, so an edited chart replaces the old one on the next start.

Datasets are the serving file's tables (``marts.*``, ``audit.*``) or, where the BI query pack
(``bi_queries/*.sql``) already has the query, a virtual dataset whose SQL is that file's: the SQL
lives once. Metrics are SQL aggregates written on the chart; ``chart_data_request`` turns a chart
into the query Superset's chart-data API runs, which the tests send for every chart.
"""

from __future__ import annotations

import io
import json
import re
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from marketing_warehouse.serve.query_pack import load_queries

#: Namespace of the bundle's uuids: uuid5(NAMESPACE, "<kind>/<key>") never changes for a key.
NAMESPACE = uuid.UUID("6d1c0f2e-8a51-4a36-9b7e-2f0c9e4d7a10")
DATABASE_KEY = "warehouse"
DATABASE_NAME = "Marketing warehouse"
VERSION = "1.0.0"
#: The placeholder URI in the committed database file; ``bundle_zip`` writes the real one.
PLACEHOLDER_URI = "duckdb:///data/warehouse/warehouse.duckdb"
#: The DuckDB serving file is opened read-only: publish swaps it, Superset never writes it.
DUCKDB_EXTRA = {"engine_params": {"connect_args": {"read_only": True}}}
_TEMPORAL = re.compile(r"^(date|month|.*_date|.*_month|.*_at)$")


def object_uuid(kind: str, key: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}/{key}"))


@dataclass(frozen=True)
class Metric:
    label: str
    sql: str
    #: d3 format of the figure (",.0f" counts, ",.2f" money, ".1%" shares)
    fmt: str = ",.2f"

    def adhoc(self) -> dict:
        return {
            "expressionType": "SQL",
            "sqlExpression": self.sql,
            "label": self.label,
            "hasCustomLabel": True,
            "optionName": "metric_" + re.sub(r"[^a-z0-9]+", "_", self.label.lower()).strip("_"),
        }


@dataclass(frozen=True)
class Dataset:
    """A table of the serving file (``schema.table``) or a query of the BI query pack."""

    key: str
    table: str = ""
    query: str = ""

    @property
    def schema(self) -> str:
        return self.table.split(".")[0] if self.table else "marts"

    @property
    def table_name(self) -> str:
        return self.table.split(".")[1] if self.table else f"bi_{self.query}"


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    viz: str
    dataset: str
    metrics: tuple[Metric, ...] = ()
    groupby: tuple[str, ...] = ()
    x_axis: str = ""
    time_grain: str = ""
    #: raw-mode table columns (no aggregation)
    columns: tuple[str, ...] = ()
    #: SQL conditions (WHERE), AND-ed
    where: tuple[str, ...] = ()
    #: raw-mode table: the column it is sorted on, largest first
    order_desc_by: str = ""
    #: rows a table shows (0: the template's default)
    row_limit: int = 0
    #: period-over-period lag of a big number with trend line (in time grains)
    compare_lag: int = 0
    compare_suffix: str = ""
    width: int = 4
    height: int = 50

    def named_columns(self) -> tuple[str, ...]:
        """Every dataset column the chart names (x-axis, dimensions, raw columns)."""
        named = ([self.x_axis] if self.x_axis else []) + list(self.groupby) + list(self.columns)
        return tuple(dict.fromkeys(named))


@dataclass(frozen=True)
class Dashboard:
    slug: str
    title: str
    #: what the dashboard answers (shown on it and in the README)
    answers: str
    rows: tuple[tuple[str, ...], ...]

    def url(self, bi_url: str) -> str:
        """Where a browser opens it, under the BI tool's base URL (``MWH_BI_URL``)."""
        return f"{bi_url.rstrip('/')}/superset/dashboard/{self.slug}/"


COUNT = ",.0f"
MONEY = ",.2f"
SHARE = ".1%"
RATIO = ".2f"

DATASETS = (
    Dataset("kpi_trend", query="kpi_trend"),
    Dataset("channel_roas", query="channel_roas"),
    Dataset("cohort_heatmap", query="cohort_heatmap"),
    Dataset("segment_sizes", query="segment_sizes"),
    Dataset("channel_reach", query="channel_reach"),
    Dataset("experiments", query="experiments"),
    Dataset("churn_risk_value", query="churn_risk_value"),
    Dataset("customers_at_risk", query="customers_at_risk"),
    Dataset("data_quality_status", query="data_quality_status"),
    Dataset("kpi_daily", table="marts.kpi_daily"),
    Dataset("kpi_channel_performance", table="marts.kpi_channel_performance"),
    Dataset("kpi_retention_churn", table="marts.kpi_retention_churn"),
    Dataset("kpi_campaign_performance", table="marts.kpi_campaign_performance"),
    Dataset("kpi_coupon_performance", table="marts.kpi_coupon_performance"),
    Dataset("kpi_experiments", table="marts.kpi_experiments"),
    Dataset("validation_results", table="audit.validation_results"),
    Dataset("quarantine", table="audit.quarantine"),
    Dataset("load_ledger", table="audit.load_ledger"),
)

#: a big number shows the latest week, its change on the week before and the weekly trend line
_WEEK_LAG = {"time_grain": "P1W", "compare_lag": 1, "compare_suffix": "vs the week before"}
CHARTS = (
    # executive --------------------------------------------------------------------------
    Chart("executive_revenue", "Revenue, latest week", "big_number", "kpi_trend",
          (Metric("Revenue", "sum(revenue)", MONEY),), x_axis="date", **_WEEK_LAG, width=3,
          height=30),
    Chart("executive_orders", "Orders, latest week", "big_number", "kpi_trend",
          (Metric("Orders", "sum(orders)", COUNT),), x_axis="date", **_WEEK_LAG, width=3,
          height=30),
    Chart("executive_new_customers", "New customers, latest week", "big_number", "kpi_trend",
          (Metric("New customers", "sum(new_customers)", COUNT),), x_axis="date", **_WEEK_LAG,
          width=3, height=30),
    Chart("executive_aov", "Average order value, latest week", "big_number", "kpi_trend",
          (Metric("AOV", "sum(revenue) / nullif(sum(orders), 0)", MONEY),), x_axis="date",
          **_WEEK_LAG, width=3, height=30),
    Chart("executive_revenue_trend", "Daily revenue and net revenue", "echarts_timeseries_line",
          "kpi_trend", (Metric("Revenue", "sum(revenue)"), Metric("Net revenue",
          "sum(net_revenue)")), x_axis="date", time_grain="P1D", width=8),
    Chart("executive_customers_trend", "New and returning customers per day",
          "echarts_timeseries_bar", "kpi_trend", (Metric("New", "sum(new_customers)", COUNT),
          Metric("Returning", "sum(returning_customers)", COUNT)), x_axis="date",
          time_grain="P1D", width=4),
    Chart("executive_vs_target", "Attributed revenue and new customers vs target, per month",
          "table", "kpi_channel_performance", (
              Metric("Attributed revenue", "sum(attributed_revenue)"),
              Metric("Revenue target", "sum(target_revenue)"),
              Metric("Revenue vs target", "sum(attributed_revenue) / nullif(sum(target_revenue), 0)",
                     SHARE),
              Metric("New customers", "sum(new_customers)", COUNT),
              Metric("New-customer target", "sum(target_new_customers)", COUNT),
              Metric("New customers vs target",
                     "sum(new_customers) / nullif(sum(target_new_customers), 0)", SHARE),
          ), groupby=("month",), width=12, height=40),
    # acquisition ------------------------------------------------------------------------
    Chart("acquisition_channels", "Spend, CTR, CPC, ROAS, CAC and budget attainment per channel",
          "table", "kpi_channel_performance", (
              Metric("Spend", "sum(spend)"),
              Metric("CTR", "sum(clicks) / nullif(sum(impressions), 0)", SHARE),
              Metric("CPC", "sum(spend) / nullif(sum(clicks), 0)"),
              Metric("ROAS", "sum(attributed_revenue) / nullif(sum(spend), 0)", RATIO),
              Metric("CAC", "sum(spend) / nullif(sum(new_customers), 0)"),
              Metric("Budget attainment", "sum(spend) / nullif(sum(budget), 0)", SHARE),
          ), groupby=("channel",), where=("spend is not null",), width=12, height=40),
    Chart("acquisition_spend", "Spend per channel and month", "echarts_timeseries_bar",
          "kpi_channel_performance", (Metric("Spend", "sum(spend)"),), groupby=("channel",),
          x_axis="month", time_grain="P1M", width=6),
    Chart("acquisition_roas", "ROAS per channel and month (last 12 months)",
          "echarts_timeseries_line", "channel_roas", (Metric("ROAS", "max(roas)", RATIO),),
          groupby=("channel",), x_axis="month", time_grain="P1M", width=6),
    Chart("acquisition_budget", "Budget attainment per channel", "echarts_timeseries_bar",
          "kpi_channel_performance", (Metric("Budget attainment",
          "sum(spend) / nullif(sum(budget), 0)", SHARE),), x_axis="channel",
          where=("spend is not null",), width=6),
    Chart("acquisition_cac", "CAC per channel and month", "echarts_timeseries_bar",
          "channel_roas", (Metric("CAC", "max(cac)"),), groupby=("channel",), x_axis="month",
          time_grain="P1M", width=6),
    # retention --------------------------------------------------------------------------
    Chart("retention_cohorts", "Cohort retention: share of each monthly cohort ordering again",
          "heatmap_v2", "cohort_heatmap", (Metric("Retention", "max(retention_rate)", SHARE),),
          groupby=("cohort_month",), x_axis="months_since_first_order", width=12),
    Chart("retention_churn", "Churn and retention rate per month", "echarts_timeseries_line",
          "kpi_retention_churn", (Metric("Churn rate", "max(churn_rate)", SHARE),
          Metric("Retention rate", "max(retention_rate)", SHARE)), x_axis="month",
          time_grain="P1M", width=6),
    Chart("retention_movements", "New, retained, reactivated and churned customers per month",
          "echarts_timeseries_bar", "kpi_retention_churn", (
              Metric("New", "sum(new_customers)", COUNT),
              Metric("Retained", "sum(retained_customers)", COUNT),
              Metric("Reactivated", "sum(reactivated_customers)", COUNT),
              Metric("Churned", "sum(churned_customers)", COUNT),
          ), x_axis="month", time_grain="P1M", width=6),
    Chart("retention_rfm", "Customers per RFM segment (latest snapshot)", "pie", "segment_sizes",
          (Metric("Customers", "sum(customers)", COUNT),), groupby=("rfm_segment",),
          where=("rfm_segment is not null",), width=6),
    Chart("retention_lifecycle", "Customers per lifecycle stage (latest snapshot)", "pie",
          "segment_sizes", (Metric("Customers", "sum(customers)", COUNT),),
          groupby=("lifecycle_stage",), width=6),
    Chart("retention_churn_risk", "Customers and predicted CLV per churn risk (latest snapshot)",
          "table", "churn_risk_value", (
              Metric("Customers", "sum(customers)", COUNT),
              Metric("Reachable by e-mail", "sum(email_marketable_customers)", COUNT),
              Metric("Predicted CLV", "sum(predicted_clv)", MONEY),
              Metric("Predicted CLV per customer",
                     "sum(predicted_clv) / nullif(sum(customers), 0)", MONEY),
          ), groupby=("churn_risk",), width=5),
    Chart("retention_at_risk", "Top at-risk valuable customers: churn risk high or medium, by "
          "predicted CLV (latest snapshot)", "table", "customers_at_risk",
          columns=("customer_id", "churn_risk", "probability_alive", "predicted_clv",
                   "expected_next_order_date", "last_order_date", "rfm_segment",
                   "lifecycle_stage", "is_email_marketable"),
          order_desc_by="predicted_clv", row_limit=100, width=7),
    # crm --------------------------------------------------------------------------------
    Chart("crm_funnel", "Campaign funnel per channel: sent, delivered, opened, clicked, converted",
          "echarts_timeseries_bar", "kpi_campaign_performance", (
              Metric("Sent", "sum(sent)", COUNT),
              Metric("Delivered", "sum(delivered)", COUNT),
              Metric("Opened", "sum(opened)", COUNT),
              Metric("Clicked", "sum(clicked)", COUNT),
              Metric("Converted", "sum(converted_recipients)", COUNT),
          ), x_axis="channel", width=6),
    Chart("crm_reachable", "Reachable customers per channel (latest snapshot)",
          "echarts_timeseries_bar", "channel_reach", (
              Metric("Reachable", "sum(reachable_customers)", COUNT),
              Metric("Reachable and active", "sum(reachable_active_customers)", COUNT),
          ), x_axis="channel", width=6),
    Chart("crm_campaigns", "Campaigns: funnel and rates", "table", "kpi_campaign_performance",
          columns=("campaign_name", "channel", "sent_at", "sent", "delivered", "opened", "clicked",
                   "converted_recipients", "delivery_rate", "open_rate", "click_rate",
                   "unsubscribe_rate", "conversion_rate", "attributed_revenue"),
          width=12, height=40),
    Chart("crm_coupons", "Coupon performance per voucher campaign", "table",
          "kpi_coupon_performance",
          columns=("voucher_campaign", "redemption_attempts", "net_redemptions",
                   "redemption_rate", "rollback_rate", "discount_cost", "orders", "revenue",
                   "new_customer_share", "repeat_purchase_rate"), width=12, height=40),
    # experiments ------------------------------------------------------------------------
    Chart("experiments_uplift", "Absolute uplift per experiment with its 95% interval", "table",
          "kpi_experiments",
          columns=("experiment_id", "variant", "participants", "conversion_rate",
                   "control_conversion_rate", "absolute_uplift", "absolute_uplift_ci_lower",
                   "absolute_uplift_ci_upper", "relative_uplift", "p_value", "is_significant"),
          where=("not is_control",), width=12, height=40),
    Chart("experiments_flags", "Sample ratio mismatch and sanity flags", "table",
          "kpi_experiments",
          columns=("experiment_id", "variant", "primary_metric", "primary_metric_kind",
                   "conversion_window_days", "participants", "expected_share", "srm_chi_square",
                   "srm_p_value", "has_sample_ratio_mismatch", "is_below_minimum_sample",
                   "has_implausible_uplift", "is_primary_metric_supported"), width=6),
    Chart("experiments_conversion", "Conversion rate per variant", "echarts_timeseries_bar",
          "experiments", (Metric("Conversion rate", "max(conversion_rate)", SHARE),),
          groupby=("variant",), x_axis="experiment_id", width=6),
    # data quality -----------------------------------------------------------------------
    Chart("dq_status", "Latest run: checks per gate and severity", "table",
          "data_quality_status",
          columns=("logical_date", "stage", "severity", "checks", "failed_checks", "status"),
          width=6),
    Chart("dq_failed", "Failed checks per run date and gate", "echarts_timeseries_bar",
          "validation_results", (Metric("Failed checks",
          "sum(case when success then 0 else 1 end)", COUNT),), groupby=("stage",),
          x_axis="logical_date", time_grain="P1D", width=6),
    Chart("dq_quarantine", "Quarantined rows per reason", "pie", "quarantine",
          (Metric("Rows", "count(*)", COUNT),), groupby=("reason_code",), width=6),
    Chart("dq_freshness", "Source freshness: last load per source and entity", "table",
          "load_ledger", (
              Metric("Last load date", "max(load_date)", ""),
              Metric("Days since last load", "current_date - max(load_date)", COUNT),
              Metric("Rows loaded", "sum(rows_loaded)", COUNT),
              Metric("Rows quarantined", "sum(rows_quarantined)", COUNT),
          ), groupby=("source", "entity"), width=6),
)  # fmt: skip

DASHBOARDS = (
    Dashboard(
        "executive",
        "Executive KPIs",
        "How much did we sell, to how many new customers, at what basket size, this week compared "
        "with the week before, and against the monthly targets?",
        (
            ("executive_revenue", "executive_orders", "executive_new_customers", "executive_aov"),
            ("executive_revenue_trend", "executive_customers_trend"),
            ("executive_vs_target",),
        ),
    ),
    Dashboard(
        "acquisition",
        "Acquisition",
        "What does each paid channel cost and return: spend, CTR, CPC, ROAS, CAC, and how much of "
        "its budget is used?",
        (
            ("acquisition_channels",),
            ("acquisition_spend", "acquisition_roas"),
            ("acquisition_budget", "acquisition_cac"),
        ),
    ),
    Dashboard(
        "retention",
        "Retention",
        "Do customers come back: cohort retention, churn and reactivation per month, and how "
        "many customers sit in each lifecycle stage and RFM segment, and which valuable customers "
        "are at risk of churning?",
        (
            ("retention_cohorts",),
            ("retention_churn", "retention_movements"),
            ("retention_rfm", "retention_lifecycle"),
            ("retention_churn_risk", "retention_at_risk"),
        ),
    ),
    Dashboard(
        "crm",
        "CRM",
        "How do campaigns convert from send to purchase, which coupons pay off, and how many "
        "customers can each channel reach?",
        (("crm_funnel", "crm_reachable"), ("crm_campaigns",), ("crm_coupons",)),
    ),
    Dashboard(
        "experiments",
        "Experiments",
        "Which variant wins: uplift with its confidence interval and p-value, and can the result "
        "be trusted (sample ratio mismatch, minimum sample, implausible uplift)?",
        (("experiments_uplift",), ("experiments_flags", "experiments_conversion")),
    ),
    Dashboard(
        "data-quality",
        "Data quality",
        "Can today's numbers be trusted: the gates' results, rows set aside per reason, and how "
        "fresh each source is?",
        (("dq_status", "dq_failed"), ("dq_quarantine", "dq_freshness")),
    ),
)


# --- rendering ---------------------------------------------------------------------------------
def _datasets() -> dict[str, Dataset]:
    return {d.key: d for d in DATASETS}


def _charts() -> dict[str, Chart]:
    return {c.key: c for c in CHARTS}


def query_pack_sql(name: str) -> str:
    """The query pack's SQL without its comment headers (Superset wraps it in a subquery)."""
    query = {q.name: q for q in load_queries()}[name]
    body = [line for line in query.sql.splitlines() if not line.lstrip().startswith("--")]
    return "\n".join(body).strip()


def query_pack_columns(name: str) -> tuple[str, ...]:
    """The output columns of a query pack file, read from its SQL."""
    import sqlglot
    from sqlglot.optimizer.qualify import qualify

    tree = sqlglot.parse_one(query_pack_sql(name), read="duckdb")
    try:
        return tuple(qualify(tree, dialect="duckdb", validate_qualify_columns=False).named_selects)
    except sqlglot.errors.OptimizeError:
        return tuple(tree.named_selects)


def documented_columns(table: str, project_dir: Path) -> tuple[str, ...]:
    """The columns a mart's YAML documents (``dbt_project/models/marts/*/_*__models.yml``)."""
    schema, name = table.split(".")
    if schema != "marts":
        return ()
    for path in sorted((project_dir / "dbt_project" / "models" / "marts").glob("*/_*__models.yml")):
        for model in (yaml.safe_load(path.read_text("utf-8")) or {}).get("models", []):
            if model["name"] == name:
                return tuple(c["name"] for c in model.get("columns", []))
    raise KeyError(f"{table}: no model of that name in dbt_project/models/marts/*/_*__models.yml")


def dataset_columns(dataset: Dataset, project_dir: Path) -> tuple[str, ...]:
    """The dataset's columns: the query's output, or the mart's documented columns, plus every
    column a chart on it names."""
    base = (
        query_pack_columns(dataset.query)
        if dataset.query
        else documented_columns(dataset.table, project_dir)
    )
    named = [c for chart in CHARTS if chart.dataset == dataset.key for c in chart.named_columns()]
    return tuple(dict.fromkeys([*base, *named]))


def _column(name: str) -> dict:
    temporal = bool(_TEMPORAL.match(name))
    return {
        "advanced_data_type": None,
        "column_name": name,
        "description": None,
        "expression": None,
        "extra": None,
        "filterable": True,
        "groupby": True,
        "is_active": True,
        "is_dttm": temporal,
        "python_date_format": None,
        "type": ("TIMESTAMP" if name.endswith("_at") else "DATE") if temporal else None,
        "verbose_name": None,
    }


def _dataset_yaml(dataset: Dataset, project_dir: Path) -> dict:
    columns = dataset_columns(dataset, project_dir)
    dttm = next((c for c in columns if _TEMPORAL.match(c)), None)
    return {
        "always_filter_main_dttm": False,
        "cache_timeout": None,
        "catalog": None,
        "columns": [_column(c) for c in columns],
        "database_uuid": object_uuid("database", DATABASE_KEY),
        "default_endpoint": None,
        "description": (
            f"BI query pack: bi_queries/{dataset.query}.sql" if dataset.query else None
        ),
        "extra": None,
        "fetch_values_predicate": None,
        "filter_select_enabled": True,
        "main_dttm_col": dttm,
        "metrics": [
            {
                "currency": None,
                "d3format": None,
                "description": None,
                "expression": "count(*)",
                "extra": None,
                "metric_name": "count",
                "metric_type": "count",
                "verbose_name": "Rows",
                "warning_text": None,
            }
        ],
        "normalize_columns": False,
        "offset": 0,
        "params": None,
        "schema": dataset.schema,
        "sql": query_pack_sql(dataset.query) if dataset.query else None,
        "table_name": dataset.table_name,
        "template_params": None,
        "uuid": object_uuid("dataset", dataset.key),
        "version": VERSION,
    }


def _no_time_filter(column: str) -> dict:
    return {
        "clause": "WHERE",
        "comparator": "No filter",
        "expressionType": "SIMPLE",
        "operator": "TEMPORAL_RANGE",
        "subject": column,
    }


def _where_filters(chart: Chart) -> list[dict]:
    return [
        {"clause": "WHERE", "expressionType": "SQL", "sqlExpression": condition}
        for condition in chart.where
    ]


def chart_params(chart: Chart) -> dict:
    """The chart's form data, as Superset's explore view saves it for ``chart.viz``."""
    temporal_x = bool(chart.x_axis and _TEMPORAL.match(chart.x_axis))
    filters = ([_no_time_filter(chart.x_axis)] if temporal_x else []) + _where_filters(chart)
    metrics = [m.adhoc() for m in chart.metrics]
    fmt = chart.metrics[0].fmt if chart.metrics else ""
    params: dict = {
        "viz_type": chart.viz,
        "adhoc_filters": filters,
        "extra_form_data": {},
        "dashboards": [],
    }
    if chart.viz in ("big_number", "big_number_total"):
        params |= {"metric": metrics[0], "header_font_size": 0.4, "subheader_font_size": 0.15,
                   "y_axis_format": fmt or "SMART_NUMBER", "time_format": "smart_date"}  # fmt: skip
        if chart.viz == "big_number":
            params |= {
                "x_axis": chart.x_axis,
                "time_grain_sqla": chart.time_grain,
                "compare_lag": chart.compare_lag,
                "compare_suffix": chart.compare_suffix,
                "show_trend_line": True,
                "start_y_axis_at_zero": True,
                "rolling_type": "None",
            }
    elif chart.viz in ("echarts_timeseries_line", "echarts_timeseries_bar"):
        params |= {
            "x_axis": chart.x_axis,
            "metrics": metrics,
            "groupby": list(chart.groupby),
            "row_limit": 10000,
            "show_legend": True,
            "legendType": "scroll",
            "legendOrientation": "top",
            "rich_tooltip": True,
            "y_axis_format": fmt or "SMART_NUMBER",
            "x_axis_time_format": "smart_date",
            "truncate_metric": True,
            "order_desc": True,
            "color_scheme": "supersetColors",
        }
        if chart.time_grain:
            params["time_grain_sqla"] = chart.time_grain
        if chart.viz == "echarts_timeseries_bar":
            params |= {"orientation": "vertical", "x_axis_sort_asc": True}
        else:
            params |= {"markerEnabled": True, "markerSize": 6}
    elif chart.viz == "table":
        common = {"row_limit": 1000, "table_timestamp_format": "smart_date",
                  "server_pagination": False, "include_search": False, "show_cell_bars": False,
                  "percent_metrics": [], "order_desc": True}  # fmt: skip
        if chart.row_limit:
            common["row_limit"] = chart.row_limit
        if chart.columns:
            order = [f'["{chart.order_desc_by}", false]'] if chart.order_desc_by else []
            params |= common | {"query_mode": "raw", "all_columns": list(chart.columns),
                                "order_by_cols": order, "groupby": [], "metrics": []}  # fmt: skip
        else:
            params |= common | {"query_mode": "aggregate", "groupby": list(chart.groupby),
                                "metrics": metrics, "all_columns": []}  # fmt: skip
            params["column_config"] = {m.label: {"d3NumberFormat": m.fmt} for m in chart.metrics}
    elif chart.viz == "pie":
        params |= {"groupby": list(chart.groupby), "metric": metrics[0], "row_limit": 100,
                   "donut": True, "show_labels": True, "label_type": "key_percent",
                   "show_legend": True, "legendType": "scroll", "legendOrientation": "top",
                   "sort_by_metric": True, "number_format": fmt or "SMART_NUMBER",
                   "color_scheme": "supersetColors", "outerRadius": 70, "innerRadius": 30}  # fmt: skip
    elif chart.viz == "heatmap_v2":
        params |= {"x_axis": chart.x_axis, "groupby": chart.groupby[0], "metric": metrics[0],
                   "row_limit": 10000, "linear_color_scheme": "superset_seq_1",
                   "normalize_across": "heatmap", "sort_x_axis": "alpha_asc",
                   "sort_y_axis": "alpha_asc", "show_values": True, "show_legend": True,
                   "value_bounds": [None, None], "y_axis_format": fmt or "SMART_NUMBER",
                   "xscale_interval": -1, "yscale_interval": -1, "left_margin": "auto",
                   "bottom_margin": "auto", "time_format": "smart_date"}  # fmt: skip
    else:
        raise ValueError(f"chart {chart.key}: viz {chart.viz!r} has no form-data template")
    return params


def _chart_yaml(chart: Chart) -> dict:
    return {
        "cache_timeout": None,
        "certification_details": None,
        "certified_by": None,
        "dataset_uuid": object_uuid("dataset", chart.dataset),
        "description": None,
        "params": chart_params(chart),
        "query_context": None,
        "slice_name": chart.title,
        "uuid": object_uuid("chart", chart.key),
        "version": VERSION,
        "viz_type": chart.viz,
    }


def _dashboard_yaml(dashboard: Dashboard) -> dict:
    charts = _charts()
    position: dict = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
        "HEADER_ID": {"type": "HEADER", "id": "HEADER_ID", "meta": {"text": dashboard.title}},
    }
    rows = [("MARKDOWN-answers",), *dashboard.rows]
    for number, row in enumerate(rows, start=1):
        row_id = f"ROW-{number}"
        position["GRID_ID"]["children"].append(row_id)
        position[row_id] = {
            "type": "ROW",
            "id": row_id,
            "children": [],
            "parents": ["ROOT_ID", "GRID_ID"],
            "meta": {"background": "BACKGROUND_TRANSPARENT"},
        }
        for key in row:
            parents = ["ROOT_ID", "GRID_ID", row_id]
            if key == "MARKDOWN-answers":
                position[key] = {
                    "type": "MARKDOWN",
                    "id": key,
                    "children": [],
                    "parents": parents,
                    "meta": {"width": 12, "height": 12, "code": f"**{dashboard.answers}**"},
                }
            else:
                chart = charts[key]
                component = f"CHART-{chart.key}"
                position[component] = {
                    "type": "CHART",
                    "id": component,
                    "children": [],
                    "parents": parents,
                    "meta": {
                        "width": chart.width,
                        "height": chart.height,
                        "chartId": 0,
                        "uuid": object_uuid("chart", chart.key),
                        "sliceName": chart.title,
                    },
                }
                key = component
            position[row_id]["children"].append(key)
    return {
        "certification_details": None,
        "certified_by": None,
        "css": "",
        "dashboard_title": dashboard.title,
        "description": dashboard.answers,
        "metadata": {
            "color_scheme": "supersetColors",
            "cross_filters_enabled": False,
            "expanded_slices": {},
            "label_colors": {},
            "native_filter_configuration": [],
            "refresh_frequency": 0,
            "shared_label_colors": [],
            "timed_refresh_immune_slices": [],
        },
        "position": position,
        "published": True,
        "slug": dashboard.slug,
        "uuid": object_uuid("dashboard", dashboard.slug),
        "version": VERSION,
    }


def _database_yaml(uri: str = PLACEHOLDER_URI, extra: dict | None = None) -> dict:
    return {
        "allow_csv_upload": False,
        "allow_ctas": False,
        "allow_cvas": False,
        "allow_dml": False,
        "allow_run_async": False,
        "cache_timeout": None,
        "database_name": DATABASE_NAME,
        "expose_in_sqllab": True,
        "extra": DUCKDB_EXTRA if extra is None else extra,
        "sqlalchemy_uri": uri,
        "uuid": object_uuid("database", DATABASE_KEY),
        "version": VERSION,
    }


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def render(project_dir: Path) -> dict[str, str]:
    """Bundle path -> YAML text, as committed under ``bi/superset-assets/``."""
    dump = lambda data: yaml.safe_dump(data, sort_keys=True, allow_unicode=True, width=100)  # noqa: E731
    files = {
        "metadata.yaml": dump({"type": "assets", "version": VERSION, "timestamp": "2026-12-01T00:00:00+00:00"}),
        f"databases/{_file_name(DATABASE_NAME)}.yaml": dump(_database_yaml()),
    }  # fmt: skip
    for dataset in DATASETS:
        path = f"datasets/{_file_name(DATABASE_NAME)}/{dataset.table_name}.yaml"
        files[path] = dump(_dataset_yaml(dataset, project_dir))
    for chart in CHARTS:
        files[f"charts/{chart.key}.yaml"] = dump(_chart_yaml(chart))
    for dashboard in DASHBOARDS:
        files[f"dashboards/{_file_name(dashboard.slug)}.yaml"] = dump(_dashboard_yaml(dashboard))
    return files


def write(folder: Path, project_dir: Path) -> list[Path]:
    """Write the rendered bundle into ``folder`` (stale files of the bundle's kinds removed)."""
    files = render(project_dir)
    for old in folder.glob("**/*.yaml"):
        if str(old.relative_to(folder)) not in files:
            old.unlink()
    written = []
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
        written.append(path)
    return written


def bundle_zip(folder: Path, uri: str, extra: dict | None = None) -> bytes:
    """The committed bundle as the zip ``/api/v1/assets/import/`` takes, with the database's real
    URI (a password in it masked: it is sent apart, in the import's ``passwords`` field)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.glob("**/*.yaml")):
            name = str(path.relative_to(folder))
            text = path.read_text("utf-8")
            if name.startswith("databases/"):
                data = yaml.safe_load(text)
                data["sqlalchemy_uri"] = uri
                data["extra"] = DUCKDB_EXTRA if extra is None else extra
                text = yaml.safe_dump(data, sort_keys=True)
            archive.writestr(f"bundle/{name}", text)
    return buffer.getvalue()


def load_bundle(folder: Path) -> dict[str, dict]:
    """The committed bundle's files, parsed (path -> YAML content)."""
    return {
        str(p.relative_to(folder)): yaml.safe_load(p.read_text("utf-8"))
        for p in sorted(folder.glob("**/*.yaml"))
    }


@dataclass
class ChartQuery:
    """One chart of the bundle as the chart-data API is asked for it."""

    uuid: str
    title: str
    viz: str
    dataset_uuid: str
    params: dict = field(repr=False)


def chart_queries(folder: Path) -> list[ChartQuery]:
    """Every chart of the committed bundle (what the running Superset imported)."""
    return [
        ChartQuery(c["uuid"], c["slice_name"], c["viz_type"], c["dataset_uuid"], c["params"])
        for name, c in load_bundle(folder).items()
        if name.startswith("charts/")
    ]


def chart_named_columns(params: dict) -> list[str]:
    """The dataset columns a chart's form data names (x-axis, dimensions, raw columns)."""
    named: list[str] = []
    for key in ("x_axis", "groupby", "all_columns", "columns"):
        value = params.get(key)
        values = value if isinstance(value, list) else [value] if value else []
        named += [v for v in values if isinstance(v, str)]
    return list(dict.fromkeys(named))


def chart_metrics(params: dict) -> list[dict]:
    if "metrics" in params:
        return list(params["metrics"])
    return [params["metric"]] if params.get("metric") else []


def chart_data_request(query: ChartQuery, dataset_id: int) -> dict:
    """The body of ``POST /api/v1/chart/data`` for one chart, from its saved form data: its
    dimensions (the x-axis at its time grain), metrics and SQL filters."""
    params = query.params
    columns: list = []
    x_axis = params.get("x_axis")
    if x_axis:
        axis = {"columnType": "BASE_AXIS", "sqlExpression": x_axis, "label": x_axis,
                "expressionType": "SQL"}  # fmt: skip
        if params.get("time_grain_sqla"):
            axis["timeGrain"] = params["time_grain_sqla"]
        columns.append(axis)
    groupby = params.get("groupby") or []
    columns += [groupby] if isinstance(groupby, str) else list(groupby)
    columns += list(params.get("all_columns") or [])
    orderby = [json.loads(column) for column in params.get("order_by_cols") or []]
    where = " and ".join(
        f"({f['sqlExpression']})"
        for f in params.get("adhoc_filters", [])
        if f.get("expressionType") == "SQL"
    )
    return {
        "datasource": {"id": dataset_id, "type": "table"},
        "force": True,
        "queries": [
            {
                "columns": columns,
                "metrics": chart_metrics(params),
                "filters": [],
                "extras": {"where": where, "having": ""},
                "orderby": orderby,
                "row_limit": params.get("row_limit", 10000),
            }
        ],
        "form_data": params,
        "result_format": "json",
        "result_type": "full",
    }
