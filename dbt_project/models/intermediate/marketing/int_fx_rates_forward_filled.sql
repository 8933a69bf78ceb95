{#- One row per calendar day and currency with a rate to the reporting currency: the workbook's rate
    of that day or, on days without one (weekends, holidays), the latest rate at most
    var("fx_lookback_days") days older (macro fx_rate_applies). A day with no rate in that window
    has no row, so an amount joined to it (macro with_fx_rate) keeps a null rate and is set aside
    as missing_fx_rate: a rate of 1.0 is never assumed. -#}
with

rates as (

    select * from {{ ref('int_fx_rates_deduplicated') }}
    where to_currency = {{ reporting_currency() }}

),

bounds as (

    select min(rate_date) as first_date, max(rate_date) as last_date from rates

),

spine as (

    {{ date_spine(
        '(select first_date from bounds)',
        dbt.dateadd('day', var('fx_lookback_days'), '(select last_date from bounds)')
    ) }}

),

candidates as (

    select
        spine.date_day as rate_day,
        rates.from_currency,
        rates.to_currency,
        rates.rate,
        rates.rate_date,
        row_number() over (
            partition by spine.date_day, rates.from_currency order by rates.rate_date desc
        ) as rate_rank
    from spine
    inner join rates
        on {{ fx_rate_applies('rates.rate_date', 'spine.date_day') }}

),

final as (

    select rate_day, from_currency, to_currency, rate, rate_date
    from candidates
    where rate_rank = 1

)

select * from final
