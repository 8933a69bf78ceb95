-- title: Customers per RFM segment and lifecycle stage on the latest snapshot
-- requires: marts.dim_customer_segments
-- audience: bi
select
    snapshot_date,
    rfm_segment,
    lifecycle_stage,
    count(*) as customers
from marts.dim_customer_segments
where snapshot_date = (select max(snapshot_date) from marts.dim_customer_segments)
group by snapshot_date, rfm_segment, lifecycle_stage
order by customers desc, rfm_segment, lifecycle_stage
