"""Declarative source contracts: what a landed export must look like and how to type it.

A contract is a YAML file in ``marketing_warehouse/contracts/``, one per source entity. It names the
file pattern, the header -> column mapping, each column's type, which columns are required, the
primary key and the PII columns. Extraction, the raw GX gate and the docs all read the same contract,
so a layout change is made in one place.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

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
    aliases: tuple[str, ...] = ()

    def matches(self, header: str) -> bool:
        key = normalise_header(header)
        return key == normalise_header(self.header) or key in {
            normalise_header(a) for a in self.aliases
        }


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
    #: Rows of one file that share the primary key are one record at a finer grain (ad set, ad,
    #: keyword) or broken down (age, device): ``grain_columns`` tell them apart and
    #: ``additive_columns`` are summed to the primary key's grain. Without them, rows sharing the
    #: key with different content make the file ambiguous (quarantined whole).
    additive_columns: tuple[str, ...] = ()
    grain_columns: tuple[str, ...] = ()
    path: Path | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        """``<source>__<entity>``: names the suite, the raw folder and the dbt source table."""
        return f"{self.source}__{self.entity}"

    @property
    def pii_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.pii)

    def matches_file(self, filename: str) -> bool:
        return fnmatch.fnmatch(filename.lower(), self.file_pattern.lower())


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
                aliases=tuple(c.get("aliases", ())),
            )
            for c in data["columns"]
        )
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
    for key in ("additive_columns", "grain_columns"):
        for name in getattr(contract, key):
            if name not in names:
                raise ContractError(f"{where}: {key} names {name!r}, which is not a column")
    if contract.format not in FORMATS:
        raise ContractError(f"{where}: unknown format {contract.format!r}")
    if contract.decimal_separator not in {"auto", ".", ","}:
        raise ContractError(f"{where}: decimal_separator must be auto, '.' or ','")
    return contract


@cache
def load_contracts() -> tuple[Contract, ...]:
    """All contracts shipped with the package, sorted by key."""
    folder = resources.files("marketing_warehouse") / "contracts"
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
