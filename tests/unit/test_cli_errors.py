"""Every misuse of ``mwh`` a new user meets ends in one line on stderr that names what went wrong
and what to do, and no traceback: the real entry point, run in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

MWH = str(Path(sys.executable).parent / "mwh")


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """A clean environment on an empty data folder, with no .env (its own project folder)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MWH_", "AIRFLOW"))}
    project = tmp_path / "project"
    project.mkdir()
    return base | {"MWH_PROJECT_DIR": str(project), "MWH_DATA_DIR": str(tmp_path / "data")}


def mwh(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MWH, *args], env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


def one_line(done: subprocess.CompletedProcess, code: int) -> str:
    """The error line of a failed ``mwh`` call, after checking its form."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert done.returncode == code, (done.returncode, done.stderr)
    assert lines[0].startswith(("mwh ", "mwh:")), lines[0]
    return lines[0]


@pytest.fixture
def warehouse(env) -> Path:
    """A real (empty) DuckDB serving file where the settings expect it."""
    path = Path(env["MWH_DATA_DIR"]) / "warehouse" / "warehouse.duckdb"
    path.parent.mkdir(parents=True)
    duckdb.connect(str(path)).close()
    return path


def test_a_sql_error_is_named_with_what_to_do(env, warehouse):
    line = one_line(mwh(env, "query", "selct 1"), 2)
    assert line.startswith("mwh query: the query failed: Parser Error: syntax error")
    assert '"selct"' in line and "show all tables" in line
    line = one_line(mwh(env, "query", "select * from marts.nothing_here"), 2)
    assert "Catalog Error" in line and "nothing_here" in line


def test_a_missing_warehouse_says_run_make_run_first(env):
    expected = Path(env["MWH_DATA_DIR"]) / "warehouse" / "warehouse.duckdb"
    line = one_line(mwh(env, "query", "select 1"), 1)
    assert line == (
        f"mwh query: no warehouse at {expected}; run `make run` first "
        "(or set MWH_WAREHOUSE_PATH / MWH_DATA_DIR to where it is)"
    )
    line = one_line(mwh(env, "metric", "revenue"), 1)
    assert f"no warehouse at {expected}; run `make run` first" in line


def test_a_csv_that_cannot_be_written_is_named(env, warehouse, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = one_line(mwh(env, "query", "select 1", "--csv", str(blocker / "out.csv")), 1)
    assert f"cannot write {blocker / 'out.csv'}" in line and "choose a folder" in line


def test_a_busy_docs_port_says_which_and_how_to_get_around_it(env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_line(mwh(env, "docs", "--port", str(port)), 1)
    assert line.startswith(f"mwh docs: port {port} is in use on 127.0.0.1; ")
    assert "--port" in line and "stop the process" in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["metric", "revenue", "--start", "2026-02-30"],
            "mwh metric: --start '2026-02-30' is not a calendar date; give it as YYYY-MM-DD",
        ),
        (["metric", "revenue", "--end", "30/11/2026"], "mwh metric: --end '30/11/2026' is not a"),
        (
            ["metric", "revenue", "--start", "2026-11-21", "--end", "2026-11-01"],
            "mwh metric: --end 2026-11-01 is before --start 2026-11-21; swap them",
        ),
        (["metric", "revenue", "--limit", "0"], "mwh metric: --limit 0 is not a positive"),
        (["run", "--date", "2026-13-01"], "mwh run: --date '2026-13-01' is not a calendar date"),
        (["run", "--date", "1989-12-31"], "from 1990-01-01 on"),
        (["demo", "--date", "yesterday"], "mwh demo: --date 'yesterday' is not a calendar date"),
        (["airflow"], "mwh airflow: no airflow command given; e.g. `mwh airflow standalone`"),
        (
            ["metric", "revenue", "--grain", "fortnight"],
            "argument --grain: invalid choice: 'fortnight'",
        ),
        (["query"], "mwh query: the following arguments are required: sql; see `mwh query --help`"),
        (["serve"], "mwh: argument command: invalid choice: 'serve'"),
        (["docs", "--port", "eighty"], "mwh docs: argument --port: invalid int value: 'eighty'"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(env, warehouse, args, expected):
    line = one_line(mwh(env, *args), 2)
    assert expected in line, line
    assert "--start-time" not in line  # MetricFlow's own option names never reach the user


def test_date_checks_come_before_anything_is_touched(env):
    """A bad --date of ``mwh run`` is refused before the demo, Airflow or the run lock."""
    one_line(mwh(env, "run", "--date", "2026-02-30"), 2)
    assert not Path(env["MWH_DATA_DIR"]).exists()


def test_a_bad_setting_is_one_line_naming_it_and_where_to_fix_it(env):
    line = one_line(mwh(env | {"MWH_SCHEDULE": "nightly"}, "settings"), 2)
    assert line.startswith("mwh settings: configuration error: MWH_SCHEDULE='nightly' is not")
    assert f"{env['MWH_PROJECT_DIR']}/.env" in line and "`mwh settings`" in line


def test_a_broken_env_file_line_is_named_by_file_and_line(env):
    dotenv = Path(env["MWH_PROJECT_DIR"]) / ".env"
    dotenv.write_text("# settings\nMWH_REPORTING_CURRENCY=USD\nthis is not a setting\n")
    line = one_line(mwh(env, "settings"), 2)
    assert f"{dotenv}, line 3: expected KEY=VALUE" in line


def test_rollback_without_kept_versions_is_one_line(env):
    line = one_line(mwh(env, "rollback", "--to", "20261121"), 1)
    assert line.startswith("mwh rollback: rollback failed, nothing was changed: ")
    assert "`mwh rollback --list`" in line


def test_a_dbt_project_that_cannot_be_parsed_is_named(env, warehouse):
    """No manifest and no dbt project where MWH_PROJECT_DIR points: dbt cannot write one."""
    line = one_line(mwh(env, "metric", "revenue"), 1)
    assert line.startswith(f"mwh metric: dbt could not parse {env['MWH_PROJECT_DIR']}/dbt_project")
    assert "run `mwh dbt-parse` to see dbt's own error" in line


def test_a_serving_file_that_is_no_database_is_named(env):
    path = Path(env["MWH_DATA_DIR"]) / "warehouse" / "warehouse.duckdb"
    path.parent.mkdir(parents=True)
    path.write_text("date,orders\n2026-11-21,3\n")  # a CSV saved over it
    line = one_line(mwh(env, "query", "select 1"), 1)
    assert line.startswith(f"mwh query: cannot open {path}: ")
    assert "DuckDB file" in line


def test_audiences_check_names_the_file_and_the_field(env):
    import shutil

    repo = Path(__file__).resolve().parents[2] / "dbt_project"
    project = Path(env["MWH_PROJECT_DIR"]) / "dbt_project"
    shutil.copytree(repo / "models", project / "models")
    shutil.copy(repo / "dbt_project.yml", project / "dbt_project.yml")
    shutil.copytree(repo / "audiences", project / "audiences")
    done = mwh(env, "audiences", "check")
    assert done.returncode == 0, done.stderr
    for path in (repo / "audiences").glob("*.yml"):
        assert f"ok  {path.stem}" in done.stdout
    bad = project / "audiences" / "bad.yml"
    bad.write_text("name: bad\ndescription: x\nchannel: email\nfilter: churn_score > 1\n")
    line = one_line(mwh(env, "audiences", "check"), 1)
    assert f"{bad}: field 'filter': unknown column 'churn_score'" in line, line


def test_dbt_parse_shows_dbts_own_error_above_its_line(env):
    """The line says "fix the model or YAML dbt names above": dbt's error must be above it."""
    project = Path(env["MWH_PROJECT_DIR"]) / "dbt_project"
    (project / "models").mkdir(parents=True)
    real = Path(__file__).resolve().parents[2] / "dbt_project"
    (project / "profiles.yml").write_text((real / "profiles.yml").read_text("utf-8"), "utf-8")
    (project / "dbt_project.yml").write_text(
        "name: broken\nversion: '1.0'\nconfig-version: 2\nprofile: marketing_warehouse\n", "utf-8"
    )
    (project / "models" / "_broken.yml").write_text(
        "version: 2\nmodels:\n  - name: orders\n    columns: {not: a list}\n", "utf-8"
    )
    done = mwh(env, "dbt-parse")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    *dbt_output, line = done.stderr.strip().splitlines()
    assert line.startswith("mwh dbt-parse: dbt parse failed (exit code 2)"), line
    assert "_broken.yml" in "\n".join(dbt_output), done.stderr


def test_mwh_dbt_runs_dbt_on_the_engine_of_mwh_engine(env, dbt_manifest):
    """`mwh dbt` is dbt with the pipeline's environment; the Spark target builds every model the
    DuckDB target builds: its model list against the DuckDB target's manifest."""
    import json

    root = Path(__file__).resolve().parents[2]
    env = env | {"MWH_PROJECT_DIR": str(root), "MWH_ENGINE": "spark"}  # the real dbt project
    done = mwh(env, "dbt", "ls", "--resource-type", "model", "--output", "name", "-q")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    on_spark = set(done.stdout.split())
    nodes = json.loads(dbt_manifest.read_text("utf-8"))["nodes"].values()
    on_duckdb = {n["name"] for n in nodes if n["resource_type"] == "model"}
    assert {"fct_orders", "dim_customers", "audience_members"} <= on_duckdb
    assert on_spark == on_duckdb
    assert one_line(mwh(env, "dbt"), 2).startswith("mwh dbt: no dbt command given")
