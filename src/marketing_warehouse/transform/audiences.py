"""Audiences as code: ``dbt_project/audiences/<name>.yml``, validated, and the SQL of their members.

An audience is a named filter over one customer's row of ``marts.dim_customer_segments`` (the
run's snapshot) beside ``marts.dim_customers``, sent on one channel, with an optional control
group. A definition names only columns the models' YAML documents (``allowed_columns``: a column
documented tomorrow is usable tomorrow, with no change here), and its filter is one boolean SQL
expression parsed by sqlglot: no statement, no subquery, no function outside ``FUNCTIONS``. Every
dbt command validates every definition again: ``definitions_env`` hands them, rendered for the
engine (sqlglot transpiles DuckDB SQL to Spark's), to the SQL model ``audience_members`` in the
environment variable ``MWH_AUDIENCES`` (``transform.dbt_tasks.dbt_environment``).

Arms: ``bucket = int(sha256(f"{salt}:{customer_id}").hexdigest()[:8], 16) / 2**32``; a member
whose bucket is below ``control_share`` is in the control arm, every other member in the
treatment arm. ``arm`` is that rule in Python and the dbt macro ``audience_bucket`` the same rule
in SQL (a test compares them): a customer keeps their arm for as long as the salt stays the same.

Channels and reachability: the dbt var ``audience_channels`` (``dbt_project.yml``) names each
channel with the SQL condition under which a customer can be reached on it (email and the ad
platforms: an e-mail with marketing consent; sms: SMS consent and a phone in E.164); the marts
gate checks the members against the same var. Erased customers (the erasure log's
``subject_sha256``) never appear.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import sqlglot
import yaml
from sqlglot import expressions as exp
from sqlglot.dialects.spark import Spark

from marketing_warehouse.layout import audiences_dir

#: The models an audience filter reads, in the order their columns are taken (a column of both
#: is the snapshot's).
SOURCE_MODELS = ("dim_customer_segments", "dim_customers")
#: Columns never allowed in a filter: personal data (``meta: {pii: true}`` in the YAML is
#: excluded too) and the snapshot's own date.
EXCLUDED_COLUMNS = {"snapshot_date"}
#: The largest control share: half the audience held out.
MAX_CONTROL_SHARE = 0.5
#: Functions a filter may call (sqlglot expression classes).
FUNCTIONS = (
    exp.Cast,
    exp.TryCast,
    exp.Coalesce,
    exp.Lower,
    exp.Upper,
    exp.Abs,
    exp.Greatest,
    exp.Least,
    exp.DateDiff,
    exp.DateAdd,
    exp.DateSub,
)
#: Expressions a filter may consist of besides columns, literals and ``FUNCTIONS``.
_ALLOWED_NODES = (
    exp.Column,
    exp.Identifier,
    exp.Literal,
    exp.Boolean,
    exp.Null,
    exp.Paren,
    exp.Tuple,
    exp.Not,
    exp.And,
    exp.Or,
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.Is,
    exp.In,
    exp.Between,
    exp.Like,
    exp.ILike,
    exp.Add,
    exp.Sub,
    exp.Mul,
    exp.Div,
    exp.Neg,
    exp.Interval,
    exp.Var,
    exp.DataType,
    exp.DataTypeParam,
    exp.Case,
    exp.If,
    *FUNCTIONS,
)
#: Root expressions that are boolean: a comparison, a connective, a negation, a boolean column.
_BOOLEAN_ROOTS = (exp.Predicate, exp.Connector, exp.Not, exp.Boolean, exp.Column, exp.Paren)
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_FIELDS = {"name", "description", "filter", "channel", "control_share", "salt"}
_REQUIRED = ("name", "description", "filter", "channel")


class AudienceError(ValueError):
    """A definition cannot be used: the message names the file and the field."""


@dataclass(frozen=True)
class Audience:
    name: str
    description: str
    filter: str  # as written
    channel: str
    control_share: float
    salt: str
    path: Path
    filter_sql: str = ""  # as sqlglot renders it for DuckDB (what runs)

    @property
    def definition_sha256(self) -> str:
        """Names this version of the definition: a changed filter, share or salt is a new one."""
        text = "\n".join([self.filter_sql, repr(self.control_share), self.salt, self.channel])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- the arm rule, once in Python and once in SQL ---------------------------------------------


def bucket(salt: str, customer_id: str) -> float:
    """The customer's place in [0, 1) for this salt: the first 32 bits of the SHA-256."""
    digest = hashlib.sha256(f"{salt}:{customer_id}".encode()).hexdigest()
    return int(digest[:8], 16) / 2**32


def arm(salt: str, customer_id: str, control_share: float) -> str:
    """``control`` when the bucket is below the share, else ``treatment``."""
    return "control" if bucket(salt, customer_id) < control_share else "treatment"


# --- the columns a filter may name ------------------------------------------------------------


def channels(dbt_project_dir: Path) -> dict[str, str]:
    """Channel -> the SQL condition (over dim_customers' columns) under which a customer can be
    reached on it: the dbt var ``audience_channels``."""
    path = dbt_project_dir / "dbt_project.yml"
    variables = (yaml.safe_load(path.read_text("utf-8")) or {}).get("vars") or {}
    found = variables.get("audience_channels")
    if not isinstance(found, dict) or not found:
        raise AudienceError(f"{path}: no var 'audience_channels' (channel -> condition)")
    return {str(k): str(v) for k, v in found.items()}


def _model_docs(dbt_project_dir: Path) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for path in sorted((dbt_project_dir / "models").rglob("*.yml")):
        for model in (yaml.safe_load(path.read_text("utf-8")) or {}).get("models") or []:
            if isinstance(model, dict) and model.get("name") in SOURCE_MODELS:
                found[model["name"]] = model
    return found


_DOC_BLOCK = re.compile(r"{%-?\s*docs\s+(\w+)\s*-?%}(.*?){%-?\s*enddocs\s*-?%}", re.S)
_DOC_CALL = re.compile(r"""{{\s*doc\(\s*['"](\w+)['"]\s*\)\s*}}""")


def _doc_blocks(dbt_project_dir: Path) -> dict[str, str]:
    """The ``{% docs name %}`` blocks of the project's Markdown files, by name."""
    return {
        name: text.strip()
        for path in sorted((dbt_project_dir / "models").rglob("*.md"))
        for name, text in _DOC_BLOCK.findall(path.read_text("utf-8"))
    }


def allowed_columns(dbt_project_dir: Path) -> dict[str, str]:
    """Column -> its documented description (``{{ doc('…') }}`` replaced by the doc block's
    text): every column the YAML of ``SOURCE_MODELS`` documents, except personal data
    (``meta: {pii: true}``) and ``EXCLUDED_COLUMNS``."""
    docs = _model_docs(dbt_project_dir)
    blocks = _doc_blocks(dbt_project_dir)
    missing = [m for m in SOURCE_MODELS if m not in docs]
    if missing:
        raise AudienceError(f"{dbt_project_dir / 'models'}: no YAML documents {missing}")
    columns: dict[str, str] = {}
    for model in SOURCE_MODELS:
        for column in docs[model].get("columns") or []:
            name = column["name"]
            pii = (column.get("meta") or {}).get("pii") or (column.get("config") or {}).get(
                "meta", {}
            ).get("pii")
            if pii or name in EXCLUDED_COLUMNS or name in columns:
                continue
            text = _DOC_CALL.sub(
                lambda call: blocks.get(call.group(1), call.group(0)),
                str(column.get("description") or ""),
            )
            columns[name] = " ".join(text.split())
    return columns


# --- loading and validation -------------------------------------------------------------------


def validate_filter(text: str, columns: set[str], where: str) -> str:
    """The filter as DuckDB SQL, or ``AudienceError`` naming ``where`` (file and field)."""
    if not isinstance(text, str) or not text.strip():
        raise AudienceError(f"{where}: the filter is empty; expected a boolean SQL expression")
    try:
        parsed = [e for e in sqlglot.parse(text, read="duckdb") if e is not None]
    except sqlglot.errors.SqlglotError as err:
        raise AudienceError(f"{where}: the filter does not parse as SQL: {err}") from None
    if len(parsed) != 1:
        raise AudienceError(
            f"{where}: the filter holds {len(parsed)} statements; expected one boolean expression"
        )
    tree = parsed[0]
    if isinstance(tree, exp.Query | exp.DDL | exp.DML | exp.Command) or tree.find(exp.Query):
        raise AudienceError(
            f"{where}: the filter holds a statement or subquery ({type(tree).__name__}); "
            "expected one boolean expression over the allowed columns"
        )
    for node in tree.walk():
        if isinstance(node, exp.Column):
            if node.table:
                raise AudienceError(
                    f"{where}: column {node.sql()!r} is qualified; name columns without a table"
                )
            if node.name not in columns:
                raise AudienceError(
                    f"{where}: unknown column {node.name!r}; allowed: {', '.join(sorted(columns))}"
                )
        elif isinstance(node, _ALLOWED_NODES):
            continue
        elif isinstance(node, exp.Func):
            name = node.sql_name() if not isinstance(node, exp.Anonymous) else node.name
            allowed = ", ".join(sorted(f.sql_names()[0].lower() for f in FUNCTIONS))
            raise AudienceError(
                f"{where}: function {name.lower()!r} is not allowed; allowed: {allowed}"
            )
        else:
            raise AudienceError(
                f"{where}: {type(node).__name__} ({node.sql(dialect='duckdb')!r}) is not "
                "allowed in a filter; expected comparisons of the allowed columns"
            )
    if not isinstance(tree, _BOOLEAN_ROOTS):
        raise AudienceError(
            f"{where}: the filter is a {type(tree).__name__}, not a boolean expression "
            "(e.g. value_tier = 'high' and lifecycle_stage in ('at_risk', 'churned'))"
        )
    return tree.sql(dialect="duckdb")


def parse_audience(path: Path, columns: set[str], reachable: dict[str, str]) -> Audience:
    """One definition file, validated (``AudienceError`` names the file and the field)."""
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as err:
        raise AudienceError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise AudienceError(f"{path}: expected a mapping with fields {', '.join(_REQUIRED)}")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise AudienceError(f"{path}: field {unknown[0]!r} is unknown; expected {sorted(_FIELDS)}")
    for name in _REQUIRED:
        if data.get(name) in (None, ""):
            raise AudienceError(f"{path}: field {name!r} is missing or empty")
    name = data["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise AudienceError(
            f"{path}: field 'name' is {name!r}; expected lower-case letters, digits and _"
        )
    channel = data["channel"]
    if channel not in reachable:
        raise AudienceError(
            f"{path}: field 'channel' is {channel!r}; expected one of {', '.join(reachable)}"
        )
    share = data.get("control_share", 0)
    if isinstance(share, bool) or not isinstance(share, int | float):
        raise AudienceError(f"{path}: field 'control_share' is {share!r}; expected a number")
    if not 0 <= share <= MAX_CONTROL_SHARE:
        raise AudienceError(
            f"{path}: field 'control_share' is {share}; expected 0 to {MAX_CONTROL_SHARE}"
        )
    salt = data.get("salt", name)
    if not isinstance(salt, str) or not salt:
        raise AudienceError(f"{path}: field 'salt' is {salt!r}; expected a non-empty string")
    filter_sql = validate_filter(data["filter"], columns, f"{path}: field 'filter'")
    return Audience(
        name=name,
        description=" ".join(str(data["description"]).split()),
        filter=str(data["filter"]).strip(),
        channel=channel,
        control_share=float(share),
        salt=salt,
        path=path,
        filter_sql=filter_sql,
    )


def load_audiences(dbt_project_dir: Path, folder: Path | None = None) -> list[Audience]:
    """Every definition of ``folder`` (default: the project's ``audiences/``), validated, by
    name; a name used twice is an error naming both files."""
    folder = folder or audiences_dir(dbt_project_dir)
    columns = set(allowed_columns(dbt_project_dir))
    reachable = channels(dbt_project_dir)
    audiences: dict[str, Audience] = {}
    for path in sorted(folder.glob("*.yml")) if folder.is_dir() else []:
        audience = parse_audience(path, columns, reachable)
        if audience.name in audiences:
            raise AudienceError(
                f"{path}: field 'name' {audience.name!r} is already used by "
                f"{audiences[audience.name].path}"
            )
        audiences[audience.name] = audience
    return [audiences[name] for name in sorted(audiences)]


# --- the definitions as the dbt model reads them ----------------------------------------------

#: The environment variable that carries the definitions to dbt (``dbt_tasks.dbt_environment``): a
#: process's environment holds at most 128 KiB in one variable on Linux.
DEFINITIONS_ENV = "MWH_AUDIENCES"
MAX_DEFINITIONS_BYTES = 100_000


class _SparkVerbatim(Spark):
    """Spark SQL as the project's sessions read it: string literals are kept as written
    (``spark.sql.parser.escapedStringLiterals``), so a backslash is not doubled."""

    class Tokenizer(Spark.Tokenizer):
        STRING_ESCAPES: ClassVar[list[str]] = ["'"]


def _spark_node(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.RegexpFullMatch):  # Spark's rlike finds a match anywhere
        pattern = node.expression
        if not isinstance(pattern, exp.Literal) or not pattern.is_string:
            raise AudienceError(f"{node.sql()}: the pattern of regexp_full_match must be a literal")
        return exp.RegexpLike(
            this=node.this, expression=exp.Literal.string(f"^(?:{pattern.this})$")
        )
    if isinstance(node, exp.Literal) and node.is_string and "'" in node.this:
        raise AudienceError(
            f"{node.sql()}: a quote inside a string literal cannot be written for Spark"
        )
    return node


def render(sql: str, engine: str) -> str:
    """A condition written (and validated) as DuckDB SQL, as ``engine`` runs it: the same text
    on DuckDB, transpiled by sqlglot for Spark (with ``regexp_full_match`` anchored)."""
    if engine == "duckdb":
        return sql
    tree = sqlglot.parse_one(sql, read="duckdb").transform(_spark_node)
    return tree.sql(dialect=_SparkVerbatim)


def _literal(value: str, engine: str) -> str:
    if engine != "duckdb" and "'" in value:
        raise AudienceError(f"{value!r}: a quote cannot be written in a Spark string literal")
    return "'" + value.replace("'", "''") + "'"


def definitions(audiences: list[Audience], reachable: dict[str, str], engine: str) -> list[dict]:
    """What the dbt model ``audience_members`` needs of each audience, its SQL for ``engine``:
    name, channel, ``salt`` (a SQL string literal), ``control_share``, ``definition_sha256``,
    ``filter`` and ``reachable`` (the channel's condition)."""
    return [
        {
            "name": a.name,
            "channel": a.channel,
            "salt": _literal(a.salt, engine),
            "control_share": repr(a.control_share),
            "definition_sha256": a.definition_sha256,
            "filter": render(a.filter_sql, engine),
            "reachable": render(reachable[a.channel], engine),
        }
        for a in audiences
    ]


def definitions_env(dbt_project_dir: Path, engine: str) -> str:
    """``MWH_AUDIENCES``: every definition of the project, validated and rendered for
    ``engine``, as JSON; a definition that cannot be used gives ``{"error": "<file: field ...>"}``,
    which the model raises when it runs (so that a bad file fails the build that reads it, not
    the parsing of the DAG)."""
    import json

    try:
        found = definitions(load_audiences(dbt_project_dir), channels(dbt_project_dir), engine)
    except AudienceError as err:
        return json.dumps({"error": str(err)})
    text = json.dumps(found, sort_keys=True)
    if len(text.encode("utf-8")) > MAX_DEFINITIONS_BYTES:
        return json.dumps(
            {
                "error": f"{audiences_dir(dbt_project_dir)}: the definitions take "
                f"{len(text.encode('utf-8')):,} bytes as JSON; at most "
                f"{MAX_DEFINITIONS_BYTES:,} fit in {DEFINITIONS_ENV}"
            }
        )
    return text
