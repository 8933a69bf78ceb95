"""MetricFlow's ``mf`` command without its update check.

dbt-metricflow's CLI asks PyPI for a newer version of itself on every call (``update_checker``).
Nothing the project runs should call out, and offline machines would wait for the timeout, so
``mwh metric`` runs ``python -m marketing_warehouse.serve.mf_cli`` (this module) instead of ``mf``.
"""

from __future__ import annotations


def disable_update_check() -> None:
    import update_checker

    def no_lookup(package: str, include_prereleases: bool) -> dict:
        return {"success": False}

    update_checker.query_pypi = no_lookup


def main() -> None:
    disable_update_check()
    from dbt_metricflow.cli.main import cli

    cli(prog_name="mf")


if __name__ == "__main__":
    main()
