{#- One row per loaded row with an amount to convert to the reporting currency, and whether it
    can be: has_fx_rate is false for a currency with no rate on the row's date or at most
    var("fx_lookback_days") days before it (macro fx_rate_applies, the rule of
    int_fx_rates_forward_filled). The marts leave those rows out (macro with_fx_rate);
    audit.quarantine lists them as missing_fx_rate, and the staging gate's fx_rate_coverage check
    weighs their share per source. Rows stay in the raw layer: once a workbook with the rate
    lands, the next build converts them. A Shopify order is its first line-item row (the order's
    currency and date are on it); a voucher record without an amount has no currency and needs no
    rate. A view (a table on Spark: dbt_project.yml): it is read by the quarantine and the gate,
    never published. -#}
with

shopify_orders as (

    select
        'shopify' as source, 'order_lines' as entity, source_file, file_hash, load_date,
        source_row_number, loaded_at, currency, cast(created_at as date) as amount_date,
        'created_at' as date_column
    from {{ ref('stg_shopify__order_lines') }}
    qualify source_row_number = min(source_row_number) over (partition by file_hash, order_name)

),

stripe_payments as (

    select
        'stripe', 'payments', source_file, file_hash, load_date, source_row_number, loaded_at,
        currency, cast(created_at as date), 'created_at'
    from {{ ref('stg_stripe__payments') }}

),

google_ads as (

    select
        'google_ads', 'campaign_stats', source_file, file_hash, load_date, source_row_number,
        loaded_at, currency, report_date, 'report_date'
    from {{ ref('stg_google_ads__campaign_stats') }}

),

meta_ads as (

    select
        'meta_ads', 'campaign_stats', source_file, file_hash, load_date, source_row_number,
        loaded_at, currency, report_date, 'report_date'
    from {{ ref('stg_meta_ads__campaign_stats') }}

),

budgets as (

    select
        'spreadsheets', 'budgets', source_file, file_hash, load_date, source_row_number, loaded_at,
        currency, cast({{ dbt.date_trunc('month', 'budget_month') }} as date), 'budget_month'
    from {{ ref('stg_spreadsheets__budgets') }}

),

vouchers as (

    select
        'vouchers', 'redemptions', source_file, file_hash, load_date, source_row_number, loaded_at,
        currency, cast(redeemed_at as date), 'redeemed_at'
    from {{ ref('stg_vouchers__redemptions') }}
    where currency is not null

),

amounts as (

    select * from shopify_orders
    union all
    select * from stripe_payments
    union all
    select * from google_ads
    union all
    select * from meta_ads
    union all
    select * from budgets
    union all
    select * from vouchers

),

rates as (

    select * from {{ ref('stg_spreadsheets__fx_rates') }}
    where to_currency = {{ reporting_currency() }}

),

{#- the currencies and dates with a rate (a join, not a correlated exists: Spark 4.3's optimizer
    fails on an exists over this union) -#}
covered as (

    select distinct dates.currency, dates.amount_date
    from (select distinct currency, amount_date from amounts) as dates
    inner join rates
        on rates.from_currency = dates.currency
        and {{ fx_rate_applies('rates.rate_date', 'dates.amount_date') }}

),

checked as (

    select
        amounts.*,
        amounts.currency = {{ reporting_currency() }}
            or covered.currency is not null as has_fx_rate
    from amounts
    left join covered
        on covered.currency = amounts.currency
        and covered.amount_date = amounts.amount_date

),

final as (

    select
        source,
        entity,
        source_file,
        file_hash,
        load_date,
        source_row_number as row_number,
        currency,
        amount_date,
        date_column,
        coalesce(has_fx_rate, false) as has_fx_rate,
        case
            when has_fx_rate then null
            when currency is null then
                'column "currency": empty; expected the ISO 4217 code of the amount to convert it to '
                || {{ reporting_currency() }}
            else
                'column "currency": no ' || currency || '->' || {{ reporting_currency() }}
                || ' rate on or up to {{ var("fx_lookback_days") }} days before '
                || coalesce(cast(amount_date as string), 'an empty date') || ' (column "' || date_column || '"); set '
                || 'MWH_REPORTING_CURRENCY=' || currency || ' if every amount is in ' || currency
                || ', or land an FX workbook (fx_rates*.xlsx: Date, From, To, Rate) with '
                || currency || '->' || {{ reporting_currency() }} || ' rates for that date'
        end as reason_detail,
        loaded_at
    from checked

)

select * from final
