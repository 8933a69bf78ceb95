{#- One row per ad platform, campaign and report day across Google Ads and Meta Ads. A report
    exported below the campaign (ad set, ad, ad group, keyword) or broken down (age, gender,
    placement, device) has several rows per campaign and day: they are summed within their file
    first. Of the files that cover a campaign and day, the latest delivery wins (latest_copy_rank),
    never a sum across files. Spend and conversion value are converted to the reporting currency
    with the rate of the report day (macro with_fx_rate); a campaign day with no rate within the
    look-back is left out (audit.quarantine, missing_fx_rate). -#}
with

google_ads as (

    select
        ad_platform, campaign_id, campaign_name, report_date, currency, impressions, clicks, cost,
        conversions, conversion_value, source_file, file_hash, source_row_number, load_date,
        landed_at, loaded_at
    from {{ ref('stg_google_ads__campaign_stats') }}

),

meta_ads as (

    select
        ad_platform, campaign_id, campaign_name, report_date, currency, impressions, clicks, cost,
        conversions, conversion_value, source_file, file_hash, source_row_number, load_date,
        landed_at, loaded_at
    from {{ ref('stg_meta_ads__campaign_stats') }}

),

stats as (

    select * from google_ads
    union all
    select * from meta_ads

),

per_file as (

    select
        ad_platform,
        campaign_id,
        report_date,
        {#- extraction rejects a file whose rows of one campaign and day disagree on these -#}
        min(campaign_name) as campaign_name,
        min(currency) as currency,
        sum(impressions) as impressions,
        sum(clicks) as clicks,
        sum(cost) as cost,
        sum(conversions) as conversions,
        sum(conversion_value) as conversion_value,
        source_file,
        file_hash,
        min(source_row_number) as source_row_number,
        load_date,
        landed_at,
        loaded_at
    from stats
    group by
        ad_platform, campaign_id, report_date, source_file, file_hash, load_date, landed_at,
        loaded_at

),

ranked as (

    select
        *,
        {{ latest_copy_rank('ad_platform, campaign_id, report_date') }} as copy_rank
    from per_file

),

latest as (

    select * from ranked where copy_rank = 1

),

converted as (

    select * from ({{ with_fx_rate('latest', 'currency', 'latest.report_date') }}) as with_rates
    where fx_rate is not null

),

final as (

    select
        ad_platform,
        {{ marketing_channel('ad_platform') }} as channel,
        campaign_id,
        campaign_name,
        report_date,
        currency,
        coalesce(impressions, 0) as impressions,
        coalesce(clicks, 0) as clicks,
        coalesce(cost, 0) as spend_amount,
        coalesce(conversions, 0) as platform_conversions,
        coalesce(conversion_value, 0) as platform_conversion_value_amount,
        reporting_currency,
        fx_rate,
        {{ to_reporting('coalesce(cost, 0)', 'fx_rate') }} as spend_amount_reporting,
        {{ to_reporting('coalesce(conversion_value, 0)', 'fx_rate') }}
            as platform_conversion_value_amount_reporting,
        source_file
    from converted

)

select * from final
