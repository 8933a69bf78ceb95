"""The metrics of row-wise expectations computed as DuckDB aggregates, judged by GX.

GX's pandas engine needs every row of a batch in a frame; the raw gate's batch is every row a
night loaded. For the expectation kinds below, DuckDB computes the metrics GX asks for (row
count, null count, unexpected count, rows kept by ``ignore_row_if``, the first few unexpected
values and row labels) in one pass over the batch, and GX's own expectation classes turn them
into results (``Expectation.metrics_validate``: ``mostly``, percentages, result format). So the
suites, the verdicts and the result objects stay GX's; only the counting moved.

``plan`` returns None for anything it cannot compute exactly as GX's pandas engine would: another
kind, a ``row_condition``, a column type whose pandas comparison differs from DuckDB's, a regex
whose Python meaning RE2 does not share. Those expectations go through GX on frames as before.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

#: The domain of each translated kind: a column, a pair of columns, a key, or the table.
KINDS = {
    "expect_column_values_to_not_be_null": "column",
    "expect_column_values_to_be_null": "column",
    "expect_column_values_to_be_in_set": "column",
    "expect_column_values_to_be_between": "column",
    "expect_column_values_to_match_regex": "column",
    "expect_column_pair_values_a_to_be_greater_than_b": "pair",
    "expect_compound_columns_to_be_unique": "key",
    "expect_table_columns_to_match_set": "table",
    "expect_table_row_count_to_be_between": "table",
}
NUMERIC = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
    "UBIGINT", "FLOAT", "DOUBLE",
}  # fmt: skip
FLOATING = {"FLOAT", "DOUBLE"}
ORDERED = NUMERIC | {"DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE"}


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _base(kind: str) -> str:
    return "DECIMAL" if kind.startswith("DECIMAL") else kind


def _value(column: str, kind: str) -> str:
    """The column as pandas sees it: a float NaN is missing, a DECIMAL is a float."""
    if _base(kind) in FLOATING:
        return f"nullif({quote(column)}, 'nan'::double)"
    if _base(kind) == "DECIMAL":
        return f"cast({quote(column)} as double)"
    return quote(column)


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(float(value)) if isinstance(value, float) else str(value)
    return "'" + str(value).replace("'", "''") + "'"


# --- regular expressions -------------------------------------------------------------------


def re2_pattern(regex: str) -> str | None:
    """``regex`` rewritten for DuckDB's RE2 so that it matches exactly the strings Python's
    ``re.search`` matches (as GX's pandas engine uses it), or None when that is not certain.

    Kept: literals, ``.``, classes of literals and ranges, repeats, groups, alternation, ``^``
    and a final ``$`` (Python's also matches before a last newline, so it becomes ``\\n?$``).
    Left to GX: ``\\d \\w \\s \\b`` (Unicode in Python, ASCII in RE2), flags, look-arounds,
    back-references."""
    from re import _constants as sre
    from re import _parser as sre_parse

    try:
        parsed = sre_parse.parse(regex)
    except re.error:
        return None
    if parsed.state.flags & ~re.UNICODE:
        return None

    def char(code: int) -> str:
        c = chr(code)
        return c if c.isascii() and c.isalnum() else f"\\x{{{code:x}}}"

    def render(items, top: bool = False) -> str | None:
        out = []
        items = list(items)
        for index, (op, arg) in enumerate(items):
            if op is sre.LITERAL:
                out.append(char(arg))
            elif op is sre.NOT_LITERAL:
                out.append(f"[^{char(arg)}]")
            elif op is sre.ANY:
                out.append(".")
            elif op is sre.IN:
                parts, negate = [], False
                for sub_op, sub_arg in arg:
                    if sub_op is sre.NEGATE:
                        negate = True
                    elif sub_op is sre.LITERAL:
                        parts.append(char(sub_arg))
                    elif sub_op is sre.RANGE:
                        parts.append(f"{char(sub_arg[0])}-{char(sub_arg[1])}")
                    else:
                        return None
                out.append("[" + ("^" if negate else "") + "".join(parts) + "]")
            elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
                low, high, sub = arg
                if low > 1000 or (high != sre.MAXREPEAT and high > 1000):
                    return None
                inner = render(sub)
                if inner is None:
                    return None
                bound = f"{{{low},}}" if high == sre.MAXREPEAT else f"{{{low},{high}}}"
                out.append(f"(?:{inner}){bound}" + ("?" if op is sre.MIN_REPEAT else ""))
            elif op is sre.SUBPATTERN:
                _group, add_flags, del_flags, sub = arg
                inner = render(sub)
                if add_flags or del_flags or inner is None:
                    return None
                out.append(f"(?:{inner})")
            elif op is sre.BRANCH:
                branches = [render(sub) for sub in arg[1]]
                if any(b is None for b in branches):
                    return None
                out.append("(?:" + "|".join(branches) + ")")
            elif op is sre.AT and arg in (sre.AT_BEGINNING, sre.AT_BEGINNING_STRING):
                out.append("^")
            elif op is sre.AT and arg is sre.AT_END_STRING:
                out.append("$")
            elif op is sre.AT and arg is sre.AT_END and top and index == len(items) - 1:
                out.append("\\n?$")
            else:
                return None
        return "".join(out)

    return render(parsed, top=True)


# --- plans ---------------------------------------------------------------------------------


@dataclass
class Plan:
    """One expectation's metrics as SQL over ``batch``: ``aggregates`` maps a metric name to an
    aggregate of the shared scan; ``queries`` to a scalar subquery of its own."""

    config: Any  # ExpectationConfiguration, suite parameters substituted
    expectation: Any  # the GX expectation that judges the metrics
    dependencies: Any
    aggregates: dict[str, str]
    queries: dict[str, str]
    constants: dict[str, Any]


def _column_condition(config, kind: str, column: str, column_type: str) -> str | None:
    """When a non-missing value of ``column`` is as expected, or None if not translated."""
    kwargs = config.kwargs
    value = _value(column, column_type)
    base = _base(column_type)
    if kind == "expect_column_values_to_be_in_set":
        values = kwargs.get("value_set")
        if values is None:
            return "true"
        values = list(values)
        if base == "BOOLEAN":
            comparable = all(isinstance(v, bool) for v in values)
        elif base == "VARCHAR":
            comparable = all(isinstance(v, str) for v in values)
        else:
            comparable = (base in NUMERIC or base == "DECIMAL") and all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in values
            )
        if not comparable:
            return None
        if not values:
            return "false"
        return f"{value} in ({', '.join(_literal(v) for v in values)})"
    if kind == "expect_column_values_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        bounds = [b for b in (low, high) if b is not None]
        if not bounds or not (base in NUMERIC or base == "DECIMAL"):
            return None
        if any(not isinstance(b, int | float) or isinstance(b, bool) for b in bounds):
            return None
        if low is not None and high is not None and low > high:
            return None  # GX raises; let it say so
        parts = []
        if low is not None:
            parts.append(f"{value} {'>' if kwargs.get('strict_min') else '>='} {_literal(low)}")
        if high is not None:
            parts.append(f"{value} {'<' if kwargs.get('strict_max') else '<='} {_literal(high)}")
        return " and ".join(parts)
    if kind == "expect_column_values_to_match_regex":
        regex = kwargs.get("regex")
        pattern = re2_pattern(regex) if isinstance(regex, str) else None
        if pattern is None or base != "VARCHAR":
            return None
        return f"regexp_matches({value}, {_literal(pattern)})"
    return None


def plan(config, columns: dict[str, str], result_format: dict, engine) -> Plan | None:
    """The SQL for ``config``'s metrics over a batch with ``columns`` (name -> DuckDB type), or
    None when GX must compute them itself (see the module's docstring)."""
    domain = KINDS.get(config.type)
    kwargs = config.kwargs
    if domain is None or kwargs.get("row_condition"):
        return None
    expectation = config.to_domain_obj()
    dependencies = expectation.get_validation_dependencies(
        execution_engine=engine, runtime_configuration={"result_format": result_format}
    )
    limit = int(result_format.get("partial_unexpected_count", 20))
    labels = result_format.get("unexpected_index_column_names") or []
    if any(label not in columns for label in labels):
        return None
    label_struct = "struct_pack(" + ", ".join(f"{quote(c)} := {quote(c)}" for c in labels) + ")"
    aggregates: dict[str, str] = {"table.row_count": "count(*)"}
    queries: dict[str, str] = {}
    constants: dict[str, Any] = {"table.columns": list(columns)}
    metric = getattr(expectation, "map_metric", None)

    def samples(value: str, unexpected: str) -> None:
        aggregates[f"{metric}.unexpected_values"] = (
            f"min({value}, {limit}) filter (where {unexpected})"
        )
        if labels:
            aggregates[f"{metric}.unexpected_index_list"] = (
                f"min({label_struct}, {limit}) filter (where {unexpected})"
            )

    if domain == "column":
        column = kwargs.get("column")
        if column not in columns:
            return None
        column_type = columns[column]
        missing = f"({_value(column, column_type)} is null)"
        aggregates["column_values.nonnull.unexpected_count"] = f"count(*) filter (where {missing})"
        if config.type == "expect_column_values_to_not_be_null":
            aggregates[f"{metric}.unexpected_count"] = f"count(*) filter (where {missing})"
            # the values of missing rows are missing: as many Nones as the sample shows
            aggregates[f"{metric}.unexpected_values"] = (
                f"list_transform(range(least(count(*) filter (where {missing}), {limit})),"
                " i -> null)"
            )
            if labels:
                aggregates[f"{metric}.unexpected_index_list"] = (
                    f"min({label_struct}, {limit}) filter (where {missing})"
                )
        elif config.type == "expect_column_values_to_be_null":
            aggregates[f"{metric}.unexpected_count"] = f"count(*) filter (where not {missing})"
            samples(quote(column), f"not {missing}")
        else:
            condition = _column_condition(config, config.type, column, column_type)
            if condition is None:
                return None
            unexpected = f"(not {missing} and not coalesce(({condition}), false))"
            aggregates[f"{metric}.unexpected_count"] = f"count(*) filter (where {unexpected})"
            samples(quote(column), unexpected)
    elif domain == "pair":
        a, b = kwargs.get("column_A"), kwargs.get("column_B")
        if a not in columns or b not in columns:
            return None
        kind_a, kind_b = _base(columns[a]), _base(columns[b])
        if not (
            (kind_a in NUMERIC | {"DECIMAL"} and kind_b in NUMERIC | {"DECIMAL"})
            or (kind_a == kind_b and kind_a in ORDERED)
        ):
            return None
        value_a, value_b = _value(a, columns[a]), _value(b, columns[b])
        ignore = kwargs.get("ignore_row_if") or "both_values_are_missing"
        kept = {
            "both_values_are_missing": f"not ({value_a} is null and {value_b} is null)",
            "either_value_is_missing": f"({value_a} is not null and {value_b} is not null)",
            "neither": "true",
        }.get(ignore)
        if kept is None:
            return None
        operator = ">=" if kwargs.get("or_equal") else ">"
        unexpected = f"(({kept}) and not coalesce({value_a} {operator} {value_b}, false))"
        aggregates[f"{metric}.filtered_row_count"] = f"count(*) filter (where {kept})"
        aggregates[f"{metric}.unexpected_count"] = f"count(*) filter (where {unexpected})"
        samples(f"[{quote(a)}, {quote(b)}]", unexpected)
    elif domain == "key":
        key = list(kwargs.get("column_list") or [])
        if not key or any(c not in columns for c in key):
            return None
        values = [_value(c, columns[c]) for c in key]
        ignore = kwargs.get("ignore_row_if") or "all_values_are_missing"
        kept = {
            "all_values_are_missing": "not (" + " and ".join(f"{v} is null" for v in values) + ")",
            "any_value_is_missing": " and ".join(f"{v} is not null" for v in values),
            "never": "true",
        }.get(ignore)
        if kept is None:
            return None
        group = ", ".join(values)
        key_struct = "struct_pack(" + ", ".join(f"{quote(c)} := {quote(c)}" for c in key) + ")"
        aggregates[f"{metric}.filtered_row_count"] = f"count(*) filter (where {kept})"
        repeated = (
            f"(select {{select}} from (select *, count(*) over (partition by {group}) as _mwh_n "
            f"from batch where {kept}) as keyed where _mwh_n > 1)"
        )
        queries[f"{metric}.unexpected_count"] = repeated.replace("{select}", "count(*)")
        queries[f"{metric}.unexpected_values"] = repeated.replace(
            "{select}", f"min({key_struct}, {limit})"
        )
        if labels:
            queries[f"{metric}.unexpected_index_list"] = repeated.replace(
                "{select}", f"min({label_struct}, {limit})"
            )
    needed = set(dependencies.metric_configurations)
    known = set(aggregates) | set(queries) | set(constants) | {f"{metric}.unexpected_index_query"}
    if labels:
        known.add(f"{metric}.unexpected_index_list")
    else:
        known |= {f"{metric}.unexpected_index_list"}
    if not needed <= known:
        return None
    return Plan(config, expectation, dependencies, aggregates, queries, constants)


def _python(value: Any, pair: bool = False) -> Any:
    if pair and isinstance(value, list):
        return tuple(value)
    return value


def validate(con, sql: str, plans: list[Plan], result_format: dict, engine) -> list:
    """Each plan's ExpectationValidationResult, from one scan of ``sql`` (and one windowed scan
    per unique key), judged by GX's expectation classes."""
    if not plans:
        return []
    scanned, keyed = [], []
    for index, item in enumerate(plans):
        for name, expression in item.aggregates.items():
            scanned.append((index, name, expression))
        for name, expression in item.queries.items():
            keyed.append((index, name, expression))
    columns_of = scanned + keyed
    alias = {(index, name): f"m{n}" for n, (index, name, _) in enumerate(columns_of)}
    scan = ", ".join(f"{expr} as {alias[index, name]}" for index, name, expr in scanned)
    query = f"with batch as ({sql}) "
    query += f"select * from (select {scan} from batch) as scanned"
    if keyed:
        subqueries = ", ".join(f"{expr} as {alias[index, name]}" for index, name, expr in keyed)
        query += f", (select {subqueries}) as keyed"
    row = con.execute(query).fetchone()
    columns = [d[0] for d in con.description]
    values = dict(zip(columns, row, strict=True))
    results = []
    for index, item in enumerate(plans):
        computed = {name: values[alias[i, name]] for i, name, _ in columns_of if i == index}
        pair = KINDS[item.config.type] == "pair"
        metrics = {}
        for name, configuration in item.dependencies.metric_configurations.items():
            if name in computed:
                value = computed[name]
                if name.endswith(("unexpected_values", "unexpected_index_list")):
                    value = [_python(v, pair) for v in (value or [])]
            else:
                value = item.constants.get(name)
            metrics[configuration.id] = value
        results.append(
            item.expectation.metrics_validate(
                metrics=metrics,
                runtime_configuration={"result_format": copy.deepcopy(result_format)},
                execution_engine=engine,
            )
        )
    return results
