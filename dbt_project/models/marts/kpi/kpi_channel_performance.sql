with

ad_spend as (

    select * from {{ ref('int_ad_spend_converted') }}

),

attributed_orders as (

    select * from {{ ref('int_orders_channel_attributed') }}

),

budgets as (

    select * from {{ ref('int_budgets_converted') }}

),

monthly_ads as (

    select
        cast({{ dbt.date_trunc('month', 'report_date') }} as date) as month,
        channel,
        cast(sum(impressions) as bigint) as impressions,
        cast(sum(clicks) as bigint) as clicks,
        sum(spend_amount_reporting) as spend,
        sum(platform_conversions) as platform_conversions,
        sum(platform_conversion_value_amount_reporting) as platform_conversion_value
    from ad_spend
    group by 1, 2

),

monthly_orders as (

    select
        order_month as month,
        channel,
        count(*) as conversions,
        sum(total_amount_reporting) as attributed_revenue,
        count(distinct case when is_first_order then customer_id end) as new_customers
    from attributed_orders
    group by 1, 2

),

monthly_budgets as (

    select
        month,
        channel,
        sum(budget_amount_reporting) as budget,
        cast(sum(target_new_customers) as bigint) as target_new_customers,
        sum(target_revenue_amount_reporting) as target_revenue
    from budgets
    group by 1, 2

),

months_channels as (

    select month, channel from monthly_ads
    union
    select month, channel from monthly_orders
    union
    select month, channel from monthly_budgets

),

final as (

    select
        months_channels.month,
        months_channels.channel,
        {{ reporting_currency() }} as reporting_currency,
        monthly_ads.spend,
        monthly_ads.impressions,
        monthly_ads.clicks,
        {{ safe_divide('monthly_ads.clicks', 'monthly_ads.impressions') }} as ctr,
        {{ money_ratio('monthly_ads.spend', 'monthly_ads.clicks', 4) }} as cpc,
        monthly_ads.platform_conversions,
        monthly_ads.platform_conversion_value,
        {{ safe_divide('monthly_ads.platform_conversion_value', 'monthly_ads.spend') }}
            as platform_roas,
        coalesce(monthly_orders.conversions, 0) as conversions,
        coalesce(monthly_orders.attributed_revenue, 0) as attributed_revenue,
        {{ safe_divide('coalesce(monthly_orders.attributed_revenue, 0)', 'monthly_ads.spend') }}
            as roas,
        coalesce(monthly_orders.new_customers, 0) as new_customers,
        {{ money_ratio('monthly_ads.spend', 'monthly_orders.new_customers') }} as cac,
        monthly_budgets.budget,
        monthly_budgets.target_new_customers,
        monthly_budgets.target_revenue,
        {{ safe_divide('monthly_ads.spend', 'monthly_budgets.budget') }} as budget_attainment,
        {{ safe_divide(
            'coalesce(monthly_orders.new_customers, 0)', 'monthly_budgets.target_new_customers'
        ) }} as new_customers_attainment,
        {{ safe_divide(
            'coalesce(monthly_orders.attributed_revenue, 0)', 'monthly_budgets.target_revenue'
        ) }} as revenue_attainment
    from months_channels
    left join monthly_ads
        on months_channels.month = monthly_ads.month
        and months_channels.channel = monthly_ads.channel
    left join monthly_orders
        on months_channels.month = monthly_orders.month
        and months_channels.channel = monthly_orders.channel
    left join monthly_budgets
        on months_channels.month = monthly_budgets.month
        and months_channels.channel = monthly_budgets.channel

)

select * from final
