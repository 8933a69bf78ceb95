{#- One row per customer and snapshot date: the predict stage's files (every snapshot kept) with
    the churn-risk band, the one place the band is derived from probability_alive. -#}
with

predictions as (

    select * from {{ source('predictions', 'customer_predictions') }}

),

final as (

    select
        snapshot_date,
        customer_id,
        frequency,
        recency_days,
        customer_age_days,
        repeat_order_value,
        probability_alive,
        case
            when probability_alive is null then null
            when probability_alive < {{ var('churn_risk_high_below') }} then 'high'
            when probability_alive < {{ var('churn_risk_medium_below') }} then 'medium'
            else 'low'
        end as churn_risk,
        expected_purchases_30d,
        expected_purchases_90d,
        expected_purchases_365d,
        expected_average_order_value,
        predicted_clv,
        expected_next_order_date,
        is_in_fit_sample
    from predictions

)

select * from final
