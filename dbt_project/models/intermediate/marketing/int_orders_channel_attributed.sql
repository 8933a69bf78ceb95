{#- One row per revenue order with the one marketing channel it is attributed to: the channel of its
    Klaviyo campaign (last touch, int_orders_campaign_attributed), else its Shopify sales channel
    mapped by the marketing_channel macro (e.g. Source "facebook" -> meta_ads; web orders stay
    online_store). Every revenue order has exactly one channel, so channel sums equal fct_orders. -#}
with

orders as (

    select * from {{ ref('fct_orders') }}
    where is_revenue_order

),

campaign_attributed as (

    select * from {{ ref('int_orders_campaign_attributed') }}

),

final as (

    select
        orders.order_id,
        orders.customer_id,
        orders.order_date,
        cast({{ dbt.date_trunc('month', 'orders.order_date') }} as date) as order_month,
        orders.created_at,
        orders.total_amount_reporting,
        coalesce(orders.is_first_order, false) as is_first_order,
        orders.channel as sales_channel,
        campaign_attributed.campaign_id,
        coalesce(
            campaign_attributed.channel, {{ marketing_channel('orders.channel') }}
        ) as channel,
        case
            when campaign_attributed.campaign_id is not null then 'campaign_last_touch'
            else 'sales_channel'
        end as attribution_source
    from orders
    left join campaign_attributed on orders.order_id = campaign_attributed.order_id

)

select * from final
