"""The dashboards-as-code bundle and Superset's configuration, read without starting Superset
(tests/integration/test_superset.py starts it on a real build)."""

from __future__ import annotations

import io
import re
import runpy
import zipfile
from pathlib import Path

import pytest
import yaml

from marketing_warehouse.layout import bi_bundle, bi_config
from marketing_warehouse.serve import superset_bundle
from marketing_warehouse.serve.query_pack import load_queries
from marketing_warehouse.serve.superset import credentials, duckdb_uri

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = bi_bundle(ROOT)
SLUGS = ["executive", "acquisition", "retention", "crm", "experiments", "data-quality"]


def test_the_committed_bundle_is_the_one_the_spec_renders():
    rendered = superset_bundle.render(ROOT)
    committed = {
        str(p.relative_to(BUNDLE)): p.read_text("utf-8") for p in BUNDLE.glob("**/*") if p.is_file()
    }
    stale = sorted(committed.keys() - rendered.keys())
    missing = sorted(rendered.keys() - committed.keys())
    differ = sorted(k for k in rendered.keys() & committed.keys() if rendered[k] != committed[k])
    assert not (stale or missing or differ), (
        f"bi/superset-assets/ is not what serve/superset_bundle.py renders (stale {stale}, "
        f"missing {missing}, different {differ}): run `mwh bi bundle` and commit the result"
    )


def test_six_dashboards_with_fixed_slugs_and_uuids():
    files = superset_bundle.load_bundle(BUNDLE)
    dashboards = [v for k, v in files.items() if k.startswith("dashboards/")]
    assert sorted(d["slug"] for d in dashboards) == sorted(SLUGS)
    uuids = [v["uuid"] for v in files.values() if "uuid" in v]
    assert len(uuids) == len(set(uuids))
    for dashboard in dashboards:
        assert dashboard["uuid"] == superset_bundle.object_uuid("dashboard", dashboard["slug"])
    assert files["metadata.yaml"]["type"] == "assets"


def test_every_reference_resolves():
    files = superset_bundle.load_bundle(BUNDLE)
    by_kind = {
        kind: {v["uuid"]: v for k, v in files.items() if k.startswith(f"{kind}/")}
        for kind in ("databases", "datasets", "charts", "dashboards")
    }
    for dataset in by_kind["datasets"].values():
        assert dataset["database_uuid"] in by_kind["databases"], dataset["table_name"]
    on_dashboards = set()
    for dashboard in by_kind["dashboards"].values():
        for component in dashboard["position"].values():
            if isinstance(component, dict) and component.get("type") == "CHART":
                assert component["meta"]["uuid"] in by_kind["charts"], component["id"]
                on_dashboards.add(component["meta"]["uuid"])
    for chart in by_kind["charts"].values():
        assert chart["dataset_uuid"] in by_kind["datasets"], chart["slice_name"]
    assert on_dashboards == by_kind["charts"].keys()  # no chart left off every dashboard


def test_every_column_a_chart_names_is_a_column_of_its_dataset():
    files = superset_bundle.load_bundle(BUNDLE)
    datasets = {v["uuid"]: v for k, v in files.items() if k.startswith("datasets/")}
    for query in superset_bundle.chart_queries(BUNDLE):
        dataset = datasets[query.dataset_uuid]
        columns = {c["column_name"] for c in dataset["columns"]}
        missing = set(superset_bundle.chart_named_columns(query.params)) - columns
        assert not missing, (
            f"chart {query.title!r}: {sorted(missing)} not in {dataset['table_name']}"
        )
        x_axis = query.params.get("x_axis")
        temporal = {c["column_name"] for c in dataset["columns"] if c["is_dttm"]}
        if query.params.get("time_grain_sqla"):
            assert x_axis in temporal, f"chart {query.title!r}: a time grain on {x_axis!r}"
        assert superset_bundle.chart_metrics(query.params) or query.params.get("all_columns")


def test_virtual_datasets_run_the_query_pack_sql_and_nothing_else():
    files = superset_bundle.load_bundle(BUNDLE)
    queries = {q.name: q for q in load_queries()}
    virtual = [v for k, v in files.items() if k.startswith("datasets/") and v["sql"]]
    assert virtual
    for dataset in virtual:
        name = dataset["table_name"].removeprefix("bi_")
        assert dataset["sql"] in queries[name].sql, name  # the file's SQL, headers left off
        assert dataset["description"] == f"BI query pack: bi_queries/{name}.sql"
    for dataset in (v for k, v in files.items() if k.startswith("datasets/") and not v["sql"]):
        assert dataset["schema"] in ("marts", "audit"), dataset["table_name"]


def test_the_zip_carries_the_real_connection_read_only(tmp_path):
    serving = tmp_path / "warehouse" / "warehouse.duckdb"
    data = superset_bundle.bundle_zip(BUNDLE, duckdb_uri(serving))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        assert all(n.startswith("bundle/") for n in names) and "bundle/metadata.yaml" in names
        database = yaml.safe_load(archive.read("bundle/databases/Marketing_warehouse.yaml"))
    assert database["sqlalchemy_uri"] == f"duckdb:///{serving}"
    assert database["sqlalchemy_uri"].startswith("duckdb:////")
    assert database["extra"] == {"engine_params": {"connect_args": {"read_only": True}}}
    assert not database["allow_dml"] and not database["allow_ctas"] and not database["allow_cvas"]


def test_local_credentials_are_made_once_and_kept_private(settings):
    first = credentials(settings, env={})
    again = credentials(settings, env={})
    assert first == again and len(first.secret_key) >= 32
    assert oct(settings.layout.bi_credentials.stat().st_mode & 0o777) == "0o600"
    chosen = credentials(settings, env={"SUPERSET_SECRET_KEY": "k" * 40})
    assert (chosen.secret_key, chosen.admin_password) == ("k" * 40, first.admin_password)


def _config(monkeypatch, secret: str | None) -> dict:
    if secret is None:
        monkeypatch.delenv("SUPERSET_SECRET_KEY", raising=False)
    else:
        monkeypatch.setenv("SUPERSET_SECRET_KEY", secret)
    return runpy.run_path(str(bi_config(ROOT)))


def test_superset_config_is_offline_and_wants_a_secret_key(monkeypatch):
    with pytest.raises(RuntimeError, match="SUPERSET_SECRET_KEY is missing"):
        _config(monkeypatch, None)
    with pytest.raises(RuntimeError, match="shorter than 32"):
        _config(monkeypatch, "short")
    config = _config(monkeypatch, "s" * 40)
    policy = config["TALISMAN_CONFIG"]["content_security_policy"]
    sources = [
        s for value in policy.values() for s in ([value] if isinstance(value, str) else value)
    ]
    assert not [s for s in sources if re.search(r"https?:|\.[a-z]{2,}$", s)], sources
    assert policy["default-src"] == ["'self'"] and policy["connect-src"] == ["'self'"]
    assert config["SCARF_ANALYTICS"] is False and config["RATELIMIT_ENABLED"] is False
    assert config["DATA_CACHE_CONFIG"]["CACHE_TYPE"] == "NullCache"
    assert config["CACHE_CONFIG"]["CACHE_TYPE"] == "SimpleCache"
    assert config["THEME_FONT_URL_ALLOWED_DOMAINS"] == []


def test_superset_pins_the_warehouse_duckdb_and_its_own_stack():
    pins = dict(
        re.findall(
            r"^([a-z0-9_.\[\],-]+)==(\S+)$",
            (ROOT / "bi/superset-requirements.txt").read_text(),
            re.M,
        )
    )
    lock = dict(
        re.findall(r"^([a-z0-9_.-]+)==(\S+)$", (ROOT / "requirements.lock").read_text(), re.M)
    )
    assert pins["apache-superset[duckdb,postgres]"] == "6.1.0"
    assert pins["duckdb"] == lock["duckdb"]  # the serving file is written by the warehouse's DuckDB
    assert pins["flask-caching"] == "2.3.1"
    for name in ("rich", "cachetools", "flask", "werkzeug", "flask-appbuilder", "gunicorn"):
        assert name in pins, name
    assert "apache-superset" not in lock  # the warehouse's own venv stays free of Superset


def test_a_start_without_superset_or_a_serving_file_says_what_to_run(settings, tmp_path):
    import dataclasses

    from marketing_warehouse.serve.superset import SupersetError, start, superset_python

    with pytest.raises(SupersetError, match=r"no serving file yet; run `make run` first"):
        start(settings)
    elsewhere = dataclasses.replace(settings, project_dir=tmp_path)
    with pytest.raises(SupersetError, match=r"own virtualenv; run `make bi-install`"):
        superset_python(elsewhere)
