"""Transform: the dbt project (``dbt_project/``) inside Airflow through astronomer-cosmos.

Owns the dbt task groups (one watched ``dbt build`` per stage with a task per model, one task
per model, or one bare ``dbt build``), the manifest they render from, and running dbt outside
Airflow. Models, macros and dbt tests live in ``dbt_project/``; how Airflow runs them goes here.

Running dbt outside Airflow first makes sure the predictions' zero-row schema files exist
(``predict.store``), so that dbt's predictions source resolves on a build before any predict.

The tables of the models that keep the latest copy of each record are incremental; when the
dbt project changes, ``incremental`` drops them before the run's first dbt stage so that dbt
builds them in full again.

May import: config, layout, airflow_env, duck, predict.
"""
