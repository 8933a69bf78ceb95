with

source as (

    select * from {{ source('raw_audit', 'quarantine') }}

),

final as (

    select
        source,
        entity,
        source_file,
        file_hash,
        load_date,
        row_number,
        reason_code,
        reason_detail,
        raw_content,
        quarantined_at
    from source

)

select * from final
