{#- One row per Klaviyo event: the copy from the latest landed export wins. recipient_key tells
    recipients apart (profile id, else e-mail, else phone); the channel falls back to the
    campaign's, then to "unknown". Incremental (macros/incremental.sql): a night ranks the copies
    it loaded against the copies kept, and gives the events whose fallback channel their
    campaign changed the campaign's new channel. -#}
{{ config(
    materialized=latest_copy_materialized(),
    unique_key='event_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    post_hook="{{ delete_kept_copies_of_gone_files(ref('stg_klaviyo__events')) }}",
) }}
with

campaigns as (

    select * from {{ ref('int_klaviyo_campaigns_deduplicated') }}

),

copies as (

    select
        event_id,
        campaign_id,
        metric,
        profile_id,
        email,
        phone,
        channel as event_channel,
        occurred_at,
        {{ kept_copy_columns() }}
    from {{ ref('stg_klaviyo__events') }}
    {% if is_incremental() -%}
    where {{ copies_to_rank(ref('stg_klaviyo__events'), 'event_id') }}
    {%- endif %}

),

candidates as (

    select * from copies
    {% if is_incremental() -%}
    union all by name
    select {{ all_columns_but(['channel', 'recipient_key']) }}
    from ({{ kept_copies('copies', ref('stg_klaviyo__events'), 'event_id') }})
    union all by name
    select {{ all_columns_but(['channel', 'recipient_key'], 'kept') }}
    from {{ this }} as kept
    left join campaigns on kept.campaign_id = campaigns.campaign_id
    where kept.event_channel is null
        and kept.channel is distinct from coalesce(campaigns.channel, 'unknown')
        and kept.file_hash in (select distinct file_hash from {{ ref('stg_klaviyo__events') }})
    {%- endif %}

),

ranked as (

    select
        *,
        {{ latest_copy_rank('event_id') }} as copy_rank
    from candidates

),

final as (

    select
        ranked.event_id,
        ranked.campaign_id,
        coalesce(ranked.event_channel, campaigns.channel, 'unknown') as channel,
        ranked.metric,
        coalesce(ranked.profile_id, ranked.email, ranked.phone) as recipient_key,
        ranked.profile_id,
        ranked.email,
        ranked.phone,
        ranked.event_channel,
        ranked.occurred_at,
        {{ kept_copy_columns('ranked.') }}
    from ranked
    left join campaigns on ranked.campaign_id = campaigns.campaign_id
    where ranked.copy_rank = 1

)

select * from final
