{#- One snapshot per run: every customer of dim_customers as of snapshot_date (the run's logical
    date). Re-running a date replaces that date's snapshot (pre-hook delete, then insert; on Spark
    the table is partitioned by snapshot_date and the build overwrites that partition); other
    dates are kept, so segment transitions can be counted. Order metrics use revenue orders on or
    before the snapshot date only; reachability is the consent state at build time. -#}
{{
    config(
        materialized='incremental',
        unique_key=['snapshot_date', 'customer_id'],
        incremental_strategy=('insert_overwrite' if target.type == 'spark' else 'delete+insert'),
        partition_by=('snapshot_date' if target.type == 'spark' else none),
        on_schema_change='append_new_columns',
        pre_hook="{% if is_incremental() and target.type != 'spark' %}delete from {{ this }} where snapshot_date = {{ snapshot_date() }}{% endif %}",
        post_hook=[
            "drop table if exists {{ this.schema }}.customer_segments",
            "{{ spark_schema_file() }}",
        ],
    )
}}

{#- Until December 2026 this model was called customer_segments: a build file that still has it
    carries its snapshots over on the first build under the new name (the post-hook then drops
    the old table, so it is never published twice). -#}
{%- set former = none -%}
{%- if execute and not is_incremental() -%}
    {%- set former = adapter.get_relation(
        database=this.database, schema=this.schema, identifier='customer_segments'
    ) -%}
{%- endif %}

with

snapshot as (

    select {{ snapshot_date() }} as snapshot_date

),

customers as (

    select * from {{ ref('dim_customers') }}

),

orders as (

    select * from {{ ref('fct_orders') }}
    where is_revenue_order
        and customer_id is not null
        and order_date <= (select snapshot_date from snapshot)

),

activities as (

    select
        identity_map.customer_id,
        cast(identities.activity_at as date) as activity_date
    from {{ ref('int_customer_identities') }} as identities
    inner join {{ ref('dim_customer_identity_map') }} as identity_map
        on identities.source = identity_map.source
        and identities.source_key = identity_map.source_key
    where identity_map.customer_id is not null
        and identities.activity_at is not null
        and cast(identities.activity_at as date) <= (select snapshot_date from snapshot)

),

predictions as (

    select customer_id, probability_alive, predicted_clv, churn_risk
    from {{ ref('customer_predictions') }}
    where snapshot_date = (select snapshot_date from snapshot)

),

last_activity as (

    select customer_id, max(activity_date) as last_activity_date
    from activities
    group by customer_id

),

ordered as (

    select
        customer_id,
        order_date,
        lag(order_date) over (
            partition by customer_id order by created_at, order_id
        ) as previous_order_date,
        row_number() over (
            partition by customer_id order by created_at desc, order_id desc
        ) as recency_rank
    from orders

),

order_stats as (

    select
        customer_id,
        min(order_date) filter (where is_first_order) as first_order_date,
        max(order_date) as last_order_date,
        count(*) as frequency,
        sum(total_amount_reporting) as monetary,
        count(case when has_discount then 1 end) as discounted_orders
    from orders
    group by customer_id

),

{#- M score: the customer's quintile of monetary among customers with a revenue order,
    ceil(5 x cume_dist), so equal amounts share a score and the top fifth scores 5. -#}
buyers as (

    select
        order_stats.*,
        ordered.previous_order_date,
        cast(ceil(5 * cume_dist() over (order by order_stats.monetary)) as integer) as m_score
    from order_stats
    inner join ordered
        on order_stats.customer_id = ordered.customer_id
        and ordered.recency_rank = 1

),

measured as (

    select
        snapshot.snapshot_date,
        customers.customer_id,
        buyers.first_order_date,
        buyers.last_order_date,
        buyers.previous_order_date,
        {{ dbt.datediff('buyers.last_order_date', 'snapshot.snapshot_date', 'day') }} as recency_days,
        {{ dbt.datediff('buyers.first_order_date', 'snapshot.snapshot_date', 'day') }}
            as days_since_first_order,
        coalesce(buyers.frequency, 0) as frequency,
        coalesce(buyers.monetary, 0) as monetary,
        buyers.discounted_orders,
        buyers.m_score,
        last_activity.last_activity_date,
        customers.is_email_marketable,
        customers.is_sms_marketable,
        customers.is_push_reachable,
        predictions.probability_alive,
        predictions.predicted_clv,
        predictions.churn_risk
    from customers
    cross join snapshot
    left join buyers on customers.customer_id = buyers.customer_id
    left join last_activity on customers.customer_id = last_activity.customer_id
    left join predictions on customers.customer_id = predictions.customer_id

),

scored as (

    select
        measured.*,
        case when frequency > 0 then
            5{% for days in var('rfm_recency_days') %}
            - case when recency_days > {{ days }} then 1 else 0 end{% endfor %}
        end as r_score,
        case when frequency > 0 then
            1{% for orders in var('rfm_frequency_orders') %}
            + case when frequency >= {{ orders }} then 1 else 0 end{% endfor %}
        end as f_score
    from measured

),

final as (

    select
        snapshot_date,
        customer_id,
        recency_days,
        frequency,
        monetary,
        r_score,
        f_score,
        m_score,
        cast(r_score as {{ dbt.type_string() }})
            || cast(f_score as {{ dbt.type_string() }})
            || cast(m_score as {{ dbt.type_string() }}) as rfm_score,
        case
            when frequency = 0 then null
            when r_score = 5 and f_score >= 4 then 'champions'
            when r_score >= 3 and f_score >= 4 then 'loyal'
            when r_score >= 4 and f_score >= 2 then 'potential_loyalist'
            when r_score = 5 then 'new'
            when r_score = 4 then 'promising'
            when r_score = 3 then 'needs_attention'
            when f_score = 5 then 'cannot_lose'
            when f_score >= 3 then 'at_risk'
            when r_score = 2 then 'hibernating'
            else 'lost'
        end as rfm_segment,
        case
            when frequency = 0 then 'lead'
            when recency_days > {{ var('lifecycle_churn_days') }} then 'churned'
            when recency_days > {{ var('lifecycle_active_days') }} then 'at_risk'
            when days_since_first_order <= {{ var('lifecycle_new_days') }} then 'new'
            when {{ dbt.datediff('previous_order_date', 'last_order_date', 'day') }}
                > {{ var('lifecycle_churn_days') }} then 'reactivated'
            else 'active'
        end as lifecycle_stage,
        case
            when m_score = 5 then 'high'
            when m_score >= 3 then 'medium'
            when m_score >= 1 then 'low'
            else 'none'
        end as value_tier,
        coalesce(
            frequency >= {{ var('discount_driven_min_orders') }}
            and discounted_orders >= {{ var('discount_driven_share') }} * frequency,
            false
        ) as is_discount_driven,
        nullif(concat_ws(
            ',',
            case when is_email_marketable then 'email' end,
            case when is_push_reachable then 'push' end,
            case when is_sms_marketable then 'sms' end
        ), '') as reachable_channels,
        is_email_marketable,
        is_sms_marketable,
        is_push_reachable,
        first_order_date,
        last_order_date,
        last_activity_date,
        coalesce(
            last_activity_date > {{ dbt.dateadd('day', -var('active_window_days'), 'snapshot_date') }},
            false
        ) as is_recently_active,
        probability_alive,
        predicted_clv,
        churn_risk
    from scored

)

select * from final
{%- if former is not none %}
union all by name
select * from {{ former }} where snapshot_date <> (select snapshot_date from snapshot)
{%- endif %}
