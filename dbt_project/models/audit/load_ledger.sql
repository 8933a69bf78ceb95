with

source as (

    select * from {{ source('raw_audit', 'load_ledger') }}

),

final as (

    select
        -- .../_ledger/<source>__<entity>/load_date=YYYY-MM-DD.json
        split_part(regexp_extract(filename, '_ledger/([^/]+)/', 1), '__', 1) as source,
        split_part(regexp_extract(filename, '_ledger/([^/]+)/', 1), '__', 2) as entity,
        load_date,
        source_file,
        file_hash,
        status,
        rows_landed,
        rows_loaded,
        rows_quarantined,
        message,
        encoding,
        delimiter,
        {{ join_strings('unknown_columns', "', '") }} as unknown_columns,
        cast(quarantine_reasons as string) as quarantine_reasons
    from source

)

select * from final
