with

source as (

    select * from {{ source('spreadsheets', 'fx_rates') }}

),

renamed as (

    select
        rate_date,
        upper(from_currency) as from_currency,
        upper(to_currency) as to_currency,
        rate,
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
