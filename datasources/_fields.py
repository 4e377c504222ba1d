"""Field tables: each stored type lists its fields once, and its record mapping, editable
set and input handling are derived from that list.

A `StoredField` says how one field is stored (`stored`, the document field or column),
read (`default` when absent, `load`) and written (`store`); its record attribute (`attr`)
and API name (`api`, the attribute in camelCase); whether the API shows it (`shown`),
whether a user may set it (`editable`, checked by the service layer's input rule `rule`
within `limit`), whether it is one the strategy runner executes with (`runtime`), and
whether every stored value must have it (`required`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


def as_is(value: Any) -> Any:
    """A value stored as the record holds it."""
    return value


def upper(value: Any) -> str:
    """A stored lower-case code as the record's upper-case one (`active` -> `ACTIVE`)."""
    return str(value).upper()


def lower(value: Any) -> str:
    """A record's upper-case code as stored (`ACTIVE` -> `active`)."""
    return str(value).lower()


def upper_or_none(value: Any) -> str | None:
    """`upper`, keeping an absent value absent."""
    return str(value).upper() if value else None


def lower_or_none(value: Any) -> str | None:
    """`lower`, keeping an absent value absent."""
    return str(value).lower() if value else None


@dataclass(frozen=True, slots=True)
class StoredField:
    """One field of a stored type (see the module docstring)."""

    attr: str
    stored: str
    default: Any = None
    load: Callable[[Any], Any] = as_is
    store: Callable[[Any], Any] = as_is
    shown: bool = True
    editable: bool = False
    runtime: bool = False
    rule: str | None = None
    limit: int | None = None
    required: bool = False

    @property
    def api(self) -> str:
        """The field's name in the API (`auto_reconnect` -> `autoReconnect`)."""
        head, *rest = self.attr.split("_")
        return head + "".join(part.title() for part in rest)

    def read(self, stored: Mapping[Any, Any]) -> Any:
        """The field's record value in a stored document or row mapping (a KeyError when a
        `required` one is missing: such data is not of this type)."""
        if self.required:
            return self.load(stored[self.stored])
        return self.load(stored.get(self.stored, self.default))


def read_fields(fields: Iterable[StoredField], stored: Mapping[Any, Any]) -> dict[str, Any]:
    """Every field's record value, by attribute, from a document or row mapping."""
    return {field.attr: field.read(stored) for field in fields}


def field_reader(fields: Iterable[StoredField]) -> Callable[[Mapping[Any, Any]], dict[str, Any]]:
    """`read_fields` over `fields`, planned once (per table, at import): a loop over plain
    tuples, with no method call per field and no call at all for a field stored as is.

    A record's fields are read for every document or row a loader returns; this does in
    0.6 of the time what `read_fields` does (bench/README.md, "The Mongo read path"
    under issue 11), and tests/unit/test_field_tables.py holds the two to the same answers.
    """
    plan = tuple(
        (field.attr, field.stored, field.default, field.required, _loader(field))
        for field in fields
    )

    def read(stored: Mapping[Any, Any]) -> dict[str, Any]:
        get = stored.get
        values: dict[str, Any] = {}
        for attr, name, default, required, load in plan:
            value = stored[name] if required else get(name, default)
            values[attr] = value if load is None else load(value)
        return values

    return read


def _loader(field: StoredField) -> Callable[[Any], Any] | None:
    # None for a value taken as stored: no call for it.
    return None if field.load is as_is else field.load


def store_fields(fields: Iterable[StoredField], values: Mapping[str, Any]) -> dict[str, Any]:
    """The stored form of every field, by stored name, from record attributes: a field not
    in `values` takes its default. A key that names no field, or a `required` field left
    out, is a ValueError (a caller's mistake, never silently dropped)."""
    fields = tuple(fields)
    unknown = set(values) - {field.attr for field in fields}
    missing = [field.attr for field in fields if field.required and field.attr not in values]
    if unknown or missing:
        raise ValueError(f"unknown fields {sorted(unknown)}, missing fields {missing}")
    return {field.stored: field.store(values.get(field.attr, field.default)) for field in fields}
