{#- The ISO 4217 code all *_reporting amounts are in (MWH_REPORTING_CURRENCY, default EUR). -#}
{% macro reporting_currency() -%}
    '{{ env_var("MWH_REPORTING_CURRENCY", "EUR") | upper }}'
{%- endmacro %}

{#- An amount converted with an FX rate, rounded to cents. Widened first: DECIMAL(18, 6) times a
    DECIMAL(18, 6) rate would overflow from one million upwards. -#}
{% macro to_reporting(amount, rate) -%}
    cast(cast({{ amount }} as decimal(38, 6)) * cast({{ rate }} as decimal(38, 10)) as decimal(18, 2))
{%- endmacro %}
