{#- The lookup key of a free-text country: trimmed, lower-cased, dots dropped, runs of spaces made
    one ("  U.S.A. " -> "usa"). Seed country_aliases is keyed on it. -#}
{% macro country_alias_key(expr) -%}
    lower(trim({{ replace_all("replace(" ~ expr ~ ", '.', '')", "'\\s+'", "' '") }}))
{%- endmacro %}

{#- ISO 3166-1 alpha-2 code of a free-text country ("Germany", "germany", "DE", "Deutschland" ->
    'DE'), looked up in the seed country_aliases; a value the seed does not know stays null. -#}
{% macro normalize_country(expr) -%}
    (
        select country_aliases.country_code
        from {{ ref('country_aliases') }} as country_aliases
        where country_aliases.alias = {{ country_alias_key(expr) }}
    )
{%- endmacro %}
