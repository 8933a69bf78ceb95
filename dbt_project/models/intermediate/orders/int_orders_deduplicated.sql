{#- One row per order: Shopify orders and Stripe payments (memberships and invoices sold outside
    the Shopify checkout, see DECISIONLOG). Each tool repeats a record in every export that covers
    it; the latest copy wins (latest_copy_rank: folder, landing time, load, name), so a re-sent or overlapping
    export never double-counts. Shopify order-level fields come from the order's first line-item row.
    Incremental (macros/incremental.sql): a night ranks the copies it loaded against the copies kept. -#}
{{ config(
    materialized=latest_copy_materialized(),
    unique_key='order_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    post_hook=[
        "{{ delete_kept_copies_of_gone_files(ref('stg_shopify__order_lines'), \"source_system = 'shopify'\") }}",
        "{{ delete_kept_copies_of_gone_files(ref('stg_stripe__payments'), \"source_system = 'stripe'\") }}",
    ],
) }}
with

lines as (

    select * from {{ ref('stg_shopify__order_lines') }}
    {% if is_incremental() -%}
    where {{ copies_to_rank(
        ref('stg_shopify__order_lines'), 'order_name', 'source_order_key', "source_system = 'shopify'"
    ) }}
    {%- endif %}

),

payments as (

    select * from {{ ref('stg_stripe__payments') }}
    {% if is_incremental() -%}
    where {{ copies_to_rank(
        ref('stg_stripe__payments'), 'payment_id', 'source_order_key', "source_system = 'stripe'"
    ) }}
    {%- endif %}

),

line_totals as (

    select
        file_hash,
        order_name,
        count(*) as line_items_count,
        sum(lineitem_quantity) as items_count,
        min(source_row_number) as first_row_number
    from lines
    group by file_hash, order_name

),

{#- An order's first row in its file: its order-level fields are filled there only. -#}
orders_per_file as (

    select
        lines.*,
        line_totals.line_items_count,
        line_totals.items_count
    from lines
    inner join line_totals
        on lines.file_hash = line_totals.file_hash
        and lines.order_name = line_totals.order_name
        and lines.source_row_number = line_totals.first_row_number

),

shopify_copies as (

    select
        'shopify' as source_system,
        'shopify-' || order_name as order_id,
        order_name as source_order_key,
        shopify_order_id,
        cast(null as string) as stripe_customer_id,
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
        {{ kept_copy_columns() }}
    from orders_per_file

),

{#- Stripe statuses in Shopify's financial-status vocabulary, so one revenue rule fits both. -#}
stripe_copies as (

    select
        'stripe' as source_system,
        'stripe-' || payment_id as order_id,
        payment_id as source_order_key,
        cast(null as string) as shopify_order_id,
        nullif(trim(stripe_customer_id), '') as stripe_customer_id,
        {{ normalize_email('email') }} as email,
        cast(null as string) as phone,
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
        cast(null as string) as discount_code,
        cast(0 as decimal(18, 2)) as discount_amount,
        case
            when status = 'refunded' then coalesce(amount_refunded, amount)
            else coalesce(amount_refunded, 0)
        end as refunded_amount,
        1 as line_items_count,
        1 as items_count,
        created_at,
        cast(null as timestamp) as cancelled_at,
        {{ kept_copy_columns() }}
    from payments

),

copies as (

    select * from shopify_copies
    union all
    select * from stripe_copies

),

candidates as (

    select * from copies
    {% if is_incremental() -%}
    union all by name
    select {{ all_columns_but(['customer_source_key']) }}
    from ({{ kept_copies(
        'copies',
        '(select file_hash from ' ~ ref('stg_shopify__order_lines')
            ~ ' union all select file_hash from ' ~ ref('stg_stripe__payments') ~ ')',
        'order_id'
    ) }})
    {%- endif %}

),

ranked as (

    select
        *,
        {{ latest_copy_rank('source_system, source_order_key') }} as copy_rank
    from candidates

),

final as (

    select
        {{ all_columns_but(['copy_rank']) }},
        {#- How the person behind the order is known to its tool: the key of dim_customer_identity_map. -#}
        case source_system
            when 'shopify' then coalesce(email, phone)
            when 'stripe' then coalesce(stripe_customer_id, email)
        end as customer_source_key
    from ranked
    where copy_rank = 1

)

select * from final
