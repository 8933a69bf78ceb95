{#- One row per order. Shopify repeats an order in every export that covers it; the copy from the
    latest load wins (then the latest file name), so a re-sent or overlapping export never
    double-counts. Order-level fields come from the order's first line-item row. -#}
with

lines as (

    select * from {{ ref('stg_shopify__order_lines') }}

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
        row_number() over (
            partition by order_name
            order by load_date desc, source_file desc
        ) as copy_rank
    from orders_per_file

),

final as (

    select
        'shopify' as source_system,
        'shopify-' || order_name as order_id,
        order_name as source_order_key,
        shopify_order_id,
        email,
        phone,
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

)

select * from final
