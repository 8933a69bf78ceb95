{#- The date dim_customer_segments is a snapshot of: var snapshot_date, else the environment
    variable MWH_SNAPSHOT_DATE (a night's dbt tasks get the run's logical date there: see
    dbt_run_env in transform/dbt_tasks.py), else the latest order date in fct_orders, else
    current_date. -#}
{% macro snapshot_date() -%}
    {%- set day = var('snapshot_date', '') or env_var('MWH_SNAPSHOT_DATE', '') -%}
    {%- if day -%}
        cast('{{ day }}' as date)
    {%- else -%}
        (select coalesce(max(order_date), current_date) from {{ ref('fct_orders') }})
    {%- endif -%}
{%- endmacro %}
