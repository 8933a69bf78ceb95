{#- Primary metrics this mart can compute; any other plan value gives a row with participants and
    revenue but null conversion statistics (is_primary_metric_supported = false). -#}
{%- set supported_metrics = ["conversion"] %}
with

plans as (

    select * from {{ ref('stg_spreadsheets__experiments') }}

),

assignments as (

    select * from {{ ref('stg_spreadsheets__experiment_assignments') }}

),

orders as (

    select email, created_at, order_date, total_amount_reporting
    from {{ ref('fct_orders') }}
    where is_revenue_order and email is not null

),

latest_plans as (

    select *
    from (
        select
            *,
            {{ latest_copy_rank('experiment_id') }} as copy_rank
        from plans
    ) as ranked
    where copy_rank = 1

),

latest_assignments as (

    select *
    from (
        select
            *,
            {{ latest_copy_rank('experiment_id, email') }} as copy_rank
        from assignments
    ) as ranked
    where copy_rank = 1

),

{#- Each participant's revenue orders inside the experiment window (start_date to end_date, UTC
    order dates) and not before their assignment. Matched with an inner join on the e-mail first:
    the range conditions in a left join's ON clause make DuckDB fall back to a nested-loop join. -#}
participant_orders as (

    select
        latest_assignments.experiment_id,
        latest_assignments.email,
        count(*) as orders,
        sum(orders.total_amount_reporting) as revenue
    from latest_assignments
    inner join latest_plans on latest_assignments.experiment_id = latest_plans.experiment_id
    inner join orders on latest_assignments.email = orders.email
    where
        orders.order_date between latest_plans.start_date and latest_plans.end_date
        and (
            latest_assignments.assigned_at is null
            or orders.created_at >= latest_assignments.assigned_at
        )
    group by 1, 2

),

participants as (

    select
        latest_assignments.experiment_id,
        latest_assignments.variant,
        latest_assignments.email,
        coalesce(participant_orders.orders, 0) as orders,
        coalesce(participant_orders.revenue, 0) as revenue
    from latest_assignments
    inner join latest_plans on latest_assignments.experiment_id = latest_plans.experiment_id
    left join participant_orders
        on latest_assignments.experiment_id = participant_orders.experiment_id
        and latest_assignments.email = participant_orders.email

),

variants as (

    select
        participants.experiment_id,
        participants.variant,
        count(*) as participants,
        cast(sum(case when participants.orders > 0 then 1 else 0 end) as bigint) as converters,
        sum(participants.revenue) as revenue
    from participants
    group by 1, 2

),

with_plan as (

    select
        variants.*,
        latest_plans.primary_metric,
        latest_plans.primary_metric in (
            {%- for metric in supported_metrics %}'{{ metric }}'{{ "," if not loop.last }}{% endfor -%}
        ) as is_primary_metric_supported,
        latest_plans.control_variant,
        latest_plans.minimum_sample_per_variant,
        latest_plans.start_date,
        latest_plans.end_date,
        coalesce(variants.variant = latest_plans.control_variant, false) as is_control
    from variants
    inner join latest_plans on variants.experiment_id = latest_plans.experiment_id

),

measured as (

    select
        *,
        case when is_primary_metric_supported then converters end as conversions
    from with_plan

),

control as (

    select experiment_id, participants as control_participants, conversions as control_conversions
    from measured
    where is_control

),

{#- Sample-ratio mismatch: chi-square goodness of fit of the participants per variant against an
    equal split (the plan has no split column), variants - 1 degrees of freedom. -#}
split as (

    select
        experiment_id,
        count(*) as variants_count,
        cast(sum(participants) as bigint) as total_participants
    from measured
    group by 1

),

srm as (

    select
        measured.experiment_id,
        split.variants_count,
        sum(
            power(measured.participants - split.total_participants * 1.0 / split.variants_count, 2)
            / (split.total_participants * 1.0 / split.variants_count)
        ) as srm_chi_square
    from measured
    inner join split on measured.experiment_id = split.experiment_id
    group by 1, 2

),

rates as (

    select
        measured.*,
        control.control_participants,
        control.control_conversions,
        srm.srm_chi_square,
        {{ chi_square_p_value('srm.srm_chi_square', 'srm.variants_count - 1') }} as srm_p_value,
        {{ safe_divide('measured.conversions', 'measured.participants') }} as conversion_rate,
        {{ safe_divide('control.control_conversions', 'control.control_participants') }}
            as control_conversion_rate,
        {{ safe_divide(
            'measured.conversions + control.control_conversions',
            'measured.participants + control.control_participants'
        ) }} as pooled_conversion_rate
    from measured
    left join control on measured.experiment_id = control.experiment_id
    left join srm on measured.experiment_id = srm.experiment_id

),

tested as (

    select
        *,
        case when not is_control then conversion_rate - control_conversion_rate end
            as absolute_uplift,
        case
            when not is_control
                then sqrt(
                    pooled_conversion_rate * (1 - pooled_conversion_rate)
                    * (1.0 / participants + 1.0 / control_participants)
                )
        end as pooled_standard_error,
        case
            when not is_control
                then sqrt(
                    conversion_rate * (1 - conversion_rate) / participants
                    + control_conversion_rate * (1 - control_conversion_rate) / control_participants
                )
        end as standard_error
    from rates

),

final as (

    select
        experiment_id,
        variant,
        is_control,
        primary_metric,
        is_primary_metric_supported,
        start_date,
        end_date,
        {{ reporting_currency() }} as reporting_currency,
        participants,
        conversions,
        conversion_rate,
        revenue,
        cast(revenue / nullif(participants, 0) as decimal(18, 4)) as revenue_per_participant,
        control_conversion_rate,
        absolute_uplift,
        absolute_uplift / nullif(control_conversion_rate, 0) as relative_uplift,
        absolute_uplift - 1.959964 * standard_error as absolute_uplift_ci_lower,
        absolute_uplift + 1.959964 * standard_error as absolute_uplift_ci_upper,
        absolute_uplift / nullif(pooled_standard_error, 0) as z_score,
        {{ two_sided_p_value('absolute_uplift / nullif(pooled_standard_error, 0)') }} as p_value,
        coalesce(
            {{ two_sided_p_value('absolute_uplift / nullif(pooled_standard_error, 0)') }} < 0.05,
            false
        ) as is_significant,
        srm_chi_square,
        srm_p_value,
        coalesce(srm_p_value < {{ var("experiment_srm_p_value") }}, false) as has_sample_ratio_mismatch,
        coalesce(participants < minimum_sample_per_variant, false) as is_below_minimum_sample,
        coalesce(
            absolute_uplift / nullif(control_conversion_rate, 0)
            > {{ var("experiment_implausible_relative_uplift") }},
            false
        ) as has_implausible_uplift
    from tested

)

select * from final
