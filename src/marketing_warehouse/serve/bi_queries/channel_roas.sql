-- title: Spend, ROAS and CAC per channel and month, last 12 months
-- requires: marts.kpi_channel_performance
-- audience: bi
select
    month,
    channel,
    spend,
    roas,
    cac
from marts.kpi_channel_performance
where month >= (select max(month) from marts.kpi_channel_performance) - interval '12 months'
order by month, channel
