-- title: Reachable customers per CRM channel (email, sms, push) on the latest snapshot
-- requires: marts.kpi_channel_coverage
-- audience: bi
select
    date,
    channel,
    customers,
    reachable_customers,
    coverage_share,
    reachable_active_customers,
    reachable_active_share
from marts.kpi_channel_coverage
where date = (select max(date) from marts.kpi_channel_coverage)
order by channel
