"""Defaults given to graphql-core as the literals the SDL prints, so introspection can show them.

Strawberry hands graphql-core each default as an internal value (`default_value`), which
graphql-core's introspection turns back into a literal with `ast_from_value`: that works
for strings, numbers and enums, and fails for a JSON object (`config: JSON! = {}`), which
made `__InputValue.defaultValue` answer INTERNAL and the standard introspection query
fail. graphql-core 3.3 also takes a default as a literal (`GraphQLDefaultInput`), and then
prints and coerces that literal instead. Each default is given as the very literal
Strawberry's SDL printer writes, so `schema.graphql`, introspection and execution all
read one value.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from graphql import (
    GraphQLArgument,
    GraphQLDefaultInput,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    Undefined,
)
from strawberry.printer.ast_from_value import ast_from_value

if TYPE_CHECKING:
    from graphql.language import ConstValueNode


def _inputs(schema: GraphQLSchema) -> Iterator[GraphQLArgument | GraphQLInputField]:
    for type_ in schema.type_map.values():
        if isinstance(type_, GraphQLInputObjectType):
            yield from type_.fields.values()
        elif isinstance(type_, GraphQLObjectType | GraphQLInterfaceType):
            for field in type_.fields.values():
                yield from field.args.values()
    for directive in schema.directives:
        yield from directive.args.values()


def give_defaults_as_literals(schema: GraphQLSchema) -> None:
    """Give every argument and input field that has a default its SDL literal."""
    for value in _inputs(schema):
        if value.default is not None or value.default_value is Undefined:
            continue
        literal = ast_from_value(value.default_value, value.type)
        if literal is None:
            raise TypeError(f"a default of type {value.type} has no literal")
        # Built from a value, so it holds no variable: a constant literal.
        value.default = GraphQLDefaultInput(literal=cast("ConstValueNode", literal))
