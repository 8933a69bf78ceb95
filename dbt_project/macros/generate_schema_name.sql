{#- Models land in the schema they declare (staging, intermediate, marts, audit), not in
    "<target schema>_<custom schema>": BI users query marts.<model> on every target. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
