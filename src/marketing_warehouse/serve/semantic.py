"""The semantic layer: MetricFlow metrics (``dbt_project/models/semantic/``) queried with ``mf``.

``mwh metric revenue --grain month --by channel`` runs ``mf query`` against the *serving* file,
opened read-only, never the build file: ``mf`` gets its own profile whose DuckDB connection is
in-memory and attaches the serving file read-only under the catalog name the semantic manifest
was parsed with (the build file's, ``build``), so the SQL MetricFlow renders resolves to the
published marts and a running pipeline is neither blocked nor read mid-build.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from marketing_warehouse.config import Settings
from marketing_warehouse.transform.dbt_tasks import dbt_environment

GRAINS = ("day", "week", "month", "quarter", "year")


class MetricQueryError(RuntimeError):
    """The metric query cannot be run as asked (unknown dimension, nothing published yet)."""


def semantic_manifest(settings: Settings) -> dict:
    path = settings.dbt_project_dir / "target" / "semantic_manifest.json"
    return json.loads(path.read_text("utf-8"))


def qualified_dimensions(manifest: dict) -> dict[str, str]:
    """Bare dimension name -> ``<primary entity>__<dimension>`` as ``mf`` expects it."""
    names: dict[str, str] = {}
    for model in manifest.get("semantic_models", []):
        primary = [e["name"] for e in model.get("entities", []) if e.get("type") == "primary"]
        if not primary:
            continue
        for dimension in model.get("dimensions", []):
            names.setdefault(dimension["name"], f"{primary[0]}__{dimension['name']}")
    return names


def catalog_name(manifest: dict) -> str:
    """The DuckDB catalog the semantic models' relations were parsed with."""
    for model in manifest.get("semantic_models", []):
        database = (model.get("node_relation") or {}).get("database")
        if database:
            return database
    return "build"


def serving_profile(settings: Settings, folder: Path, catalog: str) -> Path:
    """A profiles.yml whose connection sees the serving file, read-only, as ``catalog``."""
    profile = {
        "marketing_warehouse": {
            "target": "serving",
            "outputs": {
                "serving": {
                    "type": "duckdb",
                    "path": ":memory:",
                    "threads": 1,
                    "attach": [
                        {
                            "path": str(settings.warehouse_path),
                            "alias": catalog,
                            "read_only": True,
                        }
                    ],
                }
            },
        }
    }
    target = folder / "profiles.yml"
    target.write_text(yaml.safe_dump(profile), "utf-8")
    return target


def mf_query_args(
    manifest: dict,
    metrics: list[str],
    grain: str = "day",
    by: list[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    limit: int | None = None,
) -> list[str]:
    """``mf query`` arguments for metrics over ``metric_time`` at ``grain``, grouped by ``by``."""
    if grain not in GRAINS:
        raise MetricQueryError(f"--grain {grain!r} is not one of {', '.join(GRAINS)}")
    known_metrics = {m["name"] for m in manifest.get("metrics", [])}
    unknown = [m for m in metrics if m not in known_metrics]
    if unknown:
        raise MetricQueryError(
            f"unknown metric(s) {', '.join(unknown)}; defined: {', '.join(sorted(known_metrics))}"
        )
    dimensions = qualified_dimensions(manifest)
    group_by = [f"metric_time__{grain}"]
    for name in by or []:
        if "__" in name:
            group_by.append(name)
        elif name in dimensions:
            group_by.append(dimensions[name])
        else:
            raise MetricQueryError(
                f"unknown dimension {name!r}; known: {', '.join(sorted(dimensions))}"
            )
    args = [
        "query",
        "--metrics",
        ",".join(metrics),
        "--group-by",
        ",".join(group_by),
        "--order",
        ",".join(group_by),
    ]
    if start:
        args += ["--start-time", start]
    if end:
        args += ["--end-time", end]
    if limit:
        args += ["--limit", str(limit)]
    return args


def run_metric_query(
    settings: Settings, mf_args: list[str], env: dict[str, str], csv: Path | None = None
) -> subprocess.CompletedProcess:
    """Run ``mf`` with ``mf_args`` against the serving file (read-only)."""
    if not settings.warehouse_path.exists():
        raise MetricQueryError(
            f"{settings.warehouse_path} does not exist yet: run the pipeline (make run) first"
        )
    manifest = semantic_manifest(settings)
    with tempfile.TemporaryDirectory(prefix="mwh-mf-") as folder:
        serving_profile(settings, Path(folder), catalog_name(manifest))
        # ``mf`` itself, minus its call to PyPI (see mf_cli)
        # ``--quiet``: no spinner frames or banners on stdout, only the result table
        args = [sys.executable, "-m", "marketing_warehouse.serve.mf_cli", *mf_args, "--quiet"]
        args += ["--csv", str(csv)] if csv else []
        return subprocess.run(
            args,
            cwd=settings.dbt_project_dir,
            env={**env, **dbt_environment(settings), "DBT_PROFILES_DIR": folder},
            capture_output=True,
            text=True,
        )


def mf_error(result: subprocess.CompletedProcess) -> str:
    """The one line that says why ``mf`` failed: its ``ERROR:`` line, else its last line."""
    lines = [line.strip() for line in (result.stdout + "\n" + result.stderr).splitlines()]
    errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")]
    if errors:
        return errors[0]
    rest = [line for line in lines if line]
    return rest[-1] if rest else f"exit code {result.returncode}"


def result_table(stdout: str) -> str:
    """``mf query``'s stdout as the result table alone: without the carriage-return frames a
    spinner draws, should one still write there."""
    return "".join(line.split("\r")[-1] + "\n" for line in stdout.splitlines() if line.strip())


def environment() -> dict[str, str]:
    from marketing_warehouse.airflow_env import TELEMETRY_OFF

    return {**os.environ, **TELEMETRY_OFF}
