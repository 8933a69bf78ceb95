{#- One row per snapshot date of dim_customer_segments and channel (email, sms, push). -#}
with

segments as (

    select * from {{ ref('dim_customer_segments') }}

),

channels as (

    select snapshot_date, customer_id, 'email' as channel,
        is_email_marketable as is_reachable, is_recently_active
    from segments
    union all
    select snapshot_date, customer_id, 'sms' as channel,
        is_sms_marketable as is_reachable, is_recently_active
    from segments
    union all
    select snapshot_date, customer_id, 'push' as channel,
        is_push_reachable as is_reachable, is_recently_active
    from segments

),

counted as (

    select
        snapshot_date,
        channel,
        count(*) as customers,
        count(case when is_reachable then 1 end) as reachable_customers,
        count(case when is_reachable and is_recently_active then 1 end)
            as reachable_active_customers
    from channels
    group by snapshot_date, channel

),

final as (

    select
        snapshot_date as date,
        channel,
        customers,
        reachable_customers,
        {{ safe_divide('reachable_customers', 'customers') }} as coverage_share,
        reachable_active_customers,
        {{ safe_divide('reachable_active_customers', 'reachable_customers') }}
            as reachable_active_share
    from counted

)

select * from final
