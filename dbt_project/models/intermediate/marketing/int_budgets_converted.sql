{#- One row per month and channel label of the budget workbook: the row from the latest delivered
    workbook wins. Budget and target revenue are converted to the reporting currency with the rate
    of the month's first day (same 7-day lookback as orders); no rate leaves fx_rate null and fails
    the not_null test. -#}
with

budgets as (

    select * from {{ ref('stg_spreadsheets__budgets') }}

),

rates as (

    select * from {{ ref('int_fx_rates_forward_filled') }}

),

ranked as (

    select
        *,
        cast({{ dbt.date_trunc('month', 'budget_month') }} as date) as month,
        {{ latest_copy_rank(dbt.date_trunc('month', 'budget_month') ~ ', channel') }} as copy_rank
    from budgets

),

converted as (

    select
        ranked.*,
        case
            when ranked.currency = {{ reporting_currency() }} then 1.0
            else rates.rate
        end as fx_rate
    from ranked
    left join rates
        on ranked.currency = rates.from_currency
        and ranked.month = rates.rate_day
    where ranked.copy_rank = 1

),

final as (

    select
        month,
        channel as budget_channel,
        {{ marketing_channel('channel') }} as channel,
        currency,
        budget_amount,
        target_new_customers,
        target_revenue as target_revenue_amount,
        {{ reporting_currency() }} as reporting_currency,
        fx_rate,
        {{ to_reporting('budget_amount', 'fx_rate') }} as budget_amount_reporting,
        {{ to_reporting('target_revenue', 'fx_rate') }} as target_revenue_amount_reporting,
        source_file
    from converted

)

select * from final
