"""The dbt stages partition the project: every model and seed is built by exactly one stage, and
no node reads a node of a later stage (the DAG runs the stages in ``DBT_STAGES`` order, with the
predict stage between the marts and the segments). Stages are resolved by dbt itself (``dbt ls``
with each stage's selectors and exclusions), dependencies read from the manifest."""

from __future__ import annotations

import json

import pytest
from stages import DBT_STAGES, stage_nodes

from marketing_warehouse.config import load_settings


@pytest.fixture(scope="module")
def resolved(tmp_path_factory, dbt_manifest) -> tuple[dict, dict[str, set[str]]]:
    """The manifest's nodes, and the models, seeds and tests of each stage (one ``dbt ls``
    per stage)."""
    settings = load_settings({"MWH_DATA_DIR": str(tmp_path_factory.mktemp("stages") / "data")})
    nodes = json.loads(dbt_manifest.read_text("utf-8"))["nodes"]
    return nodes, stage_nodes(settings, ("model", "seed", "test"))


def of_kind(nodes: dict, stages: dict[str, set[str]], kinds: tuple[str, ...]):
    return {
        stage: {k for k in keys if nodes[k]["resource_type"] in kinds}
        for stage, keys in stages.items()
    }


def test_every_model_is_in_exactly_one_stage_and_reads_no_later_stage(resolved):
    manifest_nodes, resolved_stages = resolved
    nodes = {
        key: node
        for key, node in manifest_nodes.items()
        if node["resource_type"] in ("model", "seed")
    }
    stages = of_kind(manifest_nodes, resolved_stages, ("model", "seed"))
    order = list(DBT_STAGES)
    stage_of: dict[str, str] = {}
    for stage, members in stages.items():
        for key in members:
            assert key not in stage_of, f"{key} is in {stage_of[key]} and in {stage}"
            stage_of[key] = stage
    assert set(stage_of) == set(nodes), set(nodes) ^ set(stage_of)
    for key, node in nodes.items():
        for parent in node["depends_on"].get("nodes", []):
            if parent in stage_of:
                assert order.index(stage_of[parent]) <= order.index(stage_of[key]), (
                    f"{key} ({stage_of[key]}) reads {parent} of the later {stage_of[parent]}"
                )
    segments = {nodes[key]["name"] for key in stages["dbt_segments"]}
    assert {"customer_predictions", "clv_model_parameters", "dim_customer_segments"} <= segments
    assert "kpi_channel_coverage" in segments  # it reads dim_customer_segments
    assert "fct_orders" in {nodes[key]["name"] for key in stages["dbt_marts"]}


def test_each_data_test_runs_once_in_the_stage_of_all_its_models(resolved):
    """Every test runs in one stage, the one that builds all the models it reads. A test of
    models of two stages (a relationship from a segments model to dim_customers) cannot be run:
    Cosmos' watcher shows it with each of its models, and the earlier stage's build would never
    run it, so that stage's test task would wait for it for ever. Such a check goes into the
    marts gate instead."""
    nodes, stages = resolved
    builds = of_kind(nodes, stages, ("model", "seed"))
    stage_of = {key: stage for stage, keys in builds.items() for key in keys}
    tests = of_kind(nodes, stages, ("test",))
    seen: dict[str, str] = {}
    for stage, keys in tests.items():
        for key in keys:
            assert key not in seen, f"{key} runs in {seen[key]} and in {stage}"
            seen[key] = stage
            parents = [p for p in nodes[key]["depends_on"]["nodes"] if p in stage_of]
            assert {stage_of[p] for p in parents} <= {stage}, (
                f"{key} runs in {stage}, its models in {sorted({stage_of[p] for p in parents})}"
            )
    data_tests = {k for k, n in nodes.items() if n["resource_type"] == "test"}
    assert set(seen) == data_tests, data_tests ^ set(seen)
