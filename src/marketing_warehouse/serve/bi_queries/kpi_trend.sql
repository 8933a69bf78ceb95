-- title: Daily KPI trend: orders, revenue, AOV and new customers over the last 90 days
-- requires: marts.kpi_daily
-- audience: bi
select
    date,
    orders,
    revenue,
    net_revenue,
    average_order_value,
    new_customers,
    returning_customers
from marts.kpi_daily
where date > (select max(date) from marts.kpi_daily) - interval '90 days'
order by date
