with

source as (

    select * from {{ source('spreadsheets', 'experiments') }}

),

renamed as (

    select
        experiment_id,
        hypothesis,
        start_date,
        end_date,
        primary_metric,
        minimum_sample_per_variant,
        control_variant,
        conversion_window_days,
        audience_name,
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
