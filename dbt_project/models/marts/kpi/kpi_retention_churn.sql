{#- One row per calendar month from the first to the latest month with a revenue order. A customer
    is active in a month with at least one revenue order in it. -#}
with

orders as (

    select * from {{ ref('fct_orders') }}
    where is_revenue_order and customer_id is not null

),

customer_months as (

    select distinct
        customer_id,
        cast({{ dbt.date_trunc('month', 'order_date') }} as date) as activity_month
    from orders

),

first_months as (

    select customer_id, min(activity_month) as first_month
    from customer_months
    group by customer_id

),

bounds as (

    select
        min(activity_month) as first_month,
        max(activity_month) as last_month,
        (select max(order_date) from orders) as last_order_date
    from customer_months

),

days as (

    {{ date_spine('(select first_month from bounds)', '(select last_month from bounds)') }}

),

months as (

    select distinct cast({{ dbt.date_trunc('month', 'date_day') }} as date) as month
    from days

),

{#- Each customer in each month they were active in, or active in the month before. -#}
customer_month_status as (

    select
        months.month,
        first_months.customer_id,
        first_months.first_month,
        current_month.customer_id is not null as is_active,
        previous_month.customer_id is not null as was_active_previous_month
    from months
    inner join first_months on first_months.first_month <= months.month
    left join customer_months as current_month
        on current_month.customer_id = first_months.customer_id
        and current_month.activity_month = months.month
    left join customer_months as previous_month
        on previous_month.customer_id = first_months.customer_id
        and previous_month.activity_month
            = cast({{ dbt.dateadd('month', -1, 'months.month') }} as date)

),

counted as (

    select
        month,
        count(case when was_active_previous_month then 1 end) as active_previous_month,
        count(case when is_active then 1 end) as active_customers,
        count(case when is_active and first_month = month then 1 end) as new_customers,
        count(case when is_active and was_active_previous_month then 1 end)
            as retained_customers,
        count(case
            when is_active and not was_active_previous_month and first_month < month then 1
        end) as reactivated_customers,
        count(case when was_active_previous_month and not is_active then 1 end)
            as churned_customers
    from customer_month_status
    group by month

),

final as (

    select
        counted.month,
        counted.active_previous_month,
        counted.active_customers,
        counted.new_customers,
        counted.retained_customers,
        counted.reactivated_customers,
        counted.churned_customers,
        {{ safe_divide('counted.churned_customers', 'counted.active_previous_month') }}
            as churn_rate,
        {{ safe_divide('counted.retained_customers', 'counted.active_previous_month') }}
            as retention_rate,
        cast({{ dbt.dateadd('month', 1, 'counted.month') }} as date)
            <= cast({{ dbt.dateadd('day', 1, 'bounds.last_order_date') }} as date)
            as is_complete_month
    from counted
    cross join bounds

)

select * from final
