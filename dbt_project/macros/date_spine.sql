{#- One row per day (column date_day) from start to end inclusive; both are SQL date expressions.
    A recursive CTE, so the same SQL runs on DuckDB and PostgreSQL. A null start or end (a mart
    whose source has delivered nothing yet) gives no day at all, never a row with a null date. -#}
{% macro date_spine(start_expr, end_expr) -%}
    {{ return(adapter.dispatch('date_spine')(start_expr, end_expr)) }}
{%- endmacro %}

{% macro default__date_spine(start_expr, end_expr) -%}
    with recursive days(date_day) as (
        select cast({{ start_expr }} as date)
        where cast({{ start_expr }} as date) is not null
            and cast({{ end_expr }} as date) is not null
        union all
        select cast({{ dbt.dateadd('day', 1, 'date_day') }} as date)
        from days
        where date_day < cast({{ end_expr }} as date)
    )
    select date_day from days
{%- endmacro %}

{#- Spark stops a recursive CTE at 100 levels: the days come from sequence() instead. -#}
{% macro spark__date_spine(start_expr, end_expr) -%}
    select explode(sequence(cast({{ start_expr }} as date), cast({{ end_expr }} as date), interval 1 day)) as date_day
    where cast({{ start_expr }} as date) is not null and cast({{ end_expr }} as date) is not null
{%- endmacro %}
