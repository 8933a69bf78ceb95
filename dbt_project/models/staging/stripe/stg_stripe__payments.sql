with

source as (

    select * from {{ source('stripe', 'payments') }}

),

renamed as (

    select
        -- keys
        payment_id,
        stripe_customer_id,
        invoice_id,

        -- customer
        lower(trim(email)) as email,
        customer_description,
        card_country,

        -- payment
        lower(status) as status,
        is_captured,
        upper(currency) as currency,
        amount,
        amount_refunded,
        fee_amount,
        description,
        seller_message,

        -- timestamps (UTC)
        created_at,

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
