{#- One row per source and source_key: how each tool's record of a person resolves to a customer.
    1. email: the key's records carry an e-mail (the latest one wins if it changed)
       -> customer_id = md5(e-mail).
    2. phone: no e-mail, but the phone matches the phone of exactly one e-mail-resolved key
       -> that customer.
    3. unresolved: neither; customer_id stays null (e.g. a product user who never logged in with
       an e-mail) and the key is not a customer. -#}
with

identities as (

    select * from {{ ref('int_customer_identities') }}

),

{#- One pass over the records: the latest e-mail and phone of each key are the values of its
    latest record that has one (records without a timestamp count as oldest; ties go to the
    greater value). -#}
keyed as (

    select
        source,
        source_key,
        min(observed_at) as first_seen_at,
        max(observed_at) as last_seen_at,
        count(*) as records_count,
        arg_max(
            email,
            struct_pack(
                dated := observed_at is not null,
                observed_at := coalesce(observed_at, timestamp '1970-01-01'),
                email := email
            )
        ) filter (where email is not null) as email,
        arg_max(
            phone,
            struct_pack(
                dated := observed_at is not null,
                observed_at := coalesce(observed_at, timestamp '1970-01-01'),
                phone := phone
            )
        ) filter (where phone is not null) as phone
    from identities
    group by source, source_key

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
