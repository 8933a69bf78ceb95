{#- One row per snapshot date, model and parameter: the fits behind customer_predictions. -#}
with

parameters as (

    select * from {{ source('predictions', 'clv_model_parameters') }}

),

final as (

    select
        snapshot_date,
        model,
        parameter,
        value,
        customers_fitted,
        log_likelihood,
        is_converged
    from parameters

)

select * from final
