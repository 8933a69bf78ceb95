with

source as (

    select * from {{ source('vouchers', 'redemptions') }}

),

renamed as (

    select
        -- keys
        redemption_id,
        rolled_back_redemption_id,
        order_reference,
        customer_source_id,

        -- redemption
        lower(object_type) as object_type,
        lower(result) as result,
        failure_code,
        voucher_code,
        campaign_name,

        -- customer
        lower(trim(email)) as email,

        -- order (amounts in minor units, i.e. cents)
        upper(currency) as currency,
        order_amount_minor,
        discount_amount_minor,
        cast(order_amount_minor / 100.0 as decimal(18, 2)) as order_amount,
        cast(discount_amount_minor / 100.0 as decimal(18, 2)) as discount_amount,

        -- timestamps (UTC)
        redeemed_at,

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
