-- title: Experiment read-out: conversion per variant, relative uplift and significance
-- requires: marts.kpi_experiments
-- audience: bi
-- kpi_experiments names the column relative_uplift; the dashboard keeps uplift_relative.
select
    experiment_id,
    variant,
    participants,
    conversion_rate,
    relative_uplift as uplift_relative,
    p_value,
    is_significant
from marts.kpi_experiments
order by experiment_id, variant
