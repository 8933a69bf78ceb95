with

orders as (

    select * from {{ ref('fct_orders') }}
    where is_revenue_order

),

{#- A product user: the resolved customer, else the product's own key (a user id never seen
    with an e-mail). Events with neither user id nor e-mail are anonymous and not counted. -#}
product_users as (

    select distinct
        cast(identities.observed_at as date) as activity_date,
        coalesce(identity_map.customer_id, 'product:' || identities.source_key) as user_key
    from {{ ref('int_customer_identities') }} as identities
    left join {{ ref('customer_identity_map') }} as identity_map
        on identities.source = identity_map.source
        and identities.source_key = identity_map.source_key
    where identities.source = 'product'

),

bounds as (

    select min(order_date) as first_date, max(order_date) as last_date from orders

),

spine as (

    {{ date_spine('(select first_date from bounds)', '(select last_date from bounds)') }}

),

first_order_dates as (

    select customer_id, min(order_date) as first_order_date
    from orders
    where customer_id is not null
    group by customer_id

),

daily_orders as (

    select
        orders.order_date,
        count(*) as orders,
        sum(total_amount_reporting) as revenue,
        sum(refunded_amount_reporting) as refunds,
        sum(discount_amount_reporting) as discount_cost,
        count(distinct case
            when orders.order_date = first_order_dates.first_order_date then orders.customer_id
        end) as new_customers,
        count(distinct case
            when orders.order_date > first_order_dates.first_order_date then orders.customer_id
        end) as returning_customers
    from orders
    left join first_order_dates on orders.customer_id = first_order_dates.customer_id
    group by orders.order_date

),

active_users as (

    select
        spine.date_day,
        count(distinct case when product_users.activity_date = spine.date_day then product_users.user_key end)
            as active_users,
        count(distinct case
            when product_users.activity_date > {{ dbt.dateadd('day', -7, 'spine.date_day') }}
                then product_users.user_key
        end) as weekly_active_users,
        count(distinct product_users.user_key) as monthly_active_users
    from spine
    inner join product_users
        on product_users.activity_date <= spine.date_day
        and product_users.activity_date > {{ dbt.dateadd('day', -var('active_window_days'), 'spine.date_day') }}
    group by spine.date_day

),

final as (

    select
        spine.date_day as date,
        {{ reporting_currency() }} as reporting_currency,
        coalesce(daily_orders.orders, 0) as orders,
        coalesce(daily_orders.revenue, 0) as revenue,
        coalesce(daily_orders.refunds, 0) as refunds,
        coalesce(daily_orders.revenue, 0) - coalesce(daily_orders.refunds, 0) as net_revenue,
        cast(daily_orders.revenue / nullif(daily_orders.orders, 0) as decimal(18, 2))
            as average_order_value,
        coalesce(daily_orders.new_customers, 0) as new_customers,
        coalesce(daily_orders.returning_customers, 0) as returning_customers,
        coalesce(daily_orders.discount_cost, 0) as discount_cost,
        coalesce(active_users.active_users, 0) as active_users,
        coalesce(active_users.weekly_active_users, 0) as weekly_active_users,
        coalesce(active_users.monthly_active_users, 0) as monthly_active_users
    from spine
    left join daily_orders on spine.date_day = daily_orders.order_date
    left join active_users on spine.date_day = active_users.date_day

)

select * from final
