"""The same dbt project on Apache Spark (``MWH_ENGINE=spark``, a local session): every table it
builds from the shared raw layer equals the one DuckDB builds, row for row.

The reference is the ``dbt_built`` fixture (ten demo days built on DuckDB stage by stage, with
the predictions between); its data folder is copied and built again on Spark from the same raw
Parquet files and predictions, for the same snapshot date. Spark writes each table as Parquet
under ``<data>/spark/tables/<schema>.db/<table>/``; DuckDB reads those files and compares
them with its own tables: the same columns, the same kind of type (an integer, a decimal with the
same scale, a string ...) and the same rows, exactly (every decimal to its last digit), except
that a double may differ by 1e-12 of its value (the JVM's exp() is not C's).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil

import duckdb
import pytest

from marketing_warehouse.config import load_settings
from marketing_warehouse.transform.dbt_tasks import run_dbt

pytestmark = pytest.mark.integration

#: The schemas of the tables compared (staging models are views: Spark keeps no files for them).
SCHEMAS = ("intermediate", "marts", "audit")


@pytest.fixture(scope="module")
def spark_built(dbt_built, tmp_path_factory):
    if shutil.which("java") is None:
        pytest.fail("Spark needs a Java runtime: `make test` installs openjdk-17-jre-headless")
    root = tmp_path_factory.mktemp("spark_built")
    shutil.copytree(dbt_built.data_dir, root / "data")
    settings = load_settings({"MWH_DATA_DIR": str(root / "data"), "MWH_ENGINE": "spark"})
    con = duckdb.connect(str(settings.build_path), read_only=True)
    try:
        ds = str(
            con.execute("select max(snapshot_date) from marts.dim_customer_segments").fetchone()[0]
        )
    finally:
        con.close()
    built = run_dbt(
        settings, ["build", "--vars", json.dumps({"snapshot_date": ds})], dict(os.environ)
    )
    errors = [line for line in built.stdout.splitlines() if re.search(r"\b(ERROR|FAIL)\b", line)]
    assert built.returncode == 0, (errors[-20:], built.stdout[-3000:])
    return settings


def _kind(duckdb_type: str) -> str:
    """The kind of a column type: integers are one kind, a decimal keeps its scale (sums widen
    the precision differently on the two engines; the digits kept are the same)."""
    if duckdb_type in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"):
        return "integer"
    decimal = re.fullmatch(r"DECIMAL\(\d+,(\d+)\)", duckdb_type)
    return f"decimal(scale {decimal.group(1)})" if decimal else duckdb_type


def _tables(con, where: str) -> set[str]:
    return {
        f"{schema}.{name}"
        for schema, name in con.execute(
            "select table_schema, table_name from information_schema.tables "
            f"where table_type = 'BASE TABLE' and {where}"
        ).fetchall()
    }


#: How far apart a double may be on the two engines: exp() and log() of the JVM and of C differ
#: in the last bit of some results (a p-value of 0.3669034411575341 and 0.36690344115753415).
DOUBLE_TOLERANCE = 1e-12


def _rows_apart(con, table: str, spark: str, columns: list[str], doubles: list[str]) -> list:
    """The rows of ``table`` and of ``spark`` that differ other than by ``DOUBLE_TOLERANCE`` in
    a double column (the rows paired in the order of their other columns, then of their
    doubles to ten digits)."""

    def key(row):
        return tuple(
            (0, "") if v is None else (1, float(f"{v:.10g}") if c in doubles else v)
            for c, v in zip(columns, row, strict=True)
        )

    quoted = ", ".join(f'"{c}"' for c in columns)
    sides = [
        sorted(con.execute(f"select {quoted} from {relation}").fetchall(), key=key)
        for relation in (table, spark)
    ]
    if len(sides[0]) != len(sides[1]):
        return [f"{len(sides[0])} rows on DuckDB, {len(sides[1])} on Spark"]
    apart = []
    for ours, theirs in zip(*sides, strict=True):
        for column, a, b in zip(columns, ours, theirs, strict=True):
            close = (
                column in doubles
                and a is not None
                and b is not None
                and math.isclose(a, b, rel_tol=DOUBLE_TOLERANCE, abs_tol=DOUBLE_TOLERANCE)
            )
            if a != b and not close:
                apart.append((column, a, b))
    return apart[:10]


def test_every_table_built_on_spark_equals_duckdb(spark_built):
    warehouse = spark_built.layout.spark_warehouse
    schemas = ", ".join(f"'{s}'" for s in SCHEMAS)
    con = duckdb.connect(str(spark_built.build_path), read_only=True)
    try:
        expected = _tables(con, f"table_schema in ({schemas})")
        on_spark = {
            f"{schema}.{table.name}"
            for schema in SCHEMAS
            if (warehouse / f"{schema}.db").is_dir()
            for table in (warehouse / f"{schema}.db").iterdir()
            if table.is_dir()
        }
        assert on_spark == expected
        differences, compared_rows = {}, 0
        for table in sorted(on_spark):
            schema, name = table.split(".")
            files = warehouse / f"{schema}.db" / name
            spark = (
                f"read_parquet('{files}/**/*.parquet', hive_partitioning = true)"
                if any(files.rglob("*.parquet"))
                else None
            )
            types = dict(
                con.execute(
                    "select column_name, data_type from information_schema.columns "
                    "where table_schema = ? and table_name = ?",
                    [schema, name],
                ).fetchall()
            )
            rows = con.execute(f"select count(*) from {table}").fetchone()[0]
            if spark is None:  # Spark writes no file for a table without rows
                if rows:
                    differences[table] = f"{rows} rows on DuckDB, none on Spark"
                continue
            spark_types = dict(
                con.execute(
                    f"select column_name, column_type from (describe select * from {spark})"
                ).fetchall()
            )
            kinds = {c: _kind(t) for c, t in types.items()}
            spark_kinds = {c: _kind(t) for c, t in spark_types.items()}
            if kinds != spark_kinds:
                differences[table] = {
                    c: (kinds.get(c), spark_kinds.get(c))
                    for c in kinds.keys() | spark_kinds.keys()
                    if kinds.get(c) != spark_kinds.get(c)
                }
                continue
            columns = ", ".join(f'"{c}"' for c in types)
            only = [
                con.execute(
                    f"select count(*) from (select {columns} from {a} except all select {columns} from {b})"
                ).fetchone()[0]
                for a, b in ((table, spark), (spark, table))
            ]
            if only != [0, 0]:
                doubles = [c for c, t in types.items() if t == "DOUBLE"]
                found = _rows_apart(con, table, spark, list(types), doubles)
                if found:
                    differences[table] = (
                        f"{only[0]} rows only on DuckDB, {only[1]} only on Spark of {rows}: {found}"
                    )
            compared_rows += rows
    finally:
        con.close()
    assert differences == {}
    # the comparison saw the marts with rows, not only empty tables
    assert compared_rows > 1000
