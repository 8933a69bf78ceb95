with

orders as (

    select * from {{ ref('int_orders_deduplicated') }}

),

identity_map as (

    select * from {{ ref('dim_customer_identity_map') }}

),

{#- The rate of the order's UTC date, or the latest one at most var("fx_lookback_days") days
    older (macro with_fx_rate). An order with no rate in that window is left out: it is in
    audit.quarantine as missing_fx_rate, and the staging gate's fx_rate_coverage check says how
    many and what to do. -#}
with_rates as (

    {{ with_fx_rate('orders', 'currency', 'cast(orders.created_at as date)') }}

),

converted as (

    select
        with_rates.*,
        identity_map.customer_id
    from with_rates
    left join identity_map
        on with_rates.source_system = identity_map.source
        and with_rates.customer_source_key = identity_map.source_key
    where with_rates.fx_rate is not null

),

enriched as (

    select
        order_id,
        source_system,
        source_order_key,
        customer_id,
        email,
        {{ dbt.date_trunc('day', 'created_at') }}::date as order_date,
        created_at,
        financial_status,
        cancelled_at is null
            and financial_status in ('paid', 'partially_paid', 'partially_refunded', 'refunded')
            as is_revenue_order,
        case order_source
            when 'web' then 'online_store'
            when 'pos' then 'point_of_sale'
            when 'shopify_draft_order' then 'draft_order'
            else coalesce(order_source, '{{ var("default_channel") }}')
        end as channel,
        discount_code,
        discount_code is not null as has_discount,
        line_items_count,
        items_count,
        currency,
        total_amount,
        discount_amount,
        refunded_amount,
        reporting_currency,
        fx_rate,
        {{ to_reporting('total_amount', 'fx_rate') }} as total_amount_reporting,
        {{ to_reporting('discount_amount', 'fx_rate') }} as discount_amount_reporting,
        {{ to_reporting('refunded_amount', 'fx_rate') }} as refunded_amount_reporting,
        is_accepts_marketing,
        billing_country,
        source_file
    from converted

),

final as (

    select
        enriched.*,
        case
            when customer_id is null or not is_revenue_order then null
            else row_number() over (
                partition by customer_id, is_revenue_order
                order by created_at, order_id
            ) = 1
        end as is_first_order
    from enriched

)

select * from final
