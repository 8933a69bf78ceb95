"""JSON-lines exports read by DuckDB's JSON parser into the table the typing step reads.

``formats.json_to_csv`` defines what a JSON-lines file means: one object per line (lines end at
"\\n", "\\r\\n" or "\\r", as Python reads text), nested objects flattened with dots, keys
spelt as the first matching key seen (``normalise_header``), each value as ``formats._cell``
writes it, a line that is not a JSON object quarantined as ``malformed_row`` with the json
module's message, a value holding NUL characters as ``nul_bytes``. This module gives the same
rows without a Python object per line: DuckDB splits the file into lines, checks them
(``json_valid``, ``json_type``), flattens them (``json_keys``, ``json_extract``) and turns every
value that DuckDB renders exactly as ``_cell`` does into text.

The lines DuckDB cannot settle alone are handed to the json module one by one, and their values
join DuckDB's: lines it does not accept or that are not objects (the json module gives the
reason and decides, since DuckDB's parser also accepts trailing commas and ``nan``), lines with a
trailing comma or a number of 16 digits or more (exact in Python, a double in DuckDB), and
objects holding an array, a non-finite or a very large or small number, or two values under one
flattened name. A file whose keys the CSV path would read differently (a key holding a
delimiter, a quote or a line break, no key naming a required column, a line of 10 MB or more)
is converted by ``json_to_csv`` instead (``None``), so either way the rows are the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from marketing_warehouse.ingest.contracts import Contract, normalise_header
from marketing_warehouse.ingest.formats import (
    DELIMITERS,
    MAX_LINE_SIZE,
    ROW_COLUMN,
    PreReject,
    _cell,
    _flatten,
    _same_keys,
    parse_json_line,
)
from marketing_warehouse.ingest.quarantine import Reason

#: Characters that make a key read differently through the CSV path's header: its delimiters,
#: the quote, line breaks, NUL.
_KEY_CHARACTERS = (*DELIMITERS, '"', "\r", "\n", "\x00")
#: Doubles DuckDB renders as Python's ``repr`` does (shortest round trip, no exponent), and
#: whole numbers it converts exactly (below 2^53).
_DOUBLE_TEXT = (
    "case when abs(d) < 9007199254740992 and d = floor(d) then cast(cast(d as bigint) as varchar)"
    " when abs(d) >= 0.0001 and abs(d) < 1e16 then cast(d as varchar) end"
)

_WORK_TABLES = (
    "json_lines",
    "python_lines",
    "json_objects",
    "json_frontier",
    "json_next",
    "json_leaves",
    "json_names",
    "json_values",
)


def landed_table(
    con: duckdb.DuckDBPyConnection, source: Path, contract: Contract
) -> tuple[list[str], list[PreReject]] | None:
    """Create the temporary table ``landed`` (``_row_number``, ``_seq``, ``c0`` = the line
    number as text, ``c1``… = the values under each flattened key, in order of first appearance)
    and an empty ``reject_errors`` from the plain UTF-8 JSON-lines file ``source``; returns the
    header (``__source_row`` and the keys) and the lines quarantined, or None when the file
    must go through ``json_to_csv``."""
    try:
        con.execute(
            """
            create temp table json_lines as
            select unnest(generate_series(1, len(lines))) as line_no, unnest(lines) as line
            from (select string_split(
                    replace(replace(content, chr(13) || chr(10), chr(10)), chr(13), chr(10)),
                    chr(10)) as lines
                  from read_text(?))
            """,
            [str(source)],
        )
        if con.execute(
            f"select coalesce(max(strlen(line)), 0) >= {MAX_LINE_SIZE} from json_lines"
        ).fetchone()[0]:
            return None
        # lines the json module settles: not an object for DuckDB, or where the parsers may differ
        con.execute(
            r"""
            create temp table python_lines as
            select line_no from json_lines
            where case when json_valid(line) then json_type(line) <> 'OBJECT' else true end
                or regexp_matches(line, ',\s*[\]}]') or regexp_matches(line, '[0-9]{16}')
            """
        )
        con.execute(
            "create temp table json_objects as select line_no, line from json_lines "
            "where line_no not in (select line_no from python_lines)"
        )
        _flatten_objects(con)
        con.execute(
            """
            insert into python_lines
            select distinct line_no from json_leaves where for_python
            union
            select line_no from json_leaves group by line_no, name having count(*) > 1
            """
        )
        con.execute("delete from json_leaves where line_no in (select line_no from python_lines)")
        rejects = _python_lines(con)
        # keys match as headers do: each spelt as the first matching key seen, in file order
        first_seen = dict(
            con.execute(
                "select name, min(list_concat([line_no], ord)) from json_leaves group by name"
            ).fetchall()
        )
        names = list(first_seen)
        if any(any(c in name for c in _KEY_CHARACTERS) or name == ROW_COLUMN for name in names):
            return None
        if not names:
            return None  # no records: as the CSV path words it
        spelling: dict[str, str] = {}
        for name in sorted(names, key=first_seen.__getitem__):
            spelling.setdefault(normalise_header(name), name)
        con.execute("create temp table json_names (name varchar, norm varchar, spelling varchar)")
        con.executemany(
            "insert into json_names values (?, ?, ?)",
            [(n, normalise_header(n), spelling[normalise_header(n)]) for n in names],
        )
        if len(spelling) == len(names):  # one spelling each: nothing to merge within a line
            con.execute(
                "create temp table json_values as "
                "select line_no, name as spelling, ord, text from json_leaves"
            )
        else:  # of two matching keys in one line, the first non-null value wins
            con.execute(
                """
                create temp table json_values as
                select line_no, spelling, min(ord) as ord,
                    first(text order by ord) filter (where text is not null) as text
                from json_leaves join json_names using (name) group by line_no, spelling
                """
            )
        rejects += _nul_lines(con)
        keys = [
            r[0]
            for r in con.execute(
                "select spelling from json_values group by spelling order by min(list_concat([cast(line_no as ubigint)], ord))"
            ).fetchall()
        ]
        header = [ROW_COLUMN, *keys]
        required = [c for c in contract.columns if c.required]
        if not keys or not all(any(c.matches(k) for k in keys) for c in required):
            return None  # rejected or empty: as the CSV path words it
        cells = ", ".join(
            f"first(nullif(text, '')) filter (where spelling = ${i}) as c{i}"
            for i in range(1, len(keys) + 1)
        )
        con.execute(
            f"""
            create temp table landed as
            select line_no as _row_number, row_number() over (order by line_no) as _seq,
                cast(line_no as varchar) as c0, * exclude (line_no)
            from (select line_no, {cells} from json_values group by line_no)
            order by line_no
            """,
            keys,
        )
        con.execute(
            "create temp table reject_errors (line ubigint, csv_line varchar, error_message varchar)"
        )
        return header, rejects
    finally:
        for table in _WORK_TABLES:
            con.execute(f"drop table if exists {table}")


def _pointer(key: str) -> str:
    """SQL: the JSON pointer (RFC 6901) of the member named by the SQL expression ``key``."""
    return f"'/' || replace(replace({key}, '~', '~0'), '/', '~1')"


def _flatten_objects(con: duckdb.DuckDBPyConnection) -> None:
    """``json_leaves`` (line, position, flattened name, text, whether the json module must
    convert the line) of the lines in ``json_objects``, one level of nesting at a time with
    DuckDB's scalar JSON functions (``json_keys``, ``json_extract``): ``position`` is the list
    of member indexes down to the value, so that sorting by it gives ``_flatten``'s order."""
    con.execute(
        f"""
        create temp table json_frontier as
        select line_no, [i] as ord, key as name, json_extract(line, {_pointer("key")}) as value
        from (
            select line_no, line, unnest(keys) as key, unnest(generate_series(1, len(keys))) as i
            from (select line_no, line, json_keys(line) as keys from json_objects)
        )
        """
    )
    con.execute(
        "create temp table json_leaves (line_no bigint, ord bigint[], name varchar, "
        "text varchar, for_python boolean)"
    )
    while con.execute("select count(*) from json_frontier").fetchone()[0]:
        con.execute(
            f"""
            insert into json_leaves
            with typed as (
                select line_no, ord, name, value, json_type(value) as type,
                    case when json_type(value) = 'DOUBLE' then cast(value as double) end as d
                from json_frontier where json_type(value) <> 'OBJECT'
            ),
            rendered as (
                select line_no, ord, name, type, value, {_DOUBLE_TEXT} as double_text from typed
            )
            select line_no, ord, name,
                case type
                    when 'VARCHAR' then value ->> '$'
                    when 'NULL' then null
                    when 'DOUBLE' then
                        case when regexp_matches(double_text, '^-?[0-9]{{1,3}}\\.[0-9]{{3}}$')
                            then double_text || '0' else double_text end
                    else cast(value as varchar) end as text,
                type = 'ARRAY' or (type = 'DOUBLE' and double_text is null) as for_python
            from rendered
            """
        )
        con.execute(
            f"""
            create temp table json_next as
            select line_no, list_append(ord, i) as ord, name || '.' || key as name,
                json_extract(value, {_pointer("key")}) as value
            from (
                select line_no, ord, name, value, unnest(keys) as key,
                    unnest(generate_series(1, len(keys))) as i
                from (select *, json_keys(value) as keys from json_frontier
                      where json_type(value) = 'OBJECT')
            )
            """
        )
        con.execute("drop table json_frontier")
        con.execute("alter table json_next rename to json_frontier")


def _python_lines(con: duckdb.DuckDBPyConnection) -> list[PreReject]:
    """Parse the lines in ``python_lines`` with the json module: a line that is not a JSON
    object is quarantined as ``json_to_csv`` words it; an object's flattened values join
    ``json_leaves``."""
    rows = con.execute(
        "select line_no, line from json_lines where line_no in (select line_no from python_lines)"
        " order by line_no"
    ).fetchall()
    rejects, leaves = [], []
    for number, line in rows:
        if not line.strip():
            continue
        value = parse_json_line(number, line)
        if isinstance(value, PreReject):
            rejects.append(value)
            continue
        for ord_, (name, item) in enumerate(_flatten(value).items()):
            leaves.append((number, [ord_], name, None if item is None else _cell(item)))
    if leaves:
        con.executemany("insert into json_leaves values (?, ?, ?, ?, false)", leaves)
    return rejects


def _nul_lines(con: duckdb.DuckDBPyConnection) -> list[PreReject]:
    """Lines with a value holding NUL characters (JSON ``\\u0000``) leave ``json_values`` and
    are quarantined as ``json_to_csv`` words it, naming the first such key."""
    numbers = [
        r[0]
        for r in con.execute(
            "select distinct line_no from json_values where contains(text, chr(0)) order by 1"
        ).fetchall()
    ]
    if not numbers:
        return []
    spelling = dict(con.execute("select distinct norm, spelling from json_names").fetchall())
    con.execute("delete from json_values where line_no in (select unnest(?))", [numbers])
    rejects = []
    for number, line in con.execute(
        "select line_no, line from json_lines where line_no in (select unnest(?)) order by 1",
        [numbers],
    ).fetchall():
        record = _same_keys(_flatten(json.loads(line)), dict(spelling))
        key = next(k for k, v in record.items() if "\x00" in _cell(v))
        raw = json.dumps(record, ensure_ascii=False, default=str)
        rejects.append(
            PreReject(
                number,
                raw[:10000],
                f"line {number}: key {key!r} holds NUL characters",
                Reason.NUL_BYTES,
            )
        )
    return rejects
