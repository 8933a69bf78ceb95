{#- One row per audience, snapshot date and customer, with the arm (macro
    audience_members_select). A run replaces its own snapshot date and keeps the others, so "who
    was in the audience on the send date" stays answerable: on DuckDB a pre-hook deletes the
    date, then the rows are appended; on Spark the table is partitioned by snapshot_date and the
    build overwrites that partition. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy=('insert_overwrite' if target.type == 'spark' else 'append'),
        partition_by=('snapshot_date' if target.type == 'spark' else none),
        on_schema_change='append_new_columns',
        pre_hook="{% if is_incremental() and target.type != 'spark' %}delete from {{ this }} where snapshot_date = {{ snapshot_date() }}{% endif %}",
        post_hook="{{ spark_schema_file() }}",
    )
}}

{%- set audiences = fromjson(env_var('MWH_AUDIENCES')) -%}
{%- if audiences is mapping -%}
    {%- if execute -%}
        {{ exceptions.raise_compiler_error('audience definition rejected: ' ~ audiences.error) }}
    {%- endif -%}
    {%- set audiences = [] -%}
{%- endif -%}
{%- set segments, customers = ref('dim_customer_segments'), ref('dim_customers') -%}
{%- set segment_columns, customer_columns = [], [] -%}
{%- if execute -%}
    {%- set segment_columns = adapter.get_columns_in_relation(segments) | map(attribute='name') | list -%}
    {%- set customer_columns = adapter.get_columns_in_relation(customers) | map(attribute='name') | list -%}
{%- endif -%}

{{ audience_members_select(
    audiences, segments, customers, source('raw_audit', 'erasure_log'), snapshot_date(),
    segment_columns, customer_columns
) }}
