{#- One row per day (column date_day) from start to end inclusive; both are SQL date expressions.
    A recursive CTE, so the same SQL runs on DuckDB and PostgreSQL. -#}
{% macro date_spine(start_expr, end_expr) -%}
    with recursive days(date_day) as (
        select cast({{ start_expr }} as date)
        union all
        select cast({{ dbt.dateadd('day', 1, 'date_day') }} as date)
        from days
        where date_day < cast({{ end_expr }} as date)
    )
    select date_day from days
{%- endmacro %}
