"""The latest-copy models' tables are rebuilt in full when the dbt project that built them changed.

The models that keep the latest copy of each record incrementally (the ones whose post-hook is
the ``delete_kept_copies_of_gone_files`` macro, ``dbt_project/macros/incremental.sql``) rank on
each night only the copies that night loaded; the rest of their rows were computed by the
project as it was when those rows were built. A new version of the project (a changed rule, a new
column, a fixed macro) must not leave rows of the old rule beside rows of the new one, so before
any dbt stage of a run the tables of those models are dropped when the project's files differ
from the ones that built them, and dbt builds them in full again (DECISIONLOG "Incremental
models: a night ranks its new copies against the kept ones"). The history models (segment and
audience snapshots, kept by snapshot date) are not among them: their past snapshots cannot be
rebuilt from the raw layer.

What built the tables is recorded in the build database itself (table
``main.latest_copy_definitions``), so a copy of the file carries it along.
"""

from __future__ import annotations

import hashlib
import logging

from marketing_warehouse import duck
from marketing_warehouse.config import Settings
from marketing_warehouse.transform.dbt_tasks import manifest_models, project_files

log = logging.getLogger(__name__)

#: The post-hook macro of every latest-copy model. dbt records it in the manifest; the macros
#: called only on incremental builds (``copies_to_rank``, ``kept_copies``) it may miss.
LATEST_COPY_MACRO = "macro.marketing_warehouse.delete_kept_copies_of_gone_files"
STATE_TABLE = "main.latest_copy_definitions"


def project_hash(settings: Settings) -> str:
    """SHA-256 over the dbt project's files (their paths and contents)."""
    digest = hashlib.sha256()
    root = settings.dbt_project_dir
    for path in project_files(settings):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def latest_copy_models(settings: Settings) -> dict[str, tuple[str, str]]:
    """``{model name: (schema, table)}`` of the latest-copy models, from the dbt manifest."""
    return {
        node["name"]: (node["schema"], node["alias"] or node["name"])
        for node in manifest_models(settings)
        if LATEST_COPY_MACRO in node["depends_on"]["macros"]
    }


def reset_stale(settings: Settings) -> list[str]:
    """Drop the latest-copy tables not built by the project as it is now; return their models.
    Before the first build this creates the build database and records the project that will
    build its tables."""
    settings.build_path.parent.mkdir(parents=True, exist_ok=True)
    current = project_hash(settings)
    models = latest_copy_models(settings)
    con = duck.connect(settings.duckdb_memory_limit, settings.build_path)
    try:
        con.execute(
            f"create table if not exists {STATE_TABLE} "
            "(model varchar primary key, project_hash varchar not null)"
        )
        built = dict(con.execute(f"select model, project_hash from {STATE_TABLE}").fetchall())
        existing = {
            (schema, table)
            for schema, table in con.execute(
                "select schema_name, table_name from duckdb_tables()"
            ).fetchall()
        }
        reset = []
        for model, (schema, table) in sorted(models.items()):
            if built.get(model) != current and (schema, table) in existing:
                con.execute(f'drop table "{schema}"."{table}"')
                reset.append(model)
        con.execute(f"delete from {STATE_TABLE}")
        for model in sorted(models):
            con.execute(f"insert into {STATE_TABLE} values (?, ?)", [model, current])
    finally:
        con.close()
    if reset:
        log.warning(
            "the dbt project changed since %s were built: dbt rebuilds them in full",
            ", ".join(reset),
        )
    return reset
