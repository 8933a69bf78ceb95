with

campaigns as (

    select * from {{ ref('int_klaviyo_campaigns_deduplicated') }}

),

events as (

    select * from {{ ref('int_klaviyo_events_deduplicated') }}
    where campaign_id is not null

),

attributed_orders as (

    select * from {{ ref('int_orders_campaign_attributed') }}

),

recipients as (

    select
        campaign_id,
        channel,
        recipient_key,
        max(case when metric like 'bounced%' then 1 else 0 end) as has_bounced,
        max(case when metric not like 'bounced%' then 1 else 0 end) as is_delivered,
        max(case when metric like 'opened%' then 1 else 0 end) as has_opened,
        max(case when metric like 'clicked%' then 1 else 0 end) as has_clicked,
        max(case when metric = 'unsubscribed' then 1 else 0 end) as has_unsubscribed,
        max(case when metric = 'marked email as spam' then 1 else 0 end) as has_marked_spam
    from events
    group by 1, 2, 3

),

recipient_counts as (

    select
        campaign_id,
        channel,
        count(*) as sent,
        cast(sum(is_delivered) as bigint) as delivered,
        cast(sum(has_bounced) as bigint) as bounced,
        cast(sum(has_opened) as bigint) as opened,
        cast(sum(has_clicked) as bigint) as clicked,
        cast(sum(has_unsubscribed) as bigint) as unsubscribed,
        cast(sum(has_marked_spam) as bigint) as spam_complaints
    from recipients
    group by 1, 2

),

conversions as (

    select
        campaign_id,
        channel,
        count(*) as conversions,
        count(distinct email) as converted_recipients,
        sum(total_amount_reporting) as attributed_revenue
    from attributed_orders
    group by 1, 2

),

campaigns_channels as (

    select campaign_id, channel from recipient_counts
    union
    select campaign_id, channel from campaigns
    where campaign_id not in (select campaign_id from recipient_counts)

),

final as (

    select
        campaigns_channels.campaign_id,
        campaigns_channels.channel,
        campaigns.campaign_name,
        campaigns.sent_at,
        campaigns.recipients_count as recipients_reported,
        {{ reporting_currency() }} as reporting_currency,
        coalesce(recipient_counts.sent, 0) as sent,
        coalesce(recipient_counts.delivered, 0) as delivered,
        coalesce(recipient_counts.bounced, 0) as bounced,
        coalesce(recipient_counts.opened, 0) as opened,
        coalesce(recipient_counts.clicked, 0) as clicked,
        coalesce(recipient_counts.unsubscribed, 0) as unsubscribed,
        coalesce(recipient_counts.spam_complaints, 0) as spam_complaints,
        {{ safe_divide('recipient_counts.delivered', 'recipient_counts.sent') }} as delivery_rate,
        {{ safe_divide('recipient_counts.bounced', 'recipient_counts.sent') }} as bounce_rate,
        case
            when campaigns_channels.channel <> 'sms'
                then {{ safe_divide('recipient_counts.opened', 'recipient_counts.delivered') }}
        end as open_rate,
        {{ safe_divide('recipient_counts.clicked', 'recipient_counts.delivered') }} as click_rate,
        {{ safe_divide('recipient_counts.unsubscribed', 'recipient_counts.delivered') }}
            as unsubscribe_rate,
        {{ var("campaign_attribution_window_days") | int }} as attribution_window_days,
        coalesce(conversions.conversions, 0) as conversions,
        coalesce(conversions.converted_recipients, 0) as converted_recipients,
        {{ safe_divide('coalesce(conversions.converted_recipients, 0)', 'recipient_counts.delivered') }}
            as conversion_rate,
        coalesce(conversions.attributed_revenue, 0) as attributed_revenue,
        {{ money_ratio('coalesce(conversions.attributed_revenue, 0)', 'recipient_counts.delivered', 4) }}
            as revenue_per_recipient
    from campaigns_channels
    left join campaigns on campaigns_channels.campaign_id = campaigns.campaign_id
    left join recipient_counts
        on campaigns_channels.campaign_id = recipient_counts.campaign_id
        and campaigns_channels.channel = recipient_counts.channel
    left join conversions
        on campaigns_channels.campaign_id = conversions.campaign_id
        and campaigns_channels.channel = conversions.channel

)

select * from final
