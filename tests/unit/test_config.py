from pathlib import Path

import pytest

from marketing_warehouse.config import ConfigError, load_settings


def test_defaults_resolve_under_the_project():
    settings = load_settings({})
    assert settings.reporting_currency == "EUR"
    assert settings.schedule == "0 2 * * *"
    assert settings.landing_dir == settings.data_dir / "landing"
    assert settings.warehouse_path.name == "warehouse.duckdb"
    assert settings.build_path != settings.warehouse_path
    assert (settings.project_dir / "dbt_project" / "dbt_project.yml").exists()


def test_landing_dir_can_point_anywhere(tmp_path: Path):
    settings = load_settings(
        {"MWH_LANDING_DIR": str(tmp_path / "drop"), "MWH_REPORTING_CURRENCY": "usd"}
    )
    assert settings.landing_dir == tmp_path / "drop"
    assert settings.reporting_currency == "USD"
    assert settings.dbt_env()["MWH_REPORTING_CURRENCY"] == "USD"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MWH_REPORTING_CURRENCY": "EURO"}, "ISO 4217"),
        ({"MWH_SCHEDULE": "every night"}, "cron"),
        ({"MWH_DEMO_DAYS": "ten"}, "whole number"),
        ({"MWH_DEMO_DAYS": "0"}, "at least 1"),
        ({"MWH_TASK_RETRIES": "-1"}, "0 or more"),
        ({"MWH_KEEP_VERSIONS": "0"}, "at least 1"),
        ({"MWH_EXTRACT_WORKERS": "0"}, "MWH_EXTRACT_WORKERS must be at least 1"),
        ({"MWH_POSTGRES_IDLE_READER_GRACE": "-1"}, "MWH_POSTGRES_IDLE_READER_GRACE must be"),
        ({"MWH_POSTGRES_IDLE_READER_GRACE": "3601"}, "between 0 and 3600 seconds"),
        ({"MWH_POSTGRES_IDLE_READER_GRACE": "30s"}, "MWH_POSTGRES_IDLE_READER_GRACE='30s' is not"),
        ({"MWH_DUCKDB_MEMORY_LIMIT": "3"}, "MWH_DUCKDB_MEMORY_LIMIT: '3' is not a memory size"),
        ({"MWH_DUCKDB_MEMORY_LIMIT": "lots"}, "not a memory size such as 3GB"),
        ({"MWH_DUCKDB_MEMORY_LIMIT": "100MB"}, "MWH_DUCKDB_MEMORY_LIMIT='100MB' is below 128MiB"),
        ({"MWH_POSTGRES_READER_ROLE": "bi reader; drop"}, "identifier"),
        ({"MWH_DBT_TASKS": "per_stage"}, "watcher, per_model, single"),
        ({"MWH_EARLIEST_DATE": "01/01/1990"}, "MWH_EARLIEST_DATE='01/01/1990' is not a date"),
        ({"MWH_MAX_AMOUNT": "a billion"}, "MWH_MAX_AMOUNT='a billion' is not a number"),
        ({"MWH_MAX_AMOUNT": "0"}, "MWH_MAX_AMOUNT='0' must be a number above 0"),
    ],
)
def test_bad_settings_are_named(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_serving_defaults():
    from marketing_warehouse.serve.publish import KEEP_VERSIONS

    settings = load_settings({})
    assert settings.keep_versions == KEEP_VERSIONS
    assert settings.postgres_dsn == "" and settings.postgres_reader_role == "bi_reader"
    secret = load_settings(
        {
            "MWH_POSTGRES_DSN": "host=db password=change-me-dsn",
            "MWH_POSTGRES_READER_PASSWORD": "change-me-reader",
        }
    )
    assert "change-me-dsn" not in repr(secret) and "change-me-reader" not in repr(secret)


def test_dbt_task_mode_defaults_to_one_build_per_stage_watched_per_model():
    assert load_settings({}).dbt_tasks == "watcher"
    assert load_settings({"MWH_DBT_TASKS": " Single "}).dbt_tasks == "single"
    assert load_settings({"MWH_DBT_TASKS": "per_model"}).dbt_tasks == "per_model"


def test_the_duckdb_memory_limit_bounds_a_connection_with_its_spill_folder(tmp_path):
    from marketing_warehouse import duck

    settings = load_settings({"MWH_DUCKDB_MEMORY_LIMIT": "2GiB"})
    con = duck.connect(settings.duckdb_memory_limit, tmp_path / "w.duckdb", spill_dir=tmp_path)
    try:
        limit, spill = con.execute(
            "select current_setting('memory_limit'), current_setting('temp_directory')"
        ).fetchone()
    finally:
        con.close()
    assert limit == "2.0 GiB"
    assert spill == str(tmp_path)


def test_plausibility_bounds_default_to_decades_of_history_and_a_billion():
    from datetime import date
    from decimal import Decimal

    default = load_settings({}).plausibility
    assert (default.earliest_date, default.max_amount) == (date(1990, 1, 1), Decimal(10**9))
    custom = load_settings({"MWH_EARLIEST_DATE": "2015-01-01", "MWH_MAX_AMOUNT": "250,000"})
    assert custom.plausibility.earliest_date == date(2015, 1, 1)
    assert custom.plausibility.max_amount == Decimal(250_000)
