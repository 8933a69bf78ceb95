with

source as (

    select * from {{ source('hubspot', 'contacts') }}

),

renamed as (

    select
        -- keys
        record_id,

        -- contact
        first_name,
        last_name,
        lower(trim(email)) as email,
        phone,
        country,

        -- marketing (label "Marketing Qualified Lead" and value "marketingqualifiedlead" agree)
        replace(lower(trim(lifecycle_stage)), ' ', '') as lifecycle_stage,
        lower(trim(original_source)) as original_source,
        lower(trim(marketing_contact_status)) as marketing_contact_status,
        is_unsubscribed_all_email,
        has_sms_consent,

        -- timestamps (UTC)
        created_at,
        last_activity_at,

        -- lineage
        _source_file as source_file,
        _file_hash as file_hash,
        _row_number as source_row_number,
        _load_date as load_date,
        _landed_at as landed_at,
        _loaded_at as loaded_at

    from source

),

final as (

    select * from renamed

)

select * from final
