{#- The DuckDB expression that reads one raw entity: every load partition plus the zero-row schema
    file, so a source that has not delivered yet still has its columns. -#}
{% macro raw_parquet(key) -%}
    read_parquet('{{ env_var("MWH_RAW_DIR") }}/{{ key }}/*/*.parquet', union_by_name = true)
{%- endmacro %}
