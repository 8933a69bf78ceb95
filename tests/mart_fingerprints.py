"""Row-for-row fingerprints of the marts, to show that a refactor of the dbt project changes no
mart: build the project on demo data, hash every table's sorted rows, compare with a saved file.

    .venv/bin/python tests/mart_fingerprints.py build /tmp/fp --scale 0.01 --days 10 > before.json
    ... change the models ...
    .venv/bin/python tests/mart_fingerprints.py build /tmp/fp2 --scale 0.01 --days 10 > after.json
    .venv/bin/python tests/mart_fingerprints.py compare before.json after.json \
        --renamed customer_segments=dim_customer_segments

``fingerprints`` is importable by tests. A fingerprint is the MD5 of the table's rows (each row
cast to text, sorted), so it depends on the values and the row count, not on the order rows were
written in; the column names are hashed apart, so a rename of a column shows as a change too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from datetime import date
from pathlib import Path

import duckdb

#: Schemas whose tables are fingerprinted: what is published and what audits it.
SCHEMAS = ("marts", "audit")
#: Columns that record when a build ran, not what it computed: left out of the row hash.
RUN_TIME_COLUMNS = {"landed_at", "loaded_at", "quarantined_at"}


def fingerprints(db_path: Path, schemas: tuple[str, ...] = SCHEMAS) -> dict[str, dict]:
    """``{"<schema>.<table>": {"rows": n, "rows_md5": ..., "columns_md5": ...}}`` for every
    table and view of ``schemas`` in the DuckDB file ``db_path``."""
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        names = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in (select unnest(?)) order by all",
            [list(schemas)],
        ).fetchall()
        prints: dict[str, dict] = {}
        for schema, table in names:
            relation = f'"{schema}"."{table}"'
            columns = [
                c
                for (c,) in con.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = ? and table_name = ? order by ordinal_position",
                    [schema, table],
                ).fetchall()
            ]
            as_text = ", ".join(
                'coalesce(cast("' + c.replace('"', '""') + "\" as varchar), '\\N')" for c in columns
            )
            rows, rows_md5 = con.execute(
                "select count(*), md5(coalesce(string_agg(row_text, chr(10) order by row_text), ''))"
                f" from (select concat_ws(chr(31), {as_text}) as row_text from {relation})"
            ).fetchone()
            columns_md5 = hashlib.md5("|".join(columns).encode()).hexdigest()
            prints[f"{schema}.{table}"] = {
                "rows": rows,
                "rows_md5": rows_md5,
                "columns_md5": columns_md5,
            }
        return prints
    finally:
        con.close()


def build(root: Path, scale: float, days: int, end: date) -> Path:
    """Demo exports for ``days`` days up to ``end``, every source loaded per date, ``dbt build``;
    returns the build DuckDB file."""
    from marketing_warehouse.config import load_settings
    from marketing_warehouse.ingest.contracts import load_contracts
    from marketing_warehouse.ingest.extract import utc_now
    from marketing_warehouse.ingest.loads import load_source
    from marketing_warehouse.tools import demo
    from marketing_warehouse.transform.dbt_tasks import run_dbt

    # the caller's environment too: MWH_PROJECT_DIR builds another checkout's dbt project
    settings = load_settings({**os.environ, "MWH_DATA_DIR": str(root / "data")})
    demo.generate(settings.landing_dir, end, days, seed=1, scale=scale)
    for folder in sorted(settings.landing_dir.iterdir()):
        for contract in load_contracts():
            load_source(settings, contract, date.fromisoformat(folder.name), utc_now())
    env = dict(os.environ)
    result = run_dbt(settings, ["build", "--vars", f"{{snapshot_date: '{end}'}}"], env)
    if result.returncode != 0:
        raise SystemExit(result.stdout[-4000:])
    return settings.build_path


def compare(before: dict, after: dict, renamed: dict[str, str]) -> list[str]:
    """The differences between two fingerprint files, a table renamed ``old=new`` compared under
    its new name."""
    before = {_rename(k, renamed): v for k, v in before.items()}
    problems = [f"missing after: {k}" for k in sorted(set(before) - set(after))]
    problems += [f"new after: {k}" for k in sorted(set(after) - set(before))]
    for key in sorted(set(before) & set(after)):
        for field in ("rows", "rows_md5", "columns_md5"):
            if before[key][field] != after[key][field]:
                problems.append(f"{key}: {field} {before[key][field]} -> {after[key][field]}")
    return problems


def _rename(key: str, renamed: dict[str, str]) -> str:
    schema, _, table = key.partition(".")
    return f"{schema}.{renamed.get(table, table)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("build", help="build the demo data into FOLDER and print fingerprints")
    make.add_argument("folder", type=Path)
    make.add_argument("--scale", type=float, default=0.01)
    make.add_argument("--days", type=int, default=10)
    make.add_argument("--end", type=date.fromisoformat, default=date(2026, 11, 21))
    show = sub.add_parser("print", help="print the fingerprints of a DuckDB file")
    show.add_argument("database", type=Path)
    diff = sub.add_parser("compare", help="compare two fingerprint files; exit 1 on a difference")
    diff.add_argument("before", type=Path)
    diff.add_argument("after", type=Path)
    diff.add_argument("--renamed", action="append", default=[], metavar="OLD=NEW")
    args = parser.parse_args(argv)
    if args.command == "build":
        path = build(args.folder, args.scale, args.days, args.end)
        print(json.dumps(fingerprints(path), indent=1, sort_keys=True))
    elif args.command == "print":
        print(json.dumps(fingerprints(args.database), indent=1, sort_keys=True))
    else:
        renamed = dict(item.split("=", 1) for item in args.renamed)
        problems = compare(
            json.loads(args.before.read_text()), json.loads(args.after.read_text()), renamed
        )
        print("\n".join(problems) if problems else "identical")
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
