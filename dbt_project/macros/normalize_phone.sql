{#- A phone number as digits with an optional leading "+" ("0049 151 234-5" -> "+491512345");
    null when nothing is left. Numbers are matched only when written identically after this. -#}
{% macro normalize_phone(expr) -%}
    nullif(regexp_replace(regexp_replace(trim({{ expr }}), '^00', '+'), '[^0-9+]', '', 'g'), '')
{%- endmacro %}

{#- A normalised e-mail (trimmed, lower-cased), null when empty. -#}
{% macro normalize_email(expr) -%}
    nullif(lower(trim({{ expr }})), '')
{%- endmacro %}
