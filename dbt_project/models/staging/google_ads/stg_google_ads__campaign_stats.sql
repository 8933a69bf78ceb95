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
        _load_date as load_date

    from source

),

final as (

    select * from renamed

)

select * from final
