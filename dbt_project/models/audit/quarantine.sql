with

source as (

    select * from {{ source('raw_audit', 'quarantine') }}

),

{#- rows the warehouse build sets aside (they are loaded, but not converted); raw_content stays
    empty: the row is in the raw layer, named by its file and row number -#}
missing_fx_rates as (

    select * from {{ ref('fx_rate_coverage') }} where not has_fx_rate

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
    union all
    select
        source,
        entity,
        source_file,
        file_hash,
        load_date,
        row_number,
        'missing_fx_rate' as reason_code,
        reason_detail,
        cast(null as string) as raw_content,
        loaded_at as quarantined_at
    from missing_fx_rates

)

select * from final
