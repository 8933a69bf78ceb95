{#- One row per Klaviyo campaign: the copy from the latest landed export wins. -#}
with

campaigns as (

    select * from {{ ref('stg_klaviyo__campaigns') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by campaign_id
            order by load_date desc, source_file desc, source_row_number desc
        ) as copy_rank
    from campaigns

),

final as (

    select campaign_id, campaign_name, channel, subject, audience, recipients_count, sent_at
    from ranked
    where copy_rank = 1

)

select * from final
