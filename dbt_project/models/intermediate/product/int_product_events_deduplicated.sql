{#- One row per product event: the copy from the latest landed export wins (an event re-sent in a
    later export, or in an overlapping one, counts once). Incremental (macros/incremental.sql): a
    night ranks the copies it loaded against the copies kept. -#}
{{ config(
    materialized=latest_copy_materialized(),
    unique_key='message_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    post_hook="{{ delete_kept_copies_of_gone_files(ref('stg_product__events')) }}",
) }}
with

copies as (

    select
        message_id,
        user_id,
        event_name,
        device,
        value_amount,
        email,
        occurred_at,
        {{ kept_copy_columns() }}
    from {{ ref('stg_product__events') }}
    {% if is_incremental() -%}
    where {{ copies_to_rank(ref('stg_product__events'), 'message_id') }}
    {%- endif %}

),

candidates as (

    select * from copies
    {% if is_incremental() -%}
    union all by name
    {{ kept_copies('copies', ref('stg_product__events'), 'message_id') }}
    {%- endif %}

),

ranked as (

    select
        *,
        {{ latest_copy_rank('message_id') }} as copy_rank
    from candidates

),

final as (

    select {{ all_columns_but(['copy_rank']) }}
    from ranked
    where copy_rank = 1

)

select * from final
