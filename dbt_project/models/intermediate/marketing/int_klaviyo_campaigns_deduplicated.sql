{#- One row per Klaviyo campaign: the copy from the latest landed export wins. -#}
with

campaigns as (

    select * from {{ ref('stg_klaviyo__campaigns') }}

),

ranked as (

    select
        *,
        {{ latest_copy_rank('campaign_id') }} as copy_rank
    from campaigns

),

final as (

    select campaign_id, campaign_name, channel, subject, audience, recipients_count, sent_at
    from ranked
    where copy_rank = 1

)

select * from final
