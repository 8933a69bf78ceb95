{#- One row per date and currency pair: the rate from the latest delivered workbook wins. -#}
with

rates as (

    select * from {{ ref('stg_spreadsheets__fx_rates') }}

),

ranked as (

    select
        *,
        {{ latest_copy_rank('rate_date, from_currency, to_currency') }} as copy_rank
    from rates

),

final as (

    select rate_date, from_currency, to_currency, rate, source_file
    from ranked
    where copy_rank = 1

)

select * from final
