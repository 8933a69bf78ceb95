{#- The rows of the semantic model `orders`: every revenue order of fct_orders with the marketing
    channel kpi_channel_performance counts it under (int_orders_channel_attributed), so
    `mwh metric ... --by channel` and the channel mart speak one vocabulary. sales_channel keeps
    the Shopify sales channel (fct_orders.channel). -#}
with

orders as (

    select * from {{ ref('fct_orders') }}
    where is_revenue_order

),

attributed as (

    select order_id, channel from {{ ref('int_orders_channel_attributed') }}

),

final as (

    select
        orders.order_id,
        orders.customer_id,
        orders.order_date,
        attributed.channel,
        orders.channel as sales_channel,
        orders.billing_country,
        orders.has_discount,
        orders.is_first_order,
        orders.total_amount_reporting,
        orders.refunded_amount_reporting
    from orders
    inner join attributed on orders.order_id = attributed.order_id

)

select * from final
