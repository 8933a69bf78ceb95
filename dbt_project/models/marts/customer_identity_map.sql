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

keys as (

    select
        source,
        source_key,
        min(observed_at) as first_seen_at,
        max(observed_at) as last_seen_at,
        count(*) as records_count
    from identities
    group by source, source_key

),

latest_email as (

    select
        source,
        source_key,
        email,
        row_number() over (
            partition by source, source_key order by observed_at desc, email desc
        ) as recency
    from identities
    where email is not null

),

latest_phone as (

    select
        source,
        source_key,
        phone,
        row_number() over (
            partition by source, source_key order by observed_at desc, phone desc
        ) as recency
    from identities
    where phone is not null

),

keyed as (

    select
        keys.*,
        latest_email.email,
        latest_phone.phone
    from keys
    left join latest_email
        on keys.source = latest_email.source
        and keys.source_key = latest_email.source_key
        and latest_email.recency = 1
    left join latest_phone
        on keys.source = latest_phone.source
        and keys.source_key = latest_phone.source_key
        and latest_phone.recency = 1

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
    left join phone_owners on keyed.email is null and keyed.phone = phone_owners.phone

)

select * from final
