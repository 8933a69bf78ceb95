{#- "Latest copy wins": the rule that resolves a record delivered more than once (a re-sent or
    overlapping export, a correction dropped late into an earlier folder). Of the copies that share
    ``partition_by``, the first is the one of the latest delivery folder (load_date), then the
    latest landed file (its modification time, whatever its name), then the latest load, then the
    file name and row number so the choice is always the same. Rows sharing a key inside one file
    never reach it: extraction quarantines them (conflicting_key), and ad reports are summed per
    file before (int_ad_spend_converted). -#}
{% macro latest_copy_rank(partition_by) -%}
    row_number() over (
        partition by {{ partition_by }}
        order by
            load_date desc,
            landed_at desc nulls last,
            loaded_at desc nulls last,
            source_file desc,
            source_row_number desc
    )
{%- endmacro %}
