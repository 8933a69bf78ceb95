with

source as (

    select * from {{ source('klaviyo', 'campaigns') }}

),

renamed as (

    select
        -- keys
        campaign_id,

        -- campaign
        campaign_name,
        lower(trim(channel)) as channel,
        subject,
        audience,
        recipients_count,

        -- timestamps (UTC)
        sent_at,

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
