-- title: Experiment read-out: conversion per variant, relative uplift and significance
-- requires: marts.kpi_experiments
-- audience: bi
select
    experiment_id,
    variant,
    participants,
    conversion_rate,
    uplift_relative,
    p_value,
    is_significant
from marts.kpi_experiments
order by experiment_id, variant
