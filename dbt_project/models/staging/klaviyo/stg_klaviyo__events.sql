with

source as (

    select * from {{ source('klaviyo', 'events') }}

),

renamed as (

    select
        -- keys
        event_id,
        campaign_id,
        profile_id,

        -- event
        lower(metric) as metric,
        lower(channel) as channel,

        -- recipient
        lower(trim(email)) as email,
        phone,

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
