{#- How the plan's primary metric is measured (primary_metric_kind):
    - revenue_order: "conversion" (any case): a revenue order of fct_orders;
    - product_event: exactly (case-sensitive) the name of an event of the product-events export as
      stg_product__events spells it (the contract trims it, nothing else changes it), seen in any
      load; "conversion" stays the revenue order even if an event has that name;
    - unknown: anything else. Such a row keeps participants and revenue but null conversion
      statistics (is_primary_metric_supported = false); the marts gate warns about it. -#}
with

plans as (

    select * from {{ ref('stg_spreadsheets__experiments') }}

),

assignments as (

    select * from {{ ref('stg_spreadsheets__experiment_assignments') }}

),

{#- An experiment whose plan names an audience (dbt_project/audiences/<name>.yml) takes its
    participants from marts.audience_members: the arms of the audience's latest snapshot on or
    before the experiment's start date (the send date), the arm as the variant (control is the
    control), assigned at the start date. Members are matched to orders and events by their
    e-mail, so a member without one cannot be measured and is left out. -#}
audience_arms as (

    select
        audience_members.audience_name,
        audience_members.snapshot_date,
        audience_members.arm,
        audience_members.control_share,
        dim_customers.email
    from {{ ref('audience_members') }} as audience_members
    inner join {{ ref('dim_customers') }} as dim_customers
        on audience_members.customer_id = dim_customers.customer_id
    where dim_customers.email is not null

),

orders as (

    select email, created_at, order_date, total_amount_reporting
    from {{ ref('fct_orders') }}
    where is_revenue_order and email is not null

),

product_events as (

    select message_id, event_name, occurred_at
    from {{ ref('int_product_events_deduplicated') }}

),

{#- Who did a product event: the source key int_customer_identities gives it (its user id, else its
    e-mail), resolved to the key's e-mail by dim_customer_identity_map, so an event of a user id
    that once logged in with an e-mail is that e-mail's, as everywhere in the warehouse. -#}
product_identities as (

    select source_record_id as message_id, source_key
    from {{ ref('int_customer_identities') }}
    where source = 'product'

),

product_emails as (

    select source_key, email
    from {{ ref('dim_customer_identity_map') }}
    where source = 'product' and email is not null

),

event_names as (

    select distinct event_name
    from product_events

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

planned as (

    select
        latest_plans.experiment_id,
        latest_plans.primary_metric,
        case
            when lower(latest_plans.primary_metric) = 'conversion' then 'revenue_order'
            when event_names.event_name is not null then 'product_event'
            else 'unknown'
        end as primary_metric_kind,
        latest_plans.audience_name,
        case
            when latest_plans.audience_name is not null then 'control'
            else latest_plans.control_variant
        end as control_variant,
        latest_plans.minimum_sample_per_variant,
        latest_plans.start_date,
        latest_plans.end_date,
        coalesce(
            latest_plans.conversion_window_days, {{ var("experiment_conversion_window_days") }}
        ) as conversion_window_days
    from latest_plans
    left join event_names on latest_plans.primary_metric = event_names.event_name

),

sheet_assignments as (

    select experiment_id, email, variant, assigned_at
    from (
        select
            *,
            {{ latest_copy_rank('experiment_id, email') }} as copy_rank
        from assignments
    ) as ranked
    where copy_rank = 1

),

audience_snapshots as (

    select planned.experiment_id, planned.audience_name, max(audience_arms.snapshot_date) as snapshot_date
    from planned
    inner join audience_arms
        on planned.audience_name = audience_arms.audience_name
        and audience_arms.snapshot_date <= planned.start_date
    group by 1, 2

),

{#- The assignment sheet for plans without an audience, the audience's arms for plans with one
    (the sheet's rows of such an experiment are not read). planned_share is the share the
    audience's control_share gives each arm; sheet assignments expect an equal split. -#}
latest_assignments as (

    select
        sheet_assignments.experiment_id,
        sheet_assignments.email,
        sheet_assignments.variant,
        sheet_assignments.assigned_at,
        cast(null as double) as planned_share
    from sheet_assignments
    inner join planned on sheet_assignments.experiment_id = planned.experiment_id
    where planned.audience_name is null

    union all

    select
        audience_snapshots.experiment_id,
        audience_arms.email,
        audience_arms.arm as variant,
        cast(null as timestamp) as assigned_at,
        case
            when audience_arms.arm = 'control' then audience_arms.control_share
            else 1 - audience_arms.control_share
        end as planned_share
    from audience_snapshots
    inner join audience_arms
        on audience_snapshots.audience_name = audience_arms.audience_name
        and audience_snapshots.snapshot_date = audience_arms.snapshot_date

),

{#- Each participant's conversion window: from the assignment (the experiment's start when the
    assignment has no time) up to and including the UTC day conversion_window_days after the
    assignment's day, but never before the start date or after the end date (the window and the
    experiment's dates intersect). Variants are matched case-insensitively (variant_key). -#}
windows as (

    select
        latest_assignments.experiment_id,
        latest_assignments.email,
        latest_assignments.variant,
        lower(latest_assignments.variant) as variant_key,
        latest_assignments.planned_share,
        planned.primary_metric,
        planned.primary_metric_kind,
        planned.start_date,
        coalesce(
            latest_assignments.assigned_at, cast(planned.start_date as timestamp)
        ) as window_start_at,
        least(
            planned.end_date,
            cast(coalesce(latest_assignments.assigned_at, planned.start_date) as date)
            + cast(planned.conversion_window_days as integer)
        ) as window_end_date
    from latest_assignments
    inner join planned on latest_assignments.experiment_id = planned.experiment_id

),

{#- Each participant's revenue orders inside their window (UTC order dates), whatever the primary
    metric: revenue is revenue orders only. Matched with an inner join on the e-mail first: range
    conditions in a left join's ON clause make DuckDB fall back to a nested-loop join. -#}
participant_orders as (

    select
        windows.experiment_id,
        windows.email,
        count(*) as orders,
        sum(orders.total_amount_reporting) as revenue
    from windows
    inner join orders on windows.email = orders.email
    where
        orders.order_date between windows.start_date and windows.window_end_date
        and orders.created_at >= windows.window_start_at
    group by 1, 2

),

{#- The product events some plan is judged on, with the e-mail of the person who did them. -#}
metric_events as (

    select
        product_events.event_name,
        product_events.occurred_at,
        product_emails.email
    from product_events
    inner join product_identities on product_events.message_id = product_identities.message_id
    inner join product_emails on product_identities.source_key = product_emails.source_key
    where product_events.event_name in (
        select primary_metric from planned where primary_metric_kind = 'product_event'
    )

),

participant_events as (

    select
        windows.experiment_id,
        windows.email,
        count(*) as events
    from windows
    inner join metric_events
        on windows.email = metric_events.email
        and windows.primary_metric = metric_events.event_name
    where
        windows.primary_metric_kind = 'product_event'
        and cast(metric_events.occurred_at as date)
        between windows.start_date and windows.window_end_date
        and metric_events.occurred_at >= windows.window_start_at
    group by 1, 2

),

participants as (

    select
        windows.experiment_id,
        windows.variant_key,
        windows.variant,
        windows.planned_share,
        windows.email,
        coalesce(participant_orders.revenue, 0) as revenue,
        case windows.primary_metric_kind
            when 'revenue_order' then coalesce(participant_orders.orders, 0) > 0
            when 'product_event' then coalesce(participant_events.events, 0) > 0
        end as has_converted
    from windows
    left join participant_orders
        on windows.experiment_id = participant_orders.experiment_id
        and windows.email = participant_orders.email
    left join participant_events
        on windows.experiment_id = participant_events.experiment_id
        and windows.email = participant_events.email

),

{#- A variant's label: the plan's spelling of the control variant; otherwise the spelling most of
    its assignments use (ties: the alphabetically first). -#}
spellings as (

    select experiment_id, variant_key, variant
    from (
        select experiment_id, variant_key, variant, count(*) as assignments
        from participants
        group by 1, 2, 3
    ) as spelled
    qualify row_number() over (
        partition by experiment_id, variant_key
        order by assignments desc, variant
    ) = 1

),

variants as (

    select
        experiment_id,
        variant_key,
        count(*) as participants,
        max(planned_share) as planned_share,
        cast(sum(case when has_converted then 1 else 0 end) as bigint) as converters,
        sum(revenue) as revenue
    from participants
    group by 1, 2

),

{#- The split expected: an audience experiment's arms expect the audience's control_share and its
    complement; a sheet's variants an equal split over the variants that have participants (the
    plan has no split column). -#}
split as (

    select
        experiment_id,
        count(*) as variants_count,
        cast(sum(participants) as bigint) as total_participants
    from variants
    group by 1

),

measured as (

    select
        variants.experiment_id,
        case
            when variants.variant_key = lower(planned.control_variant)
                then planned.control_variant
            else spellings.variant
        end as variant,
        coalesce(variants.variant_key = lower(planned.control_variant), false) as is_control,
        planned.primary_metric,
        planned.primary_metric_kind,
        planned.primary_metric_kind <> 'unknown' as is_primary_metric_supported,
        planned.audience_name,
        planned.conversion_window_days,
        planned.minimum_sample_per_variant,
        planned.start_date,
        planned.end_date,
        variants.participants,
        case
            when planned.primary_metric_kind <> 'unknown' then variants.converters
        end as conversions,
        variants.revenue,
        coalesce(
            variants.planned_share, {{ safe_divide("1", "split.variants_count") }}
        ) as expected_share,
        split.total_participants
    from variants
    inner join planned on variants.experiment_id = planned.experiment_id
    inner join split on variants.experiment_id = split.experiment_id
    inner join spellings
        on variants.experiment_id = spellings.experiment_id
        and variants.variant_key = spellings.variant_key

),

control as (

    select experiment_id, participants as control_participants, conversions as control_conversions
    from measured
    where is_control

),

{#- Sample-ratio mismatch: chi-square goodness of fit of the participants per variant against the
    expected shares, variants - 1 degrees of freedom. -#}
srm as (

    select
        experiment_id,
        count(*) as variants_count,
        sum(
            power(participants - total_participants * expected_share, 2)
            / (total_participants * expected_share)
        ) as srm_chi_square
    from measured
    group by 1

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
        primary_metric_kind,
        is_primary_metric_supported,
        audience_name,
        start_date,
        end_date,
        conversion_window_days,
        {{ reporting_currency() }} as reporting_currency,
        participants,
        expected_share,
        conversions,
        conversion_rate,
        revenue,
        {{ money_ratio('revenue', 'participants', 4) }} as revenue_per_participant,
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
