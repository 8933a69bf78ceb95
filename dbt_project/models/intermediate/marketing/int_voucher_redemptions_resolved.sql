{#- One row per redemption attempt of the voucher platform (rollback records folded in): the copy
    from the latest landed export wins; a successful rollback cancels its redemption; the discount
    is converted to the reporting currency with the rate of the redemption's UTC date (macro
    with_fx_rate; a record in a currency with no rate within the look-back is left out, see
    audit.quarantine, missing_fx_rate); order_id names the Shopify order the redemption was sent
    with. -#}
with

records as (

    select * from {{ ref('stg_vouchers__redemptions') }}

),

ranked as (

    select
        *,
        {{ latest_copy_rank('redemption_id') }} as copy_rank
    from records

),

latest as (

    select * from ranked where copy_rank = 1

),

with_rates as (

    select * from ({{ with_fx_rate('latest', 'currency', 'cast(latest.redeemed_at as date)') }}) as converted
    where currency is null or fx_rate is not null

),

redemptions as (

    select * from with_rates where object_type = 'redemption'

),

rollbacks as (

    select rolled_back_redemption_id as redemption_id, min(redeemed_at) as rolled_back_at
    from latest
    where object_type = 'redemption_rollback'
        and result = 'success'
        and rolled_back_redemption_id is not null
    group by rolled_back_redemption_id

),

resolved as (

    select
        redemptions.*,
        redemptions.result = 'success' as is_succeeded,
        rollbacks.rolled_back_at
    from redemptions
    left join rollbacks on redemptions.redemption_id = rollbacks.redemption_id

),

final as (

    select
        redemption_id,
        coalesce(campaign_name, voucher_code, 'unknown') as voucher_campaign,
        voucher_code,
        redeemed_at,
        result,
        failure_code,
        is_succeeded,
        is_succeeded and rolled_back_at is not null as is_rolled_back,
        is_succeeded and rolled_back_at is null as is_net_redemption,
        rolled_back_at,
        case when order_reference is not null then 'shopify-' || order_reference end as order_id,
        email,
        currency,
        coalesce(discount_amount, 0) as discount_amount,
        reporting_currency,
        fx_rate,
        {{ to_reporting('coalesce(discount_amount, 0)', 'fx_rate') }} as discount_amount_reporting,
        source_file
    from resolved

)

select * from final
