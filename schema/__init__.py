"""The gateway's GraphQL schema."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import strawberry
from graphql import ASTValidationRule, GraphQLError
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext
from strawberry.types.base import get_object_definition

from schema._bounds import (
    BoundedResponse,
    DocumentCache,
    Limits,
    alias_limit_rule,
    bounded_executor,
    check_document,
    depth_limit_rule,
)
from schema._completed import (
    describe_directive_arguments,
    give_defaults_as_literals,
    sort_fields_and_values,
)
from schema._cost import CostLimit
from schema._errors import CodedErrors
from schema._fast import fast_executor, plain_leaves
from schema._ids import ID_SCALAR, GlobalIdInput
from schema._observed import ObservedOperation
from schema._production import Introspection, NoSuggestions, introspection_policy
from schema._scalars import SCALAR_MAP
from schema.federation import (
    REPRESENTATION_SCALAR,
    FederationQueries,
    Representation,
    subgraph_sdl,
)
from schema.root import Mutation, Query

__all__ = ["GatewaySchema", "Limits", "build_schema", "check_document"]

# Query with the federation fields, for a subgraph (FEDERATION=true).
FederatedQuery = merge_types("Query", (Query, FederationQueries))
get_object_definition(FederatedQuery, strict=True).description = get_object_definition(
    Query, strict=True
).description

# The rules Strawberry adds to every validation (strawberry.schema.schema.validate_document).
_STRAWBERRY_RULES = (MaybeNullValidationRule, OneOfInputValidationRule)


def _cached_parser(cache: DocumentCache) -> type[SchemaExtension]:
    class CachedParser(SchemaExtension):
        """Parses each distinct small document once. A document that does not parse is
        left to Strawberry, which reports the syntax error as a coded request error."""

        def on_parse(self) -> Iterator[None]:
            context = self.execution_context
            if context.query is not None:
                with contextlib.suppress(GraphQLError):
                    context.graphql_document = cache.parse(context.query, **context.parse_options)
            yield

    return CachedParser


def _cached_validation(cache: DocumentCache) -> type[SchemaExtension]:
    class CachedValidation(SchemaExtension):
        """Validates each distinct small document once (Strawberry's ValidationCache is
        bounded by entries, not bytes, and cannot hide suggestions)."""

        def on_validate(self) -> Iterator[None]:
            context = self.execution_context
            if context.query is not None and context.graphql_document is not None:
                context.pre_execution_errors = cache.validate(
                    context.schema._schema,
                    context.query,
                    context.graphql_document,
                    (*context.validation_rules, *_STRAWBERRY_RULES),
                )
            yield

    return CachedValidation


class GatewaySchema(strawberry.Schema):
    """The schema; errors are logged by `CodedErrors` (only the unexpected ones)."""

    limits: Limits
    documents: DocumentCache
    # Who may introspect it (and read the subgraph SDL).
    introspection: Introspection
    # The Apollo Federation 2 subgraph SDL, when built with `federation=True`.
    subgraph_sdl: str | None
    # The executor without the fast path (schema/_fast.py): the oracle its tests compare with.
    standard_executor: type[StrawberryGraphQLCoreExecutionContext]

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        del errors, execution_context


def build_schema(
    *,
    limits: Limits = Limits(),  # noqa: B008 - frozen, shared safely
    introspection: Introspection = "on",
    suggestions: bool = True,
    federation: bool = False,
) -> GatewaySchema:
    """The schema with its limits (schema/_bounds.py, the cost in schema/_cost.py) and its
    production switches: who may introspect, and whether errors suggest names ("Did you
    mean ...").

    The limit rules are built once (not per request, as QueryDepthLimiter and
    MaxAliasesLimiter would), so the validation cache hits.

    With `federation`, the schema is also an Apollo Federation 2 subgraph: `_entities` and
    `_service` on Query (schema/federation.py); `subgraph_sdl` is what `_service` answers.
    """
    rules: list[type[ASTValidationRule]] = [
        depth_limit_rule(limits.max_depth),
        alias_limit_rule(limits.max_aliases),
    ]
    cache = DocumentCache(limits, hide_suggestions=not suggestions)
    extensions: list[Any] = [
        ObservedOperation,
        CodedErrors,
        BoundedResponse,
        lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
        lambda: CostLimit(budget=limits.max_cost, documents=cache),
        lambda: AddValidationRules(rules),
        _cached_parser(cache),
        _cached_validation(cache),
        introspection_policy(introspection),
        *(() if suggestions else (NoSuggestions,)),
    ]
    standard = bounded_executor(limits)
    schema = GatewaySchema(
        query=FederatedQuery if federation else Query,
        mutation=Mutation,
        extensions=extensions,
        config=StrawberryConfig(
            scalar_map={
                **SCALAR_MAP,
                GlobalIdInput: ID_SCALAR,
                Representation: REPRESENTATION_SCALAR,
            }
        ),
        execution_context_class=standard,
    )
    give_defaults_as_literals(schema._schema)
    describe_directive_arguments(schema._schema)
    sort_fields_and_values(schema._schema)
    schema.standard_executor = standard
    schema.execution_context_class = fast_executor(standard, plain_leaves(schema._schema))
    schema.limits = limits
    schema.documents = cache
    schema.introspection = introspection
    schema.subgraph_sdl = subgraph_sdl(schema.as_str()) if federation else None
    return schema
