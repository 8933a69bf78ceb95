"""Tools: the benchmark and the demo data generator; not part of a nightly run.

``demo`` and ``demo_marketing`` write deterministic exports in each tool's real layout into
landing folders; ``bench`` times the nightly run, dbt alone, DuckDB's floor and extraction. Only
the command line (``mwh demo``, ``mwh bench``) and the tests use them; no runtime module imports
them.

May import: config, duck, layout, airflow_env, ingest, quality, transform, serve, ops, pipeline.
"""
