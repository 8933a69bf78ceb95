"""Superset on a real build: the committed dashboards imported, every chart's data queried through
Superset's chart-data API, figures reconciled with sums taken from the serving file here, every
dashboard drawn by headless Chromium without a chart in error, and nothing fetched from outside.

One Superset start for the module on the session's dbt build (``at_risk_built``: ``dbt_built``
with at-risk customers), gated and published as a night would; Superset's bootstrap (db upgrade,
admin, init) runs while dbt builds. The screenshots are kept in ``<data>/bi/screenshots/`` of the checkout's data folder (git-ignored).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import yaml
from chromium import Page

from marketing_warehouse.config import load_settings
from marketing_warehouse.layout import bi_bundle
from marketing_warehouse.pipeline import gate
from marketing_warehouse.serve import superset, superset_bundle
from marketing_warehouse.serve.publish import publish

pytestmark = pytest.mark.integration
DS = date(2026, 11, 21)
BUNDLE = bi_bundle(Path(__file__).resolve().parents[2])
#: the page's own view of its charts: chart holders, drawn ones, spinners and charts in error
CHARTS_STATE = """(() => {
  const holders = [...document.querySelectorAll(
    '[data-test="dashboard-component-chart-holder"][class*="dashboard-chart-id-"]')];
  const failed = holders.filter(h => h.querySelector(
    '.ant-alert-error, [role="alert"], [data-test="error-tooltip"]'));
  const drawn = holders.filter(h => h.querySelector('canvas, svg, table, .header-line'));
  const loading = document.querySelectorAll('[data-test="loading-indicator"]').length;
  return {holders: holders.length, drawn: drawn.length, loading: loading,
          errors: failed.map(h => h.innerText.slice(0, 300)),
          path: location.pathname,
          ready: location.pathname.endsWith('/dashboard/%s/') && holders.length > 0
                 && loading === 0 && drawn.length + failed.length === holders.length};
})()"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclasses.dataclass
class Running:
    settings: object
    server: superset.Server
    client: superset.Client
    datasets: dict[str, int]

    def chart_data(self, query: superset_bundle.ChartQuery) -> dict:
        body = superset_bundle.chart_data_request(query, self.datasets[query.dataset_uuid])
        return self.client.chart_data(body)["result"][0]


@pytest.fixture(scope="session")
def bootstrapping(tmp_path_factory):
    """Superset's bootstrap started first, so that it runs while the warehouse is built (session
    scope: pytest sets up the session's fixtures before the module's, in argument order)."""
    root = tmp_path_factory.mktemp("superset")
    settings = load_settings(
        {"MWH_DATA_DIR": str(root / "data"), "MWH_BI_URL": f"http://127.0.0.1:{free_port()}"}
    )
    process = superset.start_bootstrap(settings, superset.credentials(settings))
    yield settings, process
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def running(bootstrapping, at_risk_built):
    served, process = bootstrapping
    settings = dataclasses.replace(served, build_path=at_risk_built.build_path)
    gate("marts", DS.isoformat(), "run_1", settings)  # audit.validation_results of a real gate
    publish(settings, DS, "run_1")
    server = superset.start(settings, bootstrapping=process)
    try:
        client = superset.login(server)
        rows = client.listing("dataset", ("id", "uuid"))
        yield Running(settings, server, client, {row["uuid"]: row["id"] for row in rows})
    finally:
        server.stop()


def test_the_bundle_is_imported_whole(running):
    files = superset_bundle.load_bundle(BUNDLE)
    for kind, resource in (("charts", "chart"), ("datasets", "dataset")):
        ours = {v["uuid"] for k, v in files.items() if k.startswith(f"{kind}/")}
        found = {row["uuid"] for row in running.client.listing(resource, ("uuid",))}
        assert ours <= found, (kind, sorted(ours - found))
    databases = running.client.get("/api/v1/database/")["result"]
    assert [d["database_name"] for d in databases] == [superset_bundle.DATABASE_NAME]
    for slug in ("executive", "acquisition", "retention", "crm", "experiments", "data-quality"):
        dashboard = running.client.get(f"/api/v1/dashboard/{slug}")["result"]
        assert dashboard["published"], slug


def test_every_chart_returns_rows_without_error(running):
    failures = []
    for query in superset_bundle.chart_queries(BUNDLE):
        try:
            result = running.chart_data(query)
        except superset.SupersetError as error:
            failures.append(f"{query.title}: {error}")
            continue
        if result.get("error") or result["status"] != "success" or not result["rowcount"]:
            failures.append(f"{query.title}: status {result['status']}, {result['rowcount']} rows")
    assert not failures, "\n".join(failures)


def _query(title_key: str) -> superset_bundle.ChartQuery:
    uuid = superset_bundle.object_uuid("chart", title_key)
    return next(q for q in superset_bundle.chart_queries(BUNDLE) if q.uuid == uuid)


def test_figures_reconcile_with_sums_taken_from_the_serving_file(running):
    con = duckdb.connect(str(running.settings.warehouse_path), read_only=True)
    try:
        daily = con.execute("select date, revenue, orders from marts.kpi_daily").fetchall()
        spend = con.execute("select channel, spend from marts.kpi_channel_performance").fetchall()
    finally:
        con.close()
    # executive: the weekly revenue behind the big number, over the trend's 90 days
    last = max(day for day, _, _ in daily)
    window = [(day, revenue, orders) for day, revenue, orders in daily if (last - day).days < 90]
    weeks = running.chart_data(_query("executive_revenue"))["data"]
    assert sum(Decimal(str(w["Revenue"])) for w in weeks) == sum(r for _, r, _ in window)
    assert sum(Decimal(str(r)) for _, r, _ in window) > 0
    orders = running.chart_data(_query("executive_orders"))["data"]
    assert sum(w["Orders"] for w in orders) == sum(o for _, _, o in window)
    # acquisition: spend per channel
    by_channel: dict[str, Decimal] = {}
    for channel, amount in spend:  # the paid channels: those with a spend
        if amount is not None:
            by_channel[channel] = by_channel.get(channel, Decimal(0)) + amount
    table = running.chart_data(_query("acquisition_channels"))["data"]
    charted = {row["channel"]: Decimal(str(row["Spend"])) for row in table}
    assert charted == by_channel and sum(by_channel.values()) > 0


def test_every_column_a_chart_names_exists_in_the_serving_file(running):
    files = superset_bundle.load_bundle(BUNDLE)
    datasets = {v["uuid"]: v for k, v in files.items() if k.startswith("datasets/")}
    con = duckdb.connect(str(running.settings.warehouse_path), read_only=True)
    try:
        found = {}
        for uuid, dataset in datasets.items():
            source = (
                f"({dataset['sql']})"
                if dataset["sql"]
                else f"{dataset['schema']}.{dataset['table_name']}"
            )
            found[uuid] = {
                row[0] for row in con.execute(f"describe select * from {source}").fetchall()
            }
    finally:
        con.close()
    missing = []
    for uuid, dataset in datasets.items():
        declared = {c["column_name"] for c in dataset["columns"]}
        missing += [f"dataset {dataset['table_name']}: {c}" for c in sorted(declared - found[uuid])]
    for query in superset_bundle.chart_queries(BUNDLE):
        named = set(superset_bundle.chart_named_columns(query.params))
        missing += [
            f"chart {query.title!r}: {c}" for c in sorted(named - found[query.dataset_uuid])
        ]
    assert not missing, "columns not in the serving file:\n" + "\n".join(missing)


def test_every_dashboard_draws_without_a_chart_in_error_and_offline(running):
    artifacts = load_settings().layout.bi_screenshots
    files = superset_bundle.load_bundle(BUNDLE)
    page = Page()
    try:
        page.set_cookie(running.server.url, "session", running.client.session_cookie())
        for name, dashboard in files.items():
            if not name.startswith("dashboards/"):
                continue
            slug = dashboard["slug"]
            charts = [
                c
                for c in dashboard["position"].values()
                if isinstance(c, dict) and c.get("type") == "CHART"
            ]
            page.goto(f"{running.server.url}/superset/dashboard/{slug}/?standalone=1")
            state = page.wait_for(CHARTS_STATE % slug, timeout=90)
            shot = page.screenshot(artifacts / f"{slug}.png")
            assert state and state["ready"], (slug, state)
            assert state["errors"] == [], (slug, state["errors"])
            assert state["holders"] == state["drawn"] == len(charts), (slug, state)
            stats = page.image_stats(shot.read_bytes())
            assert stats["stddev"] > 10 and stats["colours"] > 50, (slug, stats)
    finally:
        page.close()
    outside = sorted(
        {u for u in page.requests if not u.startswith((running.server.url, "data:", "blob:"))}
    )
    assert outside == [], outside  # no CDN, no fonts, no telemetry
    assert not [m for m in page.console if "Content Security Policy" in m], page.console


@pytest.fixture(scope="module")
def edited(running, tmp_path_factory):
    """The bundle with two charts changed, imported once over the committed one (the original is
    imported back afterwards): an edited title and metric, and a metric on a missing column."""
    folder = tmp_path_factory.mktemp("edited") / "bundle"
    shutil.copytree(BUNDLE, folder)

    def edit(key: str, change) -> None:
        path = folder / "charts" / f"{key}.yaml"
        chart = yaml.safe_load(path.read_text("utf-8"))
        change(chart["params"]["metric"])
        chart["slice_name"] += " (edited)"
        path.write_text(yaml.safe_dump(chart, sort_keys=True), "utf-8")

    edit("executive_orders", lambda metric: metric.update(sqlExpression="sum(orders) * 2"))
    edit("executive_revenue", lambda metric: metric.update(sqlExpression="sum(no_such_column)"))
    before = running.client.listing("chart", ("uuid",))
    superset.import_bundle(running.client, running.settings, folder)  # the importer takes both
    try:
        yield before
    finally:
        superset.import_bundle(running.client, running.settings)


def test_an_edited_chart_is_imported_over_the_old_one_by_uuid(running, edited):
    before = edited
    uuid = superset_bundle.object_uuid("chart", "executive_orders")
    after = running.client.listing("chart", ("uuid", "slice_name", "params"))
    same = [row for row in after if row["uuid"] == uuid]
    assert len(after) == len(before) and len(same) == 1  # replaced, not added
    assert same[0]["slice_name"] == "Orders, latest week (edited)"
    assert "sum(orders) * 2" in same[0]["params"]
    # the stored chart (not the file) now draws twice the orders
    stored = dataclasses.replace(_query("executive_orders"), params=json.loads(same[0]["params"]))
    original = sum(row["Orders"] for row in running.chart_data(_query("executive_orders"))["data"])
    assert sum(row["Orders"] for row in running.chart_data(stored)["data"]) == 2 * original > 0


def test_a_chart_with_a_wrong_metric_imports_but_its_data_check_fails(running, edited):
    uuid = superset_bundle.object_uuid("chart", "executive_revenue")
    stored = [r for r in running.client.listing("chart", ("uuid", "params")) if r["uuid"] == uuid]
    assert "sum(no_such_column)" in stored[0]["params"]  # imported without complaint
    broken = dataclasses.replace(
        _query("executive_revenue"), params=json.loads(stored[0]["params"])
    )
    with pytest.raises(superset.SupersetError, match="no_such_column"):
        running.chart_data(broken)


def test_the_dashboards_on_postgres_as_the_read_only_reader_role(running, postgres_cluster):
    """What the compose stack's superset-setup does: the same bundle on the serving PostgreSQL as
    the reader role; the marts' charts draw, the audit's are closed to that role."""
    import psycopg

    from marketing_warehouse.serve.postgres import publish_to_postgres

    settings = dataclasses.replace(
        load_settings({**running.settings.extra, **postgres_cluster.serving_env()}),
        data_dir=running.settings.data_dir,
        warehouse_path=running.settings.warehouse_path,
        build_path=running.settings.build_path,
        bi_url=running.settings.bi_url,
    )
    publish_to_postgres(settings)
    uri = superset.postgres_reader_uri(settings)
    try:
        superset.import_bundle(
            running.client, settings, uri=uri, password=settings.postgres_reader_password
        )
        databases = running.client.get("/api/v1/database/")["result"]
        assert [d["backend"] for d in databases] == ["postgresql"]  # replaced by uuid
        files = superset_bundle.load_bundle(BUNDLE)
        reads_audit = {
            v["uuid"]: v["schema"] == "audit" or "audit." in (v["sql"] or "")
            for k, v in files.items()
            if k.startswith("datasets/")
        }
        drawn, closed = [], []
        for query in superset_bundle.chart_queries(BUNDLE):
            try:
                result = running.chart_data(query)
                assert result["rowcount"] > 0, query.title
                drawn.append(reads_audit[query.dataset_uuid])
            except superset.SupersetError as error:
                assert "permission denied" in str(error), (query.title, str(error)[:300])
                closed.append(reads_audit[query.dataset_uuid])
        assert drawn and not any(drawn)  # every chart on marts draws
        assert closed and all(closed)  # only the audit's are closed to the reader
    finally:
        superset.import_bundle(running.client, running.settings)
        with psycopg.connect(postgres_cluster.dsn(), autocommit=True) as con:
            con.execute("drop schema if exists marts cascade")
            con.execute("drop schema if exists audit cascade")
