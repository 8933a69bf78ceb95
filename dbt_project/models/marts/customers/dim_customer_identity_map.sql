{#- One row per source and source_key: how each tool's record of a person resolves to a customer.
    1. email: the key's records carry an e-mail (the latest one wins if it changed)
       -> customer_id = md5(e-mail).
    2. phone: no e-mail, but the phone matches the phone of exactly one e-mail-resolved key
       -> that customer.
    3. unresolved: neither; customer_id stays null (e.g. a product user who never logged in with
       an e-mail) and the key is not a customer.
    Until December 2026 this model was called customer_identity_map: the post-hook drops a table
    of the old name left in the build file, so it is never published beside this one. -#}
{{ config(post_hook="drop table if exists {{ this.schema }}.customer_identity_map") }}
with

identities as (

    select * from {{ ref('int_customer_identities') }}

),

{#- The latest e-mail and phone of each key are the values of its latest record that has one
    (records without a timestamp count as oldest; ties go to the greater value). The records are
    first reduced to one row per key and distinct (e-mail, phone) pair with fixed-size aggregates
    only, which DuckDB can spill to disk, so the map builds within the memory limit at any scale;
    the latest values are then ranked on that much smaller set. -#}
values_seen as (

    select
        source,
        source_key,
        email,
        phone,
        min(observed_at) as first_seen_at,
        max(observed_at) as last_seen_at,
        count(*) as records_count
    from identities
    group by source, source_key, email, phone

),

key_counts as (

    select
        source,
        source_key,
        min(first_seen_at) as first_seen_at,
        max(last_seen_at) as last_seen_at,
        cast(sum(records_count) as bigint) as records_count
    from values_seen
    group by source, source_key

),

{% for value in ['email', 'phone'] -%}
latest_{{ value }} as (

    select source, source_key, {{ value }}
    from values_seen
    where {{ value }} is not null
    qualify row_number() over (
        partition by source, source_key
        order by last_seen_at desc nulls last, {{ value }} desc
    ) = 1

),

{% endfor -%}

keyed as (

    select
        key_counts.source,
        key_counts.source_key,
        key_counts.first_seen_at,
        key_counts.last_seen_at,
        key_counts.records_count,
        latest_email.email,
        latest_phone.phone
    from key_counts
    left join latest_email
        on key_counts.source = latest_email.source
        and key_counts.source_key = latest_email.source_key
    left join latest_phone
        on key_counts.source = latest_phone.source
        and key_counts.source_key = latest_phone.source_key

),

{#- Phones that belong to exactly one e-mail: a phone shared by two people matches nobody. -#}
phone_owners as (

    select phone, min(email) as email
    from keyed
    where email is not null and phone is not null
    group by phone
    having count(distinct email) = 1

),

final as (

    select
        keyed.source,
        keyed.source_key,
        {{ dbt.hash('coalesce(keyed.email, phone_owners.email)') }} as customer_id,
        case
            when keyed.email is not null then 'email'
            when phone_owners.email is not null then 'phone'
            else 'unresolved'
        end as matching_rule,
        coalesce(keyed.email, phone_owners.email) as email,
        keyed.phone,
        keyed.first_seen_at,
        keyed.last_seen_at,
        keyed.records_count
    from keyed
    -- a key's own e-mail wins over its phone's owner (the coalesces above); an equality-only
    -- join condition keeps this a hash join
    left join phone_owners on keyed.phone = phone_owners.phone

)

select * from final
