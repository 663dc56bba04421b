"""A small ORM's model registry, and the setup that builds it.

``configure_mappers`` does what an ORM does when it configures its mappers:
it makes a class per table, resolves every foreign key to the model it points
at, adds the reverse relationships, and builds the lookup tables a query needs.
All of it is real CPU work (about 40 ms here), the same on every call, and none
of it depends on the task that asks for it: it belongs at start-up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: Tables and columns: enough for the setup to cost what a real schema's does.
TABLE_COUNT = 80
COLUMNS_PER_TABLE = 16
FOREIGN_KEYS_PER_TABLE = 3


@dataclass
class Column:
    name: str
    kind: type
    #: ``table.column`` this column refers to, for a foreign key.
    references: str | None = None


@dataclass
class Relationship:
    name: str
    target: str
    via: str


class Model:
    """The base of every mapped class: a row as attributes."""

    __table__: str = ""
    __columns__: dict[str, Column] = {}

    def __init__(self, **values: Any) -> None:
        for name, column in self.__columns__.items():
            value = values.get(name)
            if value is not None and not isinstance(value, column.kind):
                raise TypeError(f"{self.__table__}.{name} takes {column.kind.__name__}, not {value!r}")
            setattr(self, name, value)

    def as_row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__columns__}


@dataclass
class Registry:
    """Every mapped class by table name, with its relationships resolved."""

    models: dict[str, type[Model]] = field(default_factory=dict)
    relationships: dict[str, list[Relationship]] = field(default_factory=dict)
    #: ``table.column`` -> the column, for every column of every table.
    columns: dict[str, Column] = field(default_factory=dict)

    def model(self, table: str) -> type[Model]:
        return self.models[table]


def table_schema() -> dict[str, list[Column]]:
    """The tables as declared: the application's schema (an ``events`` table among them)."""
    kinds: list[type] = [int, str, float, bool]
    schema: dict[str, list[Column]] = {
        "events": [Column("id", int), Column("user_id", int, "table_0.id"), Column("kind", str),
                   Column("payload", str)],
    }
    for t in range(TABLE_COUNT):
        columns = [Column("id", int)]
        columns += [Column(f"field_{c}", kinds[c % len(kinds)]) for c in range(COLUMNS_PER_TABLE)]
        columns += [
            Column(f"ref_{k}_id", int, f"table_{(t * 7 + k * 13 + 1) % TABLE_COUNT}.id")
            for k in range(FOREIGN_KEYS_PER_TABLE)
        ]
        schema[f"table_{t}"] = columns
    return schema


def configure_mappers() -> Registry:
    """Map every table to a class and resolve the relationships between them."""
    registry = Registry()
    for table, columns in table_schema().items():
        by_name = {column.name: column for column in columns}
        registry.models[table] = type(
            _class_name(table), (Model,), {"__table__": table, "__columns__": by_name}
        )
        for column in columns:
            registry.columns[f"{table}.{column.name}"] = column
    _resolve_relationships(registry)
    return registry


def _class_name(table: str) -> str:
    return "".join(part.capitalize() for part in table.split("_"))


def _resolve_relationships(registry: Registry) -> None:
    """Each foreign key becomes a relationship both ways; an ORM checks every
    candidate pair of columns, which is what makes configuring slow."""
    for table, model in registry.models.items():
        for column in model.__columns__.values():
            if column.references is None:
                continue
            target, _, target_column = column.references.partition(".")
            candidates = [
                key for key, other in registry.columns.items()
                if key.startswith(target + ".") and other.name == target_column and other.kind is column.kind
            ]
            if not candidates:
                raise LookupError(f"{table}.{column.name} refers to a missing {column.references}")
            forward = Relationship(column.name.removesuffix("_id"), target, column.name)
            registry.relationships.setdefault(table, []).append(forward)
            backward = Relationship(f"{table}_set", table, column.name)
            registry.relationships.setdefault(target, []).append(backward)



def store_events(registry: Registry, user_id: int, events: list[dict[str, Any]]) -> int:
    """The task's real work: each event a validated ``events`` row, encoded as it
    would be written; the bytes written."""
    event_model = registry.model("events")
    written = 0
    for number, event in enumerate(events):
        row = event_model(id=user_id * 100_000 + number, user_id=user_id, kind=str(event.get("kind", "")),
                          payload=json.dumps(event, sort_keys=True))
        written += len(json.dumps(row.as_row()))
    return written


def page_visit_events(count: int = 300) -> list[dict[str, Any]]:
    """What one page visit reports: ``count`` events (the batch a task records)."""
    return [{"kind": "click" if n % 3 else "view", "page": f"/docs/{n % 40}", "at": 1_700_000_000 + n}
            for n in range(count)]
