-- Metabase keeps its own application data (users, questions, dashboards) beside Airflow's
-- metadata on the `postgres` service; runs once, when the volume is first initialised.
create database metabase;
