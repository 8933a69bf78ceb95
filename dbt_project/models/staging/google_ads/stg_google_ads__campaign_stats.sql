with

source as (

    select * from {{ source('google_ads', 'campaign_stats') }}

),

renamed as (

    select
        -- keys
        'google_ads' as ad_platform,
        campaign_id,
        report_date,

        -- campaign
        campaign_name,

        -- below the campaign and segments (null in a campaign-level download)
        ad_group_id,
        ad_group as ad_group_name,
        keyword_id,
        keyword,
        match_type,
        device,

        -- metrics
        upper(currency) as currency,
        impressions,
        clicks,
        cost,
        conversions,
        conversion_value,

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
