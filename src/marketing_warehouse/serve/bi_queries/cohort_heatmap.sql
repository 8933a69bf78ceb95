-- title: Cohort retention heatmap: share of each monthly cohort ordering again N months later
-- requires: marts.kpi_cohort_retention
-- audience: bi
select
    cohort_month,
    months_since_first_order,
    cohort_size,
    retained_customers,
    retention_rate
from marts.kpi_cohort_retention
where cohort_month >= (select max(cohort_month) from marts.kpi_cohort_retention) - interval '12 months'
order by cohort_month, months_since_first_order
