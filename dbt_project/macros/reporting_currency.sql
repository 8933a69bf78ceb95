{#- Conversion to the reporting currency: the one place that says which rate an amount gets. -#}

{#- The ISO 4217 code all *_reporting amounts are in (MWH_REPORTING_CURRENCY, default EUR). -#}
{% macro reporting_currency() -%}
    '{{ env_var("MWH_REPORTING_CURRENCY", "EUR") | upper }}'
{%- endmacro %}

{#- True when a rate of ``rate_date`` may convert an amount of ``on_date``: the same day or at most
    var("fx_lookback_days") days older (weekends, holidays). Used by the forward-filled rates and
    by audit.missing_fx_rates, so the marts and the quarantine apply the same look-back. -#}
{% macro fx_rate_applies(rate_date, on_date) -%}
    ({{ rate_date }} <= {{ on_date }}
        and {{ rate_date }} > cast({{ dbt.dateadd('day', -(var('fx_lookback_days') | int) - 1, on_date) }} as date))
{%- endmacro %}

{#- The rows of ``relation`` with reporting_currency and fx_rate: 1 for an amount already in the
    reporting currency, else the rate of ``on_date`` (int_fx_rates_forward_filled). No rate within
    the look-back leaves fx_rate null: a caller keeps only rows with a rate (the others are in
    audit.quarantine as missing_fx_rate); a rate of 1.0 is never assumed. A null currency (an
    amount-less voucher record) keeps a null fx_rate. -#}
{% macro with_fx_rate(relation, currency, on_date) -%}
    select
        {{ relation }}.*,
        {{ reporting_currency() }} as reporting_currency,
        case
            when {{ relation }}.{{ currency }} is null then null
            when {{ relation }}.{{ currency }} = {{ reporting_currency() }} then 1.0
            else fx_rates.rate
        end as fx_rate
    from {{ relation }}
    left join {{ ref('int_fx_rates_forward_filled') }} as fx_rates
        on {{ relation }}.{{ currency }} = fx_rates.from_currency
        and {{ on_date }} = fx_rates.rate_day
{%- endmacro %}

{#- An amount converted with an FX rate, rounded to cents. Widened first: DECIMAL(18, 6) times a
    DECIMAL(18, 6) rate would overflow from one million upwards. -#}
{% macro to_reporting(amount, rate) -%}
    cast(cast({{ amount }} as decimal(38, 6)) * cast({{ rate }} as decimal(38, 10)) as decimal(18, 2))
{%- endmacro %}
