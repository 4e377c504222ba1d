"""Give every GraphQL error an `extensions.code`, and mask the unexpected ones."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from gateway.core.errors import GatewayError, InvalidFields
from gateway.core.telemetry import current_request

log = logging.getLogger("gateway.errors")

INTERNAL_MESSAGE = "Internal server error."
# The limiter rules' own messages (strawberry and graphql-core) mark a too-complex query.
_TOO_COMPLEX = re.compile(
    r"exceeds maximum operation depth"
    r"|aliases found\. Allowed"
    r"|Document contains more than \d+ tokens"
    # graphql-core stops validating a document past 100 errors (thousands of copies of a
    # field, say): a document too large to check is too complex.
    r"|Validation aborted"
)


def _root_cause(error: GraphQLError) -> BaseException | None:
    cause: BaseException | None = error.original_error
    while isinstance(cause, GraphQLError) and cause.original_error is not None:
        cause = cause.original_error
    return cause


def code_error(error: GraphQLError) -> GraphQLError:
    """`error` with its code; an unexpected exception becomes a bare INTERNAL error."""
    cause = _root_cause(error)
    if isinstance(cause, GatewayError):
        return GraphQLError(
            cause.message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=cause,
            extensions=cause.as_extensions(),
        )
    if cause is not None and not isinstance(cause, GraphQLError):
        log.error("unexpected error at %s", error.path, exc_info=cause)
        # The request id finds the logged details (the log line carries it too).
        request = current_request()
        extra = {"requestId": request.request_id} if request is not None else {}
        return GraphQLError(
            INTERNAL_MESSAGE,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": "INTERNAL", **extra},
        )
    # Syntax, validation and variable errors: the request itself is at fault.
    code = "QUERY_TOO_COMPLEX" if _TOO_COMPLEX.search(error.message) else "BAD_USER_INPUT"
    error.extensions = {**(error.extensions or {}), "code": code}
    return error


def coded_errors(error: GraphQLError) -> list[GraphQLError]:
    """`code_error`, with several invalid fields (InvalidFields) spread into one error each,
    at the same place in the answer, so a client can show each next to its field."""
    cause = _root_cause(error)
    if not isinstance(cause, InvalidFields):
        return [code_error(error)]
    return [
        GraphQLError(
            each.message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=each,
            extensions=each.as_extensions(),
        )
        for each in cause.errors
    ]


def _once_unauthenticated(errors: list[GraphQLError]) -> list[GraphQLError]:
    # UNAUTHENTICATED is about the request, not a field: when several fields fail for
    # it (the dashboard's fields each wait on the viewer check), one error says it.
    seen = False
    kept = []
    for error in errors:
        if (error.extensions or {}).get("code") == "UNAUTHENTICATED":
            if seen:
                continue
            seen = True
        kept.append(error)
    return kept


class CodedErrors(SchemaExtension):
    """Rewrites each result's errors through `code_error`."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = _once_unauthenticated(
                [coded for error in result.errors for coded in coded_errors(error)]
            )
