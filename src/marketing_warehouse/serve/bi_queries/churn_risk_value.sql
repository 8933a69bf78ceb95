-- title: Customers and predicted CLV per churn-risk band on the latest snapshot
-- requires: marts.dim_customer_segments
-- audience: bi
-- Customers without a prediction (no revenue order, or a snapshot too small to fit) have no band
-- and are left out. predicted_clv is a sum rounded to cents, so both serving targets agree.
with

latest_snapshot as (

    select max(snapshot_date) as snapshot_date from marts.dim_customer_segments

),

final as (

    select
        segments.snapshot_date,
        segments.churn_risk,
        count(*) as customers,
        sum(case when segments.is_email_marketable then 1 else 0 end) as email_marketable_customers,
        cast(sum(segments.predicted_clv) as decimal(18, 2)) as predicted_clv
    from marts.dim_customer_segments as segments
    inner join latest_snapshot on segments.snapshot_date = latest_snapshot.snapshot_date
    where segments.churn_risk is not null
    group by segments.snapshot_date, segments.churn_risk

)

select * from final
order by case churn_risk when 'high' then 1 when 'medium' then 2 else 3 end
