"""The gateway's GraphQL schema."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal
from functools import lru_cache
from typing import Any

import strawberry
from graphql import ASTValidationRule, GraphQLError, parse
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_limit_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_limit_rule
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from gateway.core.settings import MAX_QUERY_COST
from schema._base import DECIMAL_SCALAR
from schema._cost import CostLimit
from schema._errors import CodedErrors
from schema._observed import ObservedOperation
from schema.root import Mutation, Query

__all__ = ["GatewaySchema", "build_schema"]

MAX_ALIASES = 30
MAX_TOKENS = 5000
# Documents whose parse and validation are remembered: clients send the same few queries.
CACHED_DOCUMENTS = 256


_parse = lru_cache(maxsize=CACHED_DOCUMENTS)(parse)


class CachedParser(SchemaExtension):
    """Parses each distinct document once. A document that does not parse is left to
    Strawberry, which reports the syntax error as a coded request error."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None:
            with contextlib.suppress(GraphQLError):
                context.graphql_document = _parse(context.query, **context.parse_options)
        yield


class GatewaySchema(strawberry.Schema):
    """The schema; errors are logged by `CodedErrors` (only the unexpected ones)."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        del errors, execution_context


def build_schema(*, max_depth: int = 12, max_cost: int = MAX_QUERY_COST) -> GatewaySchema:
    """The schema with its limits: depth, aliases and tokens per document.

    The limit rules are built once (not per request, as QueryDepthLimiter and
    MaxAliasesLimiter would), so the validation cache, keyed by the rules, hits.
    """
    limits: list[type[ASTValidationRule]] = [
        depth_limit_rule(max_depth, should_ignore=None),
        alias_limit_rule(MAX_ALIASES),
    ]
    extensions: list[Any] = [
        ObservedOperation,
        CodedErrors,
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: CostLimit(budget=max_cost),
        lambda: AddValidationRules(limits),
        CachedParser,
        lambda: ValidationCache(maxsize=CACHED_DOCUMENTS),
    ]
    return GatewaySchema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,
        config=StrawberryConfig(scalar_map={Decimal: DECIMAL_SCALAR}),
    )
