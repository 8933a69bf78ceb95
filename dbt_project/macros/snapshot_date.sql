{#- The date dim_customer_segments is a snapshot of: var snapshot_date (the run's logical date, which
    Airflow passes as {{ ds }}), else the latest order date in fct_orders, else current_date. -#}
{% macro snapshot_date() -%}
    {%- if var('snapshot_date', '') -%}
        cast('{{ var("snapshot_date") }}' as date)
    {%- else -%}
        (select coalesce(max(order_date), current_date) from {{ ref('fct_orders') }})
    {%- endif -%}
{%- endmacro %}
