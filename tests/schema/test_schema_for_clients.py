"""Rules every part of the schema keeps so clients can generate code from it, checked by
walking the built schema: a new type, field, argument or enum value without a description,
or a custom scalar without a specification, fails here before any tool runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    specified_scalar_types,
)

from datasources import outbox
from datasources.outbox import ACTIVITY_KINDS
from schema import build_schema
from schema.analytics import ActivityKind

SCHEMA: GraphQLSchema = build_schema()._schema


def _described() -> Iterator[tuple[str, str | None]]:
    """Every described part of the schema, by a readable path, with its description."""
    for name, type_ in SCHEMA.type_map.items():
        if name.startswith("__") or name in specified_scalar_types:
            continue
        yield name, type_.description
        if isinstance(type_, GraphQLObjectType | GraphQLInterfaceType):
            for field_name, field in type_.fields.items():
                yield f"{name}.{field_name}", field.description
                for arg_name, arg in field.args.items():
                    yield f"{name}.{field_name}({arg_name})", arg.description
        elif isinstance(type_, GraphQLInputObjectType):
            for field_name, input_field in type_.fields.items():
                yield f"{name}.{field_name}", input_field.description
        elif isinstance(type_, GraphQLEnumType):
            for value_name, value in type_.values.items():
                yield f"{name}.{value_name}", value.description
    for directive in SCHEMA.directives:
        for arg_name, arg in directive.args.items():
            yield f"@{directive.name}({arg_name})", arg.description


def test_every_type_field_argument_and_enum_value_has_a_description():
    parts = list(_described())

    missing = [path for path, description in parts if not (description or "").strip()]

    assert len(parts) > 300  # the walk reaches every part
    assert missing == []


def test_every_description_starts_with_a_capital_letter_or_a_symbol():
    # graphql-schema-linter's descriptions-are-capitalized, for fields; kept everywhere.
    lower = [path for path, text in _described() if text and text[0].islower()]

    assert lower == []


def test_every_custom_scalar_names_its_specification():
    scalars = {
        name: type_.specified_by_url
        for name, type_ in SCHEMA.type_map.items()
        if isinstance(type_, GraphQLScalarType) and name not in specified_scalar_types
    }

    assert set(scalars) == {"Date", "DateTime", "Decimal", "JSON"}
    assert all(url and url.startswith("https://") for url in scalars.values()), scalars


def test_activity_kind_shows_every_kind_the_gateway_records_and_only_those():
    assert {kind.name for kind in ActivityKind} == {*ACTIVITY_KINDS, "OTHER"}


def _names(type_: object) -> list[str] | None:
    if isinstance(type_, GraphQLEnumType):
        return list(type_.values)
    if isinstance(type_, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType):
        return list(type_.fields)
    return None


def test_fields_and_enum_values_are_served_in_name_order():
    unsorted = [
        name
        for name, type_ in SCHEMA.type_map.items()
        if not name.startswith("__") and (names := _names(type_)) is not None
        if names != sorted(names)
    ]

    assert unsorted == []


def test_recording_a_kind_activity_kind_does_not_show_is_refused():
    with pytest.raises(ValueError, match="unknown activity kind"):
        outbox.event("0" * 24, "STRATEGY_RENAMED")
