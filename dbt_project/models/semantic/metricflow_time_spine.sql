{#- MetricFlow's time spine: one row per day. Published with the marts (schema marts) so semantic
    layer queries against the serving file can join to it. -#}
with

days as (

    {{ date_spine("'2020-01-01'", "'2035-12-31'") }}

),

final as (

    select cast(date_day as date) as date_day
    from days

)

select * from final
