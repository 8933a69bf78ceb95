{#- Small statistics helpers in plain SQL (no extension, no Python), used by kpi_experiments. -#}

{#- numerator / denominator as a double float; null when the denominator is 0 or null.
    Not dbt.type_float(): that is "float", a 4-byte REAL on DuckDB. -#}
{% macro safe_divide(numerator, denominator) -%}
    (cast({{ numerator }} as double) / nullif({{ denominator }}, 0))
{%- endmacro %}

{#- Upper tail of the standard normal distribution, P(Z > z), for any z. Uses the complementary
    error function of Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7, so p-values are
    exact to 6 decimals): erfc(x) = t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) exp(-x^2),
    t = 1 / (1 + 0.3275911 x), x = |z| / sqrt(2); P(Z > z) = erfc(x) / 2 for z >= 0, else
    1 - erfc(x) / 2. -#}
{% macro normal_upper_tail(z) -%}
    {%- set x = "(abs(" ~ z ~ ") / sqrt(2.0))" -%}
    {%- set t = "(1.0 / (1.0 + 0.3275911 * " ~ x ~ "))" -%}
    {%- set erfc = "(" ~ t ~ " * (0.254829592 + " ~ t ~ " * (-0.284496736 + " ~ t
        ~ " * (1.421413741 + " ~ t ~ " * (-1.453152027 + " ~ t ~ " * 1.061405429)))) * exp(-"
        ~ x ~ " * " ~ x ~ "))" -%}
    (case when {{ z }} >= 0 then {{ erfc }} / 2.0 else 1.0 - {{ erfc }} / 2.0 end)
{%- endmacro %}

{#- Two-sided p-value of a standard normal test statistic z: 2 P(Z > |z|). -#}
{% macro two_sided_p_value(z) -%}
    (2.0 * {{ normal_upper_tail("abs(" ~ z ~ ")") }})
{%- endmacro %}

{#- P(X > chi2) for a chi-square statistic with df degrees of freedom: exact for df = 1
    (2 P(Z > sqrt(chi2))) and df = 2 (exp(-chi2 / 2)), the Wilson-Hilferty normal approximation
    ((chi2 / df)^(1/3) - (1 - 2 / (9 df))) / sqrt(2 / (9 df)) for df >= 3. -#}
{% macro chi_square_p_value(chi2, df) -%}
    (case
        when {{ df }} < 1 or {{ chi2 }} is null then null
        when {{ df }} = 1 then {{ two_sided_p_value("sqrt(" ~ chi2 ~ ")") }}
        when {{ df }} = 2 then exp(-({{ chi2 }}) / 2.0)
        else {{ normal_upper_tail(
            "((power((" ~ chi2 ~ ") / (" ~ df ~ "), 1.0 / 3) - (1 - 2.0 / (9 * (" ~ df ~ "))))"
            ~ " / sqrt(2.0 / (9 * (" ~ df ~ "))))") }}
    end)
{%- endmacro %}

{#- A money amount per unit (average order value, CAC, revenue per recipient): ``numerator`` (a
    decimal with at most ``scale`` decimals) divided by a whole-number ``denominator``, rounded
    half away from zero to ``scale`` decimals, as decimal(18, scale); null when the denominator
    is 0 or null. Exact: computed in whole units of 10^-scale, so every engine gives the same
    cent (a decimal divided on DuckDB goes through a double, on Spark it stays a decimal). -#}
{% macro money_ratio(numerator, denominator, scale=2) -%}
    {%- set units = "cast((" ~ numerator ~ ") * " ~ 10 ** scale ~ " as bigint)" -%}
    {%- set divisor = "cast(nullif(" ~ denominator ~ ", 0) as bigint)" -%}
    cast(
        (case when ({{ units }} < 0) <> ({{ divisor }} < 0) then -1 else 1 end)
        * {{ integer_divide('2 * abs(' ~ units ~ ') + abs(' ~ divisor ~ ')', '2 * abs(' ~ divisor ~ ')') }}
        * cast({{ '0.' ~ '0' * (scale - 1) ~ '1' }} as decimal(18, {{ scale }}))
        as decimal(18, {{ scale }})
    )
{%- endmacro %}

{#- The whole-number quotient of two non-negative whole numbers. -#}
{% macro integer_divide(dividend, divisor) -%}
    {{ return(adapter.dispatch('integer_divide')(dividend, divisor)) }}
{%- endmacro %}
{% macro default__integer_divide(dividend, divisor) -%}
    (({{ dividend }}) // ({{ divisor }}))
{%- endmacro %}
{% macro spark__integer_divide(dividend, divisor) -%}
    (({{ dividend }}) div ({{ divisor }}))
{%- endmacro %}
