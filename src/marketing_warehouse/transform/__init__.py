"""Transform: the dbt project (``dbt_project/``) inside Airflow through astronomer-cosmos.

Owns the dbt task groups (one watched ``dbt build`` per stage with a task per model, one task
per model, or one bare ``dbt build``), the manifest they render from, and running dbt outside
Airflow. Models, macros and dbt tests live in ``dbt_project/``; how Airflow runs them goes here.

May import: config, layout, airflow_env.
"""
