{#- The ISO 4217 code all *_reporting amounts are in (MWH_REPORTING_CURRENCY, default EUR). -#}
{% macro reporting_currency() -%}
    '{{ env_var("MWH_REPORTING_CURRENCY", "EUR") | upper }}'
{%- endmacro %}
