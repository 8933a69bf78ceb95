"""Declarative source contracts: what a landed export must look like and how to type it.

A contract is a YAML file in ``marketing_warehouse/ingest/contracts/``, one per source entity. It names the
file pattern, the header -> column mapping, each column's type, which columns are required, the
primary key and the PII columns. Extraction, the raw GX gate and the docs all read the same contract,
so a layout change is made in one place.

Row rules. A row that breaks one goes to quarantine with the reason in brackets; the rest of the file
loads (the raw gate's critical checks stay as a safety net that such a row can no longer trip):

- column ``required: true``: the cell must not be empty [missing_required_value];
  ``required_with: [a, b]``: must not be empty when column a or b is filled (Shopify: an order
  amount needs its currency) [missing_required_value].
- column ``min`` / ``max``: the typed value lies within them [out_of_range].
- column ``accepted_values: [A, B]`` with ``value_aliases: {spelling: A}``: the value is one of
  them after normalising case, spacing, ``_`` and ``-`` (so "success", " Success " and "succeeded"
  with an alias all load as the canonical spelling) [unknown_value].
- column ``event_date: true``: an event or transaction date (not a plan date) lies within
  ``MWH_EARLIEST_DATE`` .. the file's load date + 1 day [implausible_date].
- column ``amount: major`` (or ``minor`` for cents): money, see ``config.Plausibility``
  [implausible_amount].
- column ``fill_from_record: true``: an empty value is taken from the first row of the row's record
  (``record_group``), as Shopify fills order-level fields on an order's first row only; counted in
  the ledger (``filled_values``).
- contract ``row_checks: [{rule: "clicks <= impressions", reason: implausible_metrics}]``: a
  comparison of two columns of one row (``<=``, ``<``, ``>=``, ``>``; skipped when either is empty).
- the ``primary_key`` names one row of a file (``unique_key``; every contract whose key holds no
  ``_row_number`` and whose rows are not summed): keys compare typed (e-mails case-insensitively);
  a repeat of an identical row, and every row of a key whose rows disagree, go to quarantine
  [conflicting_key]. Rows that are summed (``additive_columns``: ad reports below the campaign
  grain) must differ in their ``grain_columns`` instead, or the file is quarantined whole
  [unresolvable_keys].
- contract ``date_order: day_first | month_first``: when a column lists formats of both orders
  (``%d/%m/%Y`` and ``%m/%d/%Y``), each file's order is inferred from its values (a first field
  above 12 means day-first, a second one month-first); a file without such a value is read in
  ``date_order``; a file with both is rejected [ambiguous_date_order]. Required with such formats.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

from marketing_warehouse.ingest.quarantine import Reason

DATE_ORDERS = ("day_first", "month_first")
AMOUNT_UNITS = ("major", "minor")
#: ``row_checks`` rules: "<column> <operator> <column>".
ROW_CHECK = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*(<=|<|>=|>)\s*([a-z_][a-z0-9_]*)\s*$")

TYPES = {"string", "integer", "decimal", "timestamp", "date", "boolean", "currency", "email"}
FORMATS = {"csv", "json", "jsonl", "xlsx"}

DEFAULT_TIMESTAMP_FORMATS = (
    "%Y-%m-%d %H:%M:%S %z",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S.%f%z",
    "%Y-%m-%dT%H:%M:%S.%fZ",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d",
)
DEFAULT_DATE_FORMATS = ("%Y-%m-%d",)


class ContractError(ValueError):
    """A contract file is itself invalid (a bug in the project, not in the data)."""


def normalise_value(text: str) -> str:
    """Comparison key of an enumerated value: case, spacing, ``_`` and ``-`` do not matter."""
    return re.sub(r"[\s_-]+", " ", text).strip().lower()


def format_order(fmt: str) -> str | None:
    """``day_first`` when ``%d`` comes before ``%m`` in a format, ``month_first`` when after; None
    for formats that are not read either way (``%Y-%m-%d`` puts the year first: never ambiguous)."""
    if "%d" not in fmt or "%m" not in fmt:
        return None
    if "%Y" in fmt and fmt.index("%Y") < min(fmt.index("%d"), fmt.index("%m")):
        return None
    return "day_first" if fmt.index("%d") < fmt.index("%m") else "month_first"


def _swap_day_month(fmt: str) -> str:
    return fmt.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")


def conflicting_formats(formats: tuple[str, ...]) -> tuple[str, ...]:
    """The formats that read the same text in the other order too (``%d/%m/%Y`` beside
    ``%m/%d/%Y``): which of them applies is a per-file decision (see ``date_order``)."""
    return tuple(f for f in formats if format_order(f) and _swap_day_month(f) in formats)


def normalise_header(text: str) -> str:
    """Header comparison key: case, surrounding and repeated white space and a BOM do not matter."""
    return re.sub(r"\s+", " ", text.replace("\ufeff", "")).strip().lower()


@dataclass(frozen=True)
class Column:
    header: str
    name: str
    type: str
    required: bool = False
    pii: bool = False
    min: float | None = None
    max: float | None = None
    aliases: tuple[str, ...] = ()
    accepted_values: tuple[str, ...] = ()
    #: normalised spelling -> accepted value
    value_aliases: dict[str, str] = field(default_factory=dict, hash=False)
    event_date: bool = False
    amount: str | None = None  # major | minor (cents)
    required_with: tuple[str, ...] = ()
    fill_from_record: bool = False

    def matches(self, header: str) -> bool:
        key = normalise_header(header)
        return key == normalise_header(self.header) or key in {
            normalise_header(a) for a in self.aliases
        }


@dataclass(frozen=True)
class RowCheck:
    """``left op right`` on the typed values of one row; ``reason`` when it does not hold."""

    left: str
    op: str
    right: str
    reason: str

    @property
    def rule(self) -> str:
        return f"{self.left} {self.op} {self.right}"


@dataclass(frozen=True)
class Contract:
    source: str
    entity: str
    description: str
    file_pattern: str
    format: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    timestamp_formats: tuple[str, ...] = DEFAULT_TIMESTAMP_FORMATS
    date_formats: tuple[str, ...] = DEFAULT_DATE_FORMATS
    decimal_separator: str = "auto"
    sheet: str | None = None
    summary_row_pattern: str | None = None
    #: Rows sharing this column's value within a file form one record (Shopify: an order's line
    #: items, with the order-level fields on the first row). One bad row holds back the record.
    record_group: str | None = None
    date_order: str | None = None
    row_checks: tuple[RowCheck, ...] = ()
    #: Rows of one file that share the primary key are one record at a finer grain (ad set, ad,
    #: keyword) or broken down (age, device): ``grain_columns`` tell them apart and
    #: ``additive_columns`` are summed to the primary key's grain. Without them, rows sharing the
    #: key in one grain make the file ambiguous (quarantined whole).
    additive_columns: tuple[str, ...] = ()
    grain_columns: tuple[str, ...] = ()
    path: Path | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        """``<source>__<entity>``: names the suite, the raw folder and the dbt source table."""
        return f"{self.source}__{self.entity}"

    @property
    def unique_key(self) -> bool:
        """Whether the primary key names one row of a file (see the module doc): not when it holds
        the row number (Shopify line items) or rows are summed to it (``additive_columns``)."""
        return (
            bool(self.primary_key)
            and "_row_number" not in self.primary_key
            and not self.additive_columns
        )

    @property
    def pii_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.pii)

    def matches_file(self, filename: str) -> bool:
        return fnmatch.fnmatch(filename.lower(), self.file_pattern.lower())

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def formats(self, kind: str, date_order: str | None = None) -> tuple[str, ...]:
        """The ``date`` or ``timestamp`` formats a file in ``date_order`` (default: the contract's)
        is read with: of two formats that differ only in the order of day and month, the other
        order's is dropped, so one file is never read both ways."""
        listed = self.date_formats if kind == "date" else self.timestamp_formats
        order = date_order or self.date_order
        conflicting = conflicting_formats(listed)
        return tuple(f for f in listed if f not in conflicting or format_order(f) == order)

    @property
    def has_date_order_choice(self) -> bool:
        return bool(conflicting_formats(self.date_formats + self.timestamp_formats))


def _parse(data: dict, path: Path | None) -> Contract:
    where = path.name if path else "<contract>"
    try:
        columns = tuple(
            Column(
                header=c["header"],
                name=c["name"],
                type=c["type"],
                required=bool(c.get("required", False)),
                pii=bool(c.get("pii", False)),
                min=c.get("min"),
                max=c.get("max"),
                aliases=tuple(c.get("aliases", ())),
                accepted_values=tuple(c.get("accepted_values", ())),
                value_aliases={
                    normalise_value(k): v for k, v in (c.get("value_aliases") or {}).items()
                },
                event_date=bool(c.get("event_date", False)),
                amount=c.get("amount"),
                required_with=tuple(c.get("required_with", ())),
                fill_from_record=bool(c.get("fill_from_record", False)),
            )
            for c in data["columns"]
        )
        row_checks = []
        for check in data.get("row_checks", ()):
            match = ROW_CHECK.match(check["rule"])
            if not match:
                raise ContractError(f"{where}: row check {check['rule']!r} is not 'a <= b'")
            row_checks.append(RowCheck(*match.groups(), reason=check["reason"]))
        contract = Contract(
            source=data["source"],
            entity=data["entity"],
            description=data.get("description", ""),
            file_pattern=data["file_pattern"],
            format=data.get("format", "csv"),
            columns=columns,
            primary_key=tuple(data.get("primary_key", ())),
            timestamp_formats=tuple(data.get("timestamp_formats", DEFAULT_TIMESTAMP_FORMATS)),
            date_formats=tuple(data.get("date_formats", DEFAULT_DATE_FORMATS)),
            decimal_separator=data.get("decimal_separator", "auto"),
            sheet=data.get("sheet"),
            summary_row_pattern=data.get("summary_row_pattern"),
            record_group=data.get("record_group"),
            date_order=data.get("date_order"),
            row_checks=tuple(row_checks),
            additive_columns=tuple(data.get("additive_columns", ())),
            grain_columns=tuple(data.get("grain_columns", ())),
            path=path,
        )
    except KeyError as exc:
        raise ContractError(f"{where}: missing key {exc}") from None
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise ContractError(f"{where}: duplicate column names")
    for column in columns:
        if column.type not in TYPES:
            raise ContractError(f"{where}: column {column.name} has unknown type {column.type!r}")
    if contract.record_group and contract.record_group not in names:
        raise ContractError(f"{where}: record_group {contract.record_group!r} is not a column")
    for column in columns:
        _check_column(column, contract, names, where)
    for check in contract.row_checks:
        unknown = {check.left, check.right} - set(names)
        if unknown:
            raise ContractError(f"{where}: row check {check.rule!r} names unknown {unknown}")
        _check_reason(check.reason, where)
    if contract.date_order is not None and contract.date_order not in DATE_ORDERS:
        raise ContractError(f"{where}: date_order must be one of {', '.join(DATE_ORDERS)}")
    if contract.has_date_order_choice and contract.date_order is None:
        raise ContractError(
            f"{where}: formats of both day-month orders are listed; set date_order (the order of "
            "a file whose values do not tell)"
        )
    for key in ("additive_columns", "grain_columns"):
        for name in getattr(contract, key):
            if name not in names:
                raise ContractError(f"{where}: {key} names {name!r}, which is not a column")
    if contract.format not in FORMATS:
        raise ContractError(f"{where}: unknown format {contract.format!r}")
    if contract.decimal_separator not in {"auto", ".", ","}:
        raise ContractError(f"{where}: decimal_separator must be auto, '.' or ','")
    return contract


def _check_reason(reason: str, where: str) -> None:
    if reason not in {r.value for r in Reason}:
        raise ContractError(f"{where}: unknown quarantine reason {reason!r}")


def _check_column(column: Column, contract: Contract, names: list[str], where: str) -> None:
    what = f"{where}: column {column.name}"
    if column.accepted_values and column.type != "string":
        raise ContractError(f"{what}: accepted_values apply to string columns only")
    if column.value_aliases and not set(column.value_aliases.values()) <= set(
        column.accepted_values
    ):
        raise ContractError(f"{what}: value_aliases must map to accepted_values")
    if column.event_date and column.type not in {"date", "timestamp"}:
        raise ContractError(f"{what}: event_date applies to date and timestamp columns only")
    if column.amount is not None and (
        column.amount not in AMOUNT_UNITS or column.type not in {"decimal", "integer"}
    ):
        raise ContractError(f"{what}: amount is major or minor, on a number column")
    if set(column.required_with) - set(names):
        raise ContractError(f"{what}: required_with names an unknown column")
    if column.fill_from_record and not contract.record_group:
        raise ContractError(f"{what}: fill_from_record needs the contract's record_group")


@cache
def load_contracts() -> tuple[Contract, ...]:
    """All contracts shipped with the package, sorted by key."""
    folder = resources.files(__package__) / "contracts"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".yml"):
            found.append(_parse(yaml.safe_load(entry.read_text("utf-8")), Path(str(entry))))
    return tuple(sorted(found, key=lambda c: c.key))


def contract_for(key: str) -> Contract:
    for contract in load_contracts():
        if contract.key == key:
            return contract
    raise KeyError(f"no contract named {key!r}")
