with

source as (

    select * from {{ source('shopify', 'order_lines') }}

),

renamed as (

    select
        -- keys
        order_name,
        nullif(order_id, '') as shopify_order_id,

        -- customer
        lower(trim(email)) as email,
        billing_name,
        billing_country,
        shipping_country,
        coalesce(phone, billing_phone) as phone,
        accepts_marketing as is_accepts_marketing,

        -- order (filled on an order's first row only)
        financial_status,
        fulfillment_status,
        order_source,
        payment_method,
        tags,
        upper(currency) as currency,
        subtotal_amount,
        shipping_amount,
        tax_amount,
        total_amount,
        discount_code,
        discount_amount,
        refunded_amount,

        -- line item
        lineitem_name,
        lineitem_sku,
        lineitem_quantity,
        lineitem_price,
        lineitem_discount_amount,

        -- timestamps (UTC)
        created_at,
        paid_at,
        fulfilled_at,
        cancelled_at,

        -- lineage
        _source_file as source_file,
        _file_hash as file_hash,
        _row_number as source_row_number,
        _load_date as load_date,
        _landed_at as landed_at,
        _loaded_at as loaded_at

    from source

),

final as (

    select * from renamed

)

select * from final
