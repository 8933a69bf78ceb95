"""Serve: the audited marts to their readers.

Owns publishing (the atomic swap of the serving DuckDB file, numbered versions, pinning and
rollback), the PostgreSQL serving target moved in the same unit, the MetricFlow semantic layer and
its CLI, the BI query pack (``bi_queries/*.sql``), Superset (the BI tool: its start, and the
dashboards as code in ``superset_bundle``) and the docs server (dbt docs, GX data docs). What
readers see, and how it reaches them, goes here.

May import: config, duck, layout, airflow_env, ingest, quality, transform.
"""
