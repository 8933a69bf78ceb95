{#- One row per order: Shopify orders and Stripe payments (memberships and invoices sold outside
    the Shopify checkout, see DECISIONLOG). Each tool repeats a record in every export that covers
    it; the latest copy wins (latest_copy_rank: folder, landing time, load, name), so a re-sent or overlapping
    export never double-counts. Shopify order-level fields come from the order's first line-item row. -#}
with

lines as (

    select * from {{ ref('stg_shopify__order_lines') }}

),

payments as (

    select * from {{ ref('stg_stripe__payments') }}

),

line_totals as (

    select
        file_hash,
        order_name,
        count(*) as line_items_count,
        sum(lineitem_quantity) as items_count
    from lines
    group by file_hash, order_name

),

first_rows as (

    select * from lines where line_number = 1

),

orders_per_file as (

    select
        first_rows.*,
        line_totals.line_items_count,
        line_totals.items_count
    from first_rows
    inner join line_totals
        on first_rows.file_hash = line_totals.file_hash
        and first_rows.order_name = line_totals.order_name

),

ranked as (

    select
        *,
        {{ latest_copy_rank('order_name') }} as copy_rank
    from orders_per_file

),

shopify_orders as (

    select
        'shopify' as source_system,
        'shopify-' || order_name as order_id,
        order_name as source_order_key,
        shopify_order_id,
        cast(null as varchar) as stripe_customer_id,
        {{ normalize_email('email') }} as email,
        {{ normalize_phone('phone') }} as phone,
        billing_country,
        is_accepts_marketing,
        financial_status,
        order_source,
        currency,
        subtotal_amount,
        coalesce(shipping_amount, 0) as shipping_amount,
        coalesce(tax_amount, 0) as tax_amount,
        total_amount,
        nullif(trim(discount_code), '') as discount_code,
        coalesce(discount_amount, 0) as discount_amount,
        coalesce(refunded_amount, 0) as refunded_amount,
        line_items_count,
        items_count,
        created_at,
        cancelled_at,
        source_file,
        load_date
    from ranked
    where copy_rank = 1

),

payments_ranked as (

    select
        *,
        {{ latest_copy_rank('payment_id') }} as copy_rank
    from payments

),

{#- Stripe statuses in Shopify's financial-status vocabulary, so one revenue rule fits both. -#}
stripe_orders as (

    select
        'stripe' as source_system,
        'stripe-' || payment_id as order_id,
        payment_id as source_order_key,
        cast(null as varchar) as shopify_order_id,
        nullif(trim(stripe_customer_id), '') as stripe_customer_id,
        {{ normalize_email('email') }} as email,
        cast(null as varchar) as phone,
        card_country as billing_country,
        cast(null as boolean) as is_accepts_marketing,
        case
            when status = 'failed' then 'failed'
            when status = 'pending' then 'pending'
            when status = 'canceled' then 'voided'
            when is_captured = false then 'authorized'
            when status = 'refunded' and coalesce(amount_refunded, amount) >= amount then 'refunded'
            when status in ('paid', 'refunded') and coalesce(amount_refunded, 0) > 0
                then 'partially_refunded'
            when status = 'paid' then 'paid'
            else status
        end as financial_status,
        case when invoice_id is not null then 'subscription' else 'stripe' end as order_source,
        currency,
        amount as subtotal_amount,
        cast(0 as decimal(18, 2)) as shipping_amount,
        cast(0 as decimal(18, 2)) as tax_amount,
        amount as total_amount,
        cast(null as varchar) as discount_code,
        cast(0 as decimal(18, 2)) as discount_amount,
        case
            when status = 'refunded' then coalesce(amount_refunded, amount)
            else coalesce(amount_refunded, 0)
        end as refunded_amount,
        1 as line_items_count,
        1 as items_count,
        created_at,
        cast(null as timestamp) as cancelled_at,
        source_file,
        load_date
    from payments_ranked
    where copy_rank = 1

),

unioned as (

    select * from shopify_orders
    union all
    select * from stripe_orders

),

final as (

    select
        *,
        {#- How the person behind the order is known to its tool: the key of dim_customer_identity_map. -#}
        case source_system
            when 'shopify' then coalesce(email, phone)
            when 'stripe' then coalesce(stripe_customer_id, email)
        end as customer_source_key
    from unioned

)

select * from final
