"""Production switches of the schema: who may introspect it, and no suggestions.

Who may introspect the schema (INTROSPECTION): everyone, ADMIN only, or no one.

An operation that selects `__schema` or `__type` anywhere (fragments included) is
refused before it executes: UNAUTHENTICATED without a valid token, FORBIDDEN for a
signed-in user who is not ADMIN (or for everyone when introspection is off).
`__typename` is not introspection: clients ask for it with every query.

Without suggestions (FIELD_SUGGESTIONS=false), validation runs with graphql-core's
`hide_suggestions` (schema/_bounds.py) and `NoSuggestions` cuts the "Did you mean ...?"
that other request errors (variables, enum values) may still carry: either would spell
out the schema to whoever guesses at it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Literal

from graphql import DocumentNode, FieldNode, GraphQLError, visit
from graphql.language import Visitor
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionResult

from gateway.core.errors import Forbidden, GatewayError
from resolvers.context import ADMIN, Context

Introspection = Literal["on", "admin", "off"]
_INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


class _Finder(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found: FieldNode | None = None

    def enter_field(self, node: FieldNode, *_args: object) -> object:
        if node.name.value in _INTROSPECTION_FIELDS:
            self.found = node
            return self.BREAK
        return None


def introspection_field(document: DocumentNode) -> FieldNode | None:
    """The first `__schema` or `__type` field of `document`, if any."""
    finder = _Finder()
    visit(document, finder)
    return finder.found


def introspection_policy(policy: Introspection) -> type[SchemaExtension]:
    """An extension refusing introspection to whom `policy` does not admit."""

    class IntrospectionPolicy(SchemaExtension):
        async def on_execute(self) -> AsyncIterator[None]:
            context = self.execution_context
            document = context.graphql_document
            if policy != "on" and document is not None:
                field = introspection_field(document)
                if field is not None:
                    error = await _refusal(context.context, policy)
                    if error is not None:
                        context.result = ExecutionResult(
                            data=None,
                            errors=[
                                GraphQLError(
                                    error.message,
                                    field,
                                    original_error=error,
                                    extensions=error.as_extensions(),
                                )
                            ],
                        )
            yield

    return IntrospectionPolicy


async def _refusal(context: Context, policy: Introspection) -> GatewayError | None:
    if policy == "off":
        return Forbidden("Introspection is disabled.")
    try:
        viewer = await context.viewer()
    except GatewayError as exc:
        return exc
    if viewer.user.role != ADMIN:
        return Forbidden("Introspection is for ADMIN only.")
    return None


class NoSuggestions(SchemaExtension):
    """Removes "Did you mean ...?" from every error message."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        for error in result.errors or [] if result is not None else []:
            if "Did you mean" in error.message:
                error.message = _SUGGESTION.sub("", error.message)
