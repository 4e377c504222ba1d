"""What Strawberry leaves out of the graphql-core schema it builds, filled in once at build.

Defaults, given to graphql-core as the literals the SDL prints, so introspection can show them.

Strawberry hands graphql-core each default as an internal value (`default_value`), which
graphql-core's introspection turns back into a literal with `ast_from_value`: that works
for strings, numbers and enums, and fails for a JSON object (`config: JSON! = {}`), which
made `__InputValue.defaultValue` answer INTERNAL and the standard introspection query
fail. graphql-core 3.3 also takes a default as a literal (`GraphQLDefaultInput`), and then
prints and coerces that literal instead. Each default is given as the very literal
Strawberry's SDL printer writes, so `schema.graphql`, introspection and execution all
read one value.

Descriptions of schema directives' arguments (`@cost(weight:)`), which Strawberry drops.

An order: every type's fields and every enum's values are served (introspection) and printed
(`schema.graphql`) in name order, as schema linters expect and readers scan, whatever order
the Python classes declare them in. Answers are unchanged: they follow the query's order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from graphql import (
    GraphQLArgument,
    GraphQLDefaultInput,
    GraphQLEnumType,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    Undefined,
)
from strawberry.printer.ast_from_value import ast_from_value
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.schema_directive import StrawberrySchemaDirective

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


def describe_directive_arguments(schema: GraphQLSchema) -> None:
    """Give each argument of a Strawberry schema directive its field's description."""
    for directive in schema.directives:
        definition = directive.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
        if not isinstance(definition, StrawberrySchemaDirective):
            continue
        # Strawberry makes one argument per field, in field order.
        for field, argument in zip(definition.fields, directive.args.values(), strict=True):
            if argument.description is None:
                argument.description = field.description


def sort_fields_and_values(schema: GraphQLSchema) -> None:
    """Order every type's fields and every enum's values by name (code point order, as
    JavaScript's default sort and graphql-schema-linter's rules have it)."""
    for name, type_ in schema.type_map.items():
        if name.startswith("__"):
            continue
        if isinstance(type_, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType):
            type_.fields = dict(sorted(type_.fields.items()))
        elif isinstance(type_, GraphQLEnumType):
            type_.values = dict(sorted(type_.values.items()))
