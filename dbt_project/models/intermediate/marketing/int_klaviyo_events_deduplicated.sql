{#- One row per Klaviyo event: the copy from the latest landed export wins. recipient_key tells
    recipients apart (profile id, else e-mail, else phone); the channel falls back to the
    campaign's, then to "unknown". -#}
with

events as (

    select * from {{ ref('stg_klaviyo__events') }}

),

campaigns as (

    select * from {{ ref('int_klaviyo_campaigns_deduplicated') }}

),

ranked as (

    select
        *,
        {{ latest_copy_rank('event_id') }} as copy_rank
    from events

),

final as (

    select
        ranked.event_id,
        ranked.campaign_id,
        coalesce(ranked.channel, campaigns.channel, 'unknown') as channel,
        ranked.metric,
        coalesce(ranked.profile_id, ranked.email, ranked.phone) as recipient_key,
        ranked.profile_id,
        ranked.email,
        ranked.phone,
        ranked.channel as event_channel,
        ranked.occurred_at,
        ranked.source_file
    from ranked
    left join campaigns on ranked.campaign_id = campaigns.campaign_id
    where ranked.copy_rank = 1

)

select * from final
