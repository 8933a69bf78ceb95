"""The semantic layer: MetricFlow metrics agree with kpi_daily, queried with ``mwh metric``
against the serving file (read-only)."""

from __future__ import annotations

import csv
import dataclasses
import os
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from marketing_warehouse.serve.publish import publish

pytestmark = pytest.mark.integration
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def serving(dbt_built, tmp_path_factory):
    root = tmp_path_factory.mktemp("semantic")
    settings = dataclasses.replace(
        dbt_built, warehouse_path=root / "warehouse" / "warehouse.duckdb"
    )
    publish(settings, date(2026, 11, 21), "run_semantic")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MWH_")} | {
        "MWH_DATA_DIR": str(settings.data_dir),
        "MWH_WAREHOUSE_PATH": str(settings.warehouse_path),
        "PYTHONPATH": str(SRC),
    }
    return settings, env


def mwh_metric(env, *args):
    return subprocess.run(
        [str(Path(sys.executable).parent / "mwh"), "metric", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_daily_metrics_match_kpi_daily(serving, tmp_path):
    settings, env = serving
    out = tmp_path / "daily.csv"
    done = mwh_metric(
        env, "revenue,orders", "new_customers", "average_order_value", "--csv", str(out)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    got = {row["metric_time__day"][:10]: row for row in read_csv(out)}
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        kpis = con.execute(
            "select cast(date as varchar), revenue, orders, new_customers, average_order_value "
            "from marts.kpi_daily where orders > 0 order by 1"
        ).fetchall()
    finally:
        con.close()
    assert len(kpis) >= 5 and sorted(got) == [k[0] for k in kpis]
    for day, revenue, orders, new_customers, aov in kpis:
        row = got[day]
        assert Decimal(row["revenue"]).quantize(Decimal("0.01")) == revenue, day
        assert int(row["orders"]) == orders and int(row["new_customers"]) == new_customers, day
        assert abs(Decimal(row["average_order_value"]) - aov) <= Decimal("0.005"), day


def test_monthly_revenue_by_channel_adds_up(serving, tmp_path):
    settings, env = serving
    out = tmp_path / "monthly.csv"
    done = mwh_metric(env, "revenue", "--grain", "month", "--by", "channel", "--csv", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    rows = read_csv(out)
    assert {r["order__channel"] for r in rows} >= {"online_store", "point_of_sale"}
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        total = con.execute("select sum(revenue) from marts.kpi_daily").fetchone()[0]
    finally:
        con.close()
    assert sum(Decimal(r["revenue"]) for r in rows).quantize(Decimal("0.01")) == total


def test_metrics_by_channel_use_the_channels_of_kpi_channel_performance(serving, tmp_path):
    """One channel vocabulary: revenue and orders per month and channel from the semantic layer
    equal attributed_revenue and conversions of kpi_channel_performance, channel by channel."""
    settings, env = serving
    out = tmp_path / "channels.csv"
    done = mwh_metric(
        env, "revenue,orders", "--grain", "month", "--by", "channel", "--csv", str(out)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    got = {
        (r["metric_time__month"][:10], r["order__channel"]): (
            Decimal(r["revenue"]).quantize(Decimal("0.01")),
            int(r["orders"]),
        )
        for r in read_csv(out)
    }
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        mart = con.execute(
            "select cast(month as varchar), channel, attributed_revenue, conversions "
            "from marts.kpi_channel_performance where conversions > 0"
        ).fetchall()
        sales_channels = {
            r[0] for r in con.execute("select distinct channel from marts.fct_orders").fetchall()
        }
    finally:
        con.close()
    expected = {(month, channel): (revenue, orders) for month, channel, revenue, orders in mart}
    assert {c for _, c in got} == {c for _, c in expected}
    assert got == expected
    # the marketing channels are not the Shopify sales channels (campaign attribution, aliases)
    assert {c for _, c in got} != sales_channels
    by_sales = mwh_metric(env, "orders", "--grain", "year", "--by", "sales_channel")
    assert by_sales.returncode == 0 and "order__sales_channel" in by_sales.stdout


def test_the_metric_table_is_all_stdout_holds(serving):
    """No spinner frames, banners or emoji: stdout is the result table, one row per month."""
    settings, env = serving
    table = mwh_metric(env, "revenue", "--grain", "month", "--by", "channel")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert "\r" not in table.stdout and "Success" not in table.stdout
    assert "Initiating query" not in table.stdout and "query completed" not in table.stdout
    header = lines[0].split()
    assert header == ["metric_time__month", "order__channel", "revenue"], lines[:3]
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        groups = con.execute(
            "select count(*) from marts.kpi_channel_performance where conversions > 0"
        ).fetchone()[0]
    finally:
        con.close()
    rows = [line for line in lines[1:] if line.strip() and not set(line.strip()) <= set("-+ ")]
    assert len(rows) == groups, lines


def test_unknown_metric_or_dimension_is_named(serving):
    _settings, env = serving
    for args, expected, names in (
        (["profit"], "mwh metric: unknown metric(s) profit; defined: ", "revenue"),
        (
            ["revenue", "--by", "colour"],
            "mwh metric: unknown dimension 'colour'; known: ",
            "channel",
        ),
    ):
        bad = mwh_metric(env, *args)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr
        [line] = bad.stderr.strip().splitlines()
        assert line.startswith(expected) and names in line, line
