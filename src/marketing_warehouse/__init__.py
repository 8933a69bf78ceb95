"""Marketing data warehouse: extract SaaS exports, gate them, build trusted marts, publish.

The sub-packages follow the flow: ``ingest`` (landed files to raw Parquet) -> ``quality`` (GX gates)
-> ``transform`` (dbt through Cosmos) -> ``serve`` (DuckDB file, PostgreSQL, semantic layer, BI),
with ``ops`` (alerts, summary, report, run lock, erasure) around them and ``tools`` (benchmark,
demo data) beside them. The top level holds what ties them together: ``config`` (settings),
``duck`` (bounded DuckDB connections), ``airflow_env`` (the environment and pool every task runs
with), ``pipeline`` (the stages the DAG calls) and ``cli`` (``mwh``). Each sub-package's
docstring says what it owns and what it may import; ``tests/unit/test_package_imports.py``
holds them to it and to no import cycles.
"""

__version__ = "0.1.0"
