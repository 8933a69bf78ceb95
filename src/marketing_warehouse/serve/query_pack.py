"""The BI query pack: the SQL a dashboard runs, one file per chart in ``bi_queries/``.

Each file starts with comment headers: ``title``, ``requires`` (the tables it reads, comma
separated) and ``audience``: ``bi`` queries read ``marts`` only and run as the read-only reader
role; ``ops`` queries read ``audit`` and need a role that may (the reader role may not). The SQL is
the subset DuckDB and PostgreSQL share, so the same file runs on either serving target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

QUERIES_DIR = Path(__file__).with_name("bi_queries")
_HEADER = re.compile(r"^--\s*(\w+):\s*(.+?)\s*$")


@dataclass(frozen=True)
class BiQuery:
    name: str
    title: str
    requires: tuple[str, ...]
    audience: str
    sql: str


def load_queries(folder: Path = QUERIES_DIR) -> list[BiQuery]:
    queries = []
    for path in sorted(folder.glob("*.sql")):
        text = path.read_text("utf-8")
        headers = {}
        for line in text.splitlines():
            match = _HEADER.match(line)
            if not match:
                break
            headers[match.group(1)] = match.group(2)
        missing = {"title", "requires", "audience"} - headers.keys()
        if missing:
            raise ValueError(f"{path}: missing header(s) {sorted(missing)}")
        if headers["audience"] not in ("bi", "ops"):
            raise ValueError(f"{path}: audience must be bi or ops, not {headers['audience']!r}")
        queries.append(
            BiQuery(
                name=path.stem,
                title=headers["title"],
                requires=tuple(t.strip() for t in headers["requires"].split(",")),
                audience=headers["audience"],
                sql=text,
            )
        )
    return queries
