{#- Incremental nights (DECISIONLOG "Incremental models: a night ranks its new copies against the
    kept ones"). A model that keeps the latest copy of each record (macro latest_copy_rank) is
    built in full the first time and with --full-refresh. On every later build it reads only the
    copies loaded after its latest kept copy (a new night's files, a late file dropped into an
    earlier folder, a re-sent export), ranks them against the copy it kept of the same record,
    and replaces those records by key (delete+insert on unique_key). The rank of a record's copies
    depends on its copies only, so this gives the rows a full build gives.
    One thing the kept copies cannot tell: a file they came from is gone from the raw layer (an
    erasure rewrote it under a new hash, a landed file was replaced). The records of gone files
    are then recomputed from every copy left (the only time a night reads older copies), and the
    post-hook delete_kept_copies_of_gone_files removes those with none left.
    Such a model keeps the rank columns of the copy it kept (load_date, landed_at, loaded_at,
    source_file, source_row_number) and its file_hash. -#}

{#- The filter on ``copies`` (a staging relation, every copy of every record) that leaves the
    copies a night must rank: those loaded after the model's latest kept copy (``kept_filter``
    picks the model's rows of that source), and every copy of a record whose kept copy's file is
    gone (looked up first, so that a night without gone files reads no old copy). Incremental
    builds only. -#}
{% macro copies_to_rank(copies, key, kept_key=none, kept_filter='true') -%}
    {#- The watermark and the count of gone files are looked up before the query runs, so the
        watermark is a constant DuckDB checks against each raw file's statistics. A dbt unit test
        gives the kept rows as a CTE (``this`` is its name, no table): there both are subqueries. -#}
    {%- set gone_files -%}
        {{ kept_filter }} and file_hash not in (select distinct file_hash from {{ copies }})
    {%- endset -%}
    {%- if execute and this is not string -%}
        {%- set state = run_query(
            "select coalesce(strftime(max(loaded_at), '%Y-%m-%d %H:%M:%S.%f'), '-infinity'), "
            ~ "count(*) filter (where " ~ gone_files ~ ") from " ~ this ~ " where " ~ kept_filter
        ).rows[0] -%}
        {%- set watermark = "timestamp '" ~ state[0] ~ "'" -%}
        {%- set gone = state[1] > 0 -%}
    {%- else -%}
        {%- set watermark -%}
            (select coalesce(max(loaded_at), '-infinity'::timestamp) from {{ this }}
            where {{ kept_filter }})
        {%- endset -%}
        {%- set gone = true -%}
    {%- endif -%}
    (
        loaded_at is null
        or loaded_at > {{ watermark }}
        {%- if gone %}
        or {{ key }} in (select {{ kept_key or key }} from {{ this }} where {{ gone_files }})
        {%- endif %}
    )
{%- endmacro %}

{#- The kept rows of the records among ``ranked_copies`` (a CTE of new copies in the model's own
    columns), to rank the new copies against; a kept copy whose file is gone is left out (it
    lost its place). ``kept_key`` is the record key as the model's column. -#}
{% macro kept_copies(ranked_copies, copies, kept_key, kept_filter='true') -%}
    select * from {{ this }}
    where {{ kept_filter }}
        and {{ kept_key }} in (select {{ kept_key }} from {{ ranked_copies }})
        and file_hash in (select distinct file_hash from {{ copies }})
{%- endmacro %}

{#- Post-hook: the records whose kept copy's file is gone and that no copy replaced (the only
    rows delete+insert does not reach). -#}
{% macro delete_kept_copies_of_gone_files(copies, kept_filter='true') -%}
    {{ delete_on_incremental(
        kept_filter ~ ' and file_hash not in (select distinct file_hash from ' ~ copies ~ ')'
    ) }}
{%- endmacro %}

{#- Hook of an incremental build: delete the model's rows where ``condition`` holds (the rows a
    night computes again in full, or rows it wrote only to replace others). Nothing on a full
    build. -#}
{% macro delete_on_incremental(condition) -%}
    {%- if is_incremental() -%}
    delete from {{ this }} where {{ condition }}
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- The columns a latest-copy model keeps of the copy it kept: its file and what latest_copy_rank
    orders by (``prefix``: a table alias and a dot). -#}
{% macro kept_copy_columns(prefix='') -%}
    {{ prefix }}source_file,
    {{ prefix }}file_hash,
    {{ prefix }}source_row_number,
    {{ prefix }}load_date,
    {{ prefix }}landed_at,
    {{ prefix }}loaded_at
{%- endmacro %}
