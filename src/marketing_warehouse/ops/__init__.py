"""Ops: running the warehouse day to day.

Owns failure alerts (e-mail, webhook), the end-of-run summary and the HTML run report, the run
lock (one run at a time), and erasure of a person (with ``identity``, the one normalisation of
e-mail and phone that dbt's macros share). What an operator is told, and jobs an operator
starts, go here.

May import: config, duck, layout, ingest, quality, serve.
"""
