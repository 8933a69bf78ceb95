with

redemptions as (

    select * from {{ ref('int_voucher_redemptions_resolved') }}

),

orders as (

    select order_id, customer_id, created_at, is_revenue_order, is_first_order, total_amount_reporting
    from {{ ref('fct_orders') }}

),

attempts as (

    select
        voucher_campaign,
        count(*) as redemption_attempts,
        cast(sum(case when is_succeeded then 1 else 0 end) as bigint) as redemptions_succeeded,
        cast(sum(case when is_succeeded then 0 else 1 end) as bigint) as redemptions_failed,
        cast(sum(case when is_rolled_back then 1 else 0 end) as bigint) as redemptions_rolled_back,
        cast(sum(case when is_net_redemption then 1 else 0 end) as bigint) as net_redemptions,
        sum(case when is_net_redemption then discount_amount_reporting else 0 end) as discount_cost
    from redemptions
    group by 1

),

{#- Revenue orders that carried a net (not rolled-back) redemption of the campaign, once each. -#}
redeemed_orders as (

    select distinct
        redemptions.voucher_campaign,
        orders.order_id,
        orders.customer_id,
        orders.created_at,
        coalesce(orders.is_first_order, false) as is_first_order,
        orders.total_amount_reporting
    from redemptions
    inner join orders on redemptions.order_id = orders.order_id
    where redemptions.is_net_redemption and orders.is_revenue_order

),

{#- Customers whose first revenue order was discounted by the campaign, and whether they bought
    again afterwards (any later revenue order, with or without a voucher). -#}
acquired as (

    select
        redeemed_orders.voucher_campaign,
        redeemed_orders.customer_id,
        max(case when later_orders.order_id is not null then 1 else 0 end) as has_repeat_order
    from redeemed_orders
    left join orders as later_orders
        on redeemed_orders.customer_id = later_orders.customer_id
        and later_orders.is_revenue_order
        and later_orders.created_at > redeemed_orders.created_at
    where redeemed_orders.is_first_order and redeemed_orders.customer_id is not null
    group by 1, 2

),

order_stats as (

    select
        voucher_campaign,
        count(*) as orders,
        sum(total_amount_reporting) as revenue,
        cast(sum(case when is_first_order then 1 else 0 end) as bigint) as new_customer_orders
    from redeemed_orders
    group by 1

),

acquired_stats as (

    select
        voucher_campaign,
        count(*) as new_customers,
        cast(sum(has_repeat_order) as bigint) as repeat_customers
    from acquired
    group by 1

),

final as (

    select
        attempts.voucher_campaign,
        {{ reporting_currency() }} as reporting_currency,
        attempts.redemption_attempts,
        attempts.redemptions_succeeded,
        attempts.redemptions_failed,
        attempts.redemptions_rolled_back,
        attempts.net_redemptions,
        {{ safe_divide('attempts.redemptions_succeeded', 'attempts.redemption_attempts') }}
            as redemption_rate,
        {{ safe_divide('attempts.redemptions_rolled_back', 'attempts.redemptions_succeeded') }}
            as rollback_rate,
        attempts.discount_cost,
        coalesce(order_stats.orders, 0) as orders,
        coalesce(order_stats.revenue, 0) as revenue,
        coalesce(order_stats.new_customer_orders, 0) as new_customer_orders,
        {{ safe_divide('order_stats.new_customer_orders', 'order_stats.orders') }}
            as new_customer_share,
        coalesce(acquired_stats.new_customers, 0) as new_customers,
        coalesce(acquired_stats.repeat_customers, 0) as repeat_customers,
        {{ safe_divide('acquired_stats.repeat_customers', 'acquired_stats.new_customers') }}
            as repeat_purchase_rate
    from attempts
    left join order_stats on attempts.voucher_campaign = order_stats.voucher_campaign
    left join acquired_stats on attempts.voucher_campaign = acquired_stats.voucher_campaign

)

select * from final
