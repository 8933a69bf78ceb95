{#- The marketing channel of a raw channel label: lower-cased and trimmed, spaces and hyphens turned
    into "_", then renamed by var("marketing_channel_aliases") ("Google Ads" -> google_ads,
    facebook -> meta_ads); a label the map does not know keeps its normalised form. -#}
{% macro marketing_channel(expr) -%}
    {%- set normalised = "replace(replace(lower(trim(" ~ expr ~ ")), ' ', '_'), '-', '_')" -%}
    case {{ normalised }}
        {%- for alias, channel in var("marketing_channel_aliases", {}).items() %}
        when '{{ alias }}' then '{{ channel }}'
        {%- endfor %}
        else {{ normalised }}
    end
{%- endmacro %}
