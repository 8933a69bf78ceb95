with

orders as (

    select * from {{ ref('fct_orders') }}
    where is_revenue_order

),

{#- A product user: the resolved customer, else the product's own key (a user id never seen
    with an e-mail). Events with neither user id nor e-mail are anonymous and not counted. -#}
product_users as (

    select distinct
        cast(identities.observed_at as date) as activity_date,
        coalesce(identity_map.customer_id, 'product:' || identities.source_key) as user_key
    from {{ ref('int_customer_identities') }} as identities
    left join {{ ref('dim_customer_identity_map') }} as identity_map
        on identities.source = identity_map.source
        and identities.source_key = identity_map.source_key
    where identities.source = 'product'

),

bounds as (

    select min(order_date) as first_date, max(order_date) as last_date from orders

),

spine as (

    {{ date_spine('(select first_date from bounds)', '(select last_date from bounds)') }}

),

{#- a customer's first order: fct_orders.is_first_order, the one place that rule is written -#}
first_order_dates as (

    select customer_id, order_date as first_order_date
    from orders
    where is_first_order

),

daily_orders as (

    select
        orders.order_date,
        count(*) as orders,
        sum(total_amount_reporting) as revenue,
        sum(refunded_amount_reporting) as refunds,
        sum(discount_amount_reporting) as discount_cost,
        count(distinct case
            when orders.order_date = first_order_dates.first_order_date then orders.customer_id
        end) as new_customers,
        count(distinct case
            when orders.order_date > first_order_dates.first_order_date then orders.customer_id
        end) as returning_customers
    from orders
    left join first_order_dates on orders.customer_id = first_order_dates.customer_id
    group by orders.order_date

),

{#- Rolling distinct users without a range join. A user active on day a counts towards the
    weekly (monthly) figure of days a .. a + 6 (a + window - 1). Each activity day contributes only
    the part of its window not already covered by the user's previous activity day, so a user's
    windows become disjoint intervals; +1 where one starts and -1 after it ends, summed over the
    calendar, is the number of distinct users active within the window of each day. -#}
activity_windows as (

    select
        activity_date,
        greatest(
            activity_date,
            coalesce({{ dbt.dateadd('day', 7, 'previous_activity_date') }}, activity_date)
        ) as week_start,
        {{ dbt.dateadd('day', 7, 'activity_date') }} as week_after,
        greatest(
            activity_date,
            coalesce(
                {{ dbt.dateadd('day', var('active_window_days'), 'previous_activity_date') }},
                activity_date
            )
        ) as month_start,
        {{ dbt.dateadd('day', var('active_window_days'), 'activity_date') }} as month_after
    from (
        select
            activity_date,
            lag(activity_date) over (partition by user_key order by activity_date)
                as previous_activity_date
        from product_users
    ) as sequenced

),

activity_changes as (

    select cast(activity_date as date) as change_date, 1 as daily, 0 as weekly, 0 as monthly
    from activity_windows
    union all
    select cast(week_start as date), 0, 1, 0 from activity_windows
    union all
    select cast(week_after as date), 0, -1, 0 from activity_windows
    union all
    select cast(month_start as date), 0, 0, 1 from activity_windows
    union all
    select cast(month_after as date), 0, 0, -1 from activity_windows

),

daily_changes as (

    select
        change_date,
        sum(daily) as daily,
        sum(weekly) as weekly,
        sum(monthly) as monthly
    from activity_changes
    group by change_date

),

calendar as (

    select date_day from spine
    union
    select change_date from daily_changes

),

active_users as (

    select
        calendar.date_day,
        cast(coalesce(daily_changes.daily, 0) as bigint) as active_users,
        cast(sum(coalesce(daily_changes.weekly, 0)) over (
            order by calendar.date_day rows between unbounded preceding and current row
        ) as bigint) as weekly_active_users,
        cast(sum(coalesce(daily_changes.monthly, 0)) over (
            order by calendar.date_day rows between unbounded preceding and current row
        ) as bigint) as monthly_active_users
    from calendar
    left join daily_changes on calendar.date_day = daily_changes.change_date

),

final as (

    select
        spine.date_day as date,
        {{ reporting_currency() }} as reporting_currency,
        coalesce(daily_orders.orders, 0) as orders,
        coalesce(daily_orders.revenue, 0) as revenue,
        coalesce(daily_orders.refunds, 0) as refunds,
        coalesce(daily_orders.revenue, 0) - coalesce(daily_orders.refunds, 0) as net_revenue,
        {{ money_ratio('daily_orders.revenue', 'daily_orders.orders') }}
            as average_order_value,
        coalesce(daily_orders.new_customers, 0) as new_customers,
        coalesce(daily_orders.returning_customers, 0) as returning_customers,
        coalesce(daily_orders.discount_cost, 0) as discount_cost,
        coalesce(active_users.active_users, 0) as active_users,
        coalesce(active_users.weekly_active_users, 0) as weekly_active_users,
        coalesce(active_users.monthly_active_users, 0) as monthly_active_users
    from spine
    left join daily_orders on spine.date_day = daily_orders.order_date
    left join active_users on spine.date_day = active_users.date_day

)

select * from final
