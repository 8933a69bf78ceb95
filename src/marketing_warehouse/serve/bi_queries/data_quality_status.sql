-- title: Data-quality status of the latest run, per gate and severity
-- requires: audit.validation_results
-- audience: ops
with

latest_run as (

    select max(logical_date) as logical_date from audit.validation_results

),

final as (

    select
        results.logical_date,
        results.stage,
        results.severity,
        count(*) as checks,
        sum(case when results.success then 0 else 1 end) as failed_checks,
        case
            when sum(case when results.success then 0 else 1 end) = 0 then 'pass'
            when results.severity = 'critical' then 'fail'
            else 'warn'
        end as status,
        max(results.validated_at) as validated_at
    from audit.validation_results as results
    inner join latest_run on results.logical_date = latest_run.logical_date
    group by results.logical_date, results.stage, results.severity

)

select * from final
order by stage, severity
