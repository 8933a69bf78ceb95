"""Quality: the GX gates between the stages (raw, staging, marts).

Owns running the committed suites of ``expectations/`` on a stage's new rows, the checks computed
here beside GX (row conservation, quarantined shares, the landing scan), the validation results
written to the run folder and to ``audit.validation_results``, ``GateFailed``, which stops a
run, and GX's data docs made to work offline (``data_docs``: their scripts and styles served from
the site). A new threshold goes into ``expectations/``; a new kind of check goes here.

May import: config, duck, layout, ingest.
"""
