"""The dbt stages partition the project: every model and seed is built by exactly one stage, and
no node reads a node of a later stage (the DAG runs the stages in ``DBT_STAGES`` order, with the
predict stage between the marts and the segments). Stages are resolved by dbt itself (``dbt ls``
with each stage's selectors and exclusions), dependencies read from the manifest."""

from __future__ import annotations

import json

from stages import DBT_STAGES, stage_nodes


def test_every_model_is_in_exactly_one_stage_and_reads_no_later_stage(settings, dbt_manifest):
    manifest = json.loads(dbt_manifest.read_text("utf-8"))
    nodes = {
        key: node
        for key, node in manifest["nodes"].items()
        if node["resource_type"] in ("model", "seed")
    }
    stages = stage_nodes(settings)
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
