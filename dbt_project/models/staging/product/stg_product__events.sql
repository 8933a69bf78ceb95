with

source as (

    select * from {{ source('product', 'events') }}

),

renamed as (

    select
        -- keys
        message_id,
        user_id,

        -- event
        event_name,
        device,
        value_amount,

        -- user
        lower(trim(email)) as email,

        -- timestamps (UTC)
        occurred_at,

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
