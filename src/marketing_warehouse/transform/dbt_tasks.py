"""dbt inside Airflow through astronomer-cosmos: one dbt build per stage, one visible task per model.

Rendering reads ``dbt_project/target/manifest.json`` when it exists (no ``dbt ls`` at every DAG
parse); ``mwh dbt-parse`` (run by ``make``) refreshes it when a model file is newer. By default
(``MWH_DBT_TASKS=watcher``, Cosmos' ``ExecutionMode.WATCHER``) each stage is one ``dbt build``
(models, then each model's tests before anything downstream) in one task, and each model and each
model's tests have a task that reports how the build went for them: a failing test fails that
model's test task and what depends on it. Every dbt task sits in the one-slot ``warehouse_writer``
pool, since DuckDB allows one writing process per file (a model's task runs dbt itself when it is
retried), and dbt runs as a subprocess: dbt-duckdb keeps its connection open for the life of the
process, which would lock the file against the gate that follows when tasks share a process (as
they do under ``airflow dags test``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from marketing_warehouse.airflow_env import WAREHOUSE_POOL
from marketing_warehouse.config import Settings

PROFILE_NAME = "marketing_warehouse"


def dbt_run_env(ds: str) -> dict[str, str]:
    """What a night's dbt commands read beside ``Settings.dbt_env``: the date dim_customer_segments
    snapshots (macro snapshot_date), the run's logical date ``ds`` (the DAG passes ``{{ ds }}``,
    which Airflow renders). An environment variable rather than a dbt var: dbt parses the whole
    project again when its ``--vars`` differ from the last parse's (every night), and only the
    files that read an environment variable when its value changes (DECISIONLOG "A night's fixed
    costs: each dbt stage parses what changed, dbt docs follow the project")."""
    return {"MWH_SNAPSHOT_DATE": ds}


def dbt_environment(settings: Settings) -> dict[str, str]:
    """What every dbt command reads from its environment: ``Settings.dbt_env`` (paths, engine)
    and ``MWH_AUDIENCES``, every audience definition validated and rendered for the engine
    (``transform.audiences.definitions_env``), computed when the command is prepared."""
    from marketing_warehouse.transform.audiences import DEFINITIONS_ENV, definitions_env

    return {
        **settings.dbt_env(),
        DEFINITIONS_ENV: definitions_env(settings.dbt_project_dir, settings.engine),
    }


def _task_env(settings: Settings) -> dict[str, str]:
    """The environment of a dbt task in the DAG (Airflow renders ``{{ ds }}``)."""
    return {**dbt_environment(settings), **dbt_run_env("{{ ds }}")}


#: The DAG's three dbt stages and what each builds (dbt selectors), for the DAG's task groups and
#: for any caller that runs the same stages without Airflow. The predict stage runs between the
#: marts and the segments: it reads fct_orders, and dim_customer_segments (and every model that
#: reads it, e.g. kpi_channel_coverage) joins its predictions. Together the stages build every
#: node once, and none reads a node of a later stage (tests/unit/test_dbt_stages.py checks both
#: on the manifest).
#: The segments and every model downstream of them: built after predict, left out of dbt_marts.
SEGMENTS_AND_DOWNSTREAM = "dim_customer_segments+"
DBT_STAGES = {
    "dbt_staging": ["path:models/staging", "path:models/audit"],
    "dbt_marts": [
        "path:seeds",
        "path:models/intermediate",
        "path:models/marts",
        "path:models/semantic",
    ],
    "dbt_segments": ["path:models/predictions", SEGMENTS_AND_DOWNSTREAM],
}
#: What a stage's selectors match but a later stage builds. No dbt test may read models of two
#: stages (Cosmos' watcher would wait in the earlier stage for a test its build never runs):
#: such checks are gate expectations (tests/unit/test_dbt_stages.py checks it).
DBT_STAGE_EXCLUDES = {"dbt_marts": [SEGMENTS_AND_DOWNSTREAM]}


def dbt_stage_args(stage: str) -> list[str]:
    """``--select ... [--exclude ...]`` of one stage, for a ``dbt build`` outside Airflow."""
    exclude = DBT_STAGE_EXCLUDES.get(stage, [])
    return ["--select", *DBT_STAGES[stage], *(["--exclude", *exclude] if exclude else [])]


def dbt_executable() -> Path:
    """The dbt installed beside this interpreter (the project's virtualenv)."""
    return Path(sys.executable).parent / "dbt"


def manifest_path(settings: Settings) -> Path:
    return settings.dbt_project_dir / "target" / "manifest.json"


def manifest_models(settings: Settings) -> list[dict]:
    """The model nodes of the manifest Cosmos renders from (``mwh dbt-parse`` writes it)."""
    import json

    path = manifest_path(settings)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run `mwh dbt-parse` (make does) first")
    nodes = json.loads(path.read_text("utf-8"))["nodes"].values()
    return [node for node in nodes if node["resource_type"] == "model"]


def missing_packages(settings: Settings) -> list[str]:
    """The packages of ``packages.yml`` not installed in ``dbt_packages/`` yet. Every one is a
    ``local:`` package vendored under ``vendor/`` (installed by name of its folder)."""
    import yaml

    project = settings.dbt_project_dir
    path = project / "packages.yml"
    if not path.exists():
        return []
    packages = (yaml.safe_load(path.read_text("utf-8")) or {}).get("packages") or []
    remote = [p for p in packages if "local" not in p]
    if remote:
        raise ValueError(f"{path}: {remote} would be downloaded; vendor them as local: packages")
    return [
        Path(p["local"]).name
        for p in packages
        if not (project / "dbt_packages" / Path(p["local"]).name / "dbt_project.yml").exists()
    ]


def install_packages(settings: Settings, env: dict[str, str]) -> None:
    """``dbt deps`` when a vendored package is not installed yet (a fresh checkout). Local
    packages only, so it works offline; Cosmos tasks (``install_deps=False``) then find them in
    ``dbt_packages/``."""
    if not missing_packages(settings):
        return
    subprocess.run(
        [str(dbt_executable()), "deps", "--project-dir", str(settings.dbt_project_dir)],
        cwd=settings.dbt_project_dir,
        env={**env, **dbt_environment(settings)},
        check=True,
        capture_output=True,
        text=True,
    )


def project_files(settings: Settings) -> list[Path]:
    """The files of the dbt project that define what it builds (not its target or packages
    folders), in a fixed order."""
    project = settings.dbt_project_dir
    files = [project / "dbt_project.yml", project / "profiles.yml", project / "packages.yml"]
    for folder in ("models", "macros", "seeds", "snapshots", "tests", "vendor"):
        files += sorted(p for p in (project / folder).rglob("*") if p.is_file())
    return [p for p in files if p.exists()]


def manifest_is_stale(settings: Settings) -> bool:
    manifest = manifest_path(settings)
    if not manifest.exists() or missing_packages(settings):
        return True
    built = manifest.stat().st_mtime
    return any(p.stat().st_mtime > built for p in project_files(settings))


def parse_project(settings: Settings, env: dict[str, str]) -> Path:
    """``dbt parse`` to (re)write the manifest Cosmos renders from (packages installed first)."""
    install_packages(settings, env)
    parsed = subprocess.run(
        [str(dbt_executable()), "parse", "--project-dir", str(settings.dbt_project_dir)],
        cwd=settings.dbt_project_dir,
        env={**env, **dbt_environment(settings)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if parsed.returncode != 0:  # dbt prints its errors on stdout: show them, not only the code
        sys.stderr.write(parsed.stdout)
        raise subprocess.CalledProcessError(parsed.returncode, parsed.args, parsed.stdout)
    return manifest_path(settings)


def dbt_task_group(
    group_id: str, select: list[str], settings: Settings, exclude: list[str] | None = None
):
    """The dbt models matched by ``select`` and not by ``exclude`` as Airflow tasks, by
    ``MWH_DBT_TASKS``:

    - ``watcher``: one ``dbt build`` of the stage (Cosmos' producer task) and one task per model
      and per model's tests that reports how dbt's build went for it (Cosmos'
      ``ExecutionMode.WATCHER`` sensors, rescheduled rather than deferred: no triggerer needed);
    - ``per_model``: one Cosmos task per model, each its own ``dbt build --select <model>``;
    - ``single``: one Cosmos ``dbt build`` task named ``group_id``.
    """
    from cosmos import (
        DbtTaskGroup,
        ExecutionConfig,
        ProfileConfig,
        ProjectConfig,
        RenderConfig,
    )
    from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior

    if settings.dbt_tasks == "single":
        return _single_build_task(group_id, select, settings, exclude or [])
    watcher = settings.dbt_tasks == "watcher"
    manifest = manifest_path(settings)
    has_manifest = manifest.exists()
    project = ProjectConfig(
        dbt_project_path=settings.dbt_project_dir,
        manifest_path=manifest if has_manifest else None,
        env_vars=_task_env(settings),
        install_dbt_deps=False,
        partial_parse=True,
    )
    profile = ProfileConfig(
        profile_name=PROFILE_NAME,
        target_name=settings.engine,
        profiles_yml_filepath=settings.dbt_project_dir / "profiles.yml",
    )
    execution = ExecutionConfig(
        execution_mode=ExecutionMode.WATCHER if watcher else ExecutionMode.LOCAL,
        invocation_mode=InvocationMode.SUBPROCESS,
        dbt_executable_path=dbt_executable(),
    )
    render = RenderConfig(
        select=select,
        exclude=exclude or [],
        # the watcher's build runs each model's tests before its children; the test tasks report them
        test_behavior=TestBehavior.AFTER_EACH if watcher else TestBehavior.BUILD,
        load_method=LoadMode.DBT_MANIFEST if has_manifest else LoadMode.DBT_LS,
        emit_datasets=False,
        enable_mock_profile=False,
        # a watcher sensor of a detached test waits for a status the build never reports (Cosmos
        # 1.15): there, a test of several models is reported with each of them
        should_detach_multiple_parents_tests=not watcher,
    )
    operator_args = {"pool": WAREHOUSE_POOL, "install_deps": False}
    if watcher:
        # A sensor that finds its model not built yet gives its slot back and looks again later
        # (reschedule), instead of deferring to a triggerer or holding the slot while it waits.
        operator_args |= {"deferrable": False, "mode": "reschedule", "poke_interval": 5}
    return DbtTaskGroup(
        group_id=group_id,
        project_config=project,
        profile_config=profile,
        execution_config=execution,
        render_config=render,
        operator_args=operator_args,
    )


def _single_build_task(group_id: str, select: list[str], settings: Settings, exclude: list[str]):
    """One ``dbt build --select <select> [--exclude <exclude>]``: models and their tests in
    dbt's own DAG order."""
    from cosmos import ProfileConfig
    from cosmos.constants import InvocationMode
    from cosmos.operators.local import DbtBuildLocalOperator

    task = DbtBuildLocalOperator(
        task_id=group_id,
        project_dir=str(settings.dbt_project_dir),
        profile_config=ProfileConfig(
            profile_name=PROFILE_NAME,
            target_name=settings.engine,
            profiles_yml_filepath=settings.dbt_project_dir / "profiles.yml",
        ),
        select=" ".join(select),
        exclude=" ".join(exclude) or None,
        env=_task_env(settings),
        append_env=True,
        install_deps=False,
        partial_parse=True,
        emit_datasets=False,
        dbt_executable_path=str(dbt_executable()),
        invocation_mode=InvocationMode.SUBPROCESS,
        pool=WAREHOUSE_POOL,
    )
    # Where this stage's last parse is kept for the next run: the folder Cosmos gives the task
    # group of the same name in the other modes (``<dag id>__<group id>``), so that a stage
    # starts from its last parse whichever mode ran it.
    owner = [task.dag_id] if task.has_dag() else []
    task.cache_dir = settings.layout.cosmos_cache / "__".join([*owner, group_id])
    return task


def ensure_source_files(settings: Settings) -> None:
    """The files dbt's sources read that a night may not have written yet, so that every source
    resolves with its columns: the predictions' zero-row schema files (before the first
    predict) and an empty erasure log (before the first erasure)."""
    from marketing_warehouse.predict.store import ensure_schema_files

    ensure_schema_files(settings)
    log = settings.layout.erasure_log
    if not log.exists():
        log.parent.mkdir(parents=True, exist_ok=True)
        log.touch()


def run_dbt(
    settings: Settings, args: list[str], env: dict[str, str], *, capture: bool = True
) -> subprocess.CompletedProcess:
    """Run one dbt command on the project (outside Airflow: ``mwh dbt``, tests and benchmarks).
    Its target folder is the data folder's own (unless ``args`` name one), so that dbt commands
    on two data folders at once never write the same files, nor the manifest Cosmos renders
    from. ``capture=False`` leaves dbt's output on this process's stdout and stderr."""
    settings.build_path.parent.mkdir(parents=True, exist_ok=True)
    install_packages(settings, env)
    ensure_source_files(settings)
    if "--target-path" not in args:
        target = warm_target(settings, settings.layout.dbt_target)
        args = [*args, "--target-path", str(target)]
    return subprocess.run(
        [str(dbt_executable()), *args, "--project-dir", str(settings.dbt_project_dir)],
        cwd=settings.dbt_project_dir,
        env={**env, **dbt_environment(settings)},
        capture_output=capture,
        text=True,
    )


def warm_target(settings: Settings, target: Path) -> Path:
    """A target folder of its own for a dbt command, started from the project's last parse
    (dbt then re-parses only what changed since: about half the time of a full parse)."""
    target.mkdir(parents=True, exist_ok=True)
    parsed = manifest_path(settings).parent / "partial_parse.msgpack"
    if parsed.exists():
        shutil.copy2(parsed, target / parsed.name)
    return target
