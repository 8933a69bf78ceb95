{#- What the SQL of the project spells differently on its two engines (MWH_ENGINE: duckdb, the
    default, or spark). Everything else is written once in SQL both engines read the same way
    (cast(... as string), double, qualify, split_part, regexp_extract, filter (where ...)). -#}

{#- A source on Spark: the files its DuckDB reader (meta.external_location in the sources YAML,
    the one place a raw path is spelled) reads, as Spark reads them. Parquet sources are read in
    place (parquet.`<glob>`; spark.sql.parquet.mergeSchema stands for union_by_name); the load
    ledger's JSON files become a temporary view over the same glob (on-run-start,
    create_raw_views). -#}
{% macro source(source_name, table_name) -%}
    {%- set relation = builtins.source(source_name, table_name) -%}
    {%- if target.type != 'spark' or not execute -%}
        {{- return(relation) -}}
    {%- endif -%}
    {%- set reader = spark_raw_reader(source_name, table_name) -%}
    {%- if reader.format == 'parquet' -%}
        {{- return('parquet.`' ~ reader.path ~ '`') -}}
    {%- endif -%}
    {{- return(reader.view) -}}
{%- endmacro %}

{%- macro spark_raw_reader(source_name, table_name) -%}
    {%- set node = graph.sources['source.' ~ project_name ~ '.' ~ source_name ~ '.' ~ table_name] -%}
    {%- set location = node.meta.external_location or node.source_meta.external_location -%}
    {%- set found = modules.re.match("\s*read_(parquet|json)\('([^']+)'", location) -%}
    {%- if not found -%}
        {{ exceptions.raise_compiler_error("source " ~ source_name ~ "." ~ table_name ~ ": external_location "
            ~ location ~ " is not read_parquet('<glob>', ...) or read_json('<glob>', ...)") }}
    {%- endif -%}
    {{- return({'format': found.group(1), 'path': found.group(2).replace('{name}', table_name),
                'view': source_name ~ '__' ~ table_name}) -}}
{%- endmacro -%}

{#- on-run-start: on Spark, a temporary view for each JSON source with the columns (and file
    name) DuckDB gives: the ledger (one JSON array per file; the quarantine reasons as compact
    JSON text) and the erasure log (JSON lines). -#}
{% macro create_raw_views() -%}
    {%- if target.type == 'spark' and execute -%}
        {%- set reader = spark_raw_reader('raw_audit', 'load_ledger') -%}
        {%- do run_query("create or replace temporary view " ~ reader.view ~ "__files (
            source_file string, file_hash string, load_date date, status string,
            rows_landed bigint, rows_loaded bigint, rows_quarantined bigint, message string,
            encoding string, delimiter string, unknown_columns array<string>,
            quarantine_reasons map<string, bigint>
        ) using json options (path '" ~ reader.path ~ "', multiLine 'true')") -%}
        {%- do run_query("create or replace temporary view " ~ reader.view
            ~ " as select * except (quarantine_reasons), to_json(quarantine_reasons) as quarantine_reasons,"
            ~ " input_file_name() as filename from " ~ reader.view ~ "__files") -%}
        {%- set erasures = spark_raw_reader('raw_audit', 'erasure_log') -%}
        {%- do run_query("create or replace temporary view " ~ erasures.view
            ~ " (subject_sha256 string) using json options (path '" ~ erasures.path ~ "')") -%}
    {%- endif -%}
{%- endmacro %}

{#- Every match of ``pattern`` in ``expr`` replaced (DuckDB replaces the first without 'g'). -#}
{% macro replace_all(expr, pattern, replacement) -%}
    {{ return(adapter.dispatch('replace_all')(expr, pattern, replacement)) }}
{%- endmacro %}
{% macro default__replace_all(expr, pattern, replacement) -%}
    regexp_replace({{ expr }}, {{ pattern }}, {{ replacement }}, 'g')
{%- endmacro %}
{% macro spark__replace_all(expr, pattern, replacement) -%}
    regexp_replace({{ expr }}, {{ pattern }}, {{ replacement }})
{%- endmacro %}

{#- The elements of a string array joined by ``separator``. -#}
{% macro join_strings(expr, separator) -%}
    {{ return(adapter.dispatch('join_strings')(expr, separator)) }}
{%- endmacro %}
{% macro default__join_strings(expr, separator) -%}
    array_to_string({{ expr }}, {{ separator }})
{%- endmacro %}
{% macro spark__join_strings(expr, separator) -%}
    array_join({{ expr }}, {{ separator }})
{%- endmacro %}

{#- Every column of ``relation`` (a name or alias) but ``columns``. -#}
{% macro all_columns_but(columns, relation=none) -%}
    {{ return(adapter.dispatch('all_columns_but')(columns, relation)) }}
{%- endmacro %}
{% macro default__all_columns_but(columns, relation) -%}
    {{ relation ~ '.' if relation }}* exclude ({{ columns | join(', ') }})
{%- endmacro %}
{% macro spark__all_columns_but(columns, relation) -%}
    {{ relation ~ '.' if relation }}* except ({{ columns | join(', ') }})
{%- endmacro %}

{#- The materialization of a latest-copy model (macros/incremental.sql): incremental by key on
    DuckDB; on Spark a table built in full each night (replacing rows by key needs a table
    format with deletes, which plain Parquet tables lack). -#}
{% macro latest_copy_materialized() -%}
    {{ return('table' if target.type == 'spark' else 'incremental') }}
{%- endmacro %}

{#- The SHA-256 of a string as 64 lower-case hex digits. -#}
{% macro sha256_hex(expr) -%}
    {{ return(adapter.dispatch('sha256_hex')(expr)) }}
{%- endmacro %}
{% macro default__sha256_hex(expr) -%}
    sha256({{ expr }})
{%- endmacro %}
{% macro spark__sha256_hex(expr) -%}
    sha2({{ expr }}, 256)
{%- endmacro %}

{#- A post-hook of a partitioned model: on Spark, its zero-row schema file (a partitioned table
    without rows has no Parquet file, and the build database's views, transform.spark_catalog,
    take such a table's columns from this file). Nothing on DuckDB. -#}
{% macro spark_schema_file() -%}
    {%- if target.type == 'spark' -%}
        insert overwrite directory '{{ env_var("MWH_SPARK_SCHEMAS") }}/{{ this.schema }}.{{ this.identifier }}'
        using parquet select * from {{ this }} limit 0
    {%- endif -%}
{%- endmacro %}
