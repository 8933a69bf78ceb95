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
        ({"MWH_ENGINE": "trino"}, "MWH_ENGINE='trino' is not one of duckdb, spark"),
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


def test_the_engine_is_a_dbt_target_with_its_spark_folder_under_the_data_folder(tmp_path):
    import yaml

    settings = load_settings({"MWH_DATA_DIR": str(tmp_path)})
    assert settings.engine == "duckdb" and settings.layout.spark == tmp_path / "spark"
    spark = load_settings({"MWH_ENGINE": " Spark ", "MWH_SPARK_DIR": str(tmp_path / "s")})
    assert spark.engine == "spark" and spark.layout.spark == tmp_path / "s"
    assert spark.dbt_env()["MWH_ENGINE"] == "spark"
    assert spark.dbt_env()["MWH_SPARK_DIR"] == str(tmp_path / "s")
    # each engine is the output of profiles.yml dbt builds on, of the same name and type
    profile = yaml.safe_load((settings.dbt_project_dir / "profiles.yml").read_text("utf-8"))
    outputs = profile["marketing_warehouse"]["outputs"]
    assert {name: output["type"] for name, output in outputs.items()} == {
        "duckdb": "duckdb",
        "spark": "spark",
    }


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


# --- .env ------------------------------------------------------------------------------------


def project_with_dotenv(tmp_path: Path, text: str) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / ".env").write_text(text, "utf-8")
    return project


DOTENV = """\
# as .env.example writes it
MWH_REPORTING_CURRENCY=USD
MWH_SCHEDULE=0 5 * * *
MWH_TASK_RETRIES=1   # a comment after a value
export MWH_DEMO_DAYS="12"
MWH_ALERT_EMAIL_TO='ops@example.com, data@example.com'
MWH_SMTP_PASSWORD=change-me-smtp-1
MWH_KEEP_VERSION=3
METABASE_ADMIN_EMAIL=admin@example.com
"""


def test_the_project_env_file_is_read_and_the_environment_wins(tmp_path):
    from marketing_warehouse.config import dotenv_path, environment, read_dotenv

    project = project_with_dotenv(tmp_path, DOTENV)
    base = {"MWH_PROJECT_DIR": str(project), "MWH_TASK_RETRIES": "4"}
    assert dotenv_path(base) == project / ".env"
    values = read_dotenv(project / ".env")
    assert values["MWH_SCHEDULE"] == "0 5 * * *" and values["MWH_TASK_RETRIES"] == "1"
    assert values["MWH_DEMO_DAYS"] == "12"
    assert values["MWH_ALERT_EMAIL_TO"] == "ops@example.com, data@example.com"
    settings = load_settings(environment(base))
    assert settings.reporting_currency == "USD" and settings.schedule == "0 5 * * *"
    assert settings.task_retries == 4  # the environment over .env
    assert settings.demo_days == 12
    assert read_dotenv(tmp_path / "nothing-here" / ".env") == {}


def test_settings_loaded_without_arguments_read_the_env_file(tmp_path, monkeypatch):
    from marketing_warehouse.ops.alerts import load_alert_settings

    project = project_with_dotenv(tmp_path, DOTENV)
    monkeypatch.setenv("MWH_PROJECT_DIR", str(project))
    monkeypatch.delenv("MWH_REPORTING_CURRENCY", raising=False)
    assert load_settings().reporting_currency == "USD"
    alerts = load_alert_settings()
    assert alerts.email_to == ("ops@example.com", "data@example.com")
    assert [alerts.smtp_password] == ["change-me-smtp-1"]


def test_mwh_settings_shows_current_values_and_where_each_came_from(tmp_path):
    import os
    import subprocess
    import sys

    project = project_with_dotenv(tmp_path, DOTENV)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MWH_")} | {
        "MWH_PROJECT_DIR": str(project),
        "MWH_TASK_RETRIES": "4",
        "MWH_POSTGRES_DSN": "host=db user=warehouse password=change-me-pg-1",
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "mwh"), "settings"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    lines = set(out.splitlines())
    assert str(project / ".env") in out.splitlines()[0]
    assert "MWH_REPORTING_CURRENCY = USD  [.env]" in lines
    assert "MWH_SCHEDULE = 0 5 * * *  [.env]" in lines
    assert "MWH_TASK_RETRIES = 4  [env]" in lines
    assert f"MWH_DATA_DIR = {project / 'data'}  [default]" in lines
    assert "MWH_KEEP_VERSIONS = 5  [default]" in lines
    assert "MWH_SMTP_PASSWORD = ******** (set)  [.env]" in lines
    assert "MWH_POSTGRES_DSN = ******** (set)  [env]" in lines
    assert "change-me-smtp-1" not in out and "change-me-pg-1" not in out
    assert "not a setting (misspelt?): MWH_KEEP_VERSION" in out
