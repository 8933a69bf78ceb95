with

identity_map as (

    select * from {{ ref('dim_customer_identity_map') }}
    where customer_id is not null

),

identities as (

    select
        identity_map.customer_id,
        int_customer_identities.*
    from {{ ref('int_customer_identities') }} as int_customer_identities
    inner join identity_map
        on int_customer_identities.source = identity_map.source
        and int_customer_identities.source_key = identity_map.source_key

),

orders as (

    select * from {{ ref('fct_orders') }}
    where customer_id is not null

),

revenue_orders as (

    select * from orders where is_revenue_order

),

emails as (

    select customer_id, min(email) as email
    from identity_map
    group by customer_id

),

customers as (

    select
        customer_id,
        min(observed_at) as first_seen_at,
        max(activity_at) as last_activity_at,
        min(case when source = 'stripe' then source_customer_id end) as stripe_customer_id,
        min(case when source = 'hubspot' then source_customer_id end) as hubspot_record_id,
        min(case when source = 'klaviyo' then source_customer_id end) as klaviyo_profile_id,
        min(case when source = 'product' then source_customer_id end) as product_user_id
    from identities
    group by customer_id

),

{#- The rankings below first reduce the records to one row per customer and ranked value, with
    the value's latest observed_at (max, a fixed-size state DuckDB can spill): the same winners as
    ranking every record, on a far smaller set (identity records run to tens of millions). -#}
latest_phone as (

    select
        customer_id,
        phone,
        row_number() over (
            partition by customer_id order by observed_at desc, phone desc
        ) as recency
    from (
        select customer_id, phone, max(observed_at) as observed_at
        from identities
        where phone is not null
        group by customer_id, phone
    ) as phones

),

{#- Country: the latest Shopify billing country, else the CRM's, else the card's (Stripe). -#}
ranked_countries as (

    select
        customer_id,
        country_code,
        row_number() over (
            partition by customer_id
            order by
                case source when 'shopify' then 1 when 'hubspot' then 2 when 'stripe' then 3 else 4 end,
                observed_at desc,
                country_code
        ) as preference
    from (
        select customer_id, source, country_code, max(observed_at) as observed_at
        from identities
        where country_code is not null
        group by customer_id, source, country_code
    ) as countries

),

latest_original_source as (

    select
        customer_id,
        original_source,
        row_number() over (
            partition by customer_id order by observed_at desc, original_source
        ) as recency
    from (
        select customer_id, original_source, max(observed_at) as observed_at
        from identities
        where source = 'hubspot' and original_source is not null
        group by customer_id, original_source
    ) as original_sources

),

{#- Consent per channel: each source key's latest statement counts (a later opt-in replaces an
    earlier opt-out within the same tool; at the same time a refusal wins). Reachable needs at
    least one consent and no refusal. -#}
statements as (

    {% for channel in ['email', 'sms', 'push'] -%}
    {% if not loop.first %}union all{% endif %}
    select
        customer_id,
        source,
        source_key,
        '{{ channel }}' as channel,
        {{ channel }}_consent as consent,
        max(observed_at) as observed_at
    from identities
    where {{ channel }}_consent is not null
    group by customer_id, source, source_key, {{ channel }}_consent
    {% endfor %}

),

latest_statements as (

    select
        *,
        row_number() over (
            partition by customer_id, source, source_key, channel
            order by observed_at desc, consent
        ) as recency
    from statements

),

consents as (

    select
        customer_id,
        max(case when channel = 'email' and consent then 1 else 0 end) = 1 as has_email_consent,
        max(case when channel = 'email' and not consent then 1 else 0 end) = 1 as has_email_refusal,
        max(case when channel = 'sms' and consent then 1 else 0 end) = 1 as has_sms_consent,
        max(case when channel = 'sms' and not consent then 1 else 0 end) = 1 as has_sms_refusal,
        max(case when channel = 'push' and consent then 1 else 0 end) = 1 as has_push_consent,
        max(case when channel = 'push' and not consent then 1 else 0 end) = 1 as has_push_refusal
    from latest_statements
    where recency = 1
    group by customer_id

),

first_order as (

    select customer_id, channel as acquisition_channel
    from revenue_orders
    where is_first_order

),

order_stats as (

    select
        customer_id,
        min(created_at) filter (where is_first_order) as first_order_at,
        max(created_at) as last_order_at,
        count(*) as orders_count,
        sum(total_amount_reporting) as lifetime_revenue,
        sum(refunded_amount_reporting) as lifetime_refunds,
        count(case when has_discount then 1 end) as discounted_orders_count
    from revenue_orders
    group by customer_id

),

any_orders as (

    select customer_id, count(*) as all_orders_count
    from orders
    group by customer_id

),

final as (

    select
        customers.customer_id,
        emails.email,
        latest_phone.phone,
        ranked_countries.country_code as country,
        customers.first_seen_at,
        case
            when any_orders.customer_id is not null
                then coalesce(first_order.acquisition_channel, '{{ var("default_channel") }}')
        end as acquisition_channel,
        latest_original_source.original_source,
        order_stats.first_order_at,
        order_stats.last_order_at,
        coalesce(order_stats.orders_count, 0) as orders_count,
        coalesce(order_stats.lifetime_revenue, 0) as lifetime_revenue,
        coalesce(order_stats.lifetime_refunds, 0) as lifetime_refunds,
        {{ money_ratio('order_stats.lifetime_revenue', 'order_stats.orders_count') }}
            as average_order_value,
        {{ safe_divide('order_stats.discounted_orders_count', 'order_stats.orders_count') }} as discount_order_share,
        emails.email is not null
            and coalesce(consents.has_email_consent, false)
            and not coalesce(consents.has_email_refusal, false) as is_email_marketable,
        latest_phone.phone is not null
            and coalesce(consents.has_sms_consent, false)
            and not coalesce(consents.has_sms_refusal, false) as is_sms_marketable,
        coalesce(consents.has_push_consent, false)
            and not coalesce(consents.has_push_refusal, false) as is_push_reachable,
        customers.last_activity_at,
        customers.stripe_customer_id,
        customers.hubspot_record_id,
        customers.klaviyo_profile_id,
        customers.product_user_id
    from customers
    inner join emails on customers.customer_id = emails.customer_id
    left join latest_phone
        on customers.customer_id = latest_phone.customer_id and latest_phone.recency = 1
    left join ranked_countries
        on customers.customer_id = ranked_countries.customer_id and ranked_countries.preference = 1
    left join latest_original_source
        on customers.customer_id = latest_original_source.customer_id
        and latest_original_source.recency = 1
    left join consents on customers.customer_id = consents.customer_id
    left join order_stats on customers.customer_id = order_stats.customer_id
    left join first_order on customers.customer_id = first_order.customer_id
    left join any_orders on customers.customer_id = any_orders.customer_id

)

select * from final
