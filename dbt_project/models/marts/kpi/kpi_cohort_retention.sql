{#- One row per acquisition cohort (calendar month of the first revenue order) and
    months_since_first_order (0 = the cohort month), up to the latest month with an order. -#}
with

orders as (

    select * from {{ ref('fct_orders') }}
    where is_revenue_order and customer_id is not null

),

customer_months as (

    select
        customer_id,
        cast({{ dbt.date_trunc('month', 'order_date') }} as date) as order_month,
        sum(total_amount_reporting) as revenue
    from orders
    group by customer_id, cast({{ dbt.date_trunc('month', 'order_date') }} as date)

),

{#- a customer's first order: fct_orders.is_first_order, the one place that rule is written -#}
cohorts as (

    select customer_id, cast({{ dbt.date_trunc('month', 'order_date') }} as date) as cohort_month
    from orders
    where is_first_order

),

cohort_sizes as (

    select cohort_month, count(*) as cohort_size
    from cohorts
    group by cohort_month

),

bounds as (

    select min(order_month) as first_month, max(order_month) as last_month from customer_months

),

days as (

    {{ date_spine('(select first_month from bounds)', '(select last_month from bounds)') }}

),

months as (

    select distinct cast({{ dbt.date_trunc('month', 'date_day') }} as date) as activity_month
    from days

),

{#- Every cell from the cohort month to the latest month, also those where nobody came back. -#}
cells as (

    select
        cohort_sizes.cohort_month,
        cohort_sizes.cohort_size,
        {{ dbt.datediff('cohort_sizes.cohort_month', 'months.activity_month', 'month') }}
            as months_since_first_order,
        months.activity_month
    from cohort_sizes
    inner join months on months.activity_month >= cohort_sizes.cohort_month

),

activity as (

    select
        cohorts.cohort_month,
        {{ dbt.datediff('cohorts.cohort_month', 'customer_months.order_month', 'month') }}
            as months_since_first_order,
        count(*) as retained_customers,
        sum(customer_months.revenue) as revenue
    from customer_months
    inner join cohorts on customer_months.customer_id = cohorts.customer_id
    group by 1, 2

),

final as (

    select
        cells.cohort_month,
        cells.months_since_first_order,
        cells.activity_month,
        cells.cohort_size,
        coalesce(activity.retained_customers, 0) as retained_customers,
        {{ safe_divide('coalesce(activity.retained_customers, 0)', 'cells.cohort_size') }}
            as retention_rate,
        coalesce(activity.revenue, 0) as revenue,
        sum(coalesce(activity.revenue, 0)) over (
            partition by cells.cohort_month
            order by cells.months_since_first_order
            rows between unbounded preceding and current row
        ) as cumulative_revenue,
        {{ money_ratio(
            'sum(coalesce(activity.revenue, 0)) over (
                partition by cells.cohort_month
                order by cells.months_since_first_order
                rows between unbounded preceding and current row
            )',
            'cells.cohort_size'
        ) }} as cumulative_revenue_per_customer
    from cells
    left join activity
        on cells.cohort_month = activity.cohort_month
        and cells.months_since_first_order = activity.months_since_first_order

)

select * from final
