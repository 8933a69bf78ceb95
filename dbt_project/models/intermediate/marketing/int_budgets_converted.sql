{#- One row per month and channel label of the budget workbook: the row from the latest delivered
    workbook wins. Budget and target revenue are converted to the reporting currency with the rate
    of the month's first day (macro with_fx_rate, the look-back of orders); a month with no rate
    is left out (audit.quarantine, missing_fx_rate). -#}
with

budgets as (

    select * from {{ ref('stg_spreadsheets__budgets') }}

),

ranked as (

    select
        *,
        cast({{ dbt.date_trunc('month', 'budget_month') }} as date) as month,
        {{ latest_copy_rank(dbt.date_trunc('month', 'budget_month') ~ ', channel') }} as copy_rank
    from budgets

),

latest as (

    select * from ranked where copy_rank = 1

),

converted as (

    select * from ({{ with_fx_rate('latest', 'currency', 'latest.month') }}) as with_rates
    where fx_rate is not null

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
        reporting_currency,
        fx_rate,
        {{ to_reporting('budget_amount', 'fx_rate') }} as budget_amount_reporting,
        {{ to_reporting('target_revenue', 'fx_rate') }} as target_revenue_amount_reporting,
        source_file
    from converted

)

select * from final
