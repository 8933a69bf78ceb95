"""dbt docs generated from a real build, and ``mwh docs`` serving them with GX data docs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from marketing_warehouse.config import load_settings
from marketing_warehouse.serve.docs import (
    dbt_docs_dir,
    docs_version,
    generate_dbt_docs,
    gx_docs_dir,
)

pytestmark = pytest.mark.integration
SRC = Path(__file__).resolve().parents[2] / "src"


def test_dbt_docs_are_generated_from_the_build(dbt_built):
    index = generate_dbt_docs(dbt_built, dict(os.environ))
    assert index == dbt_docs_dir(dbt_built) / "index.html" and index.exists()
    catalog = json.loads((index.parent / "catalog.json").read_text())
    assert "model.marketing_warehouse.kpi_daily" in catalog["nodes"]
    manifest = json.loads((index.parent / "manifest.json").read_text())
    overview = manifest["docs"]["doc.marketing_warehouse.__overview__"]["block_contents"]
    assert overview.startswith("# Marketing warehouse") and "kpi_daily" in overview
    assert "__overview__" in index.read_text()  # the page dbt docs open on

    # the next night, with the same project, keeps them; a changed project generates them again
    generated = index.stat().st_mtime_ns
    assert generate_dbt_docs(dbt_built, dict(os.environ)) == index
    assert index.stat().st_mtime_ns == generated
    # the same project on another data folder is another version: the docs show where the
    # sources read
    moved = replace(dbt_built, data_dir=dbt_built.data_dir.parent / "elsewhere")
    assert docs_version(moved) != docs_version(dbt_built)
    dbt_built.layout.dbt_docs_version.write_text("a project of another version\n")
    assert generate_dbt_docs(dbt_built, dict(os.environ)) == index
    assert index.stat().st_mtime_ns > generated
    assert dbt_built.layout.dbt_docs_version.read_text().strip() == docs_version(dbt_built)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def test_mwh_docs_serves_dbt_and_gx_docs_on_loopback(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MWH_")} | {
        "MWH_DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": str(SRC),
    }
    settings = load_settings(env)
    dbt_docs = dbt_docs_dir(settings)
    dbt_docs.mkdir(parents=True)
    (dbt_docs / "index.html").write_text("<html>dbt docs index</html>")
    (dbt_docs / "manifest.json").write_text("{}")
    gx_site = gx_docs_dir(settings)
    gx_site.mkdir(parents=True)
    (gx_site / "index.html").write_text("<html>gx data docs index</html>")

    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mwh"), "docs", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()
        assert line.startswith("Serving docs on http://127.0.0.1:"), line + server.stderr.read()
        base = line.split()[3].rstrip("/")
        status, body = get(base + "/")
        assert status == 200 and 'href="/dbt/"' in body and 'href="/gx/"' in body
        assert get(base + "/dbt/") == (200, "<html>dbt docs index</html>")
        assert get(base + "/dbt") == (200, "<html>dbt docs index</html>")  # redirected
        assert get(base + "/dbt/manifest.json") == (200, "{}")
        assert get(base + "/gx/") == (200, "<html>gx data docs index</html>")
        assert get(base + "/gx/../../warehouse/warehouse.duckdb")[0] == 404
        assert get(base + "/elsewhere")[0] == 404
    finally:
        server.terminate()
        server.wait(timeout=10)
