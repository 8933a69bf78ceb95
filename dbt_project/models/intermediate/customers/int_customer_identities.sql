{#- One row per source record that names a person: an order or payment, a CRM contact, a message
    event, a product event, a voucher redemption, an experiment assignment. Each record carries the
    key its tool knows the person by (source_key: the tool's own id, else the e-mail, else the
    phone), what it says about the person's consent per channel (true = consent, false = refusal,
    null = says nothing) and, when the person did something, activity_at. Records repeated across
    exports are kept once (latest load). dim_customer_identity_map resolves source keys to customers.
    Incremental (DECISIONLOG "Incremental models: a night ranks its new copies against the kept
    ones"): the records of orders, payments, message and product events, most of the rows, map one
    to one from latest-copy models, so a night reads only the ones those models replaced (loaded
    after this model's latest row of the source, or of a kept copy whose file is gone: macro
    copies_to_rank) and replaces them by key; a record that lost its source key or its last copy
    is deleted by the post-hooks. HubSpot contacts are ranked like the latest-copy models' records
    (each row keeps its copy's rank columns). Voucher redemptions and experiment assignments, far
    fewer, are computed again from all their copies each night. -#}
{{ config(
    materialized=latest_copy_materialized(),
    unique_key=['source', 'source_record_id'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    pre_hook="{{ delete_on_incremental(\"source in ('vouchers', 'experiments')\") }}",
    post_hook=[
        "{{ delete_kept_copies_of_gone_files(ref('int_orders_deduplicated'), \"source in ('shopify', 'stripe')\") }}",
        "{{ delete_kept_copies_of_gone_files(ref('int_klaviyo_events_deduplicated'), \"source = 'klaviyo'\") }}",
        "{{ delete_kept_copies_of_gone_files(ref('int_product_events_deduplicated'), \"source = 'product'\") }}",
        "{{ delete_kept_copies_of_gone_files(ref('stg_hubspot__contacts'), \"source = 'hubspot'\") }}",
        "{{ delete_on_incremental('source_key is null') }}",
    ],
) }}
with

orders as (

    select * from {{ ref('int_orders_deduplicated') }}
    {% if is_incremental() -%}
    where {{ copies_to_rank(
        ref('int_orders_deduplicated'), 'order_id', 'source_record_id', "source in ('shopify', 'stripe')"
    ) }}
    {%- endif %}

),

{#- HubSpot contacts: HubSpot exports a contact again whenever it changes; the latest copy wins.
    An incremental night ranks the copies it loaded, then their winners against the rows kept
    (latest_contacts), as the latest-copy models do. -#}
contacts as (

    select
        *,
        {{ latest_copy_rank('record_id') }} as copy_rank
    from {{ ref('stg_hubspot__contacts') }}
    {% if is_incremental() -%}
    where {{ copies_to_rank(
        ref('stg_hubspot__contacts'), 'record_id', 'source_record_id', "source = 'hubspot'"
    ) }}
    {%- endif %}

),

{#- Klaviyo events are deduplicated once, in int_klaviyo_events_deduplicated. -#}
message_events as (

    select * from {{ ref('int_klaviyo_events_deduplicated') }}
    {% if is_incremental() -%}
    where {{ copies_to_rank(
        ref('int_klaviyo_events_deduplicated'), 'event_id', 'source_record_id', "source = 'klaviyo'"
    ) }}
    {%- endif %}

),

{#- Product events are deduplicated once, in int_product_events_deduplicated. -#}
product_events as (

    select * from {{ ref('int_product_events_deduplicated') }}
    {% if is_incremental() -%}
    where {{ copies_to_rank(
        ref('int_product_events_deduplicated'), 'message_id', 'source_record_id', "source = 'product'"
    ) }}
    {%- endif %}

),

redemptions as (

    select
        *,
        {{ latest_copy_rank('redemption_id') }} as copy_rank
    from {{ ref('stg_vouchers__redemptions') }}

),

assignments as (

    select
        *,
        {{ latest_copy_rank('experiment_id, email') }} as copy_rank
    from {{ ref('stg_spreadsheets__experiment_assignments') }}

),

from_orders as (

    select
        source_system as source,
        customer_source_key as source_key,
        stripe_customer_id as source_customer_id,
        order_id as source_record_id,
        email,
        phone,
        billing_country as country_raw,
        cast(null as string) as original_source,
        created_at as observed_at,
        created_at as activity_at,
        is_accepts_marketing as email_consent,
        cast(null as boolean) as sms_consent,
        cast(null as boolean) as push_consent,
        {{ kept_copy_columns() }}
    from orders

),

{#- HubSpot: "Non-marketing contact" or "Unsubscribed from all email" refuse e-mail; SMS needs the
    SMS consent property and a marketing contact. Last Activity Date is not used as activity: HubSpot
    also stamps it for activity of the portal's users. -#}
from_contacts as (

    select
        'hubspot' as source,
        record_id as source_key,
        record_id as source_customer_id,
        record_id as source_record_id,
        {{ normalize_email('email') }} as email,
        {{ normalize_phone('phone') }} as phone,
        country as country_raw,
        original_source,
        created_at as observed_at,
        cast(null as timestamp) as activity_at,
        case
            when is_unsubscribed_all_email then false
            when marketing_contact_status = 'non-marketing contact' then false
            when marketing_contact_status = 'marketing contact' then true
        end as email_consent,
        case
            when marketing_contact_status = 'non-marketing contact' then false
            else has_sms_consent
        end as sms_consent,
        cast(null as boolean) as push_consent,
        {{ kept_copy_columns() }}
    from contacts
    where copy_rank = 1

),

latest_contacts as (

    {% if is_incremental() -%}
    select {{ all_columns_but(['copy_rank']) }}
    from (
        select *, {{ latest_copy_rank('source_record_id') }} as copy_rank
        from (
            select * from from_contacts
            union all by name
            select {{ all_columns_but(['country_code']) }}
            from ({{ kept_copies(
                'from_contacts', ref('stg_hubspot__contacts'), 'source_record_id', "source = 'hubspot'"
            ) }})
        )
    )
    where copy_rank = 1
    {%- else -%}
    select * from from_contacts
    {%- endif %}

),

{#- Klaviyo: an unsubscribe, a bounce or a spam complaint refuses the channel; a delivered push
    proves the device accepts pushes. Opens and clicks are activity; deliveries are not. -#}
from_message_events as (

    select
        'klaviyo' as source,
        coalesce(nullif(trim(profile_id), ''), {{ normalize_email('email') }}) as source_key,
        nullif(trim(profile_id), '') as source_customer_id,
        event_id as source_record_id,
        {{ normalize_email('email') }} as email,
        {{ normalize_phone('phone') }} as phone,
        cast(null as string) as country_raw,
        cast(null as string) as original_source,
        occurred_at as observed_at,
        case
            when metric in ('opened email', 'clicked email', 'clicked sms', 'opened push')
                then occurred_at
        end as activity_at,
        case
            when metric = 'unsubscribed' and coalesce(event_channel, 'email') = 'email' then false
            when metric in ('bounced email', 'marked email as spam') then false
        end as email_consent,
        case when metric = 'unsubscribed' and event_channel = 'sms' then false end as sms_consent,
        case
            when metric = 'unsubscribed' and event_channel = 'push' then false
            when metric in ('received push', 'opened push') then true
        end as push_consent,
        {{ kept_copy_columns() }}
    from message_events

),

from_product_events as (

    select
        'product' as source,
        coalesce(nullif(trim(user_id), ''), {{ normalize_email('email') }}) as source_key,
        nullif(trim(user_id), '') as source_customer_id,
        message_id as source_record_id,
        {{ normalize_email('email') }} as email,
        cast(null as string) as phone,
        cast(null as string) as country_raw,
        cast(null as string) as original_source,
        occurred_at as observed_at,
        occurred_at as activity_at,
        cast(null as boolean) as email_consent,
        cast(null as boolean) as sms_consent,
        cast(null as boolean) as push_consent,
        {{ kept_copy_columns() }}
    from product_events

),

from_redemptions as (

    select
        'vouchers' as source,
        coalesce(nullif(trim(customer_source_id), ''), {{ normalize_email('email') }}) as source_key,
        nullif(trim(customer_source_id), '') as source_customer_id,
        redemption_id as source_record_id,
        {{ normalize_email('email') }} as email,
        cast(null as string) as phone,
        cast(null as string) as country_raw,
        cast(null as string) as original_source,
        redeemed_at as observed_at,
        case when result = 'success' then redeemed_at end as activity_at,
        cast(null as boolean) as email_consent,
        cast(null as boolean) as sms_consent,
        cast(null as boolean) as push_consent,
        {{ kept_copy_columns() }}
    from redemptions
    where copy_rank = 1

),

from_assignments as (

    select
        'experiments' as source,
        {{ normalize_email('email') }} as source_key,
        cast(null as string) as source_customer_id,
        experiment_id as source_record_id,
        {{ normalize_email('email') }} as email,
        cast(null as string) as phone,
        cast(null as string) as country_raw,
        cast(null as string) as original_source,
        assigned_at as observed_at,
        cast(null as timestamp) as activity_at,
        cast(null as boolean) as email_consent,
        cast(null as boolean) as sms_consent,
        cast(null as boolean) as push_consent,
        {{ kept_copy_columns() }}
    from assignments
    where copy_rank = 1

),

unioned as (

    select * from from_orders
    union all
    select * from latest_contacts
    union all
    select * from from_message_events
    union all
    select * from from_product_events
    union all
    select * from from_redemptions
    union all
    select * from from_assignments

),

final as (

    select
        source,
        source_key,
        source_customer_id,
        source_record_id,
        email,
        phone,
        {{ normalize_country('country_raw') }} as country_code,
        country_raw,
        original_source,
        observed_at,
        activity_at,
        email_consent,
        sms_consent,
        push_consent,
        {{ kept_copy_columns() }}
    from unioned
    {#- An incremental night writes the records that lost their source key too, so that they
        replace the rows they had; a post-hook deletes them. -#}
    {%- if not is_incremental() %}
    where source_key is not null
    {%- endif %}

)

select * from final
