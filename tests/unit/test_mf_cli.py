from __future__ import annotations

import pytest
import requests
import update_checker

from marketing_warehouse.serve.mf_cli import disable_update_check


def test_mf_runs_without_asking_pypi_for_updates(monkeypatch):
    monkeypatch.setattr(update_checker, "query_pypi", update_checker.query_pypi)

    def no_network(*args, **kwargs):
        pytest.fail(f"mf called out: {args}")

    monkeypatch.setattr(requests, "get", no_network)
    disable_update_check()
    checker = update_checker.UpdateChecker(bypass_cache=True)
    assert checker.check("dbt-metricflow", "0.0.1") is None
