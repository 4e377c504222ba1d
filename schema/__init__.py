"""The gateway's GraphQL schema."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from schema._base import DECIMAL_SCALAR
from schema._errors import CodedErrors
from schema.root import Mutation, Query

__all__ = ["GatewaySchema", "build_schema"]

MAX_ALIASES = 30
MAX_TOKENS = 5000


class GatewaySchema(strawberry.Schema):
    """The schema; errors are logged by `CodedErrors` (only the unexpected ones)."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        del errors, execution_context


def build_schema(*, max_depth: int = 12) -> GatewaySchema:
    """The schema with its limits: depth, aliases and tokens per document."""
    extensions: list[Any] = [
        CodedErrors,
        lambda: QueryDepthLimiter(max_depth=max_depth),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
    ]
    return GatewaySchema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,
        config=StrawberryConfig(scalar_map={Decimal: DECIMAL_SCALAR}),
    )
