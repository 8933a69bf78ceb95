{#- Audiences (dbt_project/audiences/<name>.yml): the arm rule and the members' SQL. The
    definitions reach dbt validated and rendered for the engine, as JSON in MWH_AUDIENCES
    (marketing_warehouse.transform.audiences.definitions_env). -#}

{#- The customer's place in [0, 1) for an audience's salt: the first 32 bits of
    sha256(salt || ':' || customer_id) over 2^32 (transform.audiences.bucket is the same rule in
    Python; a test compares them). ``salt`` and ``customer_id`` are SQL expressions. -#}
{% macro audience_bucket(salt, customer_id) -%}
    {{ return(adapter.dispatch('audience_bucket')(salt, customer_id)) }}
{%- endmacro %}
{% macro default__audience_bucket(salt, customer_id) -%}
    cast(('0x' || left(sha256({{ salt }} || ':' || {{ customer_id }}), 8)) as ubigint) / 4294967296.0
{%- endmacro %}
{% macro spark__audience_bucket(salt, customer_id) -%}
    cast(conv(left(sha2({{ salt }} || ':' || {{ customer_id }}, 256), 8), 16, 10) as bigint)
        / cast(4294967296 as double)
{%- endmacro %}

{#- The members of ``audiences`` (the definitions of MWH_AUDIENCES) on the snapshot
    ``snapshot_date`` (a SQL date): the customers of ``segments`` (dim_customer_segments) joined
    to ``customers`` (dim_customers; a column of both is the snapshot's) that match the filter
    and can be reached on the channel, except the SHA-256s of ``erased`` (subject_sha256). -#}
{% macro audience_members_select(audiences, segments, customers, erased, snapshot_date, segment_columns, customer_columns) -%}
{%- set overlap = customer_columns | select('in', segment_columns) | list -%}
with

segments as (

    select * from {{ segments }} where snapshot_date = {{ snapshot_date }}

),

erased as (

    select distinct subject_sha256 from {{ erased }} where subject_sha256 is not null

),

candidates as (

    select segments.*, {{ all_columns_but(overlap or ['customer_id'], 'customers') }}
    from segments
    inner join {{ customers }} as customers on segments.customer_id = customers.customer_id
    left join erased on {{ sha256_hex('segments.customer_id') }} = erased.subject_sha256
    where erased.subject_sha256 is null

),

members as (
{%- for a in audiences %}
    {{ 'union all' if not loop.first }}
    select
        '{{ a.name }}' as audience_name,
        '{{ a.channel }}' as channel,
        candidates.snapshot_date,
        candidates.customer_id,
        case when {{ audience_bucket(a.salt, 'candidates.customer_id') }} < {{ a.control_share }}
            then 'control' else 'treatment' end as arm,
        {{ audience_bucket(a.salt, 'candidates.customer_id') }} as arm_bucket,
        cast({{ a.control_share }} as double) as control_share,
        {{ a.salt }} as salt,
        '{{ a.definition_sha256 }}' as definition_sha256
    from candidates
    where coalesce(({{ a.filter }}), false)
        and coalesce(({{ a.reachable }}), false)
{%- else %}
    select
        cast(null as string) as audience_name,
        cast(null as string) as channel,
        cast(null as date) as snapshot_date,
        cast(null as string) as customer_id,
        cast(null as string) as arm,
        cast(null as double) as arm_bucket,
        cast(null as double) as control_share,
        cast(null as string) as salt,
        cast(null as string) as definition_sha256
    from (select 1 as one) as nothing
    where false
{%- endfor %}
)

select * from members
{%- endmacro %}
