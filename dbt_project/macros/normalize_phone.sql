{#- A phone number as digits with an optional leading "+" ("0049 151 234-5" -> "+491512345");
    null when nothing is left. Numbers are matched only when written identically after this.
    Trimmed of every Unicode space, tab, NBSP, zero-width space and BOM at both ends. The same
    rule in Python is marketing_warehouse.ops.identity.normalize_phone (a test keeps them equal). -#}
{% macro normalize_phone(expr) -%}
    nullif({{ replace_all("regexp_replace(" ~ trim_spaces(expr) ~ ", '^00', '+')", "'[^0-9+]'", "''") }}, '')
{%- endmacro %}

{#- A normalised e-mail, null when empty: trimmed like a phone, ASCII A-Z lower-cased and every
    other character kept as written (Python and DuckDB lower-case the rest of Unicode
    differently). The same rule in Python is marketing_warehouse.ops.identity.normalize_email. -#}
{% macro normalize_email(expr) -%}
    nullif(translate({{ trim_spaces(expr) }}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), '')
{%- endmacro %}

{#- ``expr`` without the Unicode spaces, tabs, NBSP, zero-width spaces and BOM at both ends. -#}
{% macro trim_spaces(expr) -%}
    {%- set spaces -%}
        '^[\x{0009}-\x{000D}\x{001C}-\x{0020}\x{0085}\x{00A0}\x{1680}\x{2000}-\x{200B}\x{2028}-\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF}]+|[\x{0009}-\x{000D}\x{001C}-\x{0020}\x{0085}\x{00A0}\x{1680}\x{2000}-\x{200B}\x{2028}-\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF}]+$'
    {%- endset -%}
    {{ replace_all(expr, spaces, "''") }}
{%- endmacro %}
