"""The nightly run on Apache Spark (``MWH_ENGINE=spark``, a local session): the DAG builds the
dbt project on Spark from the shared raw layer, its gates, predict and publish read Spark's
tables, and every table equals the one DuckDB builds, row for row.

The reference is the ``dbt_built`` fixture (ten demo days loaded and built on DuckDB stage by
stage, with the predictions between). Its data folder is copied and the DAG runs on it for the
same date with ``MWH_ENGINE=spark``: extraction finds every file already loaded, dbt builds
every model on Spark (Parquet under ``<data>/spark/tables/<schema>.db/<table>/``), and the
build database becomes DuckDB views over those tables (``transform.spark_catalog``), which the
gates, predict and publish read. The comparison (but for when the run loaded its date's files
again: ``LOAD_TIMES``): the same columns, the same kind of type (an
integer, a decimal with the same scale, a string ...) and the same rows, exactly (every decimal
to its last digit), except that a double may differ by 1e-12 of its value (the JVM's exp() is
not C's).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess

import duckdb
import pytest
from dag_runs import RUN, mwh_run, run_env

from marketing_warehouse.config import load_settings
from marketing_warehouse.serve.publish import PUBLISHED_MARTS

pytestmark = pytest.mark.integration

#: The schemas of the tables compared (staging models are views on DuckDB).
SCHEMAS = ("intermediate", "marts", "audit")
#: When the run loaded a row: the Spark run loads its date's files again (the other dates' rows
#: keep the time ``dbt_built`` loaded them).
LOAD_TIMES = ("loaded_at", "quarantined_at")
#: How far apart a double may be on the two engines: exp() and log() of the JVM and of C differ
#: in the last bit of some results (a p-value of 0.3669034411575341 and 0.36690344115753415).
DOUBLE_TOLERANCE = 1e-12


@pytest.fixture(scope="module")
def spark_run(dbt_built, tmp_path_factory):
    if shutil.which("java") is None:
        pytest.fail("Spark needs a Java runtime: `make test` installs openjdk-17-jre-headless")
    root = tmp_path_factory.mktemp("spark_run")
    shutil.copytree(dbt_built.data_dir, root / "data")
    env = run_env(root) | {"MWH_ENGINE": "spark"}
    con = duckdb.connect(str(dbt_built.build_path), read_only=True)
    try:
        ds = str(
            con.execute("select max(snapshot_date) from marts.dim_customer_segments").fetchone()[0]
        )
    finally:
        con.close()
    done = subprocess.run(mwh_run(ds), env=env, **RUN)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    assert f"Marketing warehouse run for {ds}: SUCCESS" in done.stdout
    settings = load_settings({"MWH_DATA_DIR": str(root / "data"), "MWH_ENGINE": "spark"})
    return settings, done.stdout


def _kind(duckdb_type: str) -> str:
    """The kind of a column type: integers are one kind, a decimal keeps its scale (sums widen
    the precision differently on the two engines; the digits kept are the same)."""
    if duckdb_type in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"):
        return "integer"
    decimal = re.fullmatch(r"DECIMAL\(\d+,(\d+)\)", duckdb_type)
    return f"decimal(scale {decimal.group(1)})" if decimal else duckdb_type


def _relations(con, catalog: str, where: str) -> set[str]:
    return {
        f"{schema}.{name}"
        for schema, name in con.execute(
            "select table_schema, table_name from information_schema.tables "
            f"where table_catalog = '{catalog}' and {where}"
        ).fetchall()
    }


def _types(con, catalog: str, relation: str) -> dict[str, str]:
    schema, name = relation.split(".")
    return dict(
        con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_catalog = ? and table_schema = ? and table_name = ?",
            [catalog, schema, name],
        ).fetchall()
    )


def _rows_apart(con, ours: str, theirs: str, columns: list[str], doubles: list[str]) -> list:
    """The rows of ``ours`` and ``theirs`` that differ other than by ``DOUBLE_TOLERANCE`` in a
    double column (the rows paired in the order of their other columns, then of their doubles
    to ten digits)."""

    def key(row):
        return tuple(
            (0, "") if v is None else (1, float(f"{v:.10g}") if c in doubles else v)
            for c, v in zip(columns, row, strict=True)
        )

    quoted = ", ".join(f'"{c}"' for c in columns)
    sides = [
        sorted(con.execute(f"select {quoted} from {relation}").fetchall(), key=key)
        for relation in (ours, theirs)
    ]
    if len(sides[0]) != len(sides[1]):
        return [f"{len(sides[0])} rows on DuckDB, {len(sides[1])} on Spark"]
    apart = []
    for a_row, b_row in zip(*sides, strict=True):
        for column, a, b in zip(columns, a_row, b_row, strict=True):
            close = (
                column in doubles
                and a is not None
                and b is not None
                and math.isclose(a, b, rel_tol=DOUBLE_TOLERANCE, abs_tol=DOUBLE_TOLERANCE)
            )
            if a != b and not close:
                apart.append((column, a, b))
    return apart[:10]


def _differences(
    con, pairs: dict[str, tuple[str, str]], ignore: tuple[str, ...] = ()
) -> tuple[dict, int]:
    """``{name: (DuckDB relation, Spark relation)}`` compared but for the columns ``ignore``:
    what differs, and the rows."""
    differences, compared_rows = {}, 0
    for name, (ours, theirs) in sorted(pairs.items()):
        types, spark_types = (
            {c: t for c, t in _types(con, *r.split(".", 1)).items() if c not in ignore}
            for r in (ours, theirs)
        )
        kinds = {c: _kind(t) for c, t in types.items()}
        spark_kinds = {c: _kind(t) for c, t in spark_types.items()}
        if kinds != spark_kinds:
            differences[name] = {
                c: (kinds.get(c), spark_kinds.get(c))
                for c in kinds.keys() | spark_kinds.keys()
                if kinds.get(c) != spark_kinds.get(c)
            }
            continue
        rows = con.execute(f"select count(*) from {ours}").fetchone()[0]
        columns = ", ".join(f'"{c}"' for c in types)
        only = [
            con.execute(
                f"select count(*) from (select {columns} from {a} except all select {columns} from {b})"
            ).fetchone()[0]
            for a, b in ((ours, theirs), (theirs, ours))
        ]
        if only != [0, 0]:
            doubles = [c for c, t in types.items() if t == "DOUBLE"]
            found = _rows_apart(con, ours, theirs, list(types), doubles)
            if found:
                differences[name] = (
                    f"{only[0]} rows only on DuckDB, {only[1]} only on Spark of {rows}: {found}"
                )
        compared_rows += rows
    return differences, compared_rows


def _attach(con, **files) -> None:
    for name, path in files.items():
        con.execute(f"attach '{path}' as {name} (read_only)")


def test_the_dag_runs_on_spark_and_reads_spark_tables(spark_run):
    settings, stdout = spark_run
    # every dbt stage built on Spark (its tables are Parquet folders), and the build database
    # the gates and publish read is views over them
    assert re.search(r"ok   dbt_segments\.dbt_producer_watcher", stdout)
    warehouse = settings.layout.spark_warehouse
    assert (warehouse / "marts.db" / "fct_orders").is_dir()
    con = duckdb.connect()
    try:
        _attach(con, spark=settings.build_path)
        kinds = dict(
            con.execute(
                "select table_type, count(*) from information_schema.tables "
                "where table_catalog = 'spark' group by 1"
            ).fetchall()
        )
    finally:
        con.close()
    assert set(kinds) == {"VIEW"} and kinds["VIEW"] > 40
    for gate in ("raw", "staging", "marts"):
        assert re.search(rf"\n  {gate}\s+(PASS|WARN)", stdout), gate


def test_every_table_built_on_spark_equals_duckdb(spark_run, dbt_built):
    settings, _ = spark_run
    schemas = ", ".join(f"'{s}'" for s in SCHEMAS)
    con = duckdb.connect()
    try:
        _attach(con, duck=dbt_built.build_path, spark=settings.build_path)
        expected = _relations(
            con, "duck", f"table_type = 'BASE TABLE' and table_schema in ({schemas})"
        )
        views = _relations(con, "duck", f"table_type = 'VIEW' and table_schema in ({schemas})")
        on_spark = _relations(con, "spark", f"table_schema in ({schemas})")
        # every table, and the views the gates read (tables on Spark: dbt_project.yml)
        assert expected <= on_spark and on_spark - expected <= views, on_spark ^ expected
        differences, compared_rows = _differences(
            con, {t: (f"duck.{t}", f"spark.{t}") for t in expected}, LOAD_TIMES
        )
    finally:
        con.close()
    assert differences == {}
    # the comparison saw the marts with rows, not only empty tables
    assert compared_rows > 1000


def test_the_published_marts_are_those_of_duckdb(spark_run, dbt_built):
    """What BI tools see after the Spark run: every published mart as DuckDB builds it."""
    settings, _ = spark_run
    con = duckdb.connect()
    try:
        _attach(con, duck=dbt_built.build_path, served=settings.warehouse_path)
        differences, compared_rows = _differences(
            con, {m: (f"duck.marts.{m}", f"served.marts.{m}") for m in PUBLISHED_MARTS}
        )
    finally:
        con.close()
    assert differences == {}
    assert compared_rows > 1000


def test_an_erasure_takes_the_person_out_of_the_spark_tables(spark_run):
    """`mwh erase` rewrites every Spark Parquet file that holds the person; Spark reads the
    rewritten tables. Last in the module: it changes the run's data."""
    from marketing_warehouse.ops.erasure import erase

    settings, _ = spark_run
    con = duckdb.connect(str(settings.build_path), read_only=True)
    try:
        (person,) = con.execute(
            "select customer_id from marts.fct_orders where customer_id is not null "
            "order by customer_id limit 1"
        ).fetchone()
        orders = con.execute("select count(*) from marts.fct_orders").fetchone()[0]
    finally:
        con.close()
    result = erase(settings, customer=person)
    assert any(key.startswith("spark:marts.") for key in result.warehouse_rows), result
    con = duckdb.connect()
    try:
        _attach(con, spark=settings.build_path)
        left = {
            f"{schema}.{table}": con.execute(
                f'select count(*) from spark."{schema}"."{table}" where customer_id = ?', [person]
            ).fetchone()[0]
            for schema, table in con.execute(
                "select table_schema, table_name from information_schema.columns "
                "where table_catalog = 'spark' and column_name = 'customer_id'"
            ).fetchall()
        }
        remaining = con.execute("select count(*) from spark.marts.fct_orders").fetchone()[0]
    finally:
        con.close()
    assert left and set(left.values()) == {0}, left
    assert remaining < orders
    # Spark itself reads the rewritten files (their stale checksum files are gone)
    from marketing_warehouse.transform.dbt_tasks import run_dbt

    shown = run_dbt(
        settings,
        ["show", "--inline", "select count(*) as n from marts.fct_orders", "--output", "json"],
        dict(os.environ),
    )
    assert shown.returncode == 0, shown.stdout[-3000:]
    assert re.search(rf'"n": {remaining}\b', shown.stdout), shown.stdout[-2000:]
