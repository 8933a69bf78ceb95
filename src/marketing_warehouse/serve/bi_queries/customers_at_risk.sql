-- title: At-risk valuable customers: churn risk high or medium on the latest snapshot, by predicted CLV
-- requires: marts.dim_customer_segments, marts.customer_predictions
-- audience: bi
-- No e-mail or phone: customer_id (md5 of the e-mail) and is_email_marketable say who and whether
-- a campaign can reach them. A customer without a predicted_clv (Gamma-Gamma q <= 1) comes last.
with

latest_snapshot as (

    select max(snapshot_date) as snapshot_date from marts.dim_customer_segments

),

final as (

    select
        segments.snapshot_date,
        segments.customer_id,
        segments.lifecycle_stage,
        segments.rfm_segment,
        segments.churn_risk,
        segments.probability_alive,
        segments.predicted_clv,
        predictions.expected_next_order_date,
        segments.last_order_date,
        segments.is_email_marketable
    from marts.dim_customer_segments as segments
    inner join latest_snapshot on segments.snapshot_date = latest_snapshot.snapshot_date
    left join marts.customer_predictions as predictions
        on segments.snapshot_date = predictions.snapshot_date
        and segments.customer_id = predictions.customer_id
    where segments.churn_risk in ('high', 'medium')

)

select * from final
order by predicted_clv desc nulls last, customer_id
