"""The dbt project keeps each rule in one place: one var for the FX look-back, shared column texts
as doc blocks, generic tests from the vendored dbt_utils (installed without a download)."""

from __future__ import annotations

import re
from collections import Counter

import yaml

from marketing_warehouse.config import load_settings


def test_the_fx_look_back_is_one_dbt_var_that_models_gates_and_bench_read():
    """dbt_project.yml's fx_lookback_days is the only place the FX look-back is written: the
    models use it through macros, the staging gate through {fx_lookback_days}, the benchmark's
    floor SQL through $fx_lookback_days."""
    from marketing_warehouse.tools.bench import FLOOR_SQL

    settings = load_settings({})
    assert isinstance(settings.dbt_var("fx_lookback_days"), int)
    project = settings.dbt_project_dir
    models = [
        p
        for p in [*project.glob("models/**/*"), *project.glob("macros/*.sql")]
        if p.is_file() and re.search(r"fx_rate|\brates?\b", p.read_text("utf-8"))
    ]
    literal = re.compile(r"7[- ]days? (?:look|older|before)|at most 7 days|7-day|-\s?8\b")
    offenders = [str(p) for p in models if literal.search(p.read_text("utf-8"))]
    offenders += ["expectations/gates.yml"] * bool(
        literal.search((settings.expectations_dir / "gates.yml").read_text("utf-8"))
    )
    assert offenders == []
    assert FLOOR_SQL.count("$fx_lookback_days") == 2
    assert "fx_lookback_days" in (project / "macros" / "reporting_currency.sql").read_text()


def test_dbt_packages_are_vendored_and_installed_without_a_download(tmp_path):
    """packages.yml names local packages only; a checkout without dbt_packages/ gets them from
    vendor/ by `dbt deps` (offline), and the project's own generic tests are dbt_utils'."""
    import shutil

    import yaml

    from marketing_warehouse.transform.dbt_tasks import install_packages, missing_packages

    settings = load_settings({})
    project = settings.dbt_project_dir
    packages = yaml.safe_load((project / "packages.yml").read_text())["packages"]
    assert packages == [{"local": "vendor/dbt_utils"}]
    vendored = yaml.safe_load((project / "vendor/dbt_utils/dbt_project.yml").read_text())
    assert vendored["name"] == "dbt_utils"
    assert "1.4.1" in (project / "vendor/README.md").read_text()
    assert not list((project / "macros").glob("test_*.sql"))  # no home-made generic tests

    copy = tmp_path / "checkout"
    shutil.copytree(settings.project_dir / "dbt_project", copy / "dbt_project", symlinks=True,
                    ignore=shutil.ignore_patterns("dbt_packages", "target", "logs"))  # fmt: skip
    fresh = load_settings({"MWH_PROJECT_DIR": str(copy), "MWH_DATA_DIR": str(tmp_path / "d")})
    assert missing_packages(fresh) == ["dbt_utils"]
    offline = {"PATH": "/usr/bin:/bin", "HTTPS_PROXY": "http://127.0.0.1:9", "HOME": str(tmp_path)}
    install_packages(fresh, offline)
    assert missing_packages(fresh) == []
    assert (copy / "dbt_project/dbt_packages/dbt_utils/macros/generic_tests").is_dir()


def test_a_column_text_used_by_several_models_is_a_doc_block():
    """No literal column description appears on three or more columns: shared texts live in
    models/_docs.md and are used as {{ doc('...') }}."""
    project = load_settings({}).dbt_project_dir
    texts: Counter[str] = Counter()
    for path in (project / "models").rglob("*.yml"):
        for model in (yaml.safe_load(path.read_text("utf-8")) or {}).get("models", []):
            for column in model.get("columns") or []:
                text = " ".join(str(column.get("description") or "").split())
                if text and "doc(" not in text:
                    texts[text] += 1
    assert [t for t, n in texts.items() if n >= 3] == []
    blocks = re.findall(r"{% docs (\w+) %}", (project / "models" / "_docs.md").read_text())
    used = " ".join(p.read_text("utf-8") for p in (project / "models").rglob("*.yml"))
    assert [b for b in blocks if f"doc('{b}')" not in used] == []


def test_dbt_outside_airflow_writes_the_target_folder_of_its_own_data_folder(tmp_path):
    """Two dbt commands on two data folders at once (the suite's two processes, a benchmark beside
    a test) never write the same files: run_dbt's target is the data folder's, and the manifest
    Cosmos renders from (the project's target/) is left as it was."""
    import os

    from marketing_warehouse.transform.dbt_tasks import manifest_path, run_dbt

    project_manifest = manifest_path(load_settings({}))
    before = project_manifest.stat().st_mtime_ns if project_manifest.exists() else None
    folders = []
    for name in ("one", "two"):
        settings = load_settings({"MWH_DATA_DIR": str(tmp_path / name)})
        result = run_dbt(settings, ["parse"], dict(os.environ))
        assert result.returncode == 0, result.stdout[-3000:]
        folders.append(settings.layout.dbt_target)
        assert (settings.layout.dbt_target / "manifest.json").exists()
    assert folders[0] != folders[1]
    after = project_manifest.stat().st_mtime_ns if project_manifest.exists() else None
    assert after == before


def test_dbt_docs_open_on_the_projects_overview(dbt_manifest):
    """dbt docs show ``doc.<project>.__overview__`` instead of the stock "Welcome!" page: the
    parsed manifest has it, every model it names exists and every mart folder is in it."""
    import json
    from pathlib import Path

    import dbt.task.docs

    manifest = json.loads(Path(dbt_manifest).read_text())
    doc = manifest["docs"].get("doc.marketing_warehouse.__overview__")
    assert doc, "no {% docs __overview__ %} block in the project"
    text = doc["block_contents"]
    assert "Welcome" not in text and text.startswith("# Marketing warehouse")
    models = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    named = set(re.findall(r"\b((?:kpi|dim|fct)_[a-z_]+)\b", text))
    assert {"kpi_daily", "fct_orders", "dim_customers"} <= named and named <= models, named - models
    marts = Path(load_settings().dbt_project_dir) / "models" / "marts"
    for folder in sorted(p.name for p in marts.iterdir() if p.is_dir()):
        assert f"`marts/{folder}`" in text, folder
    # the docs site dbt writes picks the project's __overview__ over dbt's own
    index = (Path(dbt.task.docs.__file__).parent / "index.html").read_text()
    assert 'n.docs["doc.dbt.__overview__"],a=o.filter(n.docs,{name:"__overview__"})' in index
