"""Ingest: landed exports in, typed raw Parquet and quarantine out.

Owns the source contracts (``contracts/*.yml`` and their parser), the file formats a tool
exports (CSV dialects, Excel, JSON), extraction and typing of values, the quarantine's reasons and
schema, the ISO 4217 list, and the loads: which landed files a run reads, the load ledger and the
raw partition each file becomes. A new source, a new column rule or a new reason goes here.

May import: config, duck, layout.
"""
