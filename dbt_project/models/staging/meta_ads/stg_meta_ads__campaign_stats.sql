with

source as (

    select * from {{ source('meta_ads', 'campaign_stats') }}

),

renamed as (

    select
        -- keys
        'meta_ads' as ad_platform,
        campaign_id,
        report_date,

        -- campaign
        campaign_name,

        -- below the campaign and breakdowns (null in a campaign-level export)
        ad_set_id,
        ad_set_name,
        ad_id,
        ad_name,
        age,
        gender,
        placement,
        platform,
        device,

        -- metrics
        upper(currency) as currency,
        impressions,
        clicks,
        cost,
        conversions,
        conversion_value,

        -- reporting window of the export
        reporting_starts,
        reporting_ends,

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
