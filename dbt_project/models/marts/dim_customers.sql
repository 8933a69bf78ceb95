with

orders as (

    select * from {{ ref('fct_orders') }}
    where customer_id is not null

),

revenue_orders as (

    select * from orders where is_revenue_order

),

latest_order as (

    select
        customer_id,
        email,
        billing_country,
        is_accepts_marketing,
        row_number() over (partition by customer_id order by created_at desc, order_id desc) as recency
    from orders

),

first_order as (

    select customer_id, channel as acquisition_channel
    from revenue_orders
    where is_first_order

),

order_stats as (

    select
        customer_id,
        min(created_at) as first_order_at,
        max(created_at) as last_order_at,
        count(*) as orders_count,
        sum(total_amount_reporting) as lifetime_revenue,
        sum(case when has_discount then 1 else 0 end) as discounted_orders_count
    from revenue_orders
    group by customer_id

),

seen as (

    select customer_id, min(created_at) as first_seen_at, max(created_at) as last_activity_at
    from orders
    group by customer_id

),

final as (

    select
        latest_order.customer_id,
        latest_order.email,
        upper(latest_order.billing_country) as country,
        seen.first_seen_at,
        coalesce(first_order.acquisition_channel, '{{ var("default_channel") }}') as acquisition_channel,
        order_stats.first_order_at,
        order_stats.last_order_at,
        coalesce(order_stats.orders_count, 0) as orders_count,
        coalesce(order_stats.lifetime_revenue, 0) as lifetime_revenue,
        cast(
            order_stats.lifetime_revenue / nullif(order_stats.orders_count, 0) as decimal(18, 2)
        ) as average_order_value,
        cast(
            order_stats.discounted_orders_count * 1.0 / nullif(order_stats.orders_count, 0)
            as double
        ) as discount_order_share,
        coalesce(latest_order.is_accepts_marketing, false) as is_email_marketable,
        seen.last_activity_at
    from latest_order
    inner join seen on latest_order.customer_id = seen.customer_id
    left join order_stats on latest_order.customer_id = order_stats.customer_id
    left join first_order on latest_order.customer_id = first_order.customer_id
    where latest_order.recency = 1

)

select * from final
