{#- One row per revenue order attributed to a Klaviyo campaign, last touch: among the buyer's
    touches (events in var campaign_attribution_metrics, matched on e-mail) at most
    var campaign_attribution_window_days before the order, the latest wins, so an order counts for
    one campaign only. -#}
{%- set window_days = var("campaign_attribution_window_days") | int %}
with

orders as (

    select order_id, customer_id, email, created_at, order_date, total_amount_reporting, is_first_order
    from {{ ref('fct_orders') }}
    where is_revenue_order and email is not null

),

touches as (

    select event_id, campaign_id, channel, metric, email, occurred_at as touched_at
    from {{ ref('int_klaviyo_events_deduplicated') }}
    where campaign_id is not null
        and email is not null
        and metric in (
            {%- for metric in var("campaign_attribution_metrics") %}
            '{{ metric | lower }}'{{ "," if not loop.last }}
            {%- endfor %}
        )

),

candidates as (

    select
        orders.*,
        touches.campaign_id,
        touches.channel,
        touches.metric as touch_metric,
        touches.touched_at,
        row_number() over (
            partition by orders.order_id
            order by touches.touched_at desc, touches.campaign_id desc, touches.event_id desc
        ) as touch_rank
    from orders
    inner join touches
        on orders.email = touches.email
        and touches.touched_at <= orders.created_at
        and orders.created_at <= {{ dbt.dateadd('day', window_days, 'touches.touched_at') }}

),

final as (

    select
        order_id,
        customer_id,
        email,
        created_at,
        order_date,
        total_amount_reporting,
        is_first_order,
        campaign_id,
        channel,
        touch_metric,
        touched_at
    from candidates
    where touch_rank = 1

)

select * from final
